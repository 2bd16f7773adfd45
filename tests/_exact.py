"""Exact rational evaluation of RS, AP and GAP on tiny inputs (fractions.Fraction of every float,
which is exact), as the oracle of the dense oracle.  Written as literally as the maths."""
from fractions import Fraction as F

EPS = F(1e-10)


def h(u, d):
    if d > 0:
        return min(max(F(1, 2) + u / (2 * d), F(0)), F(1))
    return F(1) if u >= 0 else F(0)


def rank_sort(x, t, delta):
    x = [F(float(v)) for v in x]
    t = [F(float(v)) for v in t]
    d = F(float(delta))
    P = [i for i, v in enumerate(t) if v > 0]
    N = [j for j, v in enumerate(t) if v == 0]
    Z = len(P)
    rg = [F(0)] * len(x)
    sg = [F(0)] * len(x)
    if Z == 0:
        return 0.0, 0.0, [0.0] * len(x), [0.0] * len(x)
    re_all, se_all = [], []
    for i in P:
        hp = {k: h(x[k] - x[i], d) for k in P}
        hn = {j: h(x[j] - x[i], d) for j in N}
        rank_pos = sum(hp.values())
        fp = sum(hn.values())
        re = fp / (rank_pos + fp)
        cur = sum(hp[k] * (1 - t[k]) for k in P) / rank_pos
        above = [k for k in P if t[k] >= t[i]]
        tgt = sum(hp[k] * (1 - t[k]) for k in above) / sum(hp[k] for k in above)
        se = cur - tgt
        re_all.append(re)
        se_all.append(se)
        if fp > EPS:
            rg[i] -= re / Z
            for j in N:
                rg[j] += hn[j] * re / fp / Z
        D = sum(hp[k] for k in P if t[k] < t[i])
        if D > EPS:
            sg[i] -= se / Z
            for k in P:
                if t[k] < t[i]:
                    sg[k] += hp[k] * se / D / Z
    return (float(sum(re_all) / Z), float(sum(se_all) / Z), [float(v) for v in rg],
            [float(v) for v in sg])


def ap(x, t, delta, interpolate=True):
    x = [F(float(v)) for v in x]
    d = F(float(delta))
    P = [i for i, v in enumerate(t) if v == 1]
    N = [j for j, v in enumerate(t) if v == 0]
    Z = len(P)
    g = [F(0)] * len(x)
    if Z == 0:
        return 0.0, [0.0] * len(x)
    m = F(0)
    total = F(0)
    for i in sorted(P, key=lambda k: (x[k], k)):
        hn = {j: h(x[j] - x[i], d) for j in N}
        rank_pos = 1 + sum(h(x[k] - x[i], d) for k in P if k != i)
        rank = rank_pos + sum(hn.values())
        prec = rank_pos / rank
        if not interpolate or prec >= m:
            m = prec
            c = 1 / rank / Z
        else:
            c = (1 - m) / (1 - prec) / rank / Z
        for j in N:
            g[j] += hn[j] * c
        g[i] = -(1 - m) / Z
        total += m
    return float(1 - total / Z), [float(v) for v in g]


def gap(scores, labels, delta, weights):
    n, C = len(scores), len(scores[0])
    x = [F(float(v)) for row in scores for v in row]
    d = F(float(delta))
    pos = {r * C + int(labels[r]): int(labels[r]) for r in range(n) if 0 <= labels[r] < C}
    valid = [e for e in range(n * C) if labels[e // C] >= 0]
    neg = [e for e in valid if e not in pos]
    present = sorted(set(pos.values()))
    g = [F(0)] * (n * C)
    loss = F(0)
    per_class = []
    for m in present:
        members = [e for e, c in pos.items() if c == m]
        A = F(float(weights[m])) / (len(members) * len(present))
        ls = []
        for i in members:
            rank_pos = sum(h(x[k] - x[i], d) for k in members)
            hn = {j: h(x[j] - x[i], d) for j in neg}
            fp = sum(hn.values())
            lv = fp / (rank_pos + fp)
            ls.append(lv)
            loss += A * lv
            if fp > EPS:
                g[i] -= A * lv
                for j in neg:
                    g[j] += hn[j] * A / (rank_pos + fp)
        per_class.append(sum(ls) / len(ls))
    err = sum(per_class) / len(per_class) if per_class else F(0)
    return float(loss), float(err), [float(v) for v in g]
