"""The dense O(P * N) NumPy oracle (the "Testing" section of the Design docs page).

Written as literally as the maths and the official loops, with no cleverness: one pass over the
positives, each comparing against every positive and every negative.  Memory is O(N) (no P x N
temporary).  Inputs are flat float64 logits ``x``, flat targets ``t`` and the checked delta.
"""
import numpy as np

from ._engine import scale_for_delta
from ._validation import EPS

__all__ = ["heaviside", "step", "sum3", "rank_sort_dense", "ap_loss_dense"]


def _far_apart_ok(func):
    """Differences of logits spanning more than the float range overflow to +-inf, which the
    relaxed step maps to exactly 1 or 0: no warning."""
    import functools

    @functools.wraps(func)
    def wrapped(*args, **kwargs):
        with np.errstate(over="ignore"):
            return func(*args, **kwargs)
    return wrapped


def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def sum3(a, b, d):
    """``(a - b) + d`` to a few ulps relative (two TwoSums and their errors added: a rounded
    ``a - b`` never cancels against ``d``); +-inf beyond the float range."""
    with np.errstate(over="ignore", invalid="ignore"):
        s1, e1 = _two_sum(a, -b)
        s2, e2 = _two_sum(s1, d)
        out = s2 + (e1 + e2)
    return np.where(np.isfinite(s2), out, np.where(np.isfinite(s1), s2, s1))


def heaviside(u, delta):
    """H_delta(u) = clip(((u + delta) / delta) / 2, 0, 1) for delta > 0, and [u >= 0] for
    delta = 0.

    ``u + delta`` is one correctly rounded operation, so H is exact to a few ulps relative near
    0 too (``1/2 + u / (2 delta)`` would cancel there); neither ``2 delta`` (delta > max / 2)
    nor ``1 / (2 delta)`` (subnormal delta) is formed.  u = +-inf gives 1 and 0.
    """
    u = np.asarray(u, dtype=np.float64)
    if delta > 0:
        sigma = scale_for_delta(delta)  # u + delta must not overflow: scale by a power of two
        if sigma != 1.0:
            u, delta = u * sigma, delta * sigma
        with np.errstate(over="ignore", invalid="ignore"):
            v = (u + delta) / delta
            return np.clip(np.where(np.isnan(v), u, v) / 2.0, 0.0, 1.0)
    return (u >= 0).astype(np.float64)


def step(a, b, delta):
    """H_delta(a - b) for float64 ``a``, ``b`` (broadcast), exact to a few ulps relative: the
    numerator ``(a - b) + delta`` by :func:`sum3`.  Logits and delta must be scaled first for a
    delta above 2**960 (:func:`rankref._engine.rescaled`)."""
    if delta > 0:
        with np.errstate(over="ignore"):
            return np.clip((sum3(a, b, delta) / delta) / 2.0, 0.0, 1.0)
    return (np.asarray(a) >= np.asarray(b)).astype(np.float64)


def _scaled(x, delta):
    """Logits and delta times :func:`scale_for_delta` (H is invariant)."""
    sigma = scale_for_delta(delta)
    return (x * sigma, delta * sigma) if sigma != 1.0 else (x, delta)


@_far_apart_ok
def rank_sort_dense(x, t, delta):
    """RS loss (Oksuz et al., ICCV 2021) as in the official ``RankSort`` loop.

    Returns ``(ranking_loss, sorting_loss, ranking_grad, sorting_grad)`` in float64.
    """
    x, delta = _scaled(np.asarray(x, dtype=np.float64), delta)
    t = np.asarray(t, dtype=np.float64)
    pos = t > 0
    neg = t == 0
    xp, tp, xn = x[pos], t[pos], x[neg]
    Z = xp.shape[0]
    ranking_grad = np.zeros_like(x)
    sorting_grad = np.zeros_like(x)
    if Z == 0:
        return 0.0, 0.0, ranking_grad, sorting_grad
    ranking_error = np.zeros(Z)
    sorting_error = np.zeros(Z)
    fg_rank = np.zeros(Z)
    fg_sort = np.zeros(Z)
    bg_grad = np.zeros(xn.shape[0])
    for i in range(Z):
        h_pos = step(xp, xp[i], delta)  # self included: H(0)
        h_neg = step(xn, xp[i], delta)
        rank_pos = h_pos.sum()
        fp = h_neg.sum()
        rank = rank_pos + fp
        ranking_error[i] = fp / rank
        # current - target = sum H(1-t)/rank_pos - sum_{t>=t_i} H(1-t)/sum_{t>=t_i} H, written
        # as non-negative terms (no 1 - t, no difference of two ratios):
        # (D / rank_pos) sum_{t>=t_i} H (t - t_i) / sum_{t>=t_i} H + sum_{t<t_i} H (t_i - t) / rank_pos
        sorted_above = tp >= tp[i]
        missorted = (~sorted_above) * h_pos
        denom = missorted.sum()
        target_den = (sorted_above * h_pos).sum()
        excess = (sorted_above * h_pos * (tp - tp[i])).sum()
        deficit = (missorted * (tp[i] - tp)).sum()
        sorting_error[i] = (excess / target_den) * (denom / rank_pos) + deficit / rank_pos
        if fp > EPS:
            fg_rank[i] -= ranking_error[i] / Z
            bg_grad += h_neg * ((ranking_error[i] / fp) / Z)
        if denom > EPS:
            fg_sort[i] -= sorting_error[i] / Z
            fg_sort += missorted * ((sorting_error[i] / denom) / Z)
    ranking_grad[pos] = fg_rank
    ranking_grad[neg] = bg_grad
    sorting_grad[pos] = fg_sort
    return float(ranking_error.mean()), float(sorting_error.mean()), ranking_grad, sorting_grad


@_far_apart_ok
def ap_loss_dense(x, t, delta, interpolate):
    """AP Loss (Chen et al., CVPR 2019) as in the official loop: self counts 1, positives are
    visited by ascending logit (ties in index order) with a running maximum of the precision,
    kept as the running minimum of the error ``1 - prec = FP / rank`` (no cancellation).

    Returns ``(loss, grad)`` in float64.
    """
    x, delta = _scaled(np.asarray(x, dtype=np.float64), delta)
    t = np.asarray(t, dtype=np.float64)
    pos = t == 1
    neg = t == 0
    xp, xn = x[pos], x[neg]
    Z = xp.shape[0]
    grad = np.zeros_like(x)
    if Z == 0:
        return 0.0, grad
    fg_grad = np.zeros(Z)
    bg_grad = np.zeros(xn.shape[0])
    interpolated = np.zeros(Z)
    min_err = np.inf  # 1 - (running maximum of the precision)
    for i in np.argsort(xp, kind="stable"):
        h_pos = step(xp, xp[i], delta)
        h_pos[i] = 0.0  # the self term counts 1, added below
        h_neg = step(xn, xp[i], delta)
        rank_pos = 1.0 + h_pos.sum()
        fp = h_neg.sum()
        rank = rank_pos + fp
        err = fp / rank  # 1 - prec, without the cancellation of 1 - rank_pos / rank
        if not interpolate or err <= min_err:
            min_err = err
            bg_grad += h_neg * ((1.0 / rank) / Z)
        else:  # (1 - m) / (1 - prec) / rank
            bg_grad += h_neg * (((min_err / err) / rank) / Z)
        fg_grad[i] = -min_err / Z
        interpolated[i] = min_err
    grad[pos] = fg_grad
    grad[neg] = bg_grad
    return float(interpolated.mean()), grad
