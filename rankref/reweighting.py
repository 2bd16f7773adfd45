"""Objective re-weighting of Libra R-CNN (Pang et al., IJCV journal version, section 3.3):
balanced L1 loss, logarithmic gradient re-weighting (LGR) and bucketed class re-weighting."""
import math
from fractions import Fraction

import numpy as np

from ._validation import as_labels, check_float64_exact, check_int, check_real, to_array

__all__ = [
    "balanced_l1_loss",
    "lgr_weights",
    "lgr_cross_entropy",
    "bucketed_class_weights",
    "class_reweighted_targets",
]


def _positive(value, name):
    return check_real(value, name, "a finite number > 0", low=0.0, low_open=True)


def _real_array(a, name, xp=np, exact=True):
    """A finite real array as float64.  ``exact``: values float64 cannot hold exactly are
    refused (data); otherwise they are rounded like scalars (smooth statistics such as class
    frequencies and weights), and a value beyond float64's range is refused as not finite."""
    arr = to_array(a, name, xp)
    kind = arr.dtype.kind if isinstance(arr.dtype, np.dtype) else xp.dtype_kind(arr.dtype)
    if kind not in "fiu":
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}.")
    if exact:
        check_float64_exact(arr, name, xp)
    with np.errstate(over="ignore", under="ignore"):
        arr = xp.asarray(arr, dtype=xp.float64)  # (read only: no copy is needed)
    bad = xp.flatnonzero(~xp.isfinite(arr.reshape(-1)))
    if bad.shape[0]:
        b = int(bad[0])
        raise ValueError(f"{name} must be finite, but flat entry {b} is "
                         f"{float(arr.reshape(-1)[b])!r}.")
    return arr


# ------------------------------------------------------------------------------ b = e^(g/a) - 1
#
# Balanced L1 and LGR use b = exp(gamma / alpha) - 1, which overflows for gamma / alpha > 709.78
# and is 0 in float64 for gamma / alpha below 1e-308, while the losses stay finite.  Everything
# is therefore written with quantities that stay in range for every alpha, gamma > 0:
#
#   A(y)  = alpha ln(1 + b y)   (y in [0, 1]; A <= gamma)   the slope, and LGR's rho(u) = A(u)/u
#   ab    = alpha b = gamma (e^r - 1)/r,  r = gamma / alpha (inf when alpha b overflows)
#   psi(z) = ln(1 + z)/z,  chi(z) = ((1 + z) ln(1 + z) - z)/z^2   (1 and 1/2 at z = 0)
#
# and, for b = inf (r > 709.78), A(y) = alpha (ln b + ln y + ln(1 + e^-t)), t = ln b + ln y.

_TINY = 2.2250738585072014e-308
_CHI_SERIES = [(-1) ** j / ((j + 1) * (j + 2)) for j in range(12)]  # chi(z) for z < 0.05
# r / (e^r - 1) - 1 = -r/2 + sum B_2k r^2k / (2k)!, divided by r, for r < 0.5
_KAPPA_SERIES = (-0.5, 1 / 12, -1 / 720, 1 / 30240, -1 / 1209600, 1 / 47900160,
                 -691 / 1307674368000, 1 / 74724249600)


class _Slope:
    """The scalars of ``b = e^(gamma/alpha) - 1`` for any finite alpha, gamma > 0."""

    def __init__(self, a, g):
        self.a, self.g = a, g
        r = g / a  # inf when it overflows, 0 or subnormal when it underflows
        self.r = r
        if r < _TINY:  # b = r to float64 precision; alpha b = gamma
            self.b = r
            self.ab = g
            self.gb = a  # gamma / b = alpha r / (e^r - 1)
            self.akappa = -0.5 * g  # alpha (r / (e^r - 1) - 1)
            return
        try:
            b = math.expm1(r)
        except OverflowError:
            b = math.inf
        self.b = b
        if b < math.inf:
            self.ab = g * (b / r)  # may be inf: alpha b beyond the float range
            self.gb = g / b
        else:
            self.ab = math.inf
            self.gb = g * math.exp(-r) if r < math.inf else 0.0
            e = math.exp(-r) if r < math.inf else 0.0
            self.lnb = r + math.log1p(-e)  # ln b (inf when r is)
            self.alnb = g + a * math.log1p(-e)  # alpha ln b
        if r < 0.5:
            self.akappa = g * self._kappa_over_r(r)
        else:
            self.akappa = self.gb - a

    @staticmethod
    def _kappa_over_r(r):
        """(r / (e^r - 1) - 1) / r for 0 < r < 0.5 (Bernoulli series)."""
        r2 = r * r
        acc = 0.0
        for c in reversed(_KAPPA_SERIES[1:]):
            acc = acc * r2 + c
        return -0.5 + r * acc

    def A_log(self, xp, u, lu):
        """``alpha ln(1 + b u)`` from ``u`` and ``lu = ln u`` (-inf for u = 0): ``u`` is used
        where it is a normal number, ``lu`` where ``u`` underflows."""
        a, b = self.a, self.b
        with np.errstate(all="ignore"):
            pos = lu > -math.inf
            if b == math.inf:
                t = self.lnb + lu
                tp = t > 0
                em = xp.exp(-xp.abs(t))
                out = xp.where(tp, (self.alnb + a * xp.where(pos, lu, 0.0)) + a * xp.log1p(em),
                               a * xp.log1p(em))
                return xp.where(pos, out, 0.0)
            normal = u >= _TINY
            if self.ab < math.inf:
                direct = self.ab * u * _psi(xp, b * u)
                tiny = xp.exp(math.log(self.ab) + lu) if self.ab > 0 else 0.0 * u
                return xp.where(normal, direct, xp.where(pos, tiny, 0.0))
            z = xp.where(normal, b * u, xp.exp(math.log(b) + lu))
            small = xp.exp(math.log(a) + math.log(b) + lu)  # alpha b u where z underflows
            return xp.where(pos, xp.where(z >= _TINY, a * xp.log1p(z), small), 0.0)

    def A(self, xp, y):
        """``alpha ln(1 + b y)`` for y >= 0 (an array), and ``z = b y`` (inf where b is)."""
        a, b = self.a, self.b
        with np.errstate(all="ignore"):
            if b == math.inf:
                pos = y > 0
                ly = xp.log(xp.where(pos, y, 1.0))
                t = self.lnb + ly
                big = a * xp.log1p(xp.exp(-t))
                out = xp.where(t > 0, (self.alnb + a * ly) + big,
                               a * xp.log1p(xp.exp(xp.where(t > 0, 0.0, t))))
                return xp.where(pos, out, 0.0), xp.where(pos, math.inf, 0.0)
            z = b * y
            if self.ab < math.inf:
                return self.ab * y * _psi(xp, z), z
            return a * xp.log1p(z), z


def _psi(xp, z):
    """ln(1 + z) / z, 1 at z = 0."""
    pos = z > 0
    return xp.where(pos, xp.log1p(z) / xp.where(pos, z, 1.0), 1.0)


def _chi(xp, z):
    """((1 + z) ln(1 + z) - z) / z^2 for 0 <= z <= 1 (1/2 at 0): the series below 0.05."""
    small = z < 0.05
    zs = xp.where(small, z, 0.0)
    acc = 0.0
    for c in reversed(_CHI_SERIES):
        acc = acc * zs + c
    zl = xp.where(small, 1.0, z)
    return xp.where(small, acc, _phi_direct(xp, zl) / zl)


def _phi_direct(xp, z):
    """(1 + 1/z) ln(1 + z) - 1 for z >= 0.05 (no overflow for any finite z)."""
    return (1.0 + 1.0 / z) * xp.log1p(z) - 1.0


def _phi(xp, z):
    """((1 + z) ln(1 + z) - z) / z for z >= 0 (z chi(z) below 0.05)."""
    small = z < 0.05
    return xp.where(small, xp.where(small, z, 0.0) * _chi(xp, xp.where(small, z, 0.0)),
                    _phi_direct(xp, xp.where(small, 1.0, z)))


def balanced_l1_loss(pred, target, alpha=0.5, gamma=1.5, beta=1.0):
    r"""Balanced L1 loss of Libra R-CNN, elementwise, in mmdetection's form, with its gradient.

    Libra R-CNN (Pang et al.), Eqs. 8-10.  With ``x = |pred - target|`` and
    ``b = e^{gamma/alpha} - 1`` (so ``alpha ln(b+1) = gamma``, Eq. 10):

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

    Parameters
    ----------
    pred, target : array_like of finite numbers, same shape
    alpha : float > 0, default 0.5
    gamma : float > 0, default 1.5
    beta : float > 0, default 1.0
        Where the logarithmic part ends and the linear part begins.

    Returns
    -------
    (loss, grad) : ndarrays of float64 with the shape of ``pred`` and ``target``.

    Examples
    --------
    >>> import numpy as np
    >>> import rankref
    >>> loss, grad = rankref.balanced_l1_loss(np.array([0.0, 0.5, 1.0, 3.0]), np.zeros(4))
    >>> print(np.round(loss, 4))
    [0.     0.4006 1.0786 4.0786]
    >>> print(np.round(grad, 4))  # gamma = 1.5 from beta = 1 on
    [0.     1.1777 1.5    1.5   ]
    """
    return _balanced_l1(np, pred, target, alpha, gamma, beta)


def _mulq(xp, arrays, num=(), den=()):
    """``prod(arrays) * prod(num) / prod(den)`` (arrays and Python floats) without intermediate
    overflow or underflow: mantissas and exponents are multiplied separately (frexp/ldexp)."""
    m, e = 1.0, 0
    for v in num:
        mv, ev = math.frexp(v)
        m, e = m * mv, e + ev
    for v in den:
        mv, ev = math.frexp(v)
        m, e = m / mv, e - ev
    for a in arrays:
        ma, ea = xp.frexp(a)
        m, e = m * ma, e + ea
    for _ in range(5):  # steps of at most 2**1000 keep every intermediate power of 2 normal
        step = xp.clip(e, -1000, 1000)
        m, e = xp.ldexp(m, step), e - step
    return m


def _exact_float(q):
    """A Fraction as the nearest float (+-inf beyond the range)."""
    try:
        return float(q)
    except OverflowError:
        return math.inf if q > 0 else -math.inf


def _balanced_l1(xp, pred, target, alpha, gamma, beta):
    a = _positive(alpha, "alpha")
    g = _positive(gamma, "gamma")
    beta = _positive(beta, "beta")
    p = _real_array(pred, "pred", xp)
    t = _real_array(target, "target", xp)
    if p.shape != t.shape:
        raise ValueError(f"pred has shape {tuple(p.shape)} but target has shape "
                         f"{tuple(t.shape)}.")
    S = _Slope(a, g)
    # a (1 - beta) / beta, the slope's second term at x = 0, rounded once
    c0 = _exact_float(Fraction(a) * (1 - Fraction(beta)) / Fraction(beta))
    with np.errstate(all="ignore"):
        diff = p - t
        x = xp.abs(diff)
        inner = x < beta
        xi = xp.where(inner, x, 0.0)  # the inner branch sees only x < beta (y = x / beta < 1)
        if S.b == math.inf:  # z = b y = e^t; L = x (A - alpha) + A / b
            pos = xi > 0
            lx = xp.log(xp.where(pos, xi, 1.0)) - math.log(beta)  # ln y, also where y underflows
            tt = S.lnb + lx
            tp = tt > 0
            em = xp.exp(-xp.abs(tt))  # e^-|t| <= 1
            A = xp.where(tp, (S.alnb + a * lx) + a * xp.log1p(em), a * xp.log1p(em))
            A = xp.where(pos, A, 0.0)
            tail = xp.where(pos, xp.where(tp, em / (1.0 + em), 1.0 / (1.0 + em)), 1.0)
            loss_in = xi * (A - a) + A * math.exp(-S.lnb)
        else:  # L = alpha x phi(z) + alpha (1 - beta) y psi(z), z = b y
            z = _mulq(xp, [xi], (S.b,), (beta,))
            psi = _psi(xp, z)
            if S.ab < math.inf:
                A = _mulq(xp, [xi], (S.ab,), (beta,)) * psi
                t1 = xp.where(z <= 1.0, _mulq(xp, [xi, xi], (S.ab,), (beta,)) * _chi(xp, z),
                              _mulq(xp, [xi], (a,)) * _phi(xp, z))
            else:
                A = a * xp.log1p(z)
                t1 = _mulq(xp, [xi], (a,)) * _phi(xp, z)
            t2 = _mulq(xp, [xi], (a, 1.0 - beta), (beta,)) * psi if beta != 1.0 else 0.0
            loss_in = t1 + t2
            tail = 1.0 / (1.0 + z)
        slope_in = A + c0 * tail
        # x >= beta: L = gamma x - alpha beta + gamma / b, in the order that cancels exactly
        half = xp.abs(p * 0.5 - t * 0.5)  # x / 2, finite even where p - t overflows
        gx = xp.where(xp.isfinite(x), g * x, 2.0 * (g * half))
        if S.r < 0.5 and 0.5 < beta < 2.0:  # gamma / b = alpha + alpha kappa, kappa ~ -r/2
            loss_out = (gx + a * (1.0 - beta)) + S.akappa
        else:
            loss_out = (gx - a * beta) + S.gb
            # scaled by 2**-1100 where gamma x or alpha beta overflows although their
            # difference may not (the products are below 2**2049)
            ab_s = _exact_float(Fraction(a) * Fraction(beta) / 2**1100)
            d_s = _mulq(xp, [half], (g, 2.0**-550, 2.0**-549)) - ab_s
            # gamma / b joins in the scaled domain too: alpha beta may overflow where
            # gamma / b - alpha beta does not (alpha near the float maximum, beta > 1)
            far = _mulq(xp, [d_s + math.ldexp(S.gb, -1100)], (2.0**550, 2.0**550))
            loss_out = xp.where(xp.isfinite(loss_out), loss_out, far)
        loss = xp.where(inner, loss_in, loss_out)
        grad = xp.where(diff == 0, 0.0, xp.sign(diff) * xp.where(inner, slope_in, g))
    loss, grad = xp.asarray(loss), xp.asarray(grad)  # 0-d input: 0-d arrays, not scalars
    _refuse_nonfinite(xp, (loss, grad), "balanced_l1_loss", "pred and target",
                      f"alpha={alpha!r}, gamma={gamma!r}, beta={beta!r}")
    return loss, grad


def _refuse_nonfinite(xp, arrays, func, names, params):
    """The exact result of finite inputs is beyond float64's range where a computed one is
    not finite (every formula above stays in range otherwise): refuse, naming the inputs."""
    for arr in arrays:
        bad = ~xp.isfinite(arr.reshape(-1))
        if bool(xp.any(bad)):
            b = int(xp.flatnonzero(bad)[0])
            raise ValueError(
                f"{func}: the result at flat entry {b} of {names} is beyond float64's range "
                f"for {params}; scale the inputs down (or the parameters)."
            )


def lgr_weights(base, alpha=0.5, gamma=1.5):
    r"""Logarithmic gradient re-weighting (LGR) factor rho of Libra R-CNN, used detached.

    Libra R-CNN (Pang et al.), Eqs. 13 and 18:

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
    alpha : float > 0, default 0.5
    gamma : float > 0, default 1.5

    Returns
    -------
    ndarray of float64 with the shape of ``base``.

    Examples
    --------
    >>> import numpy as np
    >>> import rankref
    >>> print(np.round(rankref.lgr_weights([0.0, 0.1, 0.5, 1.0, 2.0]), 4))
    [9.5428 5.3383 2.3554 1.5    1.5   ]
    """
    return _lgr_weights(np, base, alpha, gamma)


def _lgr_weights(xp, base, alpha, gamma):
    a = _positive(alpha, "alpha")
    g = _positive(gamma, "gamma")
    u = _real_array(base, "base", xp)
    if bool((u < 0).any()):
        raise ValueError("base must be >= 0 (a gradient magnitude such as |x| or 1 - p).")
    rho = xp.asarray(_rho(xp, _Slope(a, g), u))
    _refuse_nonfinite(xp, (rho,), "lgr_weights", "base", f"alpha={alpha!r}, gamma={gamma!r}")
    return rho


def _rho(xp, S, u):
    """rho(u) = A(u) / u on (0, 1), alpha b at 0, gamma at u >= 1 (inf where beyond range)."""
    with np.errstate(all="ignore"):
        inner = u < 1.0
        ui = xp.where(inner, u, 0.0)
        if S.b < math.inf and S.ab < math.inf:
            rho = S.ab * _psi(xp, S.b * ui)  # A(u) / u = alpha b psi(b u), exact at u = 0
        else:
            A, _ = S.A(xp, ui)
            rho = xp.where(ui > 0, A / xp.where(ui > 0, ui, 1.0), S.ab)
        return xp.where(inner, rho, S.g)


def lgr_cross_entropy(logits, labels, alpha=0.5, gamma=1.0):
    r"""Softmax cross-entropy with logarithmic gradient re-weighting (LGR), with its gradient.

    Libra R-CNN (Pang et al.), Eqs. 15-19.
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

    Examples
    --------
    >>> import numpy as np
    >>> import rankref
    >>> logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    >>> loss, grad = rankref.lgr_cross_entropy(logits, np.array([0, -1]))  # row 1 ignored
    >>> print(np.round(loss, 4))
    [0.3763 0.    ]
    >>> print(np.round(grad, 4))
    [[-0.3461  0.253   0.0931]
     [ 0.      0.      0.    ]]
    """
    return _lgr_cross_entropy(np, logits, labels, alpha, gamma)


def _lgr_cross_entropy(xp, logits, labels, alpha, gamma):
    a = _positive(alpha, "alpha")
    g = _positive(gamma, "gamma")
    z = _real_array(logits, "logits", xp)
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"logits must be 2-D [n, K], got shape {tuple(z.shape)}.")
    n, K = z.shape
    y = as_labels(labels, n, K - 1, xp=xp, background=False, rows=("logits", (n, K)))
    S = _Slope(a, g)
    loss = xp.zeros(n)
    grad = xp.zeros((n, K))
    rows = xp.flatnonzero(y >= 0)
    if rows.shape[0] == 0:
        return loss, grad
    with np.errstate(all="ignore"):
        zr, c = z[rows], y[rows]
        m = xp.max(zr, axis=1, keepdims=True)
        shifted = zr - m  # -inf where the difference overflows: exp gives 0
        own = xp.arange(K).reshape(1, K) == c.reshape(-1, 1)
        e = xp.exp(shifted)
        s_all = xp.sum(e, axis=1)
        s_other = xp.sum(xp.where(own, 0.0, e), axis=1)
        # log of the others' mass, also where their probabilities underflow
        so = xp.where(own, -math.inf, shifted)
        mo = xp.max(so, axis=1, keepdims=True)
        mo_f = xp.where(xp.isfinite(mo), mo, 0.0)
        lse_o = (mo_f + xp.log(xp.sum(xp.exp(so - mo_f), axis=1, keepdims=True))).reshape(-1)
        lse_o = xp.where(xp.isfinite(mo.reshape(-1)), lse_o, -math.inf)
        lse_all = xp.log(s_all)
        u = s_other / s_all  # 1 - p_c without cancellation
        lu = lse_o - lse_all  # ln u (-inf for u = 0)
        A = S.A_log(xp, u, lu)  # rho(u) u = alpha ln(1 + b u) <= gamma
        spread = ~xp.isfinite(xp.where(own, 0.0, shifted))
        if S.b == math.inf and bool(xp.any(spread)):
            # u = e^(-huge) and b = e^(huge): alpha ln(1 + b u) needs ln u beyond the float range
            r = int(rows[int(xp.flatnonzero(spread.reshape(-1))[0]) // K])
            raise ValueError(
                f"logits: row {r} spans more than float64's range (max - min overflows) while "
                f"gamma / alpha = {S.r!r} > 709.78; rankref cannot evaluate the LGR weight of "
                f"that row. Reduce the spread of the logits or gamma / alpha."
            )
        zc = zr[xp.arange(rows.shape[0]), c]
        mc = m.reshape(-1)
        sc = zc - mc
        pos = lu > -math.inf
        us = xp.where(pos, u, 1.0)
        # loss = rho (-log p_c) = A(u) (-log p_c) / u: with c at the maximum,
        # -log p_c / u = psi(s_o) (1 + s_o), s_o = the others' mass (exact as u -> 0)
        s_o = xp.exp(lse_o)
        ratio = xp.where(sc == 0, _psi(xp, s_o) * (1.0 + s_o), (lse_all - sc) / us)
        # where z_c - max overflows (p_c = 0, u = 1, A = gamma): gamma (max - z_c) split
        far = ~xp.isfinite(sc)
        l_far = (g * mc - g * zc) + g * lse_all
        loss_r = xp.where(far, l_far, xp.where(pos, A * ratio, 0.0))
        # grad = rho (p - onehot): -A(u) on the label, A(u) p_k / u = A e^(s_k - ln s_o) else
        share = xp.exp(shifted - lse_o.reshape(-1, 1))
        gr = xp.where(own, -A.reshape(-1, 1),
                      xp.where(pos.reshape(-1, 1), A.reshape(-1, 1) * share, 0.0))
        loss[rows] = loss_r
        grad[rows] = gr
    _refuse_nonfinite(xp, (loss, grad), "lgr_cross_entropy", "logits",
                      f"alpha={alpha!r}, gamma={gamma!r}")
    return loss, grad


def bucketed_class_weights(frequencies, num_buckets=10, a=0.5, t=0.025):
    r"""Bucketed class re-weighting of Libra R-CNN: one weight per class from its frequency.

    Libra R-CNN (Pang et al.), Eqs. 21-23.
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
    num_buckets : int in [2, 2**53], default 10
    a : float, default 0.5
    t : float > 0, default 0.025

    Returns
    -------
    ndarray of float64, shape ``[C]``, in (0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> import rankref
    >>> w = rankref.bucketed_class_weights([2, 30, 400, 60000])  # rare to frequent
    >>> print(np.round(w, 4))
    [0.     0.     0.9022 1.    ]
    """
    f = _real_array(frequencies, "frequencies", exact=False)
    if f.ndim != 1 or f.size == 0:
        raise ValueError(f"frequencies must be a non-empty 1-D array, got shape {f.shape}.")
    if (f <= 0).any():
        raise ValueError("frequencies must all be > 0 (the method takes their logarithm); "
                         "drop classes never seen or give them a small positive count.")
    S = check_int(num_buckets, "num_buckets", 2, 2**53)
    a = check_real(a, "a", "a finite number")
    temp = _positive(t, "t")
    lf = np.log(f)
    span = lf.max() - lf.min()
    if span > 0:
        s = np.minimum(np.floor(S * (lf - lf.min()) / span), S - 1)
    else:
        s = np.full(f.shape, S - 1.0)
    x = s / (S - 1)
    with np.errstate(over="ignore"):  # exp(+big) = inf gives the weight 0, which is right
        return 1.0 / (1.0 + np.exp(-(x - a) / temp))


def class_reweighted_targets(labels, class_weights):
    r"""Per-entry weights of the bucketed class re-weighting loss of Libra R-CNN.

    Libra R-CNN (Pang et al.), Eq. 20.
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

    Examples
    --------
    >>> import numpy as np
    >>> import rankref
    >>> # rows: a sample of class 0, a background sample (label C = 2), an ignored one
    >>> print(rankref.class_reweighted_targets([0, 2, -1], np.array([0.1, 0.5])))
    [[1.  0.5 1. ]
     [0.1 0.5 1. ]
     [0.  0.  0. ]]
    """
    w = _real_array(class_weights, "class_weights", exact=False)
    if w.ndim != 1:
        raise ValueError(f"class_weights must be 1-D [C], got shape {w.shape}.")
    C = w.size
    arr = to_array(labels, "labels")
    y = as_labels(arr, arr.shape[0] if arr.ndim >= 1 else 0, C,
                  classes_of="the length of class_weights")  # any 1-D length
    out = np.empty((y.size, C + 1))
    out[:, :C] = w
    out[:, C] = 1.0
    fg = np.flatnonzero((y >= 0) & (y < C))
    out[fg, y[fg]] = 1.0
    out[y < 0] = 0.0
    return out
