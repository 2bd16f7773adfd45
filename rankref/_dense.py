"""The dense O(P * N) NumPy oracle (the "Testing" section of the Design docs page).

Written as literally as the maths and the official loops, with no cleverness: one pass over the
positives, each comparing against every positive and every negative.  Memory is O(N) (no P x N
temporary).  Inputs are flat float64 logits ``x``, flat targets ``t`` and the checked delta.
"""
import numpy as np

from ._validation import EPS

__all__ = ["heaviside", "rank_sort_dense", "ap_loss_dense"]


def _far_apart_ok(func):
    """Differences of logits spanning more than the float range overflow to +-inf, which the
    relaxed step maps to exactly 1 or 0: no warning."""
    import functools

    @functools.wraps(func)
    def wrapped(*args, **kwargs):
        with np.errstate(over="ignore"):
            return func(*args, **kwargs)
    return wrapped


def heaviside(u, delta):
    """H_delta(u) = clip(1/2 + (u / delta) / 2, 0, 1) for delta > 0, and [u >= 0] for delta = 0.

    Written as ``(u / delta) / 2`` so that neither ``2 delta`` (delta > max / 2) nor
    ``1 / (2 delta)`` (subnormal delta) is ever formed; u = +-inf gives 1 and 0.
    """
    u = np.asarray(u, dtype=np.float64)
    if delta > 0:
        with np.errstate(over="ignore"):  # u / delta = +-inf is right: H = 1 or 0
            return np.clip((u / delta) / 2.0 + 0.5, 0.0, 1.0)
    return (u >= 0).astype(np.float64)


@_far_apart_ok
def rank_sort_dense(x, t, delta):
    """RS loss (Oksuz et al., ICCV 2021) as in the official ``RankSort`` loop.

    Returns ``(ranking_loss, sorting_loss, ranking_grad, sorting_grad)`` in float64.
    """
    x = np.asarray(x, dtype=np.float64)
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
        h_pos = heaviside(xp - xp[i], delta)  # self included: H(0)
        h_neg = heaviside(xn - xp[i], delta)
        rank_pos = h_pos.sum()
        fp = h_neg.sum()
        rank = rank_pos + fp
        ranking_error[i] = fp / rank
        current = (h_pos * (1.0 - tp)).sum() / rank_pos
        sorted_above = (tp >= tp[i]) * h_pos
        target = (sorted_above * (1.0 - tp)).sum() / sorted_above.sum()
        sorting_error[i] = current - target
        if fp > EPS:
            fg_rank[i] -= ranking_error[i] / Z
            bg_grad += h_neg * ((ranking_error[i] / fp) / Z)
        missorted = (tp < tp[i]) * h_pos
        denom = missorted.sum()
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
    visited by ascending logit (ties in index order) with a running maximum of the precision.

    Returns ``(loss, grad)`` in float64.
    """
    x = np.asarray(x, dtype=np.float64)
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
    max_prec = 0.0
    for i in np.argsort(xp, kind="stable"):
        h_pos = heaviside(xp - xp[i], delta)
        h_pos[i] = 0.0  # the self term counts 1, added below
        h_neg = heaviside(xn - xp[i], delta)
        rank_pos = 1.0 + h_pos.sum()
        fp = h_neg.sum()
        rank = rank_pos + fp
        prec = rank_pos / rank
        if not interpolate:
            max_prec = prec
            bg_grad += h_neg * ((1.0 / rank) / Z)
        elif max_prec <= prec:
            max_prec = prec
            bg_grad += h_neg * ((1.0 / rank) / Z)
        else:
            bg_grad += h_neg * (((1.0 - max_prec) / (1.0 - prec) / rank) / Z)
        fg_grad[i] = -(1.0 - max_prec) / Z
        interpolated[i] = max_prec
    grad[pos] = fg_grad
    grad[neg] = bg_grad
    return float(1.0 - interpolated.mean()), grad
