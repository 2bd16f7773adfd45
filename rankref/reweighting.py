"""Objective re-weighting of Libra R-CNN (Pang et al., IJCV journal version, section 3.3):
balanced L1 loss, logarithmic gradient re-weighting (LGR) and bucketed class re-weighting."""
import math
import numbers

import numpy as np

from ._validation import as_labels

__all__ = [
    "balanced_l1_loss",
    "lgr_weights",
    "lgr_cross_entropy",
    "bucketed_class_weights",
    "class_reweighted_targets",
]


def _positive(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return float(value)


def _real_array(a, name, xp=np):
    arr = xp.asarray(a)
    kind = arr.dtype.kind if isinstance(arr.dtype, np.dtype) else xp.dtype_kind(arr.dtype)
    if kind not in "fiu":
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}.")
    arr = xp.asarray(arr, dtype=xp.float64)  # (read only: no copy is needed)
    bad = xp.flatnonzero(~xp.isfinite(arr.reshape(-1)))
    if bad.shape[0]:
        b = int(bad[0])
        raise ValueError(f"{name} must be finite, but flat entry {b} is "
                         f"{float(arr.reshape(-1)[b])!r}.")
    return arr


def balanced_l1_loss(pred, target, alpha=0.5, gamma=1.5, beta=1.0):
    r"""Balanced L1 loss (Libra R-CNN, Eqs. 8-10), elementwise, in mmdetection's form.

    With ``x = |pred - target|`` and ``b = e^{gamma/alpha} - 1`` (so ``alpha ln(b+1) = gamma``,
    Eq. 10):

    .. math::

        L_b(x) = \begin{cases}
            \frac{\alpha}{b}(b x + 1)\ln\!\left(\frac{b x}{\beta} + 1\right) - \alpha x
                & x < \beta \\
            \gamma x + \frac{\gamma}{b} - \alpha\beta & \text{otherwise.}
        \end{cases}

    ``grad`` is ``dL/dpred``: ``sign(pred - target)`` times
    ``alpha ln(b x/beta + 1) + alpha (1 - beta)/(b x + beta)`` below beta and ``gamma`` above;
    at ``beta = 1`` the first is Eq. 8, ``alpha ln(b x + 1)``.  At ``x = 0`` the gradient is 0.

    Notes
    -----
    The loss is continuous at ``x = beta`` for every beta, but for ``beta != 1`` its derivative
    is not: it jumps from ``gamma + alpha (1 - beta)/(beta (b + 1))`` to ``gamma``.  This is a
    known issue of the mmdetection form (the paper only defines ``beta = 1``).

    Returns
    -------
    (loss, grad) : ndarrays of float64 with the broadcast shape of ``pred`` and ``target``.
    """
    return _balanced_l1(np, pred, target, alpha, gamma, beta)


def _balanced_l1(xp, pred, target, alpha, gamma, beta):
    a = _positive(alpha, "alpha")
    g = _positive(gamma, "gamma")
    beta = _positive(beta, "beta")
    p = _real_array(pred, "pred", xp)
    t = _real_array(target, "target", xp)
    if p.shape != t.shape:
        raise ValueError(f"pred has shape {tuple(p.shape)} but target has shape "
                         f"{tuple(t.shape)}.")
    diff = p - t
    x = xp.abs(diff)
    b = math.exp(g / a) - 1.0
    inner = x < beta
    loss = xp.where(inner, a / b * (b * x + 1.0) * xp.log(b * x / beta + 1.0) - a * x,
                    g * x + g / b - a * beta)
    slope = xp.where(inner, a * xp.log(b * x / beta + 1.0) + a * (1.0 - beta) / (b * x + beta), g)
    return loss, xp.sign(diff) * slope


def lgr_weights(base, alpha=0.5, gamma=1.5):
    r"""Logarithmic gradient re-weighting factor rho (Libra R-CNN, Eqs. 13 and 18), detached.

    .. math::

        \rho(u) = \begin{cases} \alpha \ln(b u + 1) / u & 0 < u < 1 \\ \alpha b & u = 0 \\
                  \gamma & u \ge 1 \end{cases}, \qquad b = e^{\gamma/\alpha} - 1,

    the ratio of the balanced-L1 gradient to the smooth-L1 gradient at ``u = |x|``, so
    ``rho * smooth_l1_grad`` is the balanced-L1 gradient (LGR, Eq. 14).  ``u = 0`` uses the exact
    limit ``alpha b``.

    Parameters
    ----------
    base : array_like of finite numbers >= 0
        ``|x|`` for regression, ``|p_c - t_c|`` for cross-entropy.
    """
    return _lgr_weights(np, base, alpha, gamma)


def _lgr_weights(xp, base, alpha, gamma):
    a = _positive(alpha, "alpha")
    g = _positive(gamma, "gamma")
    u = _real_array(base, "base", xp)
    if bool((u < 0).any()):
        raise ValueError("base must be >= 0 (a gradient magnitude such as |x| or 1 - p).")
    b = math.exp(g / a) - 1.0
    rho = xp.where(u >= 1.0, g, a * xp.log1p(b * u) / xp.where(u == 0.0, 1.0, u))
    return xp.where(u == 0.0, a * b, rho)


def lgr_cross_entropy(logits, labels, alpha=0.5, gamma=1.0):
    r"""Softmax cross-entropy with logarithmic gradient re-weighting (Libra R-CNN, Eqs. 15-19).

    For each row with label c: ``p = softmax(z)``, ``rho = lgr_weights(1 - p_c, alpha, gamma)``
    (detached), ``loss = -rho log p_c`` and ``grad = rho (p - onehot(c))`` (Eq. 17 scaled).

    Parameters
    ----------
    logits : array ``[n, K]``
    labels : int array ``[n]``, values in ``[0, K)``, -1 ignored (zero loss and gradient)
    alpha, gamma : float > 0
        The defaults 0.5 and 1.0 are those of the public LGR code.

    Returns
    -------
    (loss ``[n]``, grad ``[n, K]``), float64.

    Notes
    -----
    The public LGR code computes ``rho = alpha ln(b u + 1)/(u + 1e-6)`` with ``u = 1 - p_true``;
    rankref uses the exact expression and its limit ``alpha b`` at ``u = 0``, which differ from
    it by a relative ``1e-6 / u``.
    """
    return _lgr_cross_entropy(np, logits, labels, alpha, gamma)


def _lgr_cross_entropy(xp, logits, labels, alpha, gamma):
    z = _real_array(logits, "logits", xp)
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"logits must be 2-D [n, K], got shape {tuple(z.shape)}.")
    n, K = z.shape
    y = as_labels(labels, n, K - 1, xp=xp)
    if bool((y == K).any()):
        raise ValueError(f"labels must be in [0, {K}) or -1, got {K}.")
    shifted = z - xp.max(z, axis=1, keepdims=True)
    logp = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    p = xp.exp(logp)
    rows = xp.flatnonzero(y >= 0)
    lp = logp[rows, y[rows]]
    rho = _lgr_weights(xp, xp.clip(1.0 - xp.exp(lp), 0.0, 1.0), alpha, gamma)
    loss = xp.zeros(n)
    loss[rows] = -rho * lp
    grad = xp.zeros((n, K))
    grad[rows] = p[rows]
    grad[rows, y[rows]] -= 1.0
    grad[rows] *= rho[:, None]
    return loss, grad


def bucketed_class_weights(frequencies, num_buckets=10, a=0.5, t=0.025):
    r"""Bucketed class re-weighting (Libra R-CNN, Eqs. 21-23).

    ``f' = ln f`` (Eq. 21); the range ``[min f', max f']`` is cut into ``S = num_buckets`` equal
    ranges, class i falls in bucket ``s_i = min(floor(S (f'_i - min) / (max - min)), S - 1)``;
    ``x_i = s_i / (S - 1)`` (Eq. 22) and

    .. math:: w_i = \frac{1}{1 + e^{-(x_i - a)/t}}. \quad (23)

    Rare classes get weights near 0 and frequent ones near 1, turning at ``a``.

    When all frequencies are equal no class is rarer than another: every class is put in the
    top bucket (``x = 1``) and gets ``1 / (1 + e^{-(1 - a)/t})`` (``1 - 2.1e-9`` at the defaults).

    Parameters
    ----------
    frequencies : array ``[C]`` of numbers > 0
    num_buckets : int >= 2, default 10
    a : float, default 0.5
    t : float > 0, default 0.025
    """
    f = _real_array(frequencies, "frequencies")
    if f.ndim != 1 or f.size == 0:
        raise ValueError(f"frequencies must be a non-empty 1-D array, got shape {f.shape}.")
    if (f <= 0).any():
        raise ValueError("frequencies must all be > 0 (the method takes their logarithm); "
                         "drop classes never seen or give them a small positive count.")
    if isinstance(num_buckets, (bool, np.bool_)) or not isinstance(num_buckets, numbers.Integral) \
            or num_buckets < 2:
        raise ValueError(f"num_buckets must be an integer >= 2, got {num_buckets!r}.")
    if not isinstance(a, numbers.Real) or not math.isfinite(float(a)):
        raise ValueError(f"a must be a finite number, got {a!r}.")
    temp = _positive(t, "t")
    S = int(num_buckets)
    lf = np.log(f)
    span = lf.max() - lf.min()
    if span > 0:
        s = np.minimum(np.floor(S * (lf - lf.min()) / span), S - 1)
    else:
        s = np.full(f.shape, S - 1.0)
    x = s / (S - 1)
    return 1.0 / (1.0 + np.exp(-(x - float(a)) / temp))


def class_reweighted_targets(labels, class_weights):
    r"""Per-entry weights of the bucketed class re-weighting loss (Libra R-CNN, Eq. 20).

    For a sample of class t the loss is ``-sum_i w_i log p_i`` with weight 1 on the background
    and on class t, and ``w_i`` (from :func:`bucketed_class_weights`) on every other class.

    Parameters
    ----------
    labels : int array ``[n]``
        ``[0, C)`` foreground, ``C`` background, -1 ignored (a row of zeros).
    class_weights : array ``[C]``

    Returns
    -------
    ndarray ``[n, C + 1]``; column ``C`` is the background (mmdetection's layout).
    """
    w = _real_array(class_weights, "class_weights")
    if w.ndim != 1:
        raise ValueError(f"class_weights must be 1-D [C], got shape {w.shape}.")
    C = w.size
    arr = np.asarray(labels)
    y = as_labels(arr, arr.shape[0] if arr.ndim >= 1 else 0, C)
    out = np.empty((y.size, C + 1))
    out[:, :C] = w
    out[:, C] = 1.0
    fg = np.flatnonzero((y >= 0) & (y < C))
    out[fg, y[fg]] = 1.0
    out[y < 0] = 0.0
    return out
