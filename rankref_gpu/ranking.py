"""Relaxed step, stable sorting, relaxed ranks and exact AP on any array module."""
import numpy as np

import rankref
from rankref.ranking import RelaxedRanks, _heaviside, _sort_scores

from ._backend import array_module
from ._engine import BucketEngine
from ._mirror import mirror
from ._pairs import rs_positive_terms
from ._validation import as_logits, as_targets, nonfinite_error, prepare_ranking


@mirror(rankref.heaviside)
def heaviside(u, delta):
    return _heaviside(array_module(u), u, delta)


@mirror(rankref.sort_scores)
def sort_scores(logits, descending=True):
    return _sort_scores(array_module(logits), logits, descending)


@mirror(rankref.relaxed_ranks)
def relaxed_ranks(logits, targets, delta=0.5):
    xp = array_module(logits, targets)
    x, t, pos, shape, _, d = prepare_ranking(xp, logits, targets, delta, False, "relaxed_ranks")
    if pos.size == 0:
        empty = xp.zeros(0)
        return RelaxedRanks(pos, empty, empty.copy(), empty.copy())
    xpos = x[pos].astype(np.float64)
    fp = BucketEngine(xp, x, t, xpos, d).fp()
    rank_pos = rs_positive_terms(xp, xpos, xp.zeros_like(xpos), d)[:, 0].copy()
    return RelaxedRanks(pos, rank_pos, fp, rank_pos + fp)


@mirror(rankref.average_precision)
def average_precision(scores, labels, interpolate=False):
    xp = array_module(scores, labels)
    x, shape, _ = as_logits(scores, name="scores", xp=xp)
    t = as_targets(labels, shape, name="labels", logits_name="scores", xp=xp)
    bad = xp.flatnonzero((t != 0) & (t != 1) & (t != -1))
    if bad.size:
        b = int(bad[0])
        raise ValueError(f"labels must be -1 (ignored), 0 or 1, but flat entry {b} is "
                         f"{float(t[b])!r}.")
    bad = xp.flatnonzero(~xp.isfinite(x))
    if bad.size:
        nonfinite_error(x, int(bad[0]), name="scores")
    pos_idx = xp.flatnonzero(t > 0)
    if pos_idx.size == 0:
        raise ValueError(
            "labels has no positive entry, so average precision is undefined. "
            "Skip such rankings or count them separately."
        )
    s_all = xp.sort(x[t >= 0].astype(np.float64))
    xpos = x[pos_idx].astype(np.float64)
    s_pos = xp.sort(xpos)
    n_ge = s_all.shape[0] - xp.searchsorted(s_all, xpos, side="left")
    p_ge = s_pos.shape[0] - xp.searchsorted(s_pos, xpos, side="left")
    prec = p_ge / n_ge
    if interpolate:
        from ._dense import _running_max

        prec = _running_max(xp, xpos, prec)
    return float(prec.mean())


__all__ = ["heaviside", "sort_scores", "relaxed_ranks", "average_precision"]
