"""The battery of generated cases, its regimes, and the random cases of ``--explore``."""
import numpy as np

from .. import ClassCounts
from ._conventions import DEFAULT_DELTA, LOSSES

# The regime of every case of the battery (the report counts the cases run per regime).
REGIMES = {
    "random": "random", "ties": "ties", "single positive": "single positive",
    "zero positives": "zero positives", "trained, +2": "trained", "trained, +4": "trained",
    "trained, +6": "trained", "precision-1 positives": "precision 1",
    "all positives above": "all above", "quality ties": "quality ties",
    "tied groups": "tied groups", "no relevant negatives": "no relevant negatives",
    "ignored labels": "ignored labels", "huge spreads": "huge spreads",
    "float16-rounded": "float16", "2-D [anchors, classes]": "2-D",
    "delta = 0, ties": "extreme delta", "delta = 4": "extreme delta", "delta = 2": "extreme delta",
    "1 positive, 1e5 negatives": "1e5 negatives",
    "at beta and zero": "at beta and zero", "ties at bin edges": "ties",
    "fewer candidates than requested": "fewer candidates", "many high IoUs": "many high IoUs",
    "next to beta": "at beta and zero", "tiny residuals": "tiny residuals",
    "equal pred and target": "ties", "large residuals": "huge spreads",
    "as many candidates as requested": "fewer candidates", "every IoU zero": "ties",
    "one bin only": "one bin", "one requested": "single draw", "uniform IoUs": "random",
}

RANKING_QUICK = ("random", "ties", "single positive", "zero positives", "trained, +4",
                 "precision-1 positives", "all positives above", "tied groups")
GAP_QUICK = ("random", "ties", "single positive", "zero positives", "ignored labels",
             "trained, +4", "precision-1 positives", "all positives above", "tied groups")


def regime_of(name):
    """The regime of a case of the battery (``"explore: <regime>"`` for explored cases)."""
    return REGIMES.get(name, name)


def _ranking_inputs(name, rng, binary, delta, n=3000, p=60):
    """Logits and targets of one ranking case (float64; the caller rounds to float32)."""
    d = delta
    iou = (lambda k: np.ones(k)) if binary else (lambda k: rng.uniform(0.3, 1.0, k))
    x = rng.normal(-2.0, 1.0, n)
    t = np.zeros(n)
    t[rng.choice(n, n // 100, replace=False)] = -1.0  # 1% ignored

    def place(k):
        free = np.flatnonzero(t == 0)
        pos = rng.choice(free, k, replace=False)
        t[pos] = iou(k)
        return pos

    if name in ("random", "float16-rounded", "delta = 4"):
        place(p)
        if name == "float16-rounded":
            x = x.astype(np.float16).astype(np.float64)
    elif name in ("ties", "delta = 0, ties"):
        pos = place(p)
        x = np.round(x * 2) / 2
        neg = np.flatnonzero(t == 0)
        x[neg[:p]] = x[pos]  # negatives tied with positives
        if not binary:
            t[pos] = rng.choice([0.5, 0.75, 1.0], pos.size)  # IoU ties
    elif name == "single positive":
        place(1)
    elif name == "zero positives":
        pass
    elif name.startswith("trained"):
        shift = float(name.split("+")[1])
        pos = place(p)
        x[pos] += shift  # a trained detector: positives well above most negatives
        if d > 0:  # the top negative just within delta of the top positive: a tiny FP (5e-3)
            x[np.flatnonzero(t == 0)[np.argmax(x[t == 0])]] = x[pos].max() - d * (1 - 1e-2)
    elif name == "precision-1 positives":
        pos = place(p)
        neg = t == 0
        top = pos[:p // 4]  # above every negative by more than delta: precision 1
        x[top] = x[neg].max() + d + 0.5 + rng.uniform(0.0, 2.0, top.size)
        # the other positives sit among the negatives, which stay relevant
    elif name == "all positives above":
        pos = place(p)
        top = x[t == 0].max()
        x[pos] = top + rng.uniform(0.05, 3.0, pos.size)  # some within delta
        if d > 0:  # one whose FP is tiny (1e-3), alone within delta: the eps gating shows
            lone = top + d * (1 - 2e-3)
            near = np.abs(x[pos] - lone) < d
            x[pos[near]] = lone + d + rng.uniform(0.01, 2.0, int(near.sum()))
            x[pos[0]] = lone
    elif name == "quality ties":
        pos = place(p)
        if binary:  # AP has one quality: tie the positives' logits in pairs instead
            x[pos[1::2]] = x[pos[0::2]][:pos[1::2].size]
        else:
            t[pos] = rng.choice([0.25, 0.5, 0.75, 1.0], pos.size)
    elif name == "tied groups":
        x = np.round(x * 2) / 2
        levels = np.arange(-3.5, 0.25, 0.5)  # 8 levels on the grid
        free = np.flatnonzero(t == 0)
        chosen = rng.choice(free, 8 * 9, replace=False).reshape(8, 9)
        for level, ids in zip(levels, chosen):
            x[ids] = level  # 4 positives and 5 negatives at each level
            t[ids[:4]] = iou(4) if not binary else 1.0
        if not binary:
            pos = chosen[:, :4].reshape(-1)
            t[pos] = rng.choice([0.5, 0.75, 1.0], pos.size)
    elif name == "no relevant negatives":
        pos = place(40)
        neg = t == 0
        x[neg] = x[pos].min() - d - 1.0 - rng.random(int(neg.sum()))
    elif name == "huge spreads":
        place(p)
        x = rng.uniform(-50, 50, n)
    elif name == "2-D [anchors, classes]":
        place(80)
        x, t = x.reshape(250, 12), t.reshape(250, 12)
    elif name == "1 positive, 1e5 negatives":
        n = 100_001
        x = rng.normal(-2.0, 1.0, n)
        t = np.zeros(n)
        t[rng.integers(n)] = iou(1)[0]
    else:
        raise ValueError(f"unknown ranking case {name!r}")
    return x, t


RANKING_CASES = RANKING_QUICK + (
    "trained, +2", "trained, +6", "quality ties", "no relevant negatives", "huge spreads",
    "float16-rounded", "2-D [anchors, classes]", "delta = 0, ties", "delta = 4",
    "1 positive, 1e5 negatives")
GAP_CASES = GAP_QUICK + (
    "trained, +2", "trained, +6", "quality ties", "huge spreads", "float16-rounded",
    "delta = 0, ties", "delta = 2", "1 positive, 1e5 negatives")
CASE_DELTA = {"delta = 0, ties": 0.0, "delta = 4": 4.0, "delta = 2": 2.0}
# gamma of the GAP cases that do not run at 1.0: only the official call takes gamma
# (GAPLoss.apply(..., C, gamma, lam)); under rankref's convention these run at 1.0
GAP_GAMMA_OF = {"trained, +2": 0.5, "trained, +6": 2.0}


def _gap_inputs(name, rng, delta, n=256, C=20):
    if name == "1 positive, 1e5 negatives":
        n = 5000
    y = np.full(n, C)
    fg = rng.random(n) < 0.25
    prior = 1.0 / np.arange(1, C + 1) ** 1.3
    y[fg] = rng.choice(C, fg.sum(), p=prior / prior.sum())
    s = rng.normal(-2.0, 50.0 if name == "huge spreads" else 1.0, (n, C))
    rows = np.flatnonzero(y < C)
    if name in ("single positive", "1 positive, 1e5 negatives"):
        y[:] = C
        y[0] = 3
    elif name == "zero positives":
        y[:] = C
    elif name == "ignored labels":
        y[rng.random(n) < 0.05] = -1
    elif name in ("ties", "delta = 0, ties"):
        s = np.round(s * 2) / 2
    elif name == "float16-rounded":
        s = s.astype(np.float16).astype(np.float64)
    elif name.startswith("trained"):
        s[rows, y[rows]] += float(name.split("+")[1])
        if delta > 0:  # the rarest class's positive on top, one negative just within delta
            classes, sizes = np.unique(y[rows], return_counts=True)
            rare = rows[y[rows] == classes[np.argmin(sizes)]][0]
            s[rare, y[rare]] = s.max() + 1.0
            background = np.flatnonzero(y == C)[0]
            s[background, 0] = s[rare, y[rare]] - delta * (1 - 1e-2)  # a tiny FP (5e-3)
    elif name == "precision-1 positives":
        top = rows[: max(rows.size // 4, 2)]
        s[top, y[top]] = s.max() + delta + 0.5 + rng.uniform(0.0, 2.0, top.size)
    elif name == "all positives above":
        top = s.max()
        s[rows, y[rows]] = top + rng.uniform(0.05, 3.0, rows.size)
        if delta > 0:  # one whose FP is tiny (1e-3), alone within delta: the eps gating shows
            lone = top + delta * (1 - 2e-3)
            mates = rows[y[rows] == y[rows[0]]]
            near = np.abs(s[mates, y[mates]] - lone) < delta
            s[mates[near], y[mates[near]]] = lone + delta + rng.uniform(0.01, 2.0, near.sum())
            s[rows[0], y[rows[0]]] = lone
    elif name == "quality ties":  # positives of a class tied among themselves
        for m in np.unique(y[rows]):
            r = rows[y[rows] == m]
            s[r, m] = s[r[0], m]
    elif name == "tied groups":
        s = np.round(s * 2) / 2
        for m in np.unique(y[rows]):
            r = rows[y[rows] == m]
            s[r[: (r.size + 1) // 2], m] = s[r[0], m]  # half of the class's positives tied
    counts = ClassCounts(C).update(y).counts + rng.integers(0, 30, C)
    return s, y, counts


def make_cases(loss, quick=False, delta=None, seed=0):
    """The battery of ``loss``: a list of ``(name, inputs)``, ``inputs`` a dict of arrays.

    The ranking and GAP batteries span these regimes (:func:`regime_of` names each case's):
    random logits; ties with negatives; a single and zero positives; a trained detector
    (positives shifted up by 2, 4 and 6); precision-1 positives beside relevant negatives;
    every positive above every negative; quality ties; several positives per tied group; no
    relevant negatives; huge spreads; float16-rounded logits; a 2-D ``[anchors, classes]``
    matrix; extreme delta; one positive among 1e5 negatives (GAP: ignored labels too).
    Ranking cases carry their own ``delta`` (``delta``, or the loss's default, except the cases
    named ``"delta = ..."``).  ``quick`` keeps the first 8 cases (GAP: 9; balanced-l1 has 8 in
    all).  Deterministic:
    the same arguments give the same arrays.

    Examples
    --------
    >>> from rankref import crosscheck
    >>> cases = crosscheck.make_cases("rs", quick=True)
    >>> [name for name, _ in cases][:4]
    ['random', 'ties', 'single positive', 'zero positives']
    >>> len(cases), len(crosscheck.make_cases("rs"))
    (8, 18)
    >>> sorted(cases[0][1])  # the logits, the targets and the case's delta
    ['delta', 't', 'x']
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}.")
    d = DEFAULT_DELTA.get(loss, 0.5) if delta is None else float(delta)
    out = []
    if loss in ("rs", "brs", "ap"):
        for k, name in enumerate(RANKING_QUICK if quick else RANKING_CASES):
            rng = np.random.default_rng([seed, k])  # each case its own stream
            dd = CASE_DELTA.get(name, d)
            x, t = _ranking_inputs(name, rng, loss == "ap", dd)
            out.append((name, {"x": x.astype(np.float32), "t": t.astype(np.float32),
                               "delta": dd}))
        return out
    if loss == "gap":
        for k, name in enumerate(GAP_QUICK if quick else GAP_CASES):
            rng = np.random.default_rng([seed, k])
            dd = CASE_DELTA.get(name, d)
            s, y, counts = _gap_inputs(name, rng, dd)
            inp = {"scores": s.astype(np.float32), "labels": y.astype(np.int64),
                   "counts": counts, "delta": dd}
            if name in GAP_GAMMA_OF:
                inp["gamma"] = GAP_GAMMA_OF[name]
            out.append((name, inp))
        return out
    rng = np.random.default_rng(seed)
    if loss == "balanced-l1":
        pred = rng.normal(0, 1.5, (400, 4))
        tgt = rng.normal(0, 1.5, (400, 4))
        beta = np.float32(1.0)
        out.append(("random", pred, tgt))
        out.append(("at beta and zero", np.array([1.0, -1.0, 0.0, 0.5, 2.0]), np.zeros(5)))
        near = np.array([np.nextafter(beta, np.float32(0)), beta, np.nextafter(beta, np.inf)])
        out.append(("next to beta", np.concatenate([near, -near]), np.zeros(6)))
        out.append(("tiny residuals", tgt.reshape(-1)[:200] + rng.normal(0, 1e-6, 200),
                    tgt.reshape(-1)[:200]))
        out.append(("equal pred and target", tgt.reshape(-1)[:100], tgt.reshape(-1)[:100]))
        out.append(("large residuals", rng.uniform(-1e3, 1e3, 200), rng.uniform(-1e3, 1e3, 200)))
        out.append(("huge spreads", rng.uniform(-50, 50, 300), rng.uniform(-50, 50, 300)))
        out.append(("float16-rounded", pred.astype(np.float16).astype(np.float64), tgt))
        return [(name, {"pred": p.astype(np.float32), "target": q.astype(np.float32),
                        "alpha": 0.5, "gamma": 1.5, "beta": 1.0}) for name, p, q in out]
    # iou-neg-sampler: inclusion frequencies against the exact probabilities
    iou = np.concatenate([np.zeros(60), rng.uniform(0, 0.5, 240) ** 2])
    out.append(("random", iou, 64))
    out.append(("ties at bin edges", np.repeat([0.0, 1 / 6, 1 / 3, 0.5], 40), 50))
    out.append(("fewer candidates than requested", rng.uniform(0, 0.5, 20), 64))
    out.append(("as many candidates as requested", rng.uniform(0, 0.5, 32), 32))
    out.append(("every IoU zero", np.zeros(120), 30))
    out.append(("one bin only", rng.uniform(0.34, 0.49, 150), 25))
    out.append(("one requested", rng.uniform(0, 0.5, 80), 1))
    out.append(("uniform IoUs", rng.uniform(0, 0.5, 300), 100))
    if not quick:
        out.append(("many high IoUs", rng.uniform(0.2, 0.5, 300), 40))
    draws = 1000 if quick else 4000
    return [(name, {"iou": v.astype(np.float32), "num_expected": e, "draws": draws})
            for name, v, e in out]


# ------------------------------------------------------------------------------ --explore

EXPLORE_REGIMES = ("random", "ties", "single positive", "trained", "precision 1", "all above",
                   "quality ties", "tied groups", "huge spreads", "float16")
EXPLORE_DELTAS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)


def explore_case(loss, rng, delta, vary_delta):
    """``(regime, inputs)``: one random case of ``--explore``, drawn from ``rng``.

    The generator spans the battery's regimes with random sizes (2 to 3000 entries), spreads,
    grids (ties) and, where the callable takes it (``vary_delta``), delta.
    """
    regime = EXPLORE_REGIMES[rng.integers(len(EXPLORE_REGIMES))]
    d = float(EXPLORE_DELTAS[rng.integers(len(EXPLORE_DELTAS))]) if vary_delta else delta
    size = int(rng.choice([2, 3, 5, 8, 13, 30, 100, 400, 3000]))
    spread = float(rng.choice([0.1, 0.5, 1.0, 3.0, 20.0]))
    grid = float(rng.choice([0.0, 0.0, 0.5, 0.25, 1.0]))
    if regime == "ties":
        grid = grid or 0.5
    if regime == "huge spreads":
        spread = 50.0

    def on_grid(v):
        v = np.round(v / grid) * grid if grid else v
        return v.astype(np.float16).astype(np.float64) if regime == "float16" else v

    if loss in ("rs", "brs", "ap"):
        binary = loss == "ap"
        x = rng.normal(0.0, spread, size)
        t = np.zeros(size)
        p = 1 if regime == "single positive" else int(rng.integers(1, max(size // 2, 1) + 1))
        pos = rng.choice(size, p, replace=False)
        if binary:
            t[pos] = 1.0
        elif regime == "quality ties":
            t[pos] = rng.choice([0.5, 1.0], p)
        else:
            t[pos] = np.round(rng.uniform(0.05, 1.0, p), 2)
        if size > 4 and rng.random() < 0.3:
            t[rng.choice(np.flatnonzero(t == 0), 1)] = -1.0  # an ignored entry
        neg = t == 0
        if regime == "trained":
            x[pos] += float(rng.choice([2.0, 4.0, 6.0])) * max(spread, 0.5)
        elif regime == "precision 1" and neg.any():
            k = max(p // 2, 1)
            x[pos[:k]] = x[neg].max() + d + rng.uniform(0.1, 1.0, k)
        elif regime == "all above" and neg.any():
            x[pos] = x[neg].max() + rng.uniform(0.0, 2 * d + 0.5, p)
        elif regime == "tied groups" and neg.any():
            level = x[pos[0]]
            x[pos[: (p + 1) // 2]] = level
            x[np.flatnonzero(neg)[: 3]] = level
        x = on_grid(x)
        if regime in ("ties", "tied groups") and neg.any() and rng.random() < 0.7:
            x[np.flatnonzero(neg)[0]] = x[pos[0]]  # a negative tied with a positive
        return regime, {"x": x.astype(np.float32), "t": t.astype(np.float32), "delta": d}
    if loss == "gap":
        C = int(rng.integers(2, 8))
        n = max(size // C, 2)
        y = np.where(rng.random(n) < 0.4, rng.integers(0, C, n), C)
        y[0] = rng.integers(0, C)
        s = rng.normal(0.0, spread, (n, C))
        rows = np.flatnonzero(y < C)
        if regime == "trained":
            s[rows, y[rows]] += float(rng.choice([2.0, 4.0, 6.0])) * max(spread, 0.5)
        elif regime in ("precision 1", "all above"):
            top = rows[: max(rows.size // 2, 1)] if regime == "precision 1" else rows
            s[top, y[top]] = s.max() + d + rng.uniform(0.1, 1.0, top.size)
        elif regime in ("quality ties", "tied groups"):
            s[rows, y[rows]] = s[rows[0], y[rows[0]]]
        s = on_grid(s)
        counts = ClassCounts(C).update(y).counts + rng.integers(0, 5, C)
        return regime, {"scores": s.astype(np.float32), "labels": y.astype(np.int64),
                        "counts": counts, "delta": d}
    # balanced-l1
    pred = on_grid(rng.normal(0.0, spread, size))
    tgt = on_grid(rng.normal(0.0, spread, size))
    if regime in ("ties", "tied groups", "quality ties"):
        tgt[: size // 2] = pred[: size // 2]
    return regime, {"pred": pred.astype(np.float32), "target": tgt.astype(np.float32),
                    "alpha": 0.5, "gamma": 1.5, "beta": 1.0}
