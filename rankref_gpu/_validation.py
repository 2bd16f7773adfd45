"""Validation with array primitives; the error messages (and which entry they name) are
rankref's own.

On a device, the checks cost one transfer of two flags (any bad target, any non-finite logit);
the first bad entry is located only when there is one.
"""
import numpy as np

from rankref._validation import (  # noqa: F401  (re-exported for the mirror modules)
    EPS,
    as_logits,
    as_targets,
    check_delta,
    check_method,
    check_nonnegative,
    nonfinite_error,
    targets_error,
)

from . import _backend


def grad_dtype(xp, dtype):
    """rankref's gradient dtype: float32 for floats of at most 32 bits (float16, bfloat16,
    float32), float64 otherwise (float64, integers)."""
    if xp.dtype_kind(dtype) == "f" and dtype.itemsize <= 4:
        return xp.float32
    return xp.float64


def first_true(xp, mask):
    """Flat index of the first True of ``mask`` (which has one)."""
    return int(xp.flatnonzero(mask)[0])


def raise_nonfinite(xp, flat, name="logits", first=None):
    """rankref's error for a non-finite entry, if there is one.  rankref checks the logits of
    the positives ``first`` (flat indices, in that order) before all the others: so does this."""
    bad = ~xp.isfinite(flat)
    if not xp.any_flags(bad)[0]:
        return
    raise_nonfinite_found(xp, flat, bad, name, first)


def raise_nonfinite_found(xp, flat, bad, name="logits", first=None):
    """Raise for the non-finite entries ``bad`` (a mask with a True)."""
    if first is not None and first.shape[0]:
        at_pos = bad[first]
        if xp.any_flags(at_pos)[0]:
            nonfinite_error(flat, int(first[first_true(xp, at_pos)]), name)
    nonfinite_error(flat, first_true(xp, bad), name)


def bad_targets(xp, t, binary):
    """Mask of the invalid targets (rankref's scan_targets rule)."""
    if binary:
        return (t != 0) & (t != 1) & (t != -1)
    if xp.dtype_kind(t.dtype) == "f":
        return ~(t <= 1) | (t == -np.inf)
    return t > 1


def prepare_ranking(xp, logits, targets, delta, binary, func):
    """rankref's front end on any namespace: ``(x, t, pos, shape, grad_dtype, d)``.

    Every logit is checked to be finite; errors name the entry rankref names (a bad target
    first, then the first non-finite logit of a positive, then the first non-finite logit).
    Two device syncs: the validity flags, and the number of positives.
    """
    d = check_delta(delta)
    x, shape, gdt = as_logits(logits, xp=xp)
    t = as_targets(targets, shape, xp=xp)
    any_t, any_x = any_in_slices(xp, x.shape[0], lambda a, b: bad_targets(xp, t[a:b], binary),
                                 lambda a, b: ~xp.isfinite(x[a:b]))
    if any_t:
        targets_error(t, first_true(xp, bad_targets(xp, t, binary)), binary, "targets", func)
    pos = xp.flatnonzero(t > 0)
    if any_x:
        raise_nonfinite_found(xp, x, ~xp.isfinite(x), first=pos)
    return x, t, pos, tuple(shape), gdt, d


def any_in_slices(xp, n, *mask_fns):
    """``[mask_fn(0, n).any() for mask_fn in mask_fns]``, evaluated on slices of PASS_CHUNK
    entries (bounded temporaries) and read back in one transfer."""
    step = _backend.PASS_CHUNK
    flags = [f(c0, min(n, c0 + step)).any() for c0 in range(0, n, step) for f in mask_fns]
    got = xp.any_flags(*flags)
    k = len(mask_fns)
    return [any(got[i::k]) for i in range(k)]
