"""Relaxed step, stable sorting, relaxed ranks and exact AP on any namespace."""
import numpy as np

import rankref
from rankref._validation import check_flag
from rankref.ranking import RelaxedRanks, _heaviside, _sort_scores

from . import _pairs
from ._backend import namespace
from ._dense import running_max
from ._engine import BucketEngine
from ._mirror import mirror
from .losses import sorted_positives
from ._validation import (
    as_logits,
    as_targets,
    first_true,
    prepare_ranking,
    raise_nonfinite_found,
)


@mirror(rankref.heaviside, "A scalar ``u`` gives a Python float on NumPy and a 0-d float64 "
        "array on the device otherwise.")
def heaviside(u, delta):
    return _heaviside(namespace(u), u, delta)


@mirror(rankref.sort_scores)
def sort_scores(logits, descending=True):
    return _sort_scores(namespace(logits), logits, descending)


@mirror(rankref.relaxed_ranks)
def relaxed_ranks(logits, targets, delta=0.5):
    xp = namespace(logits, targets)
    x, t, pos, shape, _, d = prepare_ranking(xp, logits, targets, delta, False, "relaxed_ranks")
    if pos.shape[0] == 0:
        empty = xp.zeros(0)
        return RelaxedRanks(pos, empty, xp.copy(empty), xp.copy(empty))
    _, order, xq, d, sigma = sorted_positives(xp, x, pos, d)  # by ascending logit
    fp = xp.empty(pos.shape[0])
    rank_pos = xp.empty(pos.shape[0])
    fp[order] = BucketEngine(xp, x, t, xq, d, sigma).fp()
    rank_pos[order] = _pairs.rank_pos(xp, xq, d)
    return RelaxedRanks(pos, rank_pos, fp, rank_pos + fp)


@mirror(rankref.average_precision, "The result is a Python float on NumPy and a 0-d float64 "
        "array on the device otherwise.")
def average_precision(scores, labels, interpolate=False):
    interpolate = check_flag(interpolate, "interpolate")
    xp = namespace(scores, labels)
    x, shape, _ = as_logits(scores, name="scores", xp=xp)
    t = as_targets(labels, shape, name="labels", logits_name="scores", xp=xp)
    bad_t = (t != 0) & (t != 1) & (t != -1)
    bad_x = ~xp.isfinite(x)
    any_t, any_x = xp.any_flags(bad_t, bad_x)
    if any_t:
        b = first_true(xp, bad_t)
        raise ValueError(f"labels must be -1 (ignored), 0 or 1, but flat entry {b} is "
                         f"{xp.to_host(t[b])[()].item()!r}.")
    if any_x:
        raise_nonfinite_found(xp, x, bad_x, "scores")
    pos_idx = xp.flatnonzero(t > 0)
    if pos_idx.shape[0] == 0:
        raise ValueError(
            "labels has no positive entry, so average precision is undefined. "
            "Skip such rankings or count them separately."
        )
    s_all = xp.sort(xp.astype(x[t >= 0], np.float64))
    xpos = xp.astype(x[pos_idx], np.float64)
    s_pos = xp.sort(xpos)
    n_ge = xp.astype(s_all.shape[0] - xp.searchsorted(s_all, xpos, side="left"), np.float64)
    p_ge = xp.astype(s_pos.shape[0] - xp.searchsorted(s_pos, xpos, side="left"), np.float64)
    prec = p_ge / n_ge
    if interpolate:
        prec = running_max(xp, xpos, prec)
    return xp.scalar(xp.mean(prec))


__all__ = ["heaviside", "sort_scores", "relaxed_ranks", "average_precision"]
