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


def prepare_ranking(xp, logits, targets, delta, binary, func, with_ignored=False):
    """rankref's front end on any namespace: ``(x, t, pos, shape, grad_dtype, d)``, and
    whether some target is negative (ignored) as a last item with ``with_ignored``.

    Every logit is checked to be finite; errors name the entry rankref names (a bad target
    first, then the first non-finite logit of a positive, then the first non-finite logit).
    One device sync: the validity flags, the number of positives and the ignored flag, read
    together (the flags from one min/max pass over the logits and one over the targets); the
    positives are then gathered at a size known on the host.
    """
    d = check_delta(delta)
    x, shape, gdt = as_logits(logits, xp=xp)
    t = as_targets(targets, shape, xp=xp)
    is_pos = t > 0
    t_range = xp.aminmax(t) if t.shape[0] else None
    ignored = t_range[0] < 0 if t_range is not None else xp.zeros((), dtype=bool)
    any_t, any_x, count, any_ignored = xp.read_ints(
        _bad_targets_flag(xp, t, binary, t_range), _nonfinite_flag(xp, x), xp.sum(is_pos),
        ignored)
    if any_t:
        targets_error(t, first_true(xp, bad_targets(xp, t, binary)), binary, "targets", func)
    pos = xp.flatnonzero_sized(is_pos, count)
    if any_x:
        raise_nonfinite_found(xp, x, ~xp.isfinite(x), first=pos)
    if with_ignored:
        return x, t, pos, tuple(shape), gdt, d, bool(any_ignored)
    return x, t, pos, tuple(shape), gdt, d


def _nonfinite_flag(xp, x):
    """A 0-d flag: some logit is not finite (NaN propagates through min and max)."""
    if x.shape[0] == 0:
        return xp.zeros((), dtype=bool)
    lo, hi = xp.aminmax(x)
    return ~(xp.isfinite(lo) & xp.isfinite(hi))


def _bad_targets_flag(xp, t, binary, t_range):
    """A 0-d flag: some target breaks :func:`bad_targets`, from the targets' ``(min, max)``
    (None when there are none) and, for binary float targets, whether a fractional part is
    non-zero (in PASS_CHUNK slices)."""
    if t_range is None:
        return xp.zeros((), dtype=bool)
    lo, hi = t_range
    if xp.dtype_kind(t.dtype) != "f":
        return (lo < -1) | (hi > 1) if binary else hi > 1
    if not binary:  # NaN: not (NaN <= 1)
        return ~(hi <= 1) | (lo == -np.inf)
    flag = (lo < -1) | ~(hi <= 1)
    step = _backend.PASS_CHUNK
    for c0 in range(0, t.shape[0], step):  # frac(+-inf) and frac(NaN) are NaN: flagged
        flag = flag | xp.any(xp.frac(t[c0:c0 + step]) != 0)
    return flag


def any_in_slices(xp, n, *mask_fns):
    """``[mask_fn(0, n).any() for mask_fn in mask_fns]``, evaluated on slices of PASS_CHUNK
    entries (bounded temporaries) and read back in one transfer."""
    step = _backend.PASS_CHUNK
    flags = [f(c0, min(n, c0 + step)).any() for c0 in range(0, n, step) for f in mask_fns]
    got = xp.any_flags(*flags)
    k = len(mask_fns)
    return [any(got[i::k]) for i in range(k)]
