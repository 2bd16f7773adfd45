"""Positive-positive terms in O(P log P) (see the "Design" docs page).

Every function returns, per query point q, sums of ``w_k H_delta(x_k - q)`` over a set of
members k: ``H = 1`` on the members at or above ``q + delta`` and affine on the window
``[q - delta, q + delta)``, located exactly with the thresholds' rounding errors.  Static sets
use a sliding-window aggregate (O(P) after the sort); sets that grow in IoU or class order use a
segment tree (O(log P) per step).  Both add only non-negative terms.  Below ``DIRECT_MAX_P``
positives the direct O(P^2) loops are faster and are used instead (same values to round-off).

Unless said otherwise, the positives' logits ``xp`` are sorted ascending (ties in index order),
and per-positive inputs and outputs follow that order.
"""
import numpy as np

from . import _kernels
from ._engine import positions, two_sum

__all__ = ["window", "static_sums", "rs_terms", "rs_sorting_scatter", "rank_pos", "class_rank",
           "other_class_sums", "other_class_scatter", "prototype_fp", "prototype_grad"]

# Crossover between the direct O(P^2) loops and the window sums (bench_ranking.py --pairs).
DIRECT_MAX_P = 96


def window(keys, q, delta):
    """``(#{k < q - delta}, #{k < q + delta})`` for sorted ``keys``: the query's window is
    ``[pl, ph)`` and the members at or above ``q + delta`` are ``[ph, n)``.  At delta = 0 both
    are ``#{k < q}`` (the members >= q count 1)."""
    if delta > 0.0:
        with np.errstate(over="ignore", invalid="ignore"):
            s, e = two_sum(q, -delta)
            pl = positions(keys, s, np.where(np.isinf(s), 0.0, e))
            s, e = two_sum(q, delta)
            ph = positions(keys, s, np.where(np.isinf(s), 0.0, e))
        return pl, ph
    ph = np.searchsorted(keys, q, side="left").astype(np.int64)
    return ph, ph


def static_sums(keys, W, q, delta, lo=None, hi=None, above=None):
    """``out[i, ch] = sum_k W[k, ch] H(keys_k - q_i)`` over all members, for sorted queries
    ``q``.  ``above`` (optional) replaces the sums of W over ``[hi_i, n)``."""
    n, m = W.shape
    Q = q.shape[0]
    if lo is None:
        lo, hi = window(keys, q, delta)
    W = np.ascontiguousarray(W, dtype=np.float64)
    if above is None:
        suffix = np.zeros((n + 1, m))
        suffix[:n] = np.cumsum(W[::-1], axis=0)[::-1]  # adds from the top: non-negative terms
        above = suffix[hi]
    out = np.array(above, dtype=np.float64).reshape(Q, m)
    if delta > 0.0 and n and Q:
        win = np.empty((Q, m))
        _kernels.sliding_window_sums(keys, W, np.zeros((n, m)), q, lo, hi, delta, win)
        out += win
    return out


def _groups(key):
    """Boundaries of the runs of equal values of a sorted array: ``ptr`` of length G + 1."""
    cut = np.flatnonzero(key[1:] != key[:-1]) + 1
    return np.concatenate([[0], cut, [key.shape[0]]]).astype(np.int64)


def _sweep(keys, W, group_key, ascending, strict, delta, lo, hi):
    """Sums over the members whose ``group_key`` comes before (strict) or up to (inclusive) the
    query's own, in ``ascending`` or descending order.  Members are the queries (sorted keys)."""
    P, m = W.shape
    order = np.argsort(group_key if ascending else -group_key, kind="stable").astype(np.int64)
    out = np.zeros((P, m))
    _kernels.sweep_window_sums(keys, np.ascontiguousarray(W, dtype=np.float64), order,
                               _groups(group_key[order]), lo, hi, strict, delta, out)
    return out


def rs_terms(xp, tp, delta):
    """Per positive i, with ``H_ik = H(x_k - x_i)`` over all positives k (self included): the
    columns rank_pos, sum H(1 - t_k), sum_{t_k >= t_i} H(1 - t_k), sum_{t_k >= t_i} H and
    sum_{t_k < t_i} H (the missorted mass D, computed directly, never as a difference)."""
    P = xp.shape[0]
    if P <= DIRECT_MAX_P:
        return _kernels.rs_positive_terms_direct(xp, tp, delta)
    lo, hi = window(xp, xp, delta)
    W = np.column_stack([np.ones(P), 1.0 - tp])
    out = np.empty((P, 5))
    out[:, :2] = static_sums(xp, W, xp, delta, lo, hi)
    tgt = _sweep(xp, W, tp, False, False, delta, lo, hi)        # t_k >= t_i
    out[:, 4] = _sweep(xp, W[:, :1], tp, True, True, delta, lo, hi)[:, 0]  # t_k < t_i
    # where nothing below t_i weighs (D = 0 exactly) the two sets sum the same terms: use the
    # same values, so that the sorting error is exactly 0 there
    same = out[:, 4] == 0.0
    out[:, 2] = np.where(same, out[:, 1], tgt[:, 1])
    out[:, 3] = np.where(same, out[:, 0], tgt[:, 0])
    return out


def rs_sorting_scatter(xp, tp, w, delta):
    """``g_k = sum_{i : t_i > t_k} w_i H(x_k - x_i)``: a strict sweep by descending IoU on
    ``y = -x`` (``H(x_k - x_i) = H(y_i - y_k)``)."""
    P = xp.shape[0]
    w = np.ascontiguousarray(w, dtype=np.float64)
    if P <= DIRECT_MAX_P:
        return _kernels.rs_sorting_scatter_direct(xp, tp, w, delta)
    y = -xp[::-1]  # ascending
    lo, hi = window(y, y, delta)
    g = _sweep(y, w[::-1].reshape(P, 1), tp[::-1], False, True, delta, lo, hi)
    return g[::-1, 0].copy()


def rank_pos(xp, delta):
    """``sum_k H(x_k - x_i)`` over all positives k, self included."""
    P = xp.shape[0]
    if P <= DIRECT_MAX_P:
        return _kernels.rs_positive_terms_direct(xp, np.zeros(P), delta)[:, 0].copy()
    return static_sums(xp, np.ones((P, 1)), xp, delta)[:, 0]


def class_rank(xp, cls, delta):
    """``sum_{k : cls_k == cls_i} H(x_k - x_i)`` (self included), for positives in any order:
    the positives sorted by (class, logit), each window clipped to its class."""
    P = xp.shape[0]
    g_order = np.argsort(xp, kind="stable")
    grank = np.empty(P, dtype=np.int64)
    grank[g_order] = np.arange(P)
    order = np.lexsort((grank, cls))  # by class, then by logit
    keys, cl = xp[order], cls[order].astype(np.int64)
    composite = cl * (P + 1) + grank[order]
    glo, ghi = window(xp[g_order], keys, delta)  # global positions of the thresholds
    lo = np.searchsorted(composite, cl * (P + 1) + glo, side="left").astype(np.int64)
    hi = np.searchsorted(composite, cl * (P + 1) + ghi, side="left").astype(np.int64)
    end = np.searchsorted(composite, (cl + 1) * (P + 1), side="left")
    above = (end - hi).astype(np.float64).reshape(P, 1)  # counts: exact
    out = np.empty(P)
    out[order] = static_sums(keys, np.ones((P, 1)), keys, delta, lo, hi, above)[:, 0]
    return out


def _other_class(keys, cls_sorted, W, delta):
    """Sums over the members of the other classes: a strict sweep over the classes in
    ascending order plus one in descending order (two non-negative parts)."""
    lo, hi = window(keys, keys, delta)
    below = _sweep(keys, W, cls_sorted, True, True, delta, lo, hi)
    above = _sweep(keys, W, cls_sorted, False, True, delta, lo, hi)
    return below[:, 0] + above[:, 0]


def other_class_sums(xp, cls, delta):
    """``sum_{k : cls_k != cls_i} H(x_k - x_i)``: other classes' positives ranked above i."""
    return _other_class(xp, cls.astype(np.float64), np.ones((xp.shape[0], 1)), delta)


def other_class_scatter(xp, cls, c, delta):
    """``g_k = sum_{i : cls_i != cls_k} c_i H(x_k - x_i)``: the gradient a positive receives as a
    negative of the other classes (on ``y = -x``)."""
    P = xp.shape[0]
    c = np.asarray(c, dtype=np.float64)
    out = _other_class(-xp[::-1], cls[::-1].astype(np.float64), c[::-1].reshape(P, 1), delta)
    return out[::-1].copy()


def prototype_fp(means, n_b, xp, delta):
    """BRS: ``FP_i = sum_b |b| H(mean_b - x_i)`` (means sorted ascending)."""
    return static_sums(means, n_b.astype(np.float64).reshape(-1, 1), xp, delta)[:, 0]


def prototype_grad(means, xp, c, delta):
    """BRS: per-member gradient of each bucket ``G_b = sum_i c_i H(mean_b - x_i)`` (means sorted
    ascending), as ``sum_i c_i H(y_i - y_b)`` on ``y = -x``."""
    P = xp.shape[0]
    c = np.asarray(c, dtype=np.float64)
    g = static_sums(-xp[::-1], c[::-1].reshape(P, 1), -means[::-1], delta)[:, 0]
    return g[::-1].copy()
