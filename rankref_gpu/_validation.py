"""Validation with array primitives; the error messages are rankref's own."""
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


def first_nonfinite(xp, flat):
    bad = xp.flatnonzero(~xp.isfinite(flat))
    return int(bad[0]) if bad.size else -1


def raise_nonfinite(xp, flat, name="logits"):
    bad = first_nonfinite(xp, flat)
    if bad >= 0:
        nonfinite_error(flat, bad, name)


def scan_targets(xp, t, binary, name="targets", func="rank_sort_loss"):
    """Validate target values (as rankref does) and return the flat indices of the positives."""
    if binary:
        bad_mask = (t != 0) & (t != 1) & (t != -1)
    elif t.dtype.kind == "f":
        bad_mask = ~(t <= 1) | (t == -np.inf)
    else:
        bad_mask = t > 1
    bad = xp.flatnonzero(bad_mask)
    if bad.size:
        targets_error(t, int(bad[0]), binary, name, func)
    return xp.flatnonzero(t > 0)


def prepare_ranking(xp, logits, targets, delta, binary, func):
    """rankref's front end on any array module; every logit is checked to be finite."""
    d = check_delta(delta)
    x, shape, grad_dtype = as_logits(logits, xp=xp)
    t = as_targets(targets, shape, xp=xp)
    pos = scan_targets(xp, t, binary, func=func)
    raise_nonfinite(xp, x)
    return x, t, pos, shape, grad_dtype, d
