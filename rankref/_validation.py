"""Input validation and coercion shared by every public function.

The Cython kernels run with bounds checks off, so everything they receive is checked here:
dtype, C-contiguity, matching lengths and finite values.  Arrays are copied only when needed
(read-only and C-contiguous inputs are used in place).

Numeric rules (see the docs page "Numeric ranges and edge cases"):

* rankref computes in float64.  A data array (logits, scores, targets, IoUs, ...) that float64
  cannot hold exactly (an int64 or uint64 beyond 2**53 in magnitude, a long double with more
  precision or range) is refused with a ValueError naming it, since rounding could create ties
  or change a value silently; convert it yourself (``np.asarray(a, np.float64)``) to accept
  the rounding.  Arrays of smooth statistics (counts, weights, frequencies) are rounded like
  scalars.
* A real scalar (delta, gamma, alpha, ...) may be any real number type but bool: Python and
  NumPy ints and floats, Fractions.  It is rounded to the nearest float64; a value that float64
  cannot hold at all (beyond its range, or non-zero but below its smallest subnormal) is
  refused.
* Flags accept ``bool`` and ``numpy.bool_`` only (a TypeError, which is also a ValueError, names
  the flag otherwise).
"""
import math
import numbers
import sys
from fractions import Fraction

import numpy as np

from . import _kernels

__all__ = []

EPS = 1e-10  # the eps gating of the official RS / GAP code
FLOAT64_MAX = float(np.finfo(np.float64).max)
INT_EXACT = 2**53  # every integer of magnitude <= 2**53 is a float64


def show(value, limit=40):
    """A short repr for messages (a 400-digit integer is cut)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 12] + "..." + text[-9:]


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type.  Both a TypeError and a ValueError (like NumPy's
    AxisError), so ``except ValueError`` still catches every argument error of rankref."""


def check_flag(value, name):
    """A flag: ``bool`` or ``numpy.bool_`` (an :class:`ArgumentTypeError` naming it otherwise:
    strings such as ``'False'``, None, numbers, arrays are refused, never read as truthy)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ArgumentTypeError(f"{name} must be True or False (a bool), got {type(value).__name__} "
                    f"{show(value)}.")


_NOT_NUMBERS = (bool, np.bool_, np.timedelta64, np.datetime64)  # NumPy registers timedelta64
# as a numbers.Integral


def is_real(value):
    """A real number (Python, NumPy or Fraction), not a bool or a NumPy time value."""
    return isinstance(value, numbers.Real) and not isinstance(value, _NOT_NUMBERS)


def is_integer(value):
    """An integer (Python or NumPy), not a bool or a NumPy time value."""
    return isinstance(value, numbers.Integral) and not isinstance(value, _NOT_NUMBERS)


def check_real(value, name, what=None, *, low=None, low_open=False, high=None,
               high_open=False):
    """A real scalar as a float64, within ``[low, high]`` (open ends as asked).

    Any real number type is accepted except bool (Python/NumPy ints and floats, Fractions); the
    value is rounded to the nearest float64.  Refused (ValueError naming ``name``): a non-real
    type, NaN or inf, a value float64 cannot hold (beyond its range, or non-zero but below its
    smallest subnormal, which would read as 0), a value outside the range.
    """
    if what is None:
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high:g}")
        what = "a finite number" + (" " + " and ".join(parts) if parts else "")
    if not is_real(value):
        raise ValueError(f"{name} must be {what}, got {type(value).__name__} {show(value)}.")
    try:
        if isinstance(value, np.floating) and value.dtype.itemsize > 8:
            with np.errstate(over="ignore", under="ignore"):
                v = float(value)
        else:
            v = float(value)
    except OverflowError:
        v = math.nan if value != value else (math.inf if value > 0 else -math.inf)
        inf_input = False
    else:
        inf_input = math.isinf(v) and _is_inf(value)
    if math.isnan(v) or inf_input:
        raise ValueError(f"{name} must be {what}, got {show(value)}.")
    if math.isinf(v):
        raise ValueError(f"{name} must be {what}, got {show(value)}, which is beyond float64's "
                         f"range (|value| <= {FLOAT64_MAX:.6g}).")
    if v == 0.0 and value != 0:
        raise ValueError(f"{name} must be {what}, got {show(value)}, which is non-zero but below "
                         f"float64's smallest positive value (5e-324) and would be read as 0.")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {what}, got {show(value)}.")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {what}, got {show(value)}.")
    return v


def _is_inf(value):
    try:
        return bool(np.isinf(value))
    except (TypeError, OverflowError):
        return False


def check_int(value, name, low, high=None):
    """An integer (Python or NumPy, not bool) in ``[low, high]``, as a Python int."""
    rng = f">= {low}" if high is None else f"in [{low}, {show(high)}]"
    if not is_integer(value):
        raise ValueError(f"{name} must be an integer {rng}, got {type(value).__name__} "
                         f"{show(value)}.")
    v = int(value)
    if v < low or (high is not None and v > high):
        raise ValueError(f"{name} must be an integer {rng}, got {show(value)}.")
    return v


def check_delta(delta, name="delta"):
    """Return ``delta`` as a float, or raise if it is not a finite number >= 0."""
    return check_real(delta, name, "a finite number >= 0 (the half-width of the relaxed step; "
                                   "0 gives the exact step)", low=0.0)


_DLPACK_CPU = (1, 3)  # kDLCPU, kDLCUDAHost: memory NumPy can read


def _gpu_error(name, what):
    return ArgumentTypeError(
        f"{name} is {what}, but rankref computes on the CPU with NumPy. Use rankref_gpu (the "
        f"same functions on CuPy arrays and torch tensors, on their device) or rankref.torch "
        f"(autograd modules), or copy {name} to the host first."
    )


def host_array(obj, name):
    """A NumPy view of an array of another framework, or None for anything else.

    * a torch tensor (detected through ``sys.modules``: rankref never imports torch) on the
      CPU: detached (any ``requires_grad``), conjugate/negative views resolved, bfloat16 widened
      to float32 (exact); on another device: an :class:`ArgumentTypeError` naming ``name``;
    * a CuPy array, or any object with ``__cuda_array_interface__``: an ArgumentTypeError;
    * an object with ``__dlpack__`` but no ``__array__``: ``np.from_dlpack`` when its memory
      is on the host, an ArgumentTypeError otherwise.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        if obj.device.type != "cpu":
            raise _gpu_error(name, f"a torch tensor on {obj.device}")
        t = obj.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        if t.is_conj():
            t = t.resolve_conj()
        if t.is_neg():
            t = t.resolve_neg()
        if t.dtype == torch.bfloat16:
            t = t.to(torch.float32)  # every bfloat16 is a float32
        try:
            return t.numpy()
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"{name} is a torch tensor NumPy cannot read ({exc}).") from None
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(obj, cupy.ndarray):
        raise _gpu_error(name, "a CuPy array (GPU memory)")
    if isinstance(obj, np.ndarray):
        return None
    if hasattr(obj, "__cuda_array_interface__"):
        raise _gpu_error(name, f"a {type(obj).__name__} in GPU memory")
    if hasattr(obj, "__dlpack__") and not hasattr(obj, "__array__") and not hasattr(
            obj, "__array_interface__"):
        try:
            device = tuple(obj.__dlpack_device__())[0] if hasattr(obj, "__dlpack_device__") \
                else 1
        except Exception:  # noqa: BLE001  (a broken protocol object: let NumPy report it)
            device = 1
        if device not in _DLPACK_CPU:
            raise _gpu_error(name, f"a {type(obj).__name__} on a device (DLPack device type "
                                   f"{device})")
        try:
            return np.from_dlpack(obj)
        except (RuntimeError, TypeError, ValueError, BufferError) as exc:
            raise ValueError(f"{name} must be an array of numbers, got {type(obj).__name__} "
                             f"whose DLPack capsule NumPy cannot read ({exc}).") from None
    return None


def to_array(obj, name, xp=np):
    """``xp.asarray(obj)``, with a ValueError naming ``name`` when it cannot be converted
    (ragged nested lists, objects NumPy rejects).  For NumPy, arrays of other frameworks are
    read through :func:`host_array` (a CPU torch tensor, with or without ``requires_grad``;
    DLPack objects), and device arrays are refused with a TypeError naming ``name``."""
    if xp is np or getattr(xp, "name", None) == "numpy":  # (rankref_gpu's NumPy namespace)
        arr = host_array(obj, name)
        if arr is not None:
            return arr
    try:
        return xp.asarray(obj)
    except (ValueError, TypeError, OverflowError, RuntimeError, BufferError) as exc:
        raise ValueError(f"{name} must be an array of numbers, got {type(obj).__name__} "
                         f"that cannot be converted to an array ({exc}).") from None


def as_fraction(value):
    """The exact rational value of a finite real scalar (Python or NumPy, any width); raises
    ValueError or OverflowError for NaN and inf."""
    if isinstance(value, np.floating):
        return Fraction(*value.as_integer_ratio())
    if isinstance(value, np.integer):
        return Fraction(int(value))
    return Fraction(value)


def _kind(xp, dtype):
    return dtype.kind if isinstance(dtype, np.dtype) else xp.dtype_kind(dtype)


def check_float64_exact(arr, name, xp=np):
    """Refuse the entries of ``arr`` that float64 cannot hold exactly: int64/uint64 values
    beyond 2**53 in magnitude, long doubles beyond float64's precision or range.  Other dtypes
    (bool, integers of at most 32 bits, float16/32/64) always convert exactly."""
    dt = arr.dtype
    kind = _kind(xp, dt)
    size = int(xp.size(arr)) if xp is not np else arr.size
    if size == 0:
        return
    if kind in "iu" and dt.itemsize == 8:
        flat = arr.reshape(-1)
        big = flat > INT_EXACT
        if kind == "i":
            big = big | (flat < -INT_EXACT)
        if bool(xp.any(big)):
            b = int(xp.flatnonzero(big)[0])
            raise ValueError(
                f"{name} must be exactly representable in float64 (rankref computes in "
                f"float64): integers must lie in [-2**53, 2**53], but flat entry {b} is "
                f"{int(flat[b])}. Convert it with np.asarray({name}, dtype=np.float64) if "
                f"rounding is acceptable."
            )
    elif kind == "f" and isinstance(dt, np.dtype) and dt.itemsize > 8:
        flat = arr.reshape(-1)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            conv = flat.astype(np.float64)
            bad = (conv.astype(dt) != flat) & ~np.isnan(flat)
        if bad.any():
            b = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name} must be exactly representable in float64 (rankref computes in "
                f"float64), but flat entry {b} is the {dt} value {flat[b]!r}, which float64 "
                f"{'cannot reach' if not np.isfinite(conv[b]) or conv[b] == 0 else 'rounds'}. "
                f"Convert it with np.asarray({name}, dtype=np.float64) if rounding is "
                f"acceptable."
            )


def check_method(method, allowed, func, name="method"):
    """A string among ``allowed``; the error names the argument ``name`` of ``func``."""
    if not isinstance(method, str) or method not in allowed:
        raise ValueError(
            f"{name} must be one of {', '.join(repr(m) for m in allowed)} for {func}, "
            f"got {show(method)}."
        )
    return method


def as_logits(logits, name="logits", xp=np):
    """Flatten ``logits`` to a C-contiguous float32/float64 vector (of array namespace ``xp``).

    Returns ``(flat, shape, grad_dtype)``.  float16 is widened to float32, integers and other
    real types to float64; the gradient dtype is float32 for float16/float32 input and float64
    otherwise.  (With rankref_gpu's torch namespace, bfloat16 is widened like float16.)
    Values float64 cannot hold exactly are refused (:func:`check_float64_exact`).
    """
    arr = to_array(logits, name, xp)
    dt = arr.dtype
    kind = _kind(xp, dt)
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
        check_float64_exact(arr, name, xp)
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

    Values are checked later, in the same pass that collects the positives.  Long doubles that
    float64 cannot hold exactly are refused here (rounding could turn an invalid target such as
    ``1 + 2**-60`` into a valid one).
    """
    t = to_array(targets, name, xp)
    if tuple(t.shape) != tuple(shape):
        raise ValueError(
            f"{name} has shape {tuple(t.shape)} but {logits_name} has shape {tuple(shape)}; "
            f"pass exactly one target per logit."
        )
    dt = t.dtype
    kind = _kind(xp, dt)
    if kind == "b":
        return xp.asarray(xp.ascontiguousarray(t).reshape(-1), dtype=xp.int8)
    if kind == "f":
        if dt == xp.float32 or dt == xp.float64:
            return xp.ascontiguousarray(t).reshape(-1)
        check_float64_exact(t, name, xp)
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
    """A finite real scalar >= 0 as a float (the rules of :func:`check_real`)."""
    return check_real(value, name, what, low=0.0)


def as_labels(labels, n, num_classes, name="labels", allow_ignore=True, xp=np, background=True,
              rows=None, classes_of=None):
    """Validate integer class labels: 1-D, length ``n``, values in [-1, num_classes]
    (``num_classes`` is the background, -1 ignored; with ``background=False`` the classes are
    ``[0, num_classes]`` and there is no background).  Returns an int64 array.

    ``rows``: ``(argument name, its shape)`` whose rows the labels label, for the message
    (e.g. ``("scores", (4, 3))``); None when ``n`` is the labels' own length (any 1-D
    array is then accepted).  ``classes_of``: the argument ``num_classes`` comes from, named in
    the range message (e.g. ``"the length of class_weights"``).

    The range is checked in the labels' own dtype, so a uint64 value beyond int64 is reported
    as it is (a cast first would wrap it to a negative number, read as ignored)."""
    y = to_array(labels, name, xp)
    kind = _kind(xp, y.dtype)
    if kind not in "iu":
        raise ValueError(
            f"{name} must be an integer array (class indices), got dtype {y.dtype}. "
            f"Convert it with np.asarray({name}, dtype=np.int64)."
        )
    if rows is None and y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices (one label per box), "
                         f"got shape {tuple(y.shape)}.")
    if y.ndim != 1 or y.shape[0] != n:
        per = "" if rows is None else (f", one label per row of {rows[0]} (which has shape "
                                       f"{tuple(rows[1])})")
        raise ValueError(f"{name} must have shape ({n},){per}; got {tuple(y.shape)}.")
    lo = -1 if allow_ignore else 0
    if y.shape[0]:
        bad = y > num_classes
        if kind == "i":
            bad = bad | (y < lo)
        elif lo > 0:
            bad = bad | (y < lo)
        bad = xp.flatnonzero(bad)
        if bad.shape[0]:
            b = int(bad[0])
            if background:
                allowed = (f"[{lo}, {num_classes}] ([0, {num_classes}) foreground, "
                           f"{num_classes} background" + (", -1 ignored" if allow_ignore else "")
                           + ")")
            else:
                allowed = (f"[0, {num_classes}]" + (" or -1 (ignored)" if allow_ignore else "")
                           + f" (one of the {num_classes + 1} classes)")
            src = f" (C = {num_classes}: {classes_of})" if classes_of else ""
            raise ValueError(f"{name} must be in {allowed}{src}, but entry {b} is {int(y[b])}.")
    return xp.ascontiguousarray(xp.asarray(y, dtype=xp.int64))
