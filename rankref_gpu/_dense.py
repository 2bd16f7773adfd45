"""The dense O(P N) oracle on any namespace, chunked over positives so that no temporary
exceeds ``CHUNK`` elements (the same formulas as :mod:`rankref._dense`).  Loss values are
returned as 0-d arrays (no device sync)."""
import numpy as np

from ._backend import chunks
from ._pairs import heaviside
from ._validation import EPS


def rank_sort_dense(xp, x, t, delta):
    x = xp.astype(x, np.float64)
    t = xp.astype(t, np.float64)
    pos = t > 0
    neg = t == 0
    xpos, tp, xn = x[pos], t[pos], x[neg]
    Z = xpos.shape[0]
    re = xp.zeros(Z)
    se = xp.zeros(Z)
    fg_rank = xp.zeros(Z)
    fg_sort = xp.zeros(Z)
    bg = xp.zeros(xn.shape[0])
    for i0, i1 in chunks(Z, Z + xn.shape[0]):
        xi, ti = xpos[i0:i1, None], tp[i0:i1, None]
        hp = heaviside(xp, xpos[None, :] - xi, delta)
        hn = heaviside(xp, xn[None, :] - xi, delta)
        rank_pos = xp.sum(hp, axis=1)
        fp = xp.sum(hn, axis=1)
        rank = rank_pos + fp
        re[i0:i1] = fp / rank
        current = xp.sum(hp * (1.0 - tp)[None, :], axis=1) / rank_pos
        above = (tp[None, :] >= ti) * hp
        se[i0:i1] = current - xp.sum(above * (1.0 - tp)[None, :], axis=1) / xp.sum(above, axis=1)
        gate = fp > EPS
        fg_rank[i0:i1] = xp.where(gate, -re[i0:i1] / Z, 0.0)
        c = xp.where(gate, (re[i0:i1] / xp.where(gate, fp, 1.0)) / Z, 0.0)
        bg += xp.sum(hn * c[:, None], axis=0)
        missorted = (tp[None, :] < ti) * hp
        D = xp.sum(missorted, axis=1)
        gs = D > EPS
        fg_sort[i0:i1] += xp.where(gs, -se[i0:i1] / Z, 0.0)
        w = xp.where(gs, (se[i0:i1] / xp.where(gs, D, 1.0)) / Z, 0.0)
        fg_sort += xp.sum(missorted * w[:, None], axis=0)
    rg = xp.zeros_like(x)
    sg = xp.zeros_like(x)
    rg[pos] = fg_rank
    rg[neg] = bg
    sg[pos] = fg_sort
    return xp.mean(re), xp.mean(se), rg, sg


def ap_loss_dense(xp, x, t, delta, interpolate):
    x = xp.astype(x, np.float64)
    t = xp.astype(t, np.float64)
    pos = t == 1
    neg = t == 0
    xpos, xn = x[pos], x[neg]
    Z = xpos.shape[0]
    rank = xp.zeros(Z)
    prec = xp.zeros(Z)
    for i0, i1 in chunks(Z, Z + xn.shape[0]):
        hp = heaviside(xp, xpos[None, :] - xpos[i0:i1, None], delta)
        hp[xp.arange(i1 - i0), xp.arange(i0, i1)] = 0.0
        rank_pos = 1.0 + xp.sum(hp, axis=1)
        rank[i0:i1] = rank_pos + xp.sum(heaviside(xp, xn[None, :] - xpos[i0:i1, None], delta),
                                        axis=1)
        prec[i0:i1] = rank_pos / rank[i0:i1]
    m = running_max(xp, xpos, prec) if interpolate else prec
    on_max = prec >= m
    c = xp.where(on_max, (1.0 / rank) / Z,
                 (((1.0 - m) / xp.where(on_max, 1.0, 1.0 - prec)) / rank) / Z)
    bg = xp.zeros(xn.shape[0])
    for i0, i1 in chunks(Z, xn.shape[0]):
        bg += xp.sum(heaviside(xp, xn[None, :] - xpos[i0:i1, None], delta) * c[i0:i1, None],
                     axis=0)
    grad = xp.zeros_like(x)
    grad[pos] = -(1.0 - m) / Z
    grad[neg] = bg
    return 1.0 - xp.mean(m), grad


def running_max(xp, xpos, prec):
    """Running maximum of the precision over the positives by ascending logit (ties in index
    order), returned in the positives' order; on the device (``xp.cummax``)."""
    order = xp.argsort(xpos, kind="stable")
    m = xp.empty(prec.shape[0])
    m[order] = xp.cummax(prec[order])
    return m
