"""Input validation and coercion shared by every public function.

The Cython kernels run with bounds checks off, so everything they receive is checked here:
dtype, C-contiguity, matching lengths and finite values.  Arrays are copied only when needed
(read-only and C-contiguous inputs are used in place).
"""
import math
import numbers

import numpy as np

from . import _kernels

__all__ = []

EPS = 1e-10  # the eps gating of the official RS / GAP code


def check_delta(delta, name="delta"):
    """Return ``delta`` as a float, or raise if it is not a finite number >= 0."""
    if isinstance(delta, (bool, np.bool_)) or not isinstance(delta, numbers.Real):
        raise ValueError(f"{name} must be a real number >= 0, got {delta!r}.")
    d = float(delta)
    if not math.isfinite(d) or d < 0.0:
        raise ValueError(
            f"{name} must be a finite number >= 0 (the half-width of the relaxed step; "
            f"0 gives the exact step), got {delta!r}."
        )
    return d


def check_method(method, allowed, func):
    if method not in allowed:
        raise ValueError(
            f"method must be one of {', '.join(repr(m) for m in allowed)} for {func}, "
            f"got {method!r}."
        )
    return method


def as_logits(logits, name="logits", xp=np):
    """Flatten ``logits`` to a C-contiguous float32/float64 vector (of array namespace ``xp``).

    Returns ``(flat, shape, grad_dtype)``.  float16 is widened to float32, integers and other
    real types to float64; the gradient dtype is float32 for float16/float32 input and float64
    otherwise.  (With rankref_gpu's torch namespace, bfloat16 is widened like float16.)
    """
    arr = xp.asarray(logits)
    dt = arr.dtype
    kind = dt.kind if isinstance(dt, np.dtype) else xp.dtype_kind(dt)
    if kind not in "fiu":
        raise ValueError(
            f"{name} must be a real numeric array (float or integer), got dtype {dt}. "
            f"Convert it with np.asarray({name}, dtype=np.float32)."
        )
    if dt == xp.float32 or dt == xp.float64:
        flat = xp.ascontiguousarray(arr).reshape(-1)
        grad_dtype = dt
    elif kind == "f" and dt.itemsize < 4:  # float16 (and bfloat16 in torch)
        flat = xp.asarray(arr, dtype=xp.float32).reshape(-1)
        grad_dtype = flat.dtype
    else:
        flat = xp.asarray(arr, dtype=xp.float64).reshape(-1)
        grad_dtype = flat.dtype
    return flat, arr.shape, grad_dtype


def raise_nonfinite(flat, name="logits"):
    """Raise the ValueError for a non-finite entry, if there is one."""
    bad = _kernels.first_nonfinite(flat)
    if bad >= 0:
        nonfinite_error(flat, bad, name)


def nonfinite_error(flat, bad, name="logits"):
    raise ValueError(
        f"{name} must be finite, but flat entry {bad} is {float(flat[bad])!r}. "
        f"Check the network output for overflow (e.g. train in float32 or clamp {name})."
    )


def as_targets(targets, shape, name="targets", logits_name="logits", xp=np):
    """Coerce targets to a C-contiguous vector of a kernel dtype (float32/64, int8/32/64).

    Values are checked later, in the same pass that collects the positives.
    """
    t = xp.asarray(targets)
    if tuple(t.shape) != tuple(shape):
        raise ValueError(
            f"{name} has shape {tuple(t.shape)} but {logits_name} has shape {tuple(shape)}; "
            f"pass exactly one target per logit."
        )
    dt = t.dtype
    kind = dt.kind if isinstance(dt, np.dtype) else xp.dtype_kind(dt)
    if kind == "b":
        return xp.asarray(xp.ascontiguousarray(t).reshape(-1), dtype=xp.int8)
    if kind == "f":
        if dt == xp.float32 or dt == xp.float64:
            return xp.ascontiguousarray(t).reshape(-1)
        return xp.asarray(t, dtype=xp.float64).reshape(-1)
    if kind in "iu":
        if dt == xp.int8 or dt == xp.int32 or dt == xp.int64:
            return xp.ascontiguousarray(t).reshape(-1)
        if kind == "u" and xp.size(t) and xp.max(t) > 1:
            return xp.asarray(t, dtype=xp.float64).reshape(-1)  # out of range: the scan reports it
        return xp.asarray(t, dtype=xp.int64).reshape(-1)
    raise ValueError(
        f"{name} must be a numeric array (float, integer or bool), got dtype {dt}."
    )


def scan_targets(t, binary, name="targets", func="rank_sort_loss"):
    """Validate target values and return the flat indices of the positives."""
    pos, bad = _kernels.scan_targets(t, binary)
    if bad >= 0:
        targets_error(t, bad, binary, name, func)
    return pos


def targets_error(t, bad, binary, name="targets", func="rank_sort_loss"):
    """Raise the ValueError for the invalid target at flat index ``bad``."""
    val = float(t[bad])
    if binary:
        raise ValueError(
            f"{name} for {func} must be -1 (ignored), 0 (negative) or 1 (positive), but "
            f"flat entry {bad} is {val!r}. For IoU-valued targets use rank_sort_loss."
        )
    raise ValueError(
        f"{name} must be -1 (ignored), 0 (negative) or in (0, 1] (positive, e.g. the IoU), "
        f"but flat entry {bad} is {val!r}. Clip IoU targets to [0, 1] and mark ignored "
        f"entries with -1."
    )


def prepare_ranking(logits, targets, delta, binary, func):
    """Common front end of the ranking functions.

    Returns ``(x, t, pos, shape, grad_dtype, d)``: flat logits, flat targets, flat indices of the
    positives, the original shape, the gradient dtype and the checked delta.
    The finiteness of the positives' logits is checked here; the rest of the logits are checked
    by the binning pass (or :func:`raise_nonfinite`).
    """
    d = check_delta(delta)
    x, shape, grad_dtype = as_logits(logits)
    t = as_targets(targets, shape)
    pos = scan_targets(t, binary, func=func)
    if pos.size:
        xp = x[pos]
        bad = _kernels.first_nonfinite(xp)
        if bad >= 0:
            nonfinite_error(x, int(pos[bad]))
    return x, t, pos, shape, grad_dtype, d


def check_nonnegative(value, name, what="a finite number >= 0"):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    v = float(value)
    if not math.isfinite(v) or v < 0.0:
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    return v


def as_labels(labels, n, num_classes, name="labels", allow_ignore=True, xp=np):
    """Validate integer class labels: 1-D, length ``n``, values in [-1, num_classes]
    (``num_classes`` is the background, -1 ignored).  Returns an int64 array."""
    y = xp.asarray(labels)
    kind = y.dtype.kind if isinstance(y.dtype, np.dtype) else xp.dtype_kind(y.dtype)
    if kind not in "iu":
        raise ValueError(
            f"{name} must be an integer array (class indices), got dtype {y.dtype}. "
            f"Convert it with np.asarray({name}, dtype=np.int64)."
        )
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(
            f"{name} must have shape ({n},), one label per row of scores; got {tuple(y.shape)}."
        )
    y = xp.asarray(y, dtype=xp.int64)
    lo = -1 if allow_ignore else 0
    if y.shape[0]:
        bad = xp.flatnonzero((y < lo) | (y > num_classes))
        if bad.shape[0]:
            b = int(bad[0])
            raise ValueError(
                f"{name} must be in [{lo}, {num_classes}] ([0, {num_classes}) foreground, "
                f"{num_classes} background" + (", -1 ignored" if allow_ignore else "")
                + f"), but entry {b} is {int(y[b])}."
            )
    return xp.ascontiguousarray(y)
