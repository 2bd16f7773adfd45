"""Balanced L1, LGR and bucketed class re-weighting on any array module."""
import math

import numpy as np

import rankref
from rankref.reweighting import _positive

from ._backend import array_module, to_host
from ._mirror import mirror
from ._validation import as_logits  # noqa: F401

__all__ = ["balanced_l1_loss", "lgr_weights", "lgr_cross_entropy", "bucketed_class_weights",
           "class_reweighted_targets"]


def _real(xp, a, name):
    arr = xp.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    bad = xp.flatnonzero(~xp.isfinite(arr.reshape(-1)))
    if bad.size:
        b = int(bad[0])
        raise ValueError(f"{name} must be finite, but flat entry {b} is "
                         f"{float(arr.reshape(-1)[b])!r}.")
    return arr


@mirror(rankref.balanced_l1_loss)
def balanced_l1_loss(pred, target, alpha=0.5, gamma=1.5, beta=1.0):
    a, g, beta = _positive(alpha, "alpha"), _positive(gamma, "gamma"), _positive(beta, "beta")
    xp = array_module(pred, target)
    p, t = _real(xp, pred, "pred"), _real(xp, target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred has shape {p.shape} but target has shape {t.shape}.")
    diff = p - t
    x = xp.abs(diff)
    b = math.exp(g / a) - 1.0
    inner = x < beta
    loss = xp.where(inner, a / b * (b * x + 1.0) * xp.log(b * x / beta + 1.0) - a * x,
                    g * x + g / b - a * beta)
    slope = xp.where(inner, a * xp.log(b * x / beta + 1.0) + a * (1.0 - beta) / (b * x + beta), g)
    return loss, xp.sign(diff) * slope


@mirror(rankref.lgr_weights)
def lgr_weights(base, alpha=0.5, gamma=1.5):
    a, g = _positive(alpha, "alpha"), _positive(gamma, "gamma")
    xp = array_module(base)
    u = _real(xp, base, "base")
    if bool((u < 0).any()):
        raise ValueError("base must be >= 0 (a gradient magnitude such as |x| or 1 - p).")
    b = math.exp(g / a) - 1.0
    safe = xp.where(u == 0.0, 1.0, u)
    rho = xp.where(u >= 1.0, g, a * xp.log1p(b * u) / safe)
    return xp.where(u == 0.0, a * b, rho)


@mirror(rankref.lgr_cross_entropy)
def lgr_cross_entropy(logits, labels, alpha=0.5, gamma=1.0):
    xp = array_module(logits, labels)
    z = _real(xp, logits, "logits")
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"logits must be 2-D [n, K], got shape {z.shape}.")
    n, K = z.shape
    from .gap import _check_labels

    y = _check_labels(xp, labels, n, K - 1)
    if bool((y == K).any()):
        raise ValueError(f"labels must be in [0, {K}) or -1, got {K}.")
    shifted = z - z.max(axis=1, keepdims=True)
    logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    p = xp.exp(logp)
    rows = xp.flatnonzero(y >= 0)
    lp = logp[rows, y[rows]]
    rho = lgr_weights(xp.clip(1.0 - xp.exp(lp), 0.0, 1.0), alpha, gamma)
    loss = xp.zeros(n)
    loss[rows] = -rho * lp
    grad = xp.zeros((n, K))
    grad[rows] = p[rows]
    grad[rows, y[rows]] -= 1.0
    grad[rows] *= rho[:, None]
    return loss, grad


@mirror(rankref.bucketed_class_weights)
def bucketed_class_weights(frequencies, num_buckets=10, a=0.5, t=0.025):
    xp = array_module(frequencies)
    return xp.asarray(rankref.bucketed_class_weights(to_host(frequencies), num_buckets, a, t))


@mirror(rankref.class_reweighted_targets)
def class_reweighted_targets(labels, class_weights):
    xp = array_module(labels, class_weights)
    return xp.asarray(rankref.class_reweighted_targets(to_host(labels), to_host(class_weights)))
