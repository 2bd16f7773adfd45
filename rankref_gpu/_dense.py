"""The dense O(P N) oracle on any namespace, chunked over positives so that no temporary
exceeds ``CHUNK`` elements (the same formulas as :mod:`rankref._dense`: the relaxed step by
``(x_j - x_i) + delta`` to a few ulps relative, AP's error as ``FP / rank``, RS's sorting error
as non-negative terms).  Loss values are returned as 0-d arrays (no device sync)."""
import numpy as np

from ._backend import chunks
from rankref._engine import scale_for_delta

from ._pairs import far_apart_ok, step
from ._validation import EPS


def _scaled(x, delta):
    sigma = scale_for_delta(delta)  # H is invariant; x + delta stays finite
    return (x * sigma, delta * sigma) if sigma != 1.0 else (x, delta)


@far_apart_ok
def rank_sort_dense(xp, x, t, delta):
    x, delta = _scaled(xp.astype(x, np.float64), delta)
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
        hp = step(xp, xpos[None, :], xi, delta)
        hn = step(xp, xn[None, :], xi, delta)
        rank_pos = xp.sum(hp, axis=1)
        fp = xp.sum(hn, axis=1)
        rank = rank_pos + fp
        re[i0:i1] = fp / rank
        dt = tp[None, :] - ti
        above = dt >= 0
        missorted = (~above) * hp
        D = xp.sum(missorted, axis=1)
        # current - target as non-negative terms (rankref.losses.sorting_error)
        excess = xp.sum(xp.where(above, hp * dt, 0.0), axis=1)
        deficit = xp.sum(xp.where(above, 0.0, hp * -dt), axis=1)
        se[i0:i1] = (excess / xp.sum(above * hp, axis=1)) * (D / rank_pos) + deficit / rank_pos
        gate = fp > EPS
        fg_rank[i0:i1] = xp.where(gate, -re[i0:i1] / Z, 0.0)
        c = xp.where(gate, (re[i0:i1] / xp.where(gate, fp, 1.0)) / Z, 0.0)
        bg += xp.sum(hn * c[:, None], axis=0)
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


@far_apart_ok
def ap_loss_dense(xp, x, t, delta, interpolate):
    x, delta = _scaled(xp.astype(x, np.float64), delta)
    t = xp.astype(t, np.float64)
    pos = t == 1
    neg = t == 0
    xpos, xn = x[pos], x[neg]
    Z = xpos.shape[0]
    rank = xp.zeros(Z)
    err = xp.zeros(Z)
    for i0, i1 in chunks(Z, Z + xn.shape[0]):
        hp = step(xp, xpos[None, :], xpos[i0:i1, None], delta)
        hp[xp.arange(i1 - i0), xp.arange(i0, i1)] = 0.0
        fp = xp.sum(step(xp, xn[None, :], xpos[i0:i1, None], delta), axis=1)
        rank[i0:i1] = (1.0 + xp.sum(hp, axis=1)) + fp
        err[i0:i1] = fp / rank[i0:i1]  # 1 - prec, without cancellation
    e = running_min(xp, xpos, err) if interpolate else err
    on_max = err <= e
    c = xp.where(on_max, (1.0 / rank) / Z,
                 ((e / xp.where(on_max, 1.0, err)) / rank) / Z)
    bg = xp.zeros(xn.shape[0])
    for i0, i1 in chunks(Z, xn.shape[0]):
        bg += xp.sum(step(xp, xn[None, :], xpos[i0:i1, None], delta) * c[i0:i1, None], axis=0)
    grad = xp.zeros_like(x)
    grad[pos] = -e / Z
    grad[neg] = bg
    return xp.mean(e), grad


def running_min(xp, xpos, err):
    """Running minimum of the error (the running maximum of the precision) over the positives
    by ascending logit (ties in index order), returned in the positives' order; on the device
    (``xp.cummax`` of the negated errors)."""
    order = xp.argsort(xpos, kind="stable")
    m = xp.empty(err.shape[0])
    m[order] = -xp.cummax(-err[order])
    return m


def running_max(xp, xpos, prec):
    """Running maximum of the precision over the positives by ascending logit (ties in index
    order), returned in the positives' order; on the device (``xp.cummax``)."""
    order = xp.argsort(xpos, kind="stable")
    m = xp.empty(prec.shape[0])
    m[order] = xp.cummax(prec[order])
    return m
