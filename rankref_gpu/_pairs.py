"""Positive-positive terms and BRS prototypes with array primitives.

Every function returns, per query point, sums of ``w_k H_delta(x_k - q)`` over a set of
members.  Two implementations compute the same values (to round-off):

* the segment tree of :mod:`rankref_gpu._tree`: O(P log^2 P) work in O(log P) vectorised
  steps (the sets that grow in IoU or class order by the divide and conquer over the bits of
  the group rank), memory O(P) per layer, bounded by the tree's budgets;
* chunked dense pair terms (the same H formula), O(P^2) work in chunks of rows of at most
  ``CHUNK`` elements on a GPU and 2**20 on the CPU (no P x P temporary beyond a chunk).

The dense terms are faster below a size: a handful of large elementwise operations against
the tree's few hundred small ones (sorts of the layers' keys, ``log P`` levels built one after
the other, gathers of ``2 log P`` nodes per query).  :func:`use_dense` chooses by P:

* ``DENSE_MAX_P_CPU = 2048`` on the CPU (NumPy, torch CPU), measured with
  ``benchmarks/bench_gpu.py --crossover --cpu --threads 1``: the dense chunks win up to about
  2000 positives (NumPy: 2048, torch CPU: between 1024 and 2048), where the P^2 work passes
  the tree's P log^2 P work with its larger constant;
* ``DENSE_MAX_P_GPU = 8192`` on a GPU, where each small operation of the tree costs a kernel
  launch (about 10 us: some 10 ms per loss, whatever P) while the dense chunks run at memory
  bandwidth (about 15 passes over P^2 float64, some 10 ms at P = 8192 on an H100).  This is an
  estimate from those costs, not yet a measurement: ``bench_gpu.py --crossover`` on the GPU
  measures it.

The positives' logits ``xq`` are sorted ascending (ties in index order) and per-positive inputs
and outputs follow that order.
"""
import functools

import numpy as np

from . import _backend
from ._backend import chunks, on_gpu
from ._tree import layered_sums, own_group_layer, static_sums, strict_layers, windows

# Largest P computed with the dense pair terms (see the module docstring).
DENSE_MAX_P_CPU = 2048
DENSE_MAX_P_GPU = 8192


def _budget(xp):
    """Elements of one temporary of the dense pair terms (a chunk of rows): a quarter of the
    backend's chunk, since the relaxed step to a few ulps relative (:func:`sum3`) keeps about
    ten such temporaries alive at once."""
    return max(1, (_backend.CHUNK if on_gpu(xp) else min(_backend.CHUNK, 1 << 20)) // 4)


def use_dense(xp, P):
    """Whether the pair terms of ``P`` positives use the dense O(P^2) chunks."""
    return P <= (DENSE_MAX_P_GPU if on_gpu(xp) else DENSE_MAX_P_CPU)


def far_apart_ok(func):
    """Differences of logits spanning more than the float range overflow to +-inf, which the
    relaxed step maps to exactly 1 or 0: no warning (NumPy)."""
    @functools.wraps(func)
    def wrapped(*args, **kwargs):
        with np.errstate(over="ignore"):
            return func(*args, **kwargs)
    return wrapped


def heaviside(xp, u, delta):
    """H_delta(u) = clip(((u + delta) / delta) / 2, 0, 1), or [u >= 0] at delta = 0 (float64):
    ``u + delta`` is one rounding, so H is exact to a few ulps relative near 0 too.  ``u`` and
    ``delta`` must be scaled first for a delta above 2**960."""
    if delta > 0:
        with np.errstate(over="ignore"):  # +-inf is right (H = 1 or 0)
            return xp.clip(((u + delta) / delta) / 2.0, 0.0, 1.0)
    return xp.astype(u >= 0, np.float64)


def sum3(xp, a, b, d):
    """``(a - b) + d`` to a few ulps relative (two TwoSums, their errors added): a rounded
    ``a - b`` never cancels against ``d``.  +-inf beyond the float range."""
    with np.errstate(over="ignore", invalid="ignore"):
        s1 = a - b
        bb = s1 - a
        e1 = (a - (s1 - bb)) + (-b - bb)
        s2 = s1 + d
        bb = s2 - s1
        e2 = (s1 - (s2 - bb)) + (d - bb)
        out = s2 + (e1 + e2)
    return xp.where(xp.isfinite(s2), out, xp.where(xp.isfinite(s1), s2, s1))


def step(xp, a, b, delta):
    """H_delta(a - b) (broadcast), exact to a few ulps relative (the numerator by
    :func:`sum3`); logits and delta scaled first for a delta above 2**960."""
    if delta > 0:
        with np.errstate(over="ignore"):
            return xp.clip((sum3(xp, a, b, delta) / delta) / 2.0, 0.0, 1.0)
    return xp.astype(a >= b, np.float64)


class Groups:
    """Ranks of the groups of equal keys (IoU or class) in ascending key order: ``asc`` in
    ``[0, G)``, ``desc = G - 1 - asc``, and the ``levels`` (bits) of the divide and conquer."""

    def __init__(self, xp, g, G):
        self.asc, self.G = g, int(G)
        self.desc = (self.G - 1) - g
        self.levels = (self.G - 1).bit_length()

    @classmethod
    def of(cls, xp, key):
        """The groups of ``key``: one sort and one device sync (the number of groups)."""
        P = key.shape[0]
        order = xp.argsort(key)
        ks = key[order]
        step = xp.concatenate([xp.zeros(1, dtype=np.int64), xp.cumsum(ks[1:] != ks[:-1])])
        g = xp.empty(P, dtype=np.int64)
        g[order] = step
        return cls(xp, g, int(step[-1]) + 1)


def _total(xp, parts, P, m):
    """Sum of a list of (P, m) arrays in a fixed order."""
    out = xp.zeros((P, m))
    for p in parts:
        out = out + p
    return out


def rs_terms(xp, xq, tp, d, groups=None):
    """Per positive i, with ``H_ik = H(x_k - x_i)`` over all positives (self included): the
    columns rank_pos, the excess ``sum_{t_k >= t_i} H (t_k - t_i)``, the deficit
    ``sum_{t_k < t_i} H (t_i - t_k)``, the target mass ``sum_{t_k >= t_i} H`` and the missorted
    mass ``D = sum_{t_k < t_i} H`` (computed directly, never as a difference), as
    :func:`rankref._pairs.rs_terms`.  The dense chunks add non-negative terms only; the tree
    forms the excess and deficit as ``sum H t_k - t_i sum H`` over the higher (lower) groups.
    ``groups``: the :class:`Groups` of ``tp`` (tree path), to share with the scatter."""
    P = xq.shape[0]
    if use_dense(xp, P):
        return rs_terms_dense(xp, xq, tp, d)
    g = groups or Groups.of(xp, tp)
    W = xp.stack([xp.ones(P), tp], axis=1)
    pl, ph = windows(xp, xq, xq, d)
    zero = xp.zeros(P, dtype=np.int64)
    layers = ([(zero, zero, xp.ones(P, dtype=bool)), own_group_layer(xp, g.desc)]
              + strict_layers(xp, g.desc, g.levels))
    res = layered_sums(xp, xq, W, layers, d, pl, ph)
    rp = res[0][:, 0]
    own = res[1][:, 0]                          # t_k == t_i
    higher = _total(xp, res[2:], P, 2)          # t_k > t_i
    del res  # (memory: the layers of one sweep at a time)
    lower = _total(xp, layered_sums(xp, xq, W, strict_layers(xp, g.asc, g.levels), d, pl, ph),
                   P, 2)                        # t_k < t_i
    ae = xp.maximum(higher[:, 1] - tp * higher[:, 0], 0.0)
    bd = xp.maximum(tp * lower[:, 0] - lower[:, 1], 0.0)
    return xp.stack([rp, ae, bd, higher[:, 0] + own, lower[:, 0]], axis=1)


def rs_sorting_scatter(xp, xq, tp, w, d, groups=None):
    """``g_k = sum_{i : t_i > t_k} w_i H(x_k - x_i)`` (w >= 0): the members of the higher IoU
    groups, on ``y = -x`` (``H(x_k - x_i) = H(y_i - y_k)``)."""
    P = xq.shape[0]
    if use_dense(xp, P):
        return rs_sorting_scatter_dense(xp, xq, tp, w, d)
    g = groups or Groups.of(xp, tp)
    y = -xp.flip(xq)
    pl, ph = windows(xp, y, y, d)
    res = layered_sums(xp, y, xp.reshape(xp.flip(w), (P, 1)),
                       strict_layers(xp, xp.flip(g.desc), g.levels), d, pl, ph)
    return xp.flip(_total(xp, res, P, 1)[:, 0])


def rank_pos(xp, xq, d):
    """``sum_k H(x_k - x_i)`` over all positives k, self included."""
    P = xq.shape[0]
    if use_dense(xp, P):
        return rank_pos_dense(xp, xq, d)
    return static_sums(xp, xq, None, xq, d)[:, 0]


def class_rank(xp, xq, grp, d):
    """``sum_{k : grp_k == grp_i} H(x_k - x_i)`` (self included)."""
    P = xq.shape[0]
    if use_dense(xp, P):
        return group_sums_dense(xp, xq, grp, d, same=True)
    pl, ph = windows(xp, xq, xq, d)
    return layered_sums(xp, xq, None, [own_group_layer(xp, grp)], d, pl, ph)[0][:, 0]


def other_class_sums(xp, xq, grp, k, d):
    """``sum_{k : grp_k != grp_i} H(x_k - x_i)`` (``grp`` in ``[0, k)``): the classes before
    plus the classes after i's (two non-negative parts, never total minus own)."""
    P = xq.shape[0]
    if use_dense(xp, P):
        return group_sums_dense(xp, xq, grp, d, same=False)
    g = Groups(xp, grp, k)
    pl, ph = windows(xp, xq, xq, d)
    layers = strict_layers(xp, g.asc, g.levels) + strict_layers(xp, g.desc, g.levels)
    return _total(xp, layered_sums(xp, xq, None, layers, d, pl, ph), P, 1)[:, 0]


def other_class_scatter(xp, xq, grp, k, c, d):
    """``g_k = sum_{i : grp_i != grp_k} c_i H(x_k - x_i)`` (c >= 0): the gradient a positive
    receives as a negative of the other classes (on ``y = -x``)."""
    P = xq.shape[0]
    if use_dense(xp, P):
        return other_class_scatter_dense(xp, xq, grp, c, d)
    g = Groups(xp, xp.flip(grp), k)
    y = -xp.flip(xq)
    pl, ph = windows(xp, y, y, d)
    layers = strict_layers(xp, g.asc, g.levels) + strict_layers(xp, g.desc, g.levels)
    res = layered_sums(xp, y, xp.reshape(xp.flip(c), (P, 1)), layers, d, pl, ph)
    return xp.flip(_total(xp, res, P, 1)[:, 0])


def prototype_fp(xp, means, n_b, xq, d):
    """BRS: ``FP_i = sum_b |b| H(mean_b - x_i)`` (means sorted ascending)."""
    if use_dense(xp, xq.shape[0]):
        return prototype_fp_dense(xp, means, n_b, xq, d)
    return static_sums(xp, means, xp.reshape(n_b, (-1, 1)), xq, d)[:, 0]


def prototype_grad(xp, means, xq, c, d):
    """BRS: per-member gradient of each bucket ``G_b = sum_i c_i H(mean_b - x_i)`` (means
    sorted ascending), as ``sum_i c_i H(y_i - y_b)`` on ``y = -x``."""
    P = xq.shape[0]
    if use_dense(xp, P):
        return prototype_grad_dense(xp, means, xq, c, d)
    g = static_sums(xp, -xp.flip(xq), xp.reshape(xp.flip(c), (P, 1)), -xp.flip(means), d)
    return xp.flip(g[:, 0])


# ------------------------------------------------------------------ dense O(P^2) chunks

@far_apart_ok
def rs_terms_dense(xp, xq, tp, d):
    P = xq.shape[0]
    out = xp.zeros((P, 5))
    for i0, i1 in chunks(P, P, _budget(xp)):
        h = step(xp, xq[None, :], xq[i0:i1, None], d)
        dt = tp[None, :] - tp[i0:i1, None]
        ge = dt >= 0
        out[i0:i1, 0] = xp.sum(h, axis=1)
        out[i0:i1, 1] = xp.sum(xp.where(ge, h * dt, 0.0), axis=1)
        out[i0:i1, 2] = xp.sum(xp.where(ge, 0.0, h * -dt), axis=1)
        out[i0:i1, 3] = xp.sum(h * ge, axis=1)
        out[i0:i1, 4] = xp.sum(h * ~ge, axis=1)
    return out


@far_apart_ok
def rs_sorting_scatter_dense(xp, xq, tp, w, d):
    P = xq.shape[0]
    out = xp.zeros(P)
    for k0, k1 in chunks(P, P, _budget(xp)):  # g_k = sum_{i: t_k < t_i} H(x_k - x_i) w_i
        h = step(xp, xq[k0:k1, None], xq[None, :], d)
        out[k0:k1] = xp.sum((tp[k0:k1, None] < tp[None, :]) * h * w[None, :], axis=1)
    return out


@far_apart_ok
def rank_pos_dense(xp, xq, d):
    P = xq.shape[0]
    out = xp.zeros(P)
    for i0, i1 in chunks(P, P, _budget(xp)):
        out[i0:i1] = xp.sum(step(xp, xq[None, :], xq[i0:i1, None], d), axis=1)
    return out


@far_apart_ok
def group_sums_dense(xp, xq, grp, d, same):
    """sum_k [grp(k) == grp(i)] H(x_k - x_i) (``same``) or over the other groups."""
    P = xq.shape[0]
    out = xp.zeros(P)
    for i0, i1 in chunks(P, P, _budget(xp)):
        h = step(xp, xq[None, :], xq[i0:i1, None], d)
        eq = grp[None, :] == grp[i0:i1, None]
        out[i0:i1] = xp.sum(h * (eq if same else ~eq), axis=1)
    return out


@far_apart_ok
def other_class_scatter_dense(xp, xq, grp, c, d):
    P = xq.shape[0]
    out = xp.zeros(P)
    for k0, k1 in chunks(P, P, _budget(xp)):
        h = step(xp, xq[k0:k1, None], xq[None, :], d)
        out[k0:k1] = xp.sum((grp[k0:k1, None] != grp[None, :]) * h * c[None, :], axis=1)
    return out


@far_apart_ok
def prototype_fp_dense(xp, means, n_b, xq, d):
    P, B = xq.shape[0], means.shape[0]
    out = xp.zeros(P)
    for i0, i1 in chunks(P, B, _budget(xp)):
        out[i0:i1] = xp.sum(n_b[None, :] * step(xp, means[None, :], xq[i0:i1, None], d),
                            axis=1)
    return out


@far_apart_ok
def prototype_grad_dense(xp, means, xq, c, d):
    P, B = xq.shape[0], means.shape[0]
    out = xp.zeros(B)
    for b0, b1 in chunks(B, P, _budget(xp)):
        out[b0:b1] = xp.sum(c[None, :] * step(xp, means[b0:b1, None], xq[None, :], d),
                            axis=1)
    return out
