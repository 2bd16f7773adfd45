"""Positive-positive terms and BRS prototypes as chunked dense array operations (O(P^2)).

These mirror the Cython kernels of :mod:`rankref._kernels` with array primitives only; every
temporary is a chunk of at most ``CHUNK`` elements (no P x N array, no unbounded P x P one).
"""
import numpy as np

from ._backend import chunks


def heaviside(xp, u, delta):
    """H_delta(u) = clip(1/2 + (u / delta) / 2, 0, 1), or [u >= 0] at delta = 0 (float64)."""
    if delta > 0:
        with np.errstate(over="ignore"):  # u / delta = +-inf is right (H = 1 or 0)
            return xp.clip((u / delta) / 2.0 + 0.5, 0.0, 1.0)
    return xp.astype(u >= 0, np.float64)


def rs_positive_terms(xp, xpos, tp, delta):
    P = xpos.shape[0]
    out = xp.zeros((P, 5))
    for i0, i1 in chunks(P, P):
        h = heaviside(xp, xpos[None, :] - xpos[i0:i1, None], delta)
        q = h * (1.0 - tp)[None, :]
        ge = tp[None, :] >= tp[i0:i1, None]
        out[i0:i1, 0] = xp.sum(h, axis=1)
        out[i0:i1, 1] = xp.sum(q, axis=1)
        out[i0:i1, 2] = xp.sum(q * ge, axis=1)
        out[i0:i1, 3] = xp.sum(h * ge, axis=1)
        out[i0:i1, 4] = xp.sum(h * ~ge, axis=1)
    return out


def rs_sorting_scatter(xp, xpos, tp, w, delta):
    P = xpos.shape[0]
    out = xp.zeros(P)
    for k0, k1 in chunks(P, P):  # g_k = sum_{i: t_k < t_i} H(x_k - x_i) w_i
        h = heaviside(xp, xpos[k0:k1, None] - xpos[None, :], delta)
        out[k0:k1] = xp.sum((tp[k0:k1, None] < tp[None, :]) * h * w[None, :], axis=1)
    return out


def positive_rank_others(xp, xpos, delta):
    P = xpos.shape[0]
    out = xp.zeros(P)
    for i0, i1 in chunks(P, P):
        h = heaviside(xp, xpos[None, :] - xpos[i0:i1, None], delta)
        h[xp.arange(i1 - i0), xp.arange(i0, i1)] = 0.0
        out[i0:i1] = xp.sum(h, axis=1)
    return out


def group_sums(xp, xpos, grp, delta, same):
    """sum_k [class(k) == class(i)] H(x_k - x_i) (``same``) or over the other classes."""
    P = xpos.shape[0]
    out = xp.zeros(P)
    for i0, i1 in chunks(P, P):
        h = heaviside(xp, xpos[None, :] - xpos[i0:i1, None], delta)
        eq = grp[None, :] == grp[i0:i1, None]
        out[i0:i1] = xp.sum(h * (eq if same else ~eq), axis=1)
    return out


def other_class_scatter(xp, xpos, grp, c, delta):
    P = xpos.shape[0]
    out = xp.zeros(P)
    for k0, k1 in chunks(P, P):
        h = heaviside(xp, xpos[k0:k1, None] - xpos[None, :], delta)
        out[k0:k1] = xp.sum((grp[k0:k1, None] != grp[None, :]) * h * c[None, :], axis=1)
    return out


def prototype_fp(xp, means, n_b, xpos, delta):
    P, B = xpos.shape[0], means.shape[0]
    out = xp.zeros(P)
    for i0, i1 in chunks(P, B):
        out[i0:i1] = xp.sum(n_b[None, :] * heaviside(xp, means[None, :] - xpos[i0:i1, None],
                                                     delta), axis=1)
    return out


def prototype_grad(xp, means, xpos, c, delta):
    P, B = xpos.shape[0], means.shape[0]
    out = xp.zeros(B)
    for b0, b1 in chunks(B, P):
        out[b0:b1] = xp.sum(c[None, :] * heaviside(xp, means[b0:b1, None] - xpos[None, :],
                                                   delta), axis=1)
    return out
