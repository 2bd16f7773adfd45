"""Relaxed step, stable sorting, relaxed ranks and exact average precision."""
from typing import NamedTuple

import numpy as np

from . import _kernels, _pairs
from ._engine import BucketEngine, rescaled, scale_for_delta, stable_argsort
from ._validation import (
    as_logits,
    as_targets,
    check_delta,
    check_flag,
    check_float64_exact,
    nonfinite_error,
    prepare_ranking,
    raise_nonfinite,
    to_array,
)

__all__ = ["heaviside", "sort_scores", "relaxed_ranks", "RelaxedRanks", "average_precision"]


def heaviside(u, delta):
    r"""The relaxed Heaviside step of ranking-based losses.

    .. math::

        H_\delta(u) = \mathrm{clip}\left(\frac{u}{2\delta} + \frac12,\ 0,\ 1\right)
        \quad (\delta > 0), \qquad H_0(u) = [u \ge 0].

    So ``H_delta(0) = 1/2`` for ``delta > 0`` and ``H_0(0) = 1``: at ``delta = 0`` an entry tied
    with a positive counts as ranked above it.  This is the smoothed step of AP Loss
    (Chen et al., CVPR 2019) and RS Loss (Oksuz et al., ICCV 2021), with ``u = x_j - x_i``.

    Parameters
    ----------
    u : array_like of real numbers
        Score differences; ``+-inf`` are allowed (they give 1 and 0), NaN is not.
    delta : float >= 0
        Half-width of the linear ramp.

    Returns
    -------
    ndarray of float64 with the shape of ``u`` (a float for scalar input).

    Notes
    -----
    Evaluated as ``clip(((u + delta) / delta) / 2, 0, 1)`` (three roundings, so H is exact to a
    few ulps *relative*, near 0 too), with ``u`` and ``delta`` scaled by a power of two for a
    delta above ``2**960``: neither ``2 delta`` nor ``1 / (2 delta)`` is formed and every finite
    delta >= 0 works, from subnormal to the float maximum (:ref:`design-step`).

    Examples
    --------
    >>> import rankref
    >>> print(rankref.heaviside([-1.0, -0.25, 0.0, 0.25, 1.0], delta=0.5))
    [0.   0.25 0.5  0.75 1.  ]
    >>> rankref.heaviside(0.0, delta=0.0)  # the exact step counts a tie as ranked above
    1.0
    """
    return _heaviside(np, u, delta)


def _heaviside(xp, u, delta):
    d = check_delta(delta)
    arr = to_array(u, "u", xp)
    kind = arr.dtype.kind if isinstance(arr.dtype, np.dtype) else xp.dtype_kind(arr.dtype)
    if kind not in "fiu":
        raise ValueError(f"u must be a real numeric array, got dtype {arr.dtype}.")
    check_float64_exact(arr, "u", xp)
    arr = xp.asarray(arr, dtype=xp.float64)
    if bool(xp.isnan(arr).any()):
        raise ValueError("u must not contain NaN (the step is undefined there).")
    if d > 0:
        sigma = scale_for_delta(d)  # u + d must not overflow for a delta above 2**960
        if sigma != 1.0:
            arr, d = arr * sigma, d * sigma
        # u + d is one rounding: exact to a few ulps relative near H = 0 too (no 1/2 + u/(2d))
        with np.errstate(over="ignore"):  # +-inf is right (H = 1 or 0); no 2d is formed
            out = xp.clip(((arr + d) / d) / 2.0, 0.0, 1.0)
    else:
        out = xp.asarray(arr >= 0, dtype=xp.float64)
    # a NumPy 0-d result is a float; other libraries keep their 0-d array (no device sync)
    return float(out) if isinstance(out, (np.ndarray, np.generic)) and out.ndim == 0 else out


def sort_scores(logits, descending=True):
    """Stable argsort of the flattened scores.

    Tie rule: equal scores keep their index order, in both directions, so the result is
    deterministic and identical on every backend.  Logits of any shape are ranked as one flat
    vector (as the official detection heads do); the returned indices index ``logits.ravel()``.

    Parameters
    ----------
    logits : array_like of real numbers (no NaN)
    descending : bool, default True

    Returns
    -------
    ndarray of int64, shape ``(logits.size,)``

    Examples
    --------
    >>> import rankref
    >>> print(rankref.sort_scores([0.3, 0.9, 0.3, 0.1]))  # the two 0.3 keep their order
    [1 0 2 3]
    >>> print(rankref.sort_scores([0.3, 0.9, 0.3, 0.1], descending=False))
    [3 0 2 1]
    """
    return _sort_scores(np, logits, descending)


def _sort_scores(xp, logits, descending):
    descending = check_flag(descending, "descending")
    arr = to_array(logits, "logits", xp)
    kind = arr.dtype.kind if isinstance(arr.dtype, np.dtype) else xp.dtype_kind(arr.dtype)
    if kind not in "fiu":
        raise ValueError(f"logits must be a real numeric array, got dtype {arr.dtype}.")
    flat = arr.reshape(-1)
    if kind == "f" and bool(xp.isnan(flat).any()):
        bad = int(xp.flatnonzero(xp.isnan(flat))[0])
        raise ValueError(f"logits must not contain NaN (flat entry {bad}); NaN has no rank.")
    if not descending:
        return xp.asarray(xp.argsort(flat, kind="stable"), dtype=xp.int64)
    n = flat.shape[0]
    # stable descending order: reverse the stable ascending order of the reversed array
    asc = xp.argsort(xp.flip(flat), kind="stable")
    return xp.asarray(n - 1 - xp.flip(asc), dtype=xp.int64)


class RelaxedRanks(NamedTuple):
    """The result of :func:`relaxed_ranks`: the relaxed ranks of the positives, in index order.

    A named tuple of four arrays, one entry per positive, in the order of the positives' flat
    indices.

    Attributes
    ----------
    pos_index : ndarray of int64
        Flat indices of the positives (``targets > 0``) into ``logits.ravel()``, ascending.
    rank_pos : ndarray of float64
        ``sum_{k in P} H(x_k - x_i)``: the relaxed number of positives ranked at or above i,
        self included (``H(0)``: 1/2 for delta > 0, 1 at delta = 0).
    fp : ndarray of float64
        ``sum_{j in N} H(x_j - x_i)``: the relaxed number of negatives (false positives) ranked
        above i.
    rank : ndarray of float64
        ``rank_pos + fp``, the relaxed rank of i among all non-ignored entries.

    Examples
    --------
    >>> import rankref
    >>> r = rankref.relaxed_ranks([2.0, 1.0, 1.0], [0.0, 1.0, 0.0], delta=0.5)
    >>> print(r.pos_index, r.rank_pos, r.fp, r.rank)  # FP: 1 above, 1/2 for the tie
    [1] [0.5] [1.5] [2.]
    """

    pos_index: np.ndarray
    rank_pos: np.ndarray
    fp: np.ndarray
    rank: np.ndarray


def relaxed_ranks(logits, targets, delta=0.5):
    r"""Relaxed ranks of every positive: among the positives, among the negatives, and overall.

    .. math::

        \mathrm{rank}^+(i) = \sum_{k\in P} H_\delta(x_k - x_i),\quad
        \mathrm{FP}(i) = \sum_{j\in N} H_\delta(x_j - x_i),\quad
        \mathrm{rank}(i) = \mathrm{rank}^+(i) + \mathrm{FP}(i).

    The self term counts ``H(0)`` (1/2 for ``delta > 0``, 1 at ``delta = 0``), as in RS and GAP
    loss.  FP is computed exactly with the bucket engine and ``rank_pos`` with sliding windows
    over the sorted positives, in O(N + P log P) in all, whatever delta
    (:ref:`design-buckets`, :ref:`design-pairs`).

    Parameters
    ----------
    logits : array_like, any shape
    targets : array_like, same shape
        -1 (or any value < 0) ignored, 0 negative, (0, 1] positive.
    delta : float >= 0, default 0.5
        Half-width of the ramp of the relaxed step (:func:`heaviside`); 0 is the exact step.

    Returns
    -------
    RelaxedRanks
        ``(pos_index, rank_pos, fp, rank)``, one entry per positive in index order.

    Examples
    --------
    >>> import numpy as np
    >>> import rankref
    >>> logits = np.array([2.5, 2.0, 1.8, 1.0, 0.2, -2.0])
    >>> targets = np.array([0.0, 0.9, 0.6, 0.0, 0.7, 0.0])
    >>> r = rankref.relaxed_ranks(logits, targets, delta=0.5)
    >>> print(r.pos_index)
    [1 2 4]
    >>> print(r.rank_pos, r.fp, r.rank)
    [0.8 1.2 2.5] [1. 1. 2.] [1.8 2.2 4.5]
    """
    x, t, pos, shape, _, d = prepare_ranking(logits, targets, delta, False, "relaxed_ranks")
    if pos.size == 0:
        raise_nonfinite(x)
        empty = np.zeros(0, dtype=np.float64)
        return RelaxedRanks(pos, empty, empty.copy(), empty.copy())
    order = stable_argsort(x[pos])
    x, xp, d = rescaled(x, pos[order], d)
    fp = np.empty(pos.shape[0])
    rank_pos = np.empty(pos.shape[0])
    fp[order] = BucketEngine(x, t, xp, d).fp()
    rank_pos[order] = _pairs.rank_pos(xp, d)
    return RelaxedRanks(pos, rank_pos, fp, rank_pos + fp)


def average_precision(scores, labels, interpolate=False):
    r"""Exact average precision of a single ranking.

    .. math::

        \mathrm{AP} = \frac{1}{|P|}\sum_{i\in P}
            \frac{\#\{k \in P: s_k \ge s_i\}}{\#\{j: s_j \ge s_i\}}

    Ties count the positive *below* every entry tied with it (the pessimistic ``delta = 0``
    convention of AP Loss), so ``ap_loss(delta=0, interpolate=False) == 1 - AP``.  With
    ``interpolate=True`` each precision is replaced by the maximum precision over the positives
    scored at or below it (the running maximum of AP Loss), and
    ``ap_loss(delta=0, interpolate=True) == 1 - AP``.

    Parameters
    ----------
    scores : array_like of real numbers, any shape (flattened)
    labels : array_like, same shape
        1 (or True) positive, 0 negative, -1 ignored.
    interpolate : bool, default False

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If there is no positive (AP is undefined), or on bad input.

    Examples
    --------
    >>> import rankref
    >>> ap = rankref.average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])
    >>> print(round(ap, 6))  # (1/1 + 2/3) / 2
    0.833333
    >>> print(rankref.average_precision([0.5, 0.5], [1, 0]))  # a tie counts the positive below
    0.5
    """
    interpolate = check_flag(interpolate, "interpolate")
    x, shape, _ = as_logits(scores, name="scores")
    t = as_targets(labels, shape, name="labels", logits_name="scores")
    pos_idx, bad = _kernels.scan_targets(t, True)
    if bad >= 0:
        raise ValueError(
            f"labels must be -1 (ignored), 0 or 1, but flat entry {bad} is {t[bad].item()!r}."
        )
    bad = _kernels.first_nonfinite(x)
    if bad >= 0:
        nonfinite_error(x, bad, name="scores")
    if pos_idx.size == 0:
        raise ValueError(
            "labels has no positive entry, so average precision is undefined. "
            "Skip such rankings or count them separately."
        )
    keep = np.asarray(t) >= 0
    s_all = np.sort(x[keep].astype(np.float64))
    s_pos = np.sort(x[pos_idx].astype(np.float64))
    xp = x[pos_idx].astype(np.float64)
    n_ge = s_all.shape[0] - np.searchsorted(s_all, xp, side="left")
    p_ge = s_pos.shape[0] - np.searchsorted(s_pos, xp, side="left")
    prec = p_ge / n_ge
    if interpolate:
        order = np.argsort(xp, kind="stable")
        prec = np.maximum.accumulate(prec[order])
    return float(prec.mean())
