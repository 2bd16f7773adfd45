r"""``rankref explain``: every quantity of the RS, AP or GAP loss of a small input, in tables.

:func:`explain` computes the relaxed ranks, the errors and the update of every entry plainly
from their definitions (Python loops over all pairs, in float64, at most
:data:`MAX_ENTRIES` entries), not with rankref's bucket engine, and checks the result against
:func:`rankref.rank_sort_loss`, :func:`rankref.ap_loss` or :func:`rankref.gap_loss`.  Printing
the returned :class:`Explanation` gives the tables, in the notation of the papers and of the
user guide: :math:`\mathrm{rank}^+(i)`, :math:`\mathrm{FP}(i)`, :math:`\mathrm{rank}(i)`,
the ranking error :math:`\mathrm{RE}(i)`, the sorting error :math:`\mathrm{SE}(i)` and the
error-driven updates.  The command line prints the same tables::

    rankref explain --loss rs --logits 2,1,0.5,0 --targets 0.9,0,0.7,0
    rankref explain --loss ap --logits 2,1,0.5,0 --targets 1,0,1,0 --delta 0
    rankref explain --loss gap --scores 2,-1,0.5/0.3,0.1,1.2/0.8,-0.5,0 --labels 0,2,3

Examples
--------
>>> from rankref.explain import explain
>>> ex = explain("rs", [2.0, 1.0, 0.5, 0.0], [0.9, 0.0, 0.7, 0.0])  # delta = 0.5
>>> print(ex.values)
{'ranking_loss': 0.2, 'sorting_loss': 0.0}
>>> print(ex.per_positive["RE"], ex.updates["total"])
[0.  0.4] [ 0.   0.2 -0.2  0. ]
"""
import argparse
import math
import re
from dataclasses import dataclass, field

import numpy as np

from ._cli_types import _HelpFormatter, _at_least
from ._validation import EPS, as_labels, as_logits, as_targets, check_delta, check_nonnegative
from ._validation import raise_nonfinite, scan_targets, show, to_array

__all__ = ["MAX_ENTRIES", "Explanation", "explain", "add_parser", "run"]

MAX_ENTRIES = 50
"""The most entries (logits, or ``n * C`` scores for GAP) :func:`explain` takes: the tables
list every entry and every pair, so they are for small examples."""

MAX_STEP_COLUMNS = 10
"""The matrix of ``H(x_k - x_i)`` is printed for at most this many positives (its columns)."""

LOSSES = {
    "rs": ("RS loss (Rank & Sort; Oksuz et al., ICCV 2021)", 0.5),
    "ap": ("AP Loss (Chen et al., CVPR 2019)", 1.0),
    "gap": ("GAP loss of ROG (Zhang et al., ICCV 2023)", 0.5),
}


def _step(u, delta):
    """The relaxed step H_delta(u) of Python floats: [u >= 0] at delta = 0, and
    ``(u / delta) / 2`` so that neither ``2 delta`` nor ``1 / (2 delta)`` can overflow."""
    if delta > 0:
        return min(max((u / delta) / 2.0 + 0.5, 0.0), 1.0)
    return 1.0 if u >= 0 else 0.0


@dataclass
class Explanation:
    """Every quantity of one loss on one small input; ``str()`` gives the tables.

    Attributes
    ----------
    loss : {"rs", "ap", "gap"}
    delta : float
        The smoothing width used.
    logits : ndarray of float64
        The logits (for GAP the scores ``[n, C]``), in the input's shape.
    targets : ndarray
        The targets, in the logits' shape (for GAP the labels ``[n]``).
    roles : ndarray of str, the logits' shape
        ``"pos"``, ``"neg"`` or ``"ign"`` (ignored) for every entry; for GAP ``"pos m"`` names
        the class of a positive.
    positives : ndarray of int
        The flat indices of the positives, in the order of the rows of the positives' tables
        (by index; for AP by ascending logit, the order of the interpolation).
    step : ndarray of float64, shape ``(entries, positives)``
        ``H(x_k - x_i)`` of every entry k (flat order) against every positive i; NaN where the
        loss does not compare them (an ignored k; for GAP a positive of another class).
    per_positive : dict of str to ndarray
        One array per quantity, aligned with ``positives``: ``"rank+"``, ``"FP"``, ``"rank"``,
        ``"RE"``, ``"c"``, ``"cur"``, ``"tgt"``, ``"SE"``, ``"D"`` (RS); ``"rank+"``,
        ``"FP"``, ``"rank"``, ``"prec"``, ``"m"``, ``"c"`` (AP); ``"class"``, ``"rank+"``,
        ``"FP"``, ``"R"``, ``"l"``, ``"omega"``, ``"|P(m)|"``, ``"A"``, ``"c"`` (GAP).
    updates : dict of str to ndarray
        The update of every entry, in the logits' shape: ``"ranking"``, ``"sorting"`` and
        ``"total"`` (RS), ``"update"`` (AP and GAP).
    values : dict of str to float
        ``"ranking_loss"`` and ``"sorting_loss"`` (RS), ``"loss"`` (AP), ``"loss"`` and
        ``"ranking_error"`` (GAP).
    library : dict
        The same values and updates from rankref's exact engine (``method="bucketed"``).
    agrees : bool
        Whether ``library`` equals the plain computation to 1e-12 relative.
    options : dict
        ``interpolate`` (AP); ``gamma``, ``counts`` and ``omega`` (GAP).
    """

    loss: str
    delta: float
    logits: np.ndarray
    targets: np.ndarray
    roles: np.ndarray
    positives: np.ndarray
    step: np.ndarray
    per_positive: dict
    updates: dict
    values: dict
    library: dict = field(default_factory=dict)
    agrees: bool = True
    options: dict = field(default_factory=dict)

    def table(self):
        """The tables as one string (what ``print(explanation)`` shows)."""
        return {"rs": _rs_text, "ap": _ap_text, "gap": _gap_text}[self.loss](self)

    def __str__(self):
        return self.table()


# ----------------------------------------------------------------------------------------------
# the plain computations


def _check_size(count, name):
    if count > MAX_ENTRIES:
        raise ValueError(
            f"{name} has {count} entries; explain takes at most {MAX_ENTRIES} (its tables list "
            f"every entry and every pair). Call rankref.rank_sort_loss, ap_loss or gap_loss for "
            f"large inputs."
        )


def _ranking_input(logits, targets, delta, binary, func):
    """Validated float64 logits and targets (both in the input shape), and delta."""
    d = check_delta(delta)
    arr = to_array(logits, "logits")
    _check_size(arr.size, "logits")
    x, shape, _ = as_logits(arr)
    t = as_targets(targets, shape)
    pos = scan_targets(t, binary, func=func)
    raise_nonfinite(x)
    if pos.size == 0:
        raise ValueError(
            f"targets hold no positive ({'1' if binary else 'a value in (0, 1]'}): every "
            f"quantity is 0 and there is nothing to explain."
        )
    return x.astype(np.float64).reshape(shape), t.astype(np.float64).reshape(shape), d


def _roles(t):
    return np.where(t > 0, "pos", np.where(t == 0, "neg", "ign"))


def _step_matrix(x, pos, compared, delta):
    """H(x_k - x_i) for every flat entry k and every positive i that ``compared(k, i)`` (NaN
    for the pairs the loss does not compare)."""
    xs = [float(v) for v in x]  # Python floats: x_k - x_i beyond the range is inf, silently
    step = np.full((len(xs), len(pos)), np.nan)
    for k in range(len(xs)):
        for col, i in enumerate(pos):
            if compared(k, i):
                step[k, col] = _step(xs[k] - xs[i], delta)
    return step


def _explain_rs(logits, targets, delta):
    x, t, d = _ranking_input(logits, targets, delta, False, "rank_sort_loss")
    shape = x.shape
    xf, tf = x.reshape(-1), t.reshape(-1)
    P = [i for i in range(xf.size) if tf[i] > 0]
    N = [j for j in range(xf.size) if tf[j] == 0]
    Z = len(P)
    step = _step_matrix(xf, P, lambda k, i: tf[k] >= 0, d)
    col = {i: c for c, i in enumerate(P)}
    q = {name: np.zeros(Z) for name in ("rank+", "FP", "rank", "RE", "c", "cur", "tgt", "SE",
                                        "D")}
    for c, i in enumerate(P):
        rank_pos = sum(step[k, c] for k in P)
        fp = sum(step[j, c] for j in N)
        rank = rank_pos + fp
        re_i = fp / rank
        cur = sum(step[k, c] * (1.0 - tf[k]) for k in P) / rank_pos
        above = [k for k in P if tf[k] >= tf[i]]
        tgt = sum(step[k, c] * (1.0 - tf[k]) for k in above) / sum(step[k, c] for k in above)
        q["rank+"][c], q["FP"][c], q["rank"][c], q["RE"][c] = rank_pos, fp, rank, re_i
        q["c"][c] = (re_i / fp) / Z if fp > EPS else 0.0
        q["cur"][c], q["tgt"][c], q["SE"][c] = cur, tgt, cur - tgt
        q["D"][c] = sum(step[k, c] for k in P if tf[k] < tf[i])
    ranking = np.zeros(xf.size)
    sorting = np.zeros(xf.size)
    for i in P:
        c = col[i]
        if q["FP"][c] > EPS:
            ranking[i] = -q["RE"][c] / Z
        if q["D"][c] > EPS:
            sorting[i] -= q["SE"][c] / Z
            for k in P:  # the positives above i with a lower target share SE(i)
                if tf[k] < tf[i]:
                    sorting[k] += step[k, c] * (q["SE"][c] / q["D"][c]) / Z
    for j in N:
        ranking[j] = sum(q["c"][col[i]] * step[j, col[i]] for i in P)
    values = {"ranking_loss": float(np.mean(q["RE"])), "sorting_loss": float(np.mean(q["SE"]))}
    updates = {"ranking": ranking.reshape(shape), "sorting": sorting.reshape(shape),
               "total": (ranking + sorting).reshape(shape)}
    ex = Explanation("rs", d, x, t, _roles(t), np.array(P, dtype=np.int64), step, q, updates,
                     values)
    from .losses import rank_sort_loss

    res = rank_sort_loss(x, t, d)
    ex.library = {"ranking_loss": res.ranking_loss, "sorting_loss": res.sorting_loss,
                  "ranking": res.ranking_grad, "sorting": res.sorting_grad, "total": res.grad}
    return ex


def _explain_ap(logits, targets, delta, interpolate):
    if not isinstance(interpolate, (bool, np.bool_)):
        raise ValueError(f"interpolate must be True or False, got {show(interpolate)}.")
    x, t, d = _ranking_input(logits, targets, delta, True, "ap_loss")
    shape = x.shape
    xf, tf = x.reshape(-1), t.reshape(-1)
    P = sorted((i for i in range(xf.size) if tf[i] == 1), key=lambda i: xf[i])  # stable
    N = [j for j in range(xf.size) if tf[j] == 0]
    Z = len(P)
    step = _step_matrix(xf, P, lambda k, i: tf[k] >= 0, d)
    q = {name: np.zeros(Z) for name in ("rank+", "FP", "rank", "prec", "m", "c")}
    running = 0.0
    for c, i in enumerate(P):  # by ascending logit: the order of the interpolation
        rank_pos = 1.0 + sum(step[k, c] for k in P if k != i)  # the self term counts 1
        fp = sum(step[j, c] for j in N)
        rank = rank_pos + fp
        prec = rank_pos / rank
        running = max(running, prec) if interpolate else prec
        q["rank+"][c], q["FP"][c], q["rank"][c], q["prec"][c], q["m"][c] = (
            rank_pos, fp, rank, prec, running)
        if prec >= running:
            q["c"][c] = (1.0 / rank) / Z
        else:
            q["c"][c] = ((1.0 - running) / (1.0 - prec) / rank) / Z
    update = np.zeros(xf.size)
    for c, i in enumerate(P):
        update[i] = -(1.0 - q["m"][c]) / Z
    for j in N:
        update[j] = sum(q["c"][c] * step[j, c] for c in range(Z))
    ex = Explanation("ap", d, x, t, _roles(t), np.array(P, dtype=np.int64), step, q,
                     {"update": update.reshape(shape)},
                     {"loss": float(1.0 - np.mean(q["m"]))},
                     options={"interpolate": bool(interpolate)})
    from .losses import ap_loss

    res = ap_loss(x, t, d, bool(interpolate))
    ex.library = {"loss": res.loss, "update": res.grad}
    return ex


def _explain_gap(scores, labels, delta, gamma, counts):
    from .gap import ClassCounts, _nonnegative_vector, gap_loss

    d = check_delta(delta)
    g = check_nonnegative(gamma, "gamma")
    s = to_array(scores, "scores")
    if s.ndim != 2 or s.shape[1] < 1:
        raise ValueError(f"scores (the logits of GAP) must be 2-D [n, C], one row per RoI and one "
                         f"column per foreground class; got shape {tuple(s.shape)}.")
    _check_size(s.size, "scores")
    x, _, _ = as_logits(s, "scores")
    raise_nonfinite(x, "scores")
    n, C = s.shape
    x = x.astype(np.float64).reshape(n, C)
    y = as_labels(labels, n, C)
    if not ((y >= 0) & (y < C)).any():
        raise ValueError(f"labels hold no foreground label (in [0, {C})): GAP has no positive "
                         f"and there is nothing to explain.")
    if counts is None:
        counts = ClassCounts(C).update(y).counts
    elif isinstance(counts, ClassCounts):
        if counts.num_classes != C:
            raise ValueError(f"counts is a ClassCounts of {counts.num_classes} classes but "
                             f"scores has {C} columns.")
        counts = counts.counts.copy()
    else:
        counts = _nonnegative_vector(to_array(counts, "counts"), "counts", C).copy()
    inv = (1.0 / np.maximum(counts, 1.0)) ** g
    omega = C * inv / (inv.sum() + 1e-9)  # Eq. 9, the official form

    xf = x.reshape(-1)
    role = np.full((n, C), "ign", dtype=object)
    members = {}
    for r in range(n):
        if y[r] < 0:
            continue
        for m in range(C):
            if m == y[r]:
                role[r, m] = f"pos {m}"
                members.setdefault(m, []).append(r * C + m)
            else:
                role[r, m] = "neg"
    role = role.astype(str)
    rf = role.reshape(-1)
    present = sorted(members)
    P = [i for m in present for i in members[m]]
    Nhat = [j for j in range(xf.size) if rf[j] == "neg"]
    own = {i: set(members[i % C]) for i in P}  # a positive is compared with its own class
    step = _step_matrix(xf, P, lambda k, i: rf[k] == "neg" or k in own[i], d)
    col = {i: c for c, i in enumerate(P)}
    names = ("class", "rank+", "FP", "R", "l", "omega", "|P(m)|", "A", "c")
    q = {name: np.zeros(len(P)) for name in names}
    for m in present:
        for i in members[m]:
            c = col[i]
            rank_pos = sum(step[k, c] for k in members[m])  # self included: H(0)
            fp = sum(step[j, c] for j in Nhat)
            R = rank_pos + fp
            A = omega[m] / (len(members[m]) * len(present))
            q["class"][c], q["rank+"][c], q["FP"][c], q["R"][c] = m, rank_pos, fp, R
            q["l"][c], q["omega"][c], q["|P(m)|"][c], q["A"][c] = (fp / R, omega[m],
                                                                  len(members[m]), A)
            q["c"][c] = A / R if fp > EPS else 0.0
    update = np.zeros(xf.size)
    for i in P:
        c = col[i]
        if q["FP"][c] > EPS:
            update[i] = -q["A"][c] * q["l"][c]
    for j in Nhat:
        update[j] = sum(q["c"][col[i]] * step[j, col[i]] for i in P)
    per_class = [np.mean([q["l"][col[i]] for i in members[m]]) for m in present]
    values = {"loss": float(sum(q["A"] * q["l"])), "ranking_error": float(np.mean(per_class))}
    ex = Explanation("gap", d, x, y, role, np.array(P, dtype=np.int64), step, q,
                     {"update": update.reshape(n, C)}, values,
                     options={"gamma": g, "counts": counts, "omega": omega})
    res = gap_loss(x, y, counts, d, g)
    ex.library = {"loss": res.loss, "ranking_error": res.ranking_error, "update": res.grad}
    return ex


def _close(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0)))
    return bool(np.abs(a - b).max(initial=0.0) <= 1e-12 * scale)


def explain(loss, logits, targets, delta=None, *, interpolate=True, gamma=1.0, counts=None):
    r"""Every quantity of the RS, AP or GAP loss of a small input, computed from the definitions.

    The relaxed ranks, errors and updates are computed plainly (Python loops over all pairs, in
    float64), then checked against rankref's exact engine: ``agrees`` tells whether both give
    the same values and updates to 1e-12 relative.  ``print()`` the result for the tables (the
    "Worked example" page of the documentation walks through them).

    Parameters
    ----------
    loss : {"rs", "ap", "gap"}
        RS loss (:func:`rankref.rank_sort_loss`), AP Loss (:func:`rankref.ap_loss`) or the GAP
        loss of ROG (:func:`rankref.gap_loss`).
    logits : array_like
        RS and AP: logits of any shape, ranked as one flat vector.  GAP: the scores ``[n, C]``
        (one row per RoI, one column per foreground class).  At most :data:`MAX_ENTRIES`
        entries.
    targets : array_like
        RS: the logits' shape, -1 (or any value < 0) ignored, 0 negative, IoU in (0, 1]
        positive.  AP: -1, 0 or 1.  GAP: the labels ``[n]``, ``[0, C)`` foreground, ``C``
        background, -1 ignored.  There must be at least one positive.
    delta : float >= 0, optional
        Half-width of the relaxed step; None takes the loss's default (0.5 for RS and GAP,
        1.0 for AP).
    interpolate : bool, default True
        AP only: the interpolated precision (a running maximum), as in the official code.
    gamma : float >= 0, default 1.0
        GAP only: the strength of the class statistic in omega (Eq. 9 of ROG).
    counts : None, ClassCounts or array ``[C]``, optional
        GAP only: the online class counts behind omega; None counts the labels of this batch
        (what :class:`rankref.torch.GAPLoss` holds after its first call).

    Returns
    -------
    Explanation

    Raises
    ------
    ValueError
        For an unknown ``loss``, more than :data:`MAX_ENTRIES` entries, no positive, and
        every input rankref's losses refuse (non-finite logits, targets of another shape or
        out of range, a negative or non-finite delta).

    Examples
    --------
    Two positives (IoU 0.9 and 0.7) and two negatives, at the exact step:

    >>> from rankref.explain import explain
    >>> ex = explain("rs", [2.0, 1.0, 0.5, 0.0], [0.9, 0.0, 0.7, 0.0], delta=0.0)
    >>> print(ex.positives, ex.per_positive["rank+"], ex.per_positive["FP"])
    [0 2] [1. 2.] [0. 1.]
    >>> print(ex.per_positive["rank"], ex.updates["total"].round(4), ex.agrees)
    [1. 3.] [ 0.      0.1667 -0.1667  0.    ] True
    >>> print(ex)  # doctest: +ELLIPSIS
    RS loss (Rank & Sort; Oksuz et al., ICCV 2021)
    4 entries: 2 positives (P), 2 negatives (N), 0 ignored; Z = |P| = 2
    ...
    ranking loss = mean RE(i) = 0.166667
    sorting loss = mean SE(i) = 0
    Check: rankref.rank_sort_loss(logits, targets, delta=0)
      gives the same values and updates (to 1e-12 relative).
    """
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be 'rs', 'ap' or 'gap', got {show(loss)}.")
    if delta is None:
        delta = LOSSES[loss][1]
    if loss != "gap" and counts is not None:
        raise ValueError("counts is for loss='gap' only (the class statistics of ROG).")
    if loss == "rs":
        ex = _explain_rs(logits, targets, delta)
    elif loss == "ap":
        ex = _explain_ap(logits, targets, delta, interpolate)
    else:
        ex = _explain_gap(logits, targets, delta, gamma, counts)
    ex.agrees = all(_close(ex.values[k], ex.library[k]) for k in ex.values) and all(
        _close(ex.updates[k], ex.library[k]) for k in ex.updates)
    return ex


# ----------------------------------------------------------------------------------------------
# the tables


def _num(v):
    """A number as the tables show it: integers without a point, else 6 significant digits."""
    v = float(v)
    if v == 0:
        return "0"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}"


def _grid(headers, rows, indent="  "):
    """Right-aligned columns, two spaces apart, no trailing spaces."""
    cells = [list(headers)] + [[c if isinstance(c, str) else _num(c) for c in r] for r in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(headers))]
    return [(indent + "  ".join(c.rjust(w) for c, w in zip(r, widths))).rstrip() for r in cells]


def _label(ex, k):
    """The name of flat entry k: its index for a vector, (row, column) for a matrix."""
    shape = ex.logits.shape
    if len(shape) <= 1:
        return str(k)
    idx = np.unravel_index(k, shape)
    return "(" + ", ".join(str(int(v)) for v in idx) + ")"


def _step_line(delta):
    if delta > 0:
        return (f"delta = {_num(delta)}: H(u) = clip(u / (2 delta) + 1/2, 0, 1), so H(0) = 1/2 "
                f"(a tie counts half)")
    return "delta = 0: H(u) = 1 if u >= 0 else 0, the exact step (a tie counts as ranked above)"


def _counts_line(ex, name_pos="P", name_neg="N"):
    roles = ex.roles.reshape(-1)
    pos = int(sum(r.startswith("pos") for r in roles))
    neg = int((roles == "neg").sum())
    ign = int((roles == "ign").sum())
    return (f"{roles.size} entries: {pos} positives ({name_pos}), {neg} negatives ({name_neg}), "
            f"{ign} ignored")


def _step_table(ex, value_name):
    """The matrix H(x_k - x_i), or a line saying why it is left out."""
    P = ex.positives
    if len(P) > MAX_STEP_COLUMNS:
        return [f"(the matrix H({value_name}_k - {value_name}_i) is left out: {len(P)} positives, "
                f"more than {MAX_STEP_COLUMNS} columns)"]
    xf, tf, roles = ex.logits.reshape(-1), _flat_targets(ex), ex.roles.reshape(-1)
    headers = ["k", f"{value_name}_k", "t_k", "role"] + [f"i={_label(ex, i)}" for i in P]
    rows = []
    for k in range(xf.size):
        if roles[k] == "ign":
            rows.append([_label(ex, k), xf[k], tf[k], roles[k]] + ["-"] * len(P))
        else:
            rows.append([_label(ex, k), xf[k], tf[k], roles[k]]
                        + ["-" if np.isnan(h) else h for h in ex.step[k]])
    title = (f"H({value_name}_k - {value_name}_i) of entry k against positive i (1: k above i, "
             f"0: below, in between: in the ramp)")
    if ex.loss == "gap":
        headers[2] = "label"
    return [title] + _grid(headers, rows)


def _flat_targets(ex):
    if ex.loss == "gap":  # the label of each entry's row
        n, C = ex.logits.shape
        return np.repeat(ex.targets, C).astype(np.float64)
    return ex.targets.reshape(-1)


def _library_line(ex, call):
    if ex.agrees:
        return f"Check: {call}\n  gives the same values and updates (to 1e-12 relative)."
    diffs = []
    for k in ex.values:
        diffs.append(f"{k} {_num(ex.library[k])}")
    for k in ex.updates:
        d = np.abs(np.asarray(ex.library[k], dtype=np.float64) - ex.updates[k]).max()
        diffs.append(f"max |{k} difference| {d:.3g}")
    return (f"Check: {call}\n  DIFFERS from the table: " + ", ".join(diffs)
            + " (please report this).")


def _rs_text(ex):
    Z = len(ex.positives)
    q = ex.per_positive
    tf, xf = ex.targets.reshape(-1), ex.logits.reshape(-1)
    out = [LOSSES["rs"][0], f"{_counts_line(ex)}; Z = |P| = {Z}", _step_line(ex.delta), ""]
    out += _step_table(ex, "x") + [""]
    rows = [[_label(ex, i), xf[i], tf[i], q["rank+"][c], q["FP"][c], q["rank"][c], q["RE"][c],
             q["c"][c]] for c, i in enumerate(ex.positives)]
    out += ["Ranking, every positive i"]
    out += _grid(["i", "x_i", "t_i", "rank+(i)", "FP(i)", "rank(i)", "RE(i)", "c(i)"], rows)
    out += [
        "  rank+(i) = sum_{k in P} H(x_k - x_i), the positives ranked above i (self: H(0))",
        "  FP(i)    = sum_{j in N} H(x_j - x_i), the negatives ranked above i",
        "  rank(i)  = rank+(i) + FP(i)",
        "  RE(i)    = FP(i) / rank(i), the ranking error",
        "  c(i)     = RE(i) / (FP(i) Z) if FP(i) > 1e-10, else 0: what i sends to the negatives",
        "",
        "Sorting, every positive i",
    ]
    rows = [[_label(ex, i), tf[i], q["cur"][c], q["tgt"][c], q["SE"][c], q["D"][c]]
            for c, i in enumerate(ex.positives)]
    out += _grid(["i", "t_i", "cur(i)", "tgt(i)", "SE(i)", "D(i)"], rows)
    out += [
        "  cur(i) = sum_{k in P} H(x_k - x_i) (1 - t_k) / rank+(i), the current sorting error",
        "  tgt(i) = the same sum over the k with t_k >= t_i, divided by their sum of H(x_k - x_i)",
        "  SE(i)  = cur(i) - tgt(i), the sorting error",
        "  D(i)   = sum_{k in P, t_k < t_i} H(x_k - x_i), positives above i with a lower target",
        "",
        "Updates, every entry k (error-driven gradients: > 0 pushes a logit down, < 0 up)",
    ]
    rows = [[_label(ex, k), xf[k], tf[k], ex.roles.reshape(-1)[k],
             ex.updates["ranking"].reshape(-1)[k], ex.updates["sorting"].reshape(-1)[k],
             ex.updates["total"].reshape(-1)[k]] for k in range(xf.size)]
    out += _grid(["k", "x_k", "t_k", "role", "ranking", "sorting", "total"], rows)
    out += [
        "  ranking: positive i: -RE(i) / Z if FP(i) > 1e-10; negative j: sum_i c(i) H(x_j - x_i)",
        "  sorting: positive i: -SE(i) / Z if D(i) > 1e-10, plus H(x_i - x_p) SE(p) / (D(p) Z)",
        "           from every positive p with t_p > t_i and D(p) > 1e-10",
        "",
        f"ranking loss = mean RE(i) = {_num(ex.values['ranking_loss'])}",
        f"sorting loss = mean SE(i) = {_num(ex.values['sorting_loss'])}",
        _library_line(ex, f"rankref.rank_sort_loss(logits, targets, delta={_num(ex.delta)})"),
    ]
    return "\n".join(out)


def _ap_text(ex):
    Z = len(ex.positives)
    q = ex.per_positive
    tf, xf = ex.targets.reshape(-1), ex.logits.reshape(-1)
    interp = ex.options["interpolate"]
    out = [LOSSES["ap"][0], f"{_counts_line(ex)}; Z = |P| = {Z}",
           _step_line(ex.delta), ""]
    out += _step_table(ex, "x") + [""]
    out += ["Every positive i, by ascending logit (the order of the interpolation)"]
    rows = [[_label(ex, i), xf[i], q["rank+"][c], q["FP"][c], q["rank"][c], q["prec"][c],
             q["m"][c], q["c"][c]] for c, i in enumerate(ex.positives)]
    out += _grid(["i", "x_i", "rank+(i)", "FP(i)", "rank(i)", "prec(i)", "m(i)", "c(i)"], rows)
    out += [
        "  rank+(i) = 1 + sum_{k in P, k != i} H(x_k - x_i), the self term counts 1 (not H(0))",
        "  FP(i)    = sum_{j in N} H(x_j - x_i),  rank(i) = rank+(i) + FP(i)",
        "  prec(i)  = rank+(i) / rank(i), the precision at i",
        ("  m(i)     = max(prec(i), m of the positive before), the interpolated precision"
         if interp else "  m(i)     = prec(i) (interpolate=False)"),
        "  c(i)     = 1 / (rank(i) Z) if m(i) = prec(i), else (1 - m(i)) / (1 - prec(i)) / "
        "(rank(i) Z)",
        "",
        "Updates, every entry k (error-driven gradients: > 0 pushes a logit down, < 0 up)",
    ]
    rows = [[_label(ex, k), xf[k], tf[k], ex.roles.reshape(-1)[k],
             ex.updates["update"].reshape(-1)[k]] for k in range(xf.size)]
    out += _grid(["k", "x_k", "t_k", "role", "update"], rows)
    out += [
        "  positive i: -(1 - m(i)) / Z; negative j: sum_i c(i) H(x_j - x_i)",
        "",
        f"AP loss = 1 - mean m(i) = {_num(ex.values['loss'])}",
        _library_line(ex, f"rankref.ap_loss(logits, targets, delta={_num(ex.delta)}"
                          + ("" if interp else ", interpolate=False") + ")"),
    ]
    return "\n".join(out)


def _gap_text(ex):
    q = ex.per_positive
    n, C = ex.logits.shape
    xf, roles = ex.logits.reshape(-1), ex.roles.reshape(-1)
    present = sorted({int(m) for m in q["class"]})
    sizes = ", ".join(f"{int((q['class'] == m).sum())} of class {m}" for m in present)
    opts = ex.options
    counts = ", ".join(_num(v) for v in opts["counts"])
    out = [
        LOSSES["gap"][0],
        f"scores of {n} RoIs x {C} classes, labels [{', '.join(str(int(v)) for v in ex.targets)}]"
        f": 0..{C - 1} foreground, {C} background, -1 ignored",
        _counts_line(ex, sizes, "Nhat"),
        f"Nhat: the entries that are a positive of no class; classes present Chat = "
        f"{{{', '.join(map(str, present))}}}",
        _step_line(ex.delta),
        "omega_m = C (1/n_m)^gamma / (sum_k (1/n_k)^gamma + 1e-9) with n = max(counts, 1):",
        f"  counts = [{counts}], gamma = {_num(opts['gamma'])}, omega = "
        f"[{', '.join(_num(v) for v in opts['omega'])}]",
        "",
    ]
    out += _step_table(ex, "s") + [""]
    out += ["Every positive i = (r, m): row r labelled m"]
    rows = [[_label(ex, i), xf[i], q["class"][c], q["rank+"][c], q["FP"][c], q["R"][c],
             q["l"][c], q["omega"][c], q["|P(m)|"][c], q["A"][c], q["c"][c]]
            for c, i in enumerate(ex.positives)]
    out += _grid(["i", "s_i", "m", "rank+(i)", "FP(i)", "R(i)", "l(i)", "omega_m", "|P(m)|",
                  "A(i)", "c(i)"], rows)
    out += [
        "  rank+(i) = sum_{k in P(m)} H(s_k - s_i), its own class only (self: H(0))",
        "  FP(i)    = sum_{j in Nhat} H(s_j - s_i),  R(i) = rank+(i) + FP(i)",
        "  l(i)     = FP(i) / R(i), the ranking error",
        "  A(i)     = omega_m / (|P(m)| |Chat|)",
        "  c(i)     = A(i) / R(i) if FP(i) > 1e-10, else 0: what i sends to the negatives",
        "",
        "Updates, every entry k = (r, c) (error-driven gradients: > 0 pushes a score down, < 0 "
        "up)",
    ]
    label_of = np.repeat(ex.targets, C)
    rows = [[_label(ex, k), xf[k], str(int(label_of[k])), roles[k],
             ex.updates["update"].reshape(-1)[k]] for k in range(xf.size)]
    out += _grid(["k", "s_k", "label", "role", "update"], rows)
    out += [
        "  positive i: -A(i) l(i) if FP(i) > 1e-10; negative j: sum_i c(i) H(s_j - s_i)",
        "",
        f"GAP loss L_gap = sum_i A(i) l(i) = {_num(ex.values['loss'])}",
        f"ranking error = mean_{{m in Chat}} mean_{{i in P(m)}} l(i) = "
        f"{_num(ex.values['ranking_error'])}, the value the official code logs",
        _library_line(ex, f"rankref.gap_loss(scores, labels, counts, delta={_num(ex.delta)}, "
                          f"gamma={_num(opts['gamma'])})"),
    ]
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# the command line

_SPLIT = re.compile(r"[,\s]+")


def _finite_number(item, what):
    try:
        value = float(item)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {item!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"every value must be a finite number, got {item!r}")
    return value


def _numbers(text, what="numbers separated by commas"):
    items = [s for s in _SPLIT.split(text.strip()) if s]
    if not items:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    if len(items) > MAX_ENTRIES:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_ENTRIES} values (the tables list every entry and pair; use rankref's "
            f"functions for large inputs), got {len(items)}")
    return [_finite_number(s, what) for s in items]


def _number_list(text):
    return _numbers(text)


_number_list.__name__ = "numbers"


def _label_list(text):
    values = _numbers(text, "integer labels separated by commas")
    bad = [v for v in values if not float(v).is_integer()]
    if bad:
        raise argparse.ArgumentTypeError(f"labels must be integers, got {_num(bad[0])}")
    return [int(v) for v in values]


_label_list.__name__ = "labels"


def _score_rows(text):
    rows = re.split(r"[/;]", text.strip())
    if any(not r.strip() for r in rows):
        raise argparse.ArgumentTypeError(
            f"expected rows of numbers separated by '/', e.g. 2,-1,0.5/0.3,0.1,1.2; got {text!r}")
    parsed = [_numbers(r) for r in rows]
    widths = {len(r) for r in parsed}
    if len(widths) != 1:
        raise argparse.ArgumentTypeError(
            f"every row needs the same number of classes, got rows of {sorted(widths)} values")
    if len(parsed) * len(parsed[0]) > MAX_ENTRIES:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_ENTRIES} scores in all, got {len(parsed)} x {len(parsed[0])}")
    return parsed


_score_rows.__name__ = "score rows"


DESCRIPTION = f"""\
Print the tables of one loss on a small input (at most {MAX_ENTRIES} entries): the relaxed step
H(x_k - x_i) of every pair, rank+(i), FP(i), rank(i), the ranking error RE(i) (for RS also the
sorting error SE(i)) and the update of every entry, computed plainly from the definitions and
checked against rankref's exact engine."""

EPILOG = """\
examples:
  rankref explain --loss rs --logits 2,1,0.5,0 --targets 0.9,0,0.7,0
  rankref explain --loss rs --logits 2,1,0.5,0 --targets 0.9,0,0.7,0 --delta 0
  rankref explain --loss ap --logits 2,1,0.5,0 --targets 1,0,1,0
  rankref explain --loss gap --scores 2,-1,0.5/0.3,0.1,1.2/0.8,-0.5,0 --labels 0,2,3

A list that starts with a minus sign needs '=': --logits=-1,2,0.5 (otherwise argparse
reads -1,2,0.5 as an option)."""


class _Formatter(argparse.RawDescriptionHelpFormatter, _HelpFormatter):
    """rankref's help formatter, with the description and the examples kept as written."""


def add_parser(subparsers):
    """Add the ``explain`` sub-command to the ``rankref`` command line; returns its parser."""
    p = subparsers.add_parser(
        "explain", help="every quantity of RS, AP or GAP loss on your own small input",
        formatter_class=_Formatter, description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--loss", choices=tuple(LOSSES), required=True,
                   help="rs: Rank & Sort loss; ap: AP Loss; gap: the GAP loss of ROG")
    p.add_argument("--logits", type=_number_list, metavar="X1,X2,...",
                   help="rs and ap: the logits, separated by commas")
    p.add_argument("--targets", type=_number_list, metavar="T1,T2,...",
                   help="rs and ap: one target per logit: -1 ignored, 0 negative, a positive's "
                        "IoU in (0, 1] (rs) or 1 (ap)")
    p.add_argument("--scores", type=_score_rows, metavar="ROW/ROW/...",
                   help="gap: the score matrix [n, C], one row per RoI, rows separated by '/' "
                        "and the C class scores of a row by commas (no background column), "
                        "e.g. 2,-1,0.5/0.3,0.1,1.2 is 2 RoIs x 3 classes")
    p.add_argument("--labels", type=_label_list, metavar="Y1,Y2,...",
                   help="gap: one label per row of --scores: 0..C-1 foreground, C background, "
                        "-1 ignored")
    p.add_argument("--delta", type=_at_least(float, 0.0), default=None,
                   help="half-width of the relaxed step (0: the exact step); default: the "
                        "loss's own, 0.5 for rs and gap, 1 for ap")
    p.add_argument("--no-interpolate", action="store_true",
                   help="ap: each positive's own precision instead of the interpolated one")
    p.add_argument("--gamma", type=_at_least(float, 0.0), default=1.0,
                   help="gap: strength of the class statistic in omega (Eq. 9 of ROG)")
    p.add_argument("--counts", type=_number_list, metavar="N1,...,NC",
                   help="gap: the online class counts behind omega, one per class; default: "
                        "the foreground labels of this batch")
    p.set_defaults(explain_parser=p)
    return p


def _plural(count, word, words=None):
    return f"{count} {word if count == 1 else (words or word + 's')}"


def _cli_error(args, message):
    parser = getattr(args, "explain_parser", None)
    if parser is not None:
        parser.error(message)  # usage, then 'rankref explain: error: ...'; exits 2
    raise SystemExit(f"rankref explain: error: {message}")


def _check_cli(args):
    """The cross-option checks, each naming its option; returns the arguments of explain."""
    err = lambda msg: _cli_error(args, msg)  # noqa: E731
    if args.loss == "gap":
        for name in ("logits", "targets"):
            if getattr(args, name) is not None:
                err(f"--{name} is for --loss rs and ap; gap takes --scores and --labels")
        if args.no_interpolate:
            err("--no-interpolate is for --loss ap only")
        if args.scores is None or args.labels is None:
            err("--loss gap needs --scores and --labels")
        n, C = len(args.scores), len(args.scores[0])
        if len(args.labels) != n:
            err(f"--labels has {_plural(len(args.labels), 'value')} but --scores has "
                f"{_plural(n, 'row')}; give one label per row")
        bad = [v for v in args.labels if not -1 <= v <= C]
        if bad:
            err(f"--labels must be in [-1, {C}] (0..{C - 1} foreground, {C} background, -1 "
                f"ignored), got {bad[0]}")
        if not any(0 <= v < C for v in args.labels):
            err(f"--labels has no foreground label (0..{C - 1}): GAP has no positive to explain")
        if args.counts is not None:
            if len(args.counts) != C:
                err(f"--counts has {_plural(len(args.counts), 'value')} but --scores has "
                    f"{_plural(C, 'class', 'classes')}; give one count per class")
            if min(args.counts) < 0:
                err(f"--counts must be >= 0, got {_num(min(args.counts))}")
        return (np.array(args.scores, dtype=np.float64), np.array(args.labels, dtype=np.int64),
                dict(gamma=args.gamma, counts=args.counts))
    for name in ("scores", "labels", "counts"):
        if getattr(args, name) is not None:
            err(f"--{name} is for --loss gap only")
    if args.loss == "rs" and args.no_interpolate:
        err("--no-interpolate is for --loss ap only")
    if args.logits is None or args.targets is None:
        err(f"--loss {args.loss} needs --logits and --targets")
    if len(args.targets) != len(args.logits):
        err(f"--targets has {_plural(len(args.targets), 'value')} but --logits has "
            f"{_plural(len(args.logits), 'value')}; give one target per logit")
    if args.loss == "rs":
        bad = [v for v in args.targets if v > 1]
        if bad:
            err(f"--targets must be -1 (ignored), 0 (negative) or an IoU in (0, 1] "
                f"(positive), got {_num(bad[0])}")
        if not any(v > 0 for v in args.targets):
            err("--targets has no positive (a value in (0, 1]): nothing to explain")
    else:
        bad = [v for v in args.targets if v not in (-1, 0, 1)]
        if bad:
            err(f"--targets for ap must be -1 (ignored), 0 (negative) or 1 (positive), got "
                f"{_num(bad[0])} (IoU targets are for --loss rs)")
        if 1 not in args.targets:
            err("--targets has no positive (1): nothing to explain")
    return (np.array(args.logits, dtype=np.float64), np.array(args.targets, dtype=np.float64),
            dict(interpolate=not args.no_interpolate) if args.loss == "ap" else {})


def run(args):
    """Run ``rankref explain`` on parsed arguments: print the tables, return 0.

    A mistake in the input prints the usage and one line naming the option, and exits with
    status 2 (``SystemExit``)."""
    logits, targets, options = _check_cli(args)
    try:
        ex = explain(args.loss, logits, targets, args.delta, **options)
    except ValueError as exc:  # a rule the checks above missed: still one line, no traceback
        _cli_error(args, str(exc))
    print(ex)
    return 0
