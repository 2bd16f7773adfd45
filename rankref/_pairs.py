"""Positive-positive terms in O(P log P) (see the "Design" docs page).

Every function returns, per query point q, sums of ``w_k H_delta(x_k - q)`` over a set of
members k: ``H = 1`` on the members at or above ``q + delta`` and affine on the window
``[q - delta, q + delta)``, located exactly (thresholds as their ceiling floats).  Sums over all
members use a sliding-window aggregate (O(P) after the sort); sums over the members of the
groups before (or after) a query's IoU or class group use one divide and conquer over the
groups (O(P log G), both directions in one pass).  Both add only non-negative terms.  Below
``DIRECT_MAX_P`` positives the direct O(P^2) loops are faster and are used instead (same values
to round-off).  The "Design" docs page has the details.

Unless said otherwise, the positives' logits ``xp`` are sorted ascending (ties in index order),
and per-positive inputs and outputs follow that order.
"""
import numpy as np

from . import _kernels
from ._engine import positions, stable_argsort, two_sum

__all__ = ["window", "static_sums", "rs_terms", "rs_sorting_scatter", "rank_pos", "class_rank",
           "other_class_sums", "other_class_scatter", "prototype_fp", "prototype_grad"]

# Crossover between the direct O(P^2) loops and the window sums (bench_ranking.py --pairs).
DIRECT_MAX_P = 96


def window(keys, q, delta):
    """``(#{k < q - delta}, #{k < q + delta})`` for sorted ``keys``: the query's window is
    ``[pl, ph)`` and the members at or above ``q + delta`` are ``[ph, n)``.  At delta = 0 both
    are ``#{k < q}`` (the members >= q count 1)."""
    if q is keys:  # the keys' own windows: two pointers, O(n)
        lo = np.empty(keys.shape[0], dtype=np.int64)
        hi = np.empty(keys.shape[0], dtype=np.int64)
        _kernels.self_windows(keys, delta, lo, hi)
        return lo, hi
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


class _Groups:
    """The elements (sorted by key) ordered by group, then key, in all four ways the sweeps
    need, from one stable sort: groups ascending or descending, on the keys ``x`` or on
    ``y = -x[::-1]`` (the key order reversed).  Each order comes with its group boundaries."""

    def __init__(self, gkey):
        P = gkey.shape[0]
        order = stable_argsort(gkey)  # ascending, keys ascending within a group
        gptr = _groups(gkey[order])
        # descending groups, keys still ascending within a group
        size = np.diff(gptr)
        grp = np.repeat(np.arange(size.shape[0]), size)
        pos = (P - gptr[1:][grp]) + (np.arange(P) - gptr[:-1][grp])
        desc = np.empty(P, dtype=np.int64)
        desc[pos] = order
        dptr = (P - gptr[::-1]).astype(np.int64)
        self.x = {True: (order, gptr), False: (desc, dptr)}
        # on y = -x[::-1] (element j of y is element P-1-j of x): reversing an order by
        # (group, x) gives the opposite group order with y ascending within a group
        self.y = {True: (P - 1 - desc[::-1], (P - dptr[::-1]).astype(np.int64)),
                  False: (P - 1 - order[::-1], (P - gptr[::-1]).astype(np.int64))}


def groups_of(gkey):
    """The :class:`_Groups` of a group key (IoU or class), or None where the direct loops run."""
    return _Groups(gkey) if gkey.shape[0] > DIRECT_MAX_P else None


def _group_sums(keys, We, Wl, order, gptr, delta, lo=None, hi=None):
    """``(earlier, later)``: sums of ``W_k H(keys_k - keys_q)`` over the members k of the groups
    strictly before q's (weights ``We``) and strictly after (weights ``Wl``), for the sorted
    ``keys`` in (group, key) order ``order`` with boundaries ``gptr``.  A None weight skips that
    side; ``lo, hi``: the keys' own windows, when known."""
    P = keys.shape[0]
    if lo is None:
        lo, hi = window(keys, keys, delta)
    We = np.zeros((P, 0)) if We is None else np.ascontiguousarray(We, dtype=np.float64)
    Wl = np.zeros((P, 0)) if Wl is None else np.ascontiguousarray(Wl, dtype=np.float64)
    earlier = np.empty((P, We.shape[1]))
    later = np.empty((P, Wl.shape[1]))
    _kernels.group_sums(keys, lo, hi, We, Wl, order, gptr, delta, earlier, later)
    return earlier, later


def _within_groups(keys, W, order, gptr, delta, lo=None, hi=None):
    """``sum_k W_k H(keys_k - keys_q)`` over the members k of q's own group (self included);
    ``lo, hi``: the windows of the keys among all keys, when known."""
    P, m = W.shape
    if gptr.shape[0] == P + 1:  # every group a single element: the self term H(0) only
        return np.asarray(W, dtype=np.float64) * (0.5 if delta > 0.0 else 1.0)
    k = keys[order]
    Wo = np.ascontiguousarray(W[order], dtype=np.float64)
    grp = np.repeat(np.arange(gptr.shape[0] - 1), np.diff(gptr))
    end = gptr[grp + 1]
    if lo is None:
        lo, hi = window(keys, keys, delta)  # sorted queries: fast
    # a group keeps the key order, so its members below a threshold are a prefix of its slice:
    # search the global positions of the thresholds among (group, key index) pairs
    composite = grp * (P + 1) + order
    glo = np.searchsorted(composite, grp * (P + 1) + lo[order], side="left").astype(np.int64)
    ghi = np.searchsorted(composite, grp * (P + 1) + hi[order], side="left").astype(np.int64)
    suf = np.zeros((P, m))
    _kernels.group_suffix_sums(Wo, gptr, suf)
    out = np.where((ghi < end)[:, None], suf[np.minimum(ghi, P - 1)], 0.0)
    if delta > 0.0:
        win = np.empty((P, m))
        _kernels.sliding_window_sums(k, Wo, np.zeros((P, m)), k, glo, ghi, delta, win)
        out += win
    res = np.empty((P, m))
    res[order] = out
    return res


def rs_terms(xp, tp, delta, groups=None):
    """Per positive i, with ``H_ik = H(x_k - x_i)`` over all positives k (self included): the
    columns rank_pos, the excess ``sum_{t_k >= t_i} H (t_k - t_i)``, the deficit
    ``sum_{t_k < t_i} H (t_i - t_k)``, the target mass ``sum_{t_k >= t_i} H`` and the missorted
    mass ``D = sum_{t_k < t_i} H`` (computed directly, never as a difference), from which
    :func:`rankref.losses.sorting_error` forms the sorting error without cancelling ``1 - t``.
    ``groups``: the :class:`_Groups` of ``tp``, to share with :func:`rs_sorting_scatter`.

    Below ``DIRECT_MAX_P`` every column is a sum of non-negative terms (a few ulps relative).
    Above it the excess and deficit are ``sum H t_k - t_i sum H`` over the higher (lower) IoU
    groups: their absolute error is a few ulps of ``t_i sum H``."""
    P = xp.shape[0]
    if P <= DIRECT_MAX_P:
        return _kernels.rs_positive_terms_direct(xp, tp, delta)
    g = groups or _Groups(tp)
    W = np.column_stack([np.ones(P), tp])
    lo, hi = window(xp, xp, delta)
    out = np.empty((P, 5))
    out[:, 0] = static_sums(xp, W[:, :1], xp, delta, lo, hi)[:, 0]
    # groups by descending IoU: t_k > t_i are the earlier groups, t_k < t_i the later ones
    higher, lower = _group_sums(xp, W, W, *g.x[False], delta, lo, hi)
    own = _within_groups(xp, W[:, :1], *g.x[True], delta, lo, hi)[:, 0]  # t_k == t_i
    out[:, 1] = np.maximum(higher[:, 1] - tp * higher[:, 0], 0.0)
    out[:, 2] = np.maximum(tp * lower[:, 0] - lower[:, 1], 0.0)
    out[:, 3] = higher[:, 0] + own
    out[:, 4] = lower[:, 0]
    return out


def rs_sorting_scatter(xp, tp, w, delta, groups=None):
    """``g_k = sum_{i : t_i > t_k} w_i H(x_k - x_i)``: the higher IoU groups' members on
    ``y = -x`` (``H(x_k - x_i) = H(y_i - y_k)``)."""
    P = xp.shape[0]
    w = np.ascontiguousarray(w, dtype=np.float64)
    if P <= DIRECT_MAX_P:
        return _kernels.rs_sorting_scatter_direct(xp, tp, w, delta)
    g = groups or _Groups(tp)
    out = _group_sums(-xp[::-1], w[::-1].reshape(P, 1), None, *g.y[False], delta)[0]
    return out[::-1, 0].copy()


def rank_pos(xp, delta):
    """``sum_k H(x_k - x_i)`` over all positives k, self included."""
    P = xp.shape[0]
    if P <= DIRECT_MAX_P:
        return _kernels.rs_positive_terms_direct(xp, np.zeros(P), delta)[:, 0].copy()
    return static_sums(xp, np.ones((P, 1)), xp, delta)[:, 0]


def class_rank(xp, cls, delta, groups=None):
    """``sum_{k : cls_k == cls_i} H(x_k - x_i)`` (self included)."""
    g = groups or _Groups(cls)
    return _within_groups(xp, np.ones((xp.shape[0], 1)), *g.x[True], delta)[:, 0]


def other_class_sums(xp, cls, delta, groups=None):
    """``sum_{k : cls_k != cls_i} H(x_k - x_i)``: other classes' positives ranked above i, as
    the classes before plus the classes after i's (two non-negative parts)."""
    g = groups or _Groups(cls)
    W = np.ones((xp.shape[0], 1))
    before, after = _group_sums(xp, W, W, *g.x[True], delta)
    return (before + after)[:, 0]


def other_class_scatter(xp, cls, c, delta, groups=None):
    """``g_k = sum_{i : cls_i != cls_k} c_i H(x_k - x_i)``: the gradient a positive receives as a
    negative of the other classes (on ``y = -x``)."""
    P = xp.shape[0]
    g = groups or _Groups(cls)
    W = np.asarray(c, dtype=np.float64)[::-1].reshape(P, 1)
    before, after = _group_sums(-xp[::-1], W, W, *g.y[True], delta)
    return (before + after)[::-1, 0].copy()


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
