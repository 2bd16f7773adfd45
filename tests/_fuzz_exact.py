"""Exact references for the fuzz suite.

The ranking quantities (relaxed step, RS, AP, GAP, relaxed ranks, buckets, average precision)
are evaluated in rational arithmetic (``fractions.Fraction``; every float and integer input is
an exact rational), literally as the papers' official loops compute them.  The transcendental
ones (balanced L1, LGR, class weights, optimal bias) are evaluated with mpmath at 40 digits.
Both are slow by design: the fuzz keeps their inputs tiny.
"""
import math
from fractions import Fraction

import numpy as np

try:
    import mpmath
    mpmath.mp.dps = 40
except ImportError:  # pragma: no cover - mpmath comes with torch/sympy; without it skip
    mpmath = None

EPS = Fraction(1e-10)  # the eps gating of the official RS / GAP code (the float 1e-10)
HALF = Fraction(1, 2)
FMAX = float(np.finfo(np.float64).max)


def fr(v):
    """The exact rational value of a finite number (Python or NumPy, any width)."""
    if isinstance(v, (bool, np.bool_)):
        return Fraction(int(v))
    if isinstance(v, (int, np.integer)):
        return Fraction(int(v))
    if isinstance(v, Fraction):
        return v
    if isinstance(v, float):
        return Fraction(v)
    if isinstance(v, np.floating):
        n, d = v.as_integer_ratio()
        return Fraction(n, d)
    raise TypeError(type(v))


def to_float(q):
    """Correctly rounded float of a Fraction (inf beyond the float range)."""
    try:
        return float(q)
    except OverflowError:
        return math.inf if q > 0 else -math.inf


def H(u, d):
    """The relaxed step, exactly: clip(u / (2d) + 1/2, 0, 1), and [u >= 0] at d = 0."""
    if d > 0:
        v = u / (2 * d) + HALF
        return Fraction(0) if v < 0 else Fraction(1) if v > 1 else v
    return Fraction(1) if u >= 0 else Fraction(0)


def near(q, ref, rel=1e-6):
    return abs(q - ref) <= ref * Fraction(rel)


def rank_sort(x, t, d):
    """RS loss as the official RankSort loop computes it (self term H(0), eps gating).

    Returns (ranking_loss, sorting_loss, ranking_grad, sorting_grad, gate_ambiguous,
    (ranking mass, sorting mass)): per entry, the sum of the absolute values of the terms its
    update adds up (equal to the update's own size where every term has one sign), the size
    against which a float evaluation's relative error is judged."""
    n = len(x)
    P = [i for i in range(n) if t[i] > 0]
    N = [j for j in range(n) if t[j] == 0]
    rg = [Fraction(0)] * n
    sg = [Fraction(0)] * n
    rm = [Fraction(0)] * n
    sm = [Fraction(0)] * n
    Z = len(P)
    if Z == 0:
        return Fraction(0), Fraction(0), rg, sg, False, (rm, sm)
    amb = False
    re_sum = Fraction(0)
    se_sum = Fraction(0)
    for i in P:
        hp = {k: H(x[k] - x[i], d) for k in P}
        hn = {j: H(x[j] - x[i], d) for j in N}
        rank_pos = sum(hp.values())
        fp = sum(hn.values(), Fraction(0))
        rank = rank_pos + fp
        re = fp / rank
        cur = sum((hp[k] * (1 - t[k]) for k in P), Fraction(0)) / rank_pos
        above = [k for k in P if t[k] >= t[i]]
        tgt = sum((hp[k] * (1 - t[k]) for k in above), Fraction(0)) / sum(hp[k] for k in above)
        se = cur - tgt
        re_sum += re
        se_sum += se
        amb = amb or near(fp, EPS)
        if fp > EPS:
            rg[i] -= re / Z
            rm[i] += abs(re / Z)
            for j in N:
                rg[j] += hn[j] * (re / fp) / Z
                rm[j] += abs(hn[j] * (re / fp) / Z)
        miss = [k for k in P if t[k] < t[i]]
        D = sum((hp[k] for k in miss), Fraction(0))
        amb = amb or near(D, EPS)
        if D > EPS:
            sg[i] -= se / Z
            sm[i] += abs(se / Z)
            for k in miss:
                sg[k] += hp[k] * (se / D) / Z
                sm[k] += abs(hp[k] * (se / D) / Z)
    return re_sum / Z, se_sum / Z, rg, sg, amb, (rm, sm)


def ap_loss(x, t, d, interpolate):
    """AP Loss as the official loop: self counts 1, positives by ascending logit (ties in
    index order), running maximum of the precision.  Returns (loss, grad, mass): every update
    is a sum of terms of one sign, so its mass (the size its error is judged against) is its
    absolute value."""
    n = len(x)
    P = [i for i in range(n) if t[i] == 1]
    N = [j for j in range(n) if t[j] == 0]
    g = [Fraction(0)] * n
    Z = len(P)
    if Z == 0:
        return Fraction(0), g, [Fraction(0)] * n
    m_all = []
    max_prec = Fraction(0)
    for i in sorted(P, key=lambda k: (x[k], k)):
        rank_pos = 1 + sum((H(x[k] - x[i], d) for k in P if k != i), Fraction(0))
        hn = {j: H(x[j] - x[i], d) for j in N}
        fp = sum(hn.values(), Fraction(0))
        rank = rank_pos + fp
        prec = rank_pos / rank
        if not interpolate or max_prec <= prec:
            max_prec = prec
            c = (1 / rank) / Z
        else:
            c = ((1 - max_prec) / (1 - prec) / rank) / Z
        for j in N:
            g[j] += hn[j] * c
        g[i] = -(1 - max_prec) / Z
        m_all.append(max_prec)
    return 1 - sum(m_all) / Z, g, [abs(v) for v in g]


def relaxed_ranks(x, t, d):
    P = [i for i in range(len(x)) if t[i] > 0]
    N = [j for j in range(len(x)) if t[j] == 0]
    rank_pos = [sum(H(x[k] - x[i], d) for k in P) for i in P]
    fp = [sum((H(x[j] - x[i], d) for j in N), Fraction(0)) for i in P]
    return P, rank_pos, fp, [a + b for a, b in zip(rank_pos, fp)]


def buckets(x, t, d):
    """Exact breakpoint buckets: bucket of negative j = #{T : T <= x_j}, T the exact
    thresholds x_i -+ d (x_i at d = 0).  Returns (M, bucket ids, counts, sums)."""
    P = [i for i in range(len(x)) if t[i] > 0]
    T = sorted([x[i] - d for i in P] + [x[i] + d for i in P]) if d > 0 else \
        sorted(x[i] for i in P)
    M = len(T)
    ids = [-1] * len(x)
    counts = [0] * (M + 1)
    sums = [Fraction(0)] * (M + 1)
    for j in range(len(x)):
        if t[j] == 0:
            b = sum(1 for v in T if v <= x[j])
            ids[j] = b
            counts[b] += 1
            sums[b] += x[j]
    return M, ids, counts, sums


def brs_bucket_ids(x, t, d):
    """Bucket ids of the published BRS runs: the cut is min(x_P) - d (exact), a negative in
    run r has r positives at or below it (ties placed above the positive), +1 when d > 0."""
    P = [x[i] for i in range(len(x)) if t[i] > 0]
    if not P:
        return [0 if t[j] == 0 else -1 for j in range(len(x))]
    cut = min(P) - d
    ids = []
    for j in range(len(x)):
        if t[j] != 0:
            ids.append(-1)
        elif d > 0 and x[j] < cut or d == 0 and x[j] < min(P):
            ids.append(0)
        else:
            ids.append(sum(1 for v in P if v <= x[j]) + (1 if d > 0 else 0))
    return ids


def average_precision(x, t, interpolate):
    P = [i for i in range(len(x)) if t[i] == 1]
    keep = [j for j in range(len(x)) if t[j] >= 0]
    prec = {i: Fraction(sum(1 for k in P if x[k] >= x[i]), sum(1 for j in keep
                                                              if x[j] >= x[i])) for i in P}
    if interpolate:
        run = Fraction(0)
        for i in sorted(P, key=lambda k: (x[k], k)):
            run = max(run, prec[i])
            prec[i] = run
    return sum(prec.values()) / len(P)


def gap(x, y, C, w, d, exclude_foreground):
    """GAP loss of ROG (Eqs. 6-11, official conventions).  ``x`` is the flat [n, C] score
    matrix as Fractions, ``y`` the labels, ``w`` the omega (Fractions).

    Returns (loss, ranking_error, grad, gate_ambiguous, mass): per entry the sum of the
    absolute values of the terms of its update."""
    n = len(y)
    valid = [y[r] >= 0 for r in range(n)]
    pos = [r * C + y[r] for r in range(n) if 0 <= y[r] < C]
    cls = {r * C + y[r]: y[r] for r in range(n) if 0 <= y[r] < C}
    grad = [Fraction(0)] * (n * C)
    mass = [Fraction(0)] * (n * C)
    if not pos:
        return Fraction(0), Fraction(0), grad, False, mass
    present = sorted(set(cls.values()))
    loss = Fraction(0)
    per_class = []
    amb = False
    posset = set(pos)
    for m in present:
        members = [i for i in pos if cls[i] == m]
        if exclude_foreground:
            neg = [e for e in range(n * C) if valid[e // C] and e not in posset]
        else:
            neg = [e for e in range(n * C) if valid[e // C] and e not in set(members)]
        A = w[m] / (len(members) * len(present))
        ls = []
        for i in members:
            hp = sum(H(x[k] - x[i], d) for k in members)
            hn = {j: H(x[j] - x[i], d) for j in neg}
            fp = sum(hn.values(), Fraction(0))
            rank = hp + fp
            lv = fp / rank
            loss += A * lv
            ls.append(lv)
            amb = amb or near(fp, EPS)
            if fp > EPS:
                grad[i] -= A * lv
                mass[i] += abs(A * lv)
                for j in neg:
                    grad[j] += hn[j] * (A / rank)
                    mass[j] += abs(hn[j] * (A / rank))
        per_class.append(sum(ls) / len(ls))
    return loss, sum(per_class) / len(per_class), grad, amb, mass


# ------------------------------------------------------------------------------ mpmath

def mp(v):
    if isinstance(v, Fraction):
        return mpmath.mpf(v.numerator) / v.denominator
    return mpmath.mpf(fr(v).numerator) / fr(v).denominator


def _digits_for(small):
    """Working digits for a literal formula whose terms cancel down to ``small`` (an mpf
    relative size): 40 digits plus the cancelled ones."""
    if small == 0:
        return 60
    return int(min(4000, 40 + max(0, -mpmath.log10(abs(small)))))


def balanced_l1(diff, a, g, beta):
    """(loss, grad, scale) of the balanced L1 loss at a difference ``diff``: the literal
    mmdetection formula, evaluated with as many digits as its terms cancel (mpmath)."""
    a, g, beta, diff = mp(a), mp(g), mp(beta), mp(diff)
    x = abs(diff)
    with mpmath.workdps(60):
        b = mpmath.expm1(g / a)
        z = b * x / beta
        r = g / a
    dps = max(_digits_for(z if z != 0 else 1), _digits_for(r))
    with mpmath.workdps(dps):
        b = mpmath.expm1(g / a)
        if x < beta:
            loss = a / b * (b * x + 1) * mpmath.log1p(b * x / beta) - a * x
            slope = a * mpmath.log1p(b * x / beta) + a * (1 - beta) / (b * x + beta)
            scale = abs(a / b * (b * x + 1) * mpmath.log1p(b * x / beta)) + abs(a * x)
        else:
            loss = g * x + g / b - a * beta
            slope = g
            scale = abs(g * x) + abs(g / b) + abs(a * beta)
        loss, slope, scale = +loss, +slope, +scale
    sign = 0 if diff == 0 else (1 if diff > 0 else -1)
    return loss, sign * slope, scale


def lgr_weight(u, a, g):
    """LGR's rho(u) = alpha ln(1 + b u) / u (alpha b at 0, gamma at u >= 1), mpmath."""
    a, g, u = mp(a), mp(g), mp(u) if not isinstance(u, mpmath.mpf) else u
    b = mpmath.expm1(g / a)
    if u == 0:
        return a * b
    if u >= 1:
        return g
    return a * mpmath.log1p(b * u) / u


def lgr_cross_entropy_row(z, c, a, g):
    """(loss, grad row, rho) of LGR cross-entropy for one row of logits and label c (mpmath);
    ``1 - p_c`` is the others' mass (no cancellation) and ``log p_c`` uses log1p."""
    zs = [mp(v) for v in z]
    mx = max(zs)
    e = [mpmath.exp(v - mx) for v in zs]
    den = mpmath.fsum(e)
    p = [v / den for v in e]
    u = mpmath.fsum(e[k] for k in range(len(zs)) if k != c) / den
    if zs[c] == mx:
        logp = -mpmath.log1p(mpmath.fsum(e[k] for k in range(len(zs)) if k != c))
    else:
        logp = zs[c] - mx - mpmath.log(den)
    rho = lgr_weight(u, a, g)
    grad = [rho * (p[k] - (1 if k == c else 0)) for k in range(len(zs))]
    return -rho * logp, grad, rho


def lgr_weight_mp(u, a, g):
    return lgr_weight(u, a, g)


def class_weights(counts, gamma):
    """ROG omega: C (1/n_m)^g / (sum_k (1/n_k)^g + 1e-9), n = max(counts, 1)."""
    C = len(counts)
    inv = [mpmath.power(1 / max(mp(c), mpmath.mpf(1)), mp(gamma)) for c in counts]
    s = mpmath.fsum(inv) + mpmath.mpf(1e-9)
    return [C * v / s for v in inv]


def optimal_bias(nf, n, C):
    prior = fr(nf) / (fr(n) * C)
    return mpmath.log(mp(prior)) - mpmath.log(mp(1 - prior))


def bucketed_class_weights(freqs, S, a, t):
    """Reference weights; each class may fall in either of two buckets when its scaled log
    frequency is within 1e-9 of a bucket boundary (float rounding decides there)."""
    lf = [mpmath.log(mp(f)) for f in freqs]
    lo, hi = min(lf), max(lf)
    span = hi - lo
    out = []
    for v in lf:
        if span > 0:
            q = S * (v - lo) / span
            cands = {min(int(mpmath.floor(q)), S - 1)}
            for e in (-1e-9, 1e-9):
                cands.add(min(max(int(mpmath.floor(q + e)), 0), S - 1))
        else:
            cands = {S - 1}
        out.append([1 / (1 + mpmath.exp(-(mpmath.mpf(s) / (S - 1) - mp(a)) / mp(t)))
                    for s in sorted(cands)])
    return out
