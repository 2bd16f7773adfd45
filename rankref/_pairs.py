"""Positive-positive terms in O(P log P): window sums on a segment tree over the positives
sorted by logit, static or swept in IoU (or class) order (see the "Design" docs page).

Every function returns, per query point q, sums of ``w_k H_delta(x_k - q)`` over a set of
members k: ``H = 1`` on the members at or above ``q + delta`` and affine on the window
``[q - delta, q + delta)``, located exactly with the thresholds' rounding errors.  Below
``DIRECT_MAX_P`` positives the direct O(P^2) loops are faster and are used instead (same
values to round-off).
"""
import numpy as np

from . import _kernels
from ._engine import positions, threads_for, two_sum

__all__ = ["rs_terms", "rs_sorting_scatter", "rank_pos", "class_rank", "other_class_sums",
           "other_class_scatter", "weighted_sums"]

# Crossover between the direct O(P^2) loops and the trees (benchmarks/bench_ranking.py --pairs).
DIRECT_MAX_P = 48


def window(keys, q, delta):
    """``(#{k < q - delta}, #{k < q + delta})`` for sorted ``keys``: the query's window is
    ``[pl, ph)`` and the members at or above ``q + delta`` are ``[ph, n)``.  At delta = 0 both
    are ``#{k < q}`` (the members >= q count 1)."""
    if delta > 0.0:
        s, e = two_sum(q, -delta)
        pl = positions(keys, s, e)
        s, e = two_sum(q, delta)
        return pl, positions(keys, s, e)
    ph = np.searchsorted(keys, q, side="left").astype(np.int64)
    return ph, ph


def _groups(key):
    """Boundaries of the runs of equal values of a sorted array: ``ptr`` of length G + 1."""
    n = key.shape[0]
    cut = np.flatnonzero(key[1:] != key[:-1]) + 1
    return np.concatenate([[0], cut, [n]]).astype(np.int64)


def weighted_sums(keys, W, q, delta, lo=None, hi=None, end=None):
    """``out[i, ch] = sum_k W[k, ch] H(keys_k - q_i)`` over all members (static)."""
    n, m = W.shape
    Q = q.shape[0]
    out = np.zeros((Q, m))
    if n == 0 or Q == 0:
        return out
    if lo is None:
        lo, hi = window(keys, q, delta)
    if end is None:
        end = np.full(Q, n, dtype=np.int64)
    _kernels.static_window_sums(keys, np.ascontiguousarray(W), np.zeros((n, m)), q, lo, hi,
                                end, delta, out, threads_for(Q * 64))
    return out


def _sweep(keys, W, group_key, ascending, strict, delta, lo, hi, query_all=False):
    """Sums over the members whose ``group_key`` comes before (strict) or up to (inclusive) the
    query's own, in ``ascending`` or descending order.  Members are the queries (sorted keys).
    With ``query_all`` also the sums over all members, from the same tree (so a query whose
    set is everything gets bitwise-equal values)."""
    P, m = W.shape
    order = np.argsort(group_key if ascending else -group_key, kind="stable").astype(np.int64)
    ptr = _groups(group_key[order])
    out = np.zeros((P, m))
    out_all = np.zeros((P, m) if query_all else (1, m))
    _kernels.sweep_window_sums(keys, np.ascontiguousarray(W), order, ptr, keys, lo, hi,
                               np.full(P, P, dtype=np.int64), strict, delta, out, out_all,
                               query_all)
    return (out, out_all) if query_all else out


def rs_terms(xp, tp, delta):
    """Per positive i, with ``H_ik = H(x_k - x_i)`` over all positives k (self included): the
    columns rank_pos, sum H(1 - t_k), sum_{t_k >= t_i} H(1 - t_k), sum_{t_k >= t_i} H and
    sum_{t_k < t_i} H (the missorted mass D, computed directly, never as a difference)."""
    P = xp.shape[0]
    if P <= DIRECT_MAX_P:
        return _kernels.rs_positive_terms_direct(xp, tp, delta)
    order = np.argsort(xp, kind="stable")
    keys, ts = xp[order], tp[order]
    lo, hi = window(keys, keys, delta)
    W = np.column_stack([np.ones(P), 1.0 - ts])
    out = np.empty((P, 5))
    tgt, static = _sweep(keys, W, ts, False, False, delta, lo, hi, True)  # t_k >= t_i, all
    mis = _sweep(keys, W[:, :1], ts, True, True, delta, lo, hi)     # t_k < t_i
    out[order, 0] = static[:, 0]
    out[order, 1] = static[:, 1]
    out[order, 2] = tgt[:, 1]
    out[order, 3] = tgt[:, 0]
    out[order, 4] = mis[:, 0]
    return out


def rs_sorting_scatter(xp, tp, w, delta):
    """``g_k = sum_{i : t_i > t_k} w_i H(x_k - x_i)``: a strict sweep by descending IoU on
    ``y = -x`` (``H(x_k - x_i) = H(y_i - y_k)``)."""
    P = xp.shape[0]
    if P <= DIRECT_MAX_P:
        return _kernels.rs_sorting_scatter_direct(xp, tp, np.ascontiguousarray(w), delta)
    y = -xp
    order = np.argsort(y, kind="stable")
    keys, ts = y[order], tp[order]
    lo, hi = window(keys, keys, delta)
    g = _sweep(keys, np.asarray(w, dtype=np.float64)[order].reshape(P, 1), ts, False, True,
               delta, lo, hi)
    out = np.empty(P)
    out[order] = g[:, 0]
    return out


def rank_pos(xp, delta):
    """``sum_k H(x_k - x_i)`` over all positives k, self included."""
    P = xp.shape[0]
    if P <= DIRECT_MAX_P:
        return _kernels.rs_positive_terms_direct(xp, np.zeros(P), delta)[:, 0].copy()
    order = np.argsort(xp, kind="stable")
    keys = xp[order]
    out = np.empty(P)
    out[order] = weighted_sums(keys, np.ones((P, 1)), keys, delta)[:, 0]
    return out


def class_rank(xp, cls, delta):
    """``sum_{k : cls_k == cls_i} H(x_k - x_i)`` (self included): one tree over the positives
    sorted by (class, logit), each window clipped to its class."""
    P = xp.shape[0]
    g_order = np.argsort(xp, kind="stable")
    g_keys = xp[g_order]
    grank = np.empty(P, dtype=np.int64)
    grank[g_order] = np.arange(P)
    order = np.lexsort((grank, cls))  # by class, then by global rank (= by logit)
    keys, cl = xp[order], cls[order].astype(np.int64)
    composite = cl * (P + 1) + grank[order]
    glo, ghi = window(g_keys, keys, delta)  # global positions of the thresholds
    lo = np.searchsorted(composite, cl * (P + 1) + glo, side="left").astype(np.int64)
    hi = np.searchsorted(composite, cl * (P + 1) + ghi, side="left").astype(np.int64)
    end = np.searchsorted(composite, (cl + 1) * (P + 1), side="left").astype(np.int64)
    out = np.empty(P)
    out[order] = weighted_sums(keys, np.ones((P, 1)), keys, delta, lo, hi, end)[:, 0]
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
    P = xp.shape[0]
    order = np.argsort(xp, kind="stable")
    out = np.empty(P)
    out[order] = _other_class(xp[order], cls[order].astype(np.float64), np.ones((P, 1)), delta)
    return out


def other_class_scatter(xp, cls, c, delta):
    """``g_k = sum_{i : cls_i != cls_k} c_i H(x_k - x_i)``: the gradient a positive receives as a
    negative of the other classes (on ``y = -x``)."""
    P = xp.shape[0]
    y = -xp
    order = np.argsort(y, kind="stable")
    out = np.empty(P)
    out[order] = _other_class(y[order], cls[order].astype(np.float64),
                              np.asarray(c, dtype=np.float64)[order].reshape(P, 1), delta)
    return out


def prototype_fp(means, n_b, xp, delta):
    """BRS: ``FP_i = sum_b |b| H(mean_b - x_i)`` (means sorted ascending)."""
    return weighted_sums(means, n_b.astype(np.float64).reshape(-1, 1), xp, delta)[:, 0]


def prototype_grad(means, xp, c, delta):
    """BRS: per-member gradient of each bucket ``G_b = sum_i c_i H(mean_b - x_i)``."""
    P = xp.shape[0]
    y = -xp
    order = np.argsort(y, kind="stable")
    return weighted_sums(y[order], np.asarray(c, dtype=np.float64)[order].reshape(P, 1),
                         -means, delta)[:, 0]
