r"""Ranking-based losses composed on the bucket engine: RS loss (and BRS) and AP loss.

Every loss here is the same computation with different per-positive coefficients: negative j
receives ``g_j = sum_i c_i H(x_j - x_i)`` and positive i receives its own error.  ``FP_i`` and
the scatter of ``c_i`` come from the exact bucket engine (``method="bucketed"``; the "Design"
page of the documentation describes it), from the BRS prototypes (``method="brs"``), or from
the dense oracle (``method="dense"``).

Mapping of the official classes to rankref calls
------------------------------------------------
=====================================================  ==========================================
official class                                         rankref call
=====================================================  ==========================================
``RankSort`` (kemaloksuz/RankSortLoss)                 ``rank_sort_loss(x, t, 0.5, "bucketed")``
``APLoss`` (cccorn/AP-loss; aLRP/RS repos' port)       ``ap_loss(x, t, 1.0, True, "bucketed")``
``BucketedRankSort`` (blisgard/BucketedRanking...)     ``rank_sort_loss(x, t, 0.5, "brs")``
``BucketedAPLoss`` (same repository)                   ``rank_sort_loss(x, t, d, "brs")``, its
                                                       ranking part only (``ranking_loss``,
                                                       ``ranking_grad``): despite the name it is
                                                       RS's ranking term on buckets, not AP Loss
=====================================================  ==========================================
"""
import functools
import math
from typing import NamedTuple

import numpy as np

from . import _pairs
from ._dense import ap_loss_dense, rank_sort_dense
from ._engine import BucketEngine, rescaled, stable_argsort
from ._validation import EPS, check_flag, check_method, prepare_ranking, raise_nonfinite
from .buckets import brs_runs

__all__ = ["RankSortResult", "APLossResult", "rank_sort_loss", "ap_loss"]


class RankSortResult(NamedTuple):
    """The result of :func:`rank_sort_loss`: both loss values and their updates.

    A named tuple: unpack it (``ranking_loss, sorting_loss, ranking_grad, sorting_grad, grad =
    res``) or read its fields by name.

    Attributes
    ----------
    ranking_loss : float
        The ranking loss ``mean_i RE_i = mean_i FP_i / rank_i`` over the positives (0 when there
        is none).
    sorting_loss : float
        The sorting loss ``mean_i SE_i`` over the positives (0 when there is none).
    ranking_grad : ndarray or None
        The error-driven update of the ranking term, one entry per logit (the logits' shape):
        ``-RE_i / Z`` on a positive, ``sum_i c_i H(x_j - x_i)`` on a negative, 0 on ignored
        entries.  Float32 for float16/float32 logits, float64 otherwise.  None when
        ``compute_grad=False``.
    sorting_grad : ndarray or None
        The error-driven update of the sorting term, same shape and dtype; non-zero on
        positives only.  None when ``compute_grad=False``.
    grad : ndarray or None
        ``ranking_grad + sorting_grad``, the update the official code puts on the ranking
        output.  None when ``compute_grad=False``.

    Examples
    --------
    >>> import rankref
    >>> res = rankref.rank_sort_loss([1.0, 0.0, 2.0], [1.0, 0.0, 0.0], delta=0.5)
    >>> print(round(res.ranking_loss, 6), round(res.sorting_loss, 6))
    0.666667 0.0
    >>> print(res.grad)       # the negative above the positive gets the whole update
    [-0.66666667  0.          0.66666667]
    >>> ranking_loss, sorting_loss, ranking_grad, sorting_grad, grad = res
    >>> rankref.rank_sort_loss([1.0, 0.0, 2.0], [1.0, 0.0, 0.0], compute_grad=False).grad is None
    True
    """

    ranking_loss: float
    sorting_loss: float
    ranking_grad: np.ndarray
    sorting_grad: np.ndarray
    grad: np.ndarray


class APLossResult(NamedTuple):
    """The result of :func:`ap_loss`: the loss value and its update.

    A named tuple: ``loss, grad = res`` or ``res.loss``, ``res.grad``.

    Attributes
    ----------
    loss : float
        ``1 - mean_i m_i``, with ``m_i`` the interpolated precision of positive i (the plain
        precision with ``interpolate=False``); 0 when there is no positive.
    grad : ndarray or None
        The error-driven update, one entry per logit (the logits' shape): ``-(1 - m_i) / Z`` on
        a positive, ``sum_i c_i H(x_j - x_i)`` on a negative, 0 on ignored entries.  Float32 for
        float16/float32 logits, float64 otherwise.  None when ``compute_grad=False``.

    Examples
    --------
    >>> import rankref
    >>> loss, grad = rankref.ap_loss([1.0, 0.0, 2.0], [1, 0, 0], delta=1.0)
    >>> print(round(loss, 6), grad)
    0.5 [-0.5  0.   0.5]
    """

    loss: float
    grad: np.ndarray


def _div(num, den, xp=np):
    """num / den where den != 0, 0 elsewhere (no warnings)."""
    safe = xp.where(den != 0, den, 1.0)
    return xp.where(den != 0, num / safe, 0.0)


def quality_scale(tp, xp=np):
    """The power of two ``sigma`` (at most ``2**1000``) that brings the largest quality to
    [1/2, 1] (1 when it is there already): the sorting error is linear in the qualities, so
    ``SE(t) = SE(sigma t) / sigma`` exactly, and tiny qualities (IoUs near 1e-300) do not
    underflow in ``H t``.  A float for NumPy; a 0-d array on the device otherwise (no sync)."""
    if xp is np:
        top = float(tp.max()) if tp.shape[0] else 1.0
        if not 0.0 < top < 0.5:
            return 1.0
        return math.ldexp(1.0, min(1000, -math.frexp(top)[1]))
    top = xp.max(tp)
    k = xp.where((top > 0.0) & (top < 0.5), xp.minimum(-xp.frexp(top)[1], 1000), 0)
    return xp.ldexp(xp.ones(()), k)


def sorting_error(terms, xp=np):
    r"""RS's sorting error from the pair terms of :func:`rankref._pairs.rs_terms`, without the
    cancellation of ``cur - target`` (two ratios of sums of ``1 - t``).  With ``RP`` the
    positives' rank, ``TD`` the mass at ``t_k >= t_i`` and ``D = RP - TD`` the rest,

    .. math::

        \mathrm{SE}_i = \frac{\sum_k H_{ik}(1-t_k)}{RP} - \frac{\sum_{t_k\ge t_i} H_{ik}(1-t_k)}{TD}
        = \frac{D}{RP}\,\frac{\sum_{t_k\ge t_i} H_{ik}(t_k - t_i)}{TD}
          + \frac{\sum_{t_k<t_i} H_{ik}(t_i - t_k)}{RP} \ \ge 0,

    a sum of non-negative terms (0 exactly where D = 0)."""
    rank_pos, excess, deficit, tgt_den, missorted = (terms[:, j] for j in range(5))
    return (excess / tgt_den) * (missorted / rank_pos) + deficit / rank_pos


def _rs_coefficients(fp, terms, xpos, tp, delta, Z, brs_guards,
                     sorting_scatter=_pairs.rs_sorting_scatter, xp=np, sigma=1.0):
    """Per-positive RS quantities from FP and the positive-positive sums (``terms`` of the
    qualities times ``sigma``, :func:`quality_scale`).

    Returns ``(ranking_error, sorting_error, ranking_pos_grad, sorting_pos_grad, c)`` where
    ``c_i`` is the ranking coefficient sent to the negatives.
    """
    rank_pos = terms[:, 0]
    missorted = terms[:, 4]
    rank = rank_pos + fp
    ranking_error = fp / rank
    se = sorting_error(terms, xp)
    if xp is not np or sigma != 1.0:
        se = se / sigma  # (exact: a power of two)
    if brs_guards:  # official BRS: FP = 0 -> 1 and D = 0 -> 1 in the denominators, no gating
        c = (ranking_error / xp.where(fp == 0, 1.0, fp)) / Z
        r_pos = -ranking_error / Z
        w = (se / xp.where(missorted == 0, 1.0, missorted)) / Z
        s_pos = -se / Z
    else:  # official RS: eps gating
        gate_r = fp > EPS
        c = xp.where(gate_r, _div(ranking_error, fp, xp) / Z, 0.0)
        r_pos = xp.where(gate_r, -ranking_error / Z, 0.0)
        gate_s = missorted > EPS
        w = xp.where(gate_s, _div(se, missorted, xp) / Z, 0.0)
        s_pos = xp.where(gate_s, -se / Z, 0.0)
    s_pos = s_pos + sorting_scatter(xpos, tp, xp.ascontiguousarray(w), delta)
    return ranking_error, se, r_pos, s_pos, c


def rank_sort_loss(logits, targets, delta=0.5, method="bucketed", *, compute_grad=True):
    r"""Rank & Sort loss (Oksuz, Cam, Akbas, Kalkan, ICCV 2021) and its bucketed forms.

    For a positive i (``t_i > 0``, the IoU) with relaxed ranks as in :func:`relaxed_ranks`:

    .. math::

        \mathrm{RE}_i = \frac{\mathrm{FP}_i}{\mathrm{rank}_i},\qquad
        \mathrm{SE}_i = \frac{\sum_{k\in P} H_{ik}(1-t_k)}{\mathrm{rank}^+_i}
                      - \frac{\sum_{k: t_k\ge t_i} H_{ik}(1-t_k)}{\sum_{k: t_k\ge t_i} H_{ik}},

    with ``H_ik = H_delta(x_k - x_i)`` (self included, ``H(0)``).  The losses are
    ``mean(RE)`` and ``mean(SE)``.  The gradients are the error-driven updates of the official
    code, normalised by ``Z = |P|``:

    * ranking: if ``FP_i > 1e-10``, positive i gets ``-RE_i/Z`` and negative j gets
      ``sum_i H(x_j - x_i) RE_i / (FP_i Z)``;
    * sorting: with ``D_i = sum_{t_k < t_i} H_ik``, if ``D_i > 1e-10`` positive i gets
      ``-SE_i/Z`` and each positive k with ``t_k < t_i`` gets ``H_ik SE_i / (D_i Z)``.

    Both gradients sum to zero.  IoU ties count as sorted (``t_k >= t_i``).

    Parameters
    ----------
    logits : array_like, any shape
        Ranked as one flat vector (a ``[anchors, classes]`` matrix included), as the official
        heads do.  float16/32/64 and integers are accepted; sums are accumulated in float64.
    targets : array_like, same shape
        -1 (or any value < 0) ignored, 0 negative, IoU in (0, 1] positive.
    delta : float >= 0, default 0.5
        Half-width of the ramp of the relaxed step (:func:`heaviside`); 0 is the exact step.
        Any finite value works, from subnormal to the float maximum.
    method : {"bucketed", "dense", "brs"}, default "bucketed"
        * ``"bucketed"``: exact for every delta, O(N + P log P), no sort of the N logits
          (:ref:`design-buckets`).
        * ``"dense"``: the O(P N) NumPy oracle (:ref:`design-testing`).
        * ``"brs"``: the published Bucketed RS (Yavuz et al., ECCV 2024): the relevant logits
          are sorted, runs of negatives between positives are compared through their mean, with
          the official guards (``FP = 0 -> 1``, ``D = 0 -> 1``) instead of eps gating.  Exact at
          ``delta = 0`` (ties included, negatives tied with a positive are placed above it);
          approximate for ``delta > 0``.
    compute_grad : bool, default True
        False computes the loss values only (no gradient arrays, no scatter pass): the three
        gradient fields of the result are None.  For evaluation under ``torch.no_grad``.

    Returns
    -------
    RankSortResult
        ``(ranking_loss, sorting_loss, ranking_grad, sorting_grad, grad)``; the gradients have the
        logits' shape and dtype (float32 for float16 input, float64 for integers).

    Notes
    -----
    Differences from the official ``RankSort``: with no positive the RS repository's code raises
    (``torch.min`` of an empty tensor) and the BRS repository's returns zeros (it also receives
    its heads' delta in ``loss_weight`` and runs at 0.5); rankref returns zero losses and zero
    gradients.  With no relevant negative the ranking loss
    is 0 and the sorting part is still computed.  Ignored entries get exactly 0.  The official
    backward puts ``ranking_grad + sorting_grad`` on the ranking output only; here both are
    returned (``rankref.torch`` attaches each to its own output).

    Examples
    --------
    Three positives (their IoU as target) among six logits:

    >>> import numpy as np
    >>> import rankref
    >>> logits = np.array([2.5, 2.0, 1.8, 1.0, 0.2, -2.0])
    >>> targets = np.array([0.0, 0.9, 0.6, 0.0, 0.7, 0.0])  # 0 negative, IoU > 0 positive
    >>> res = rankref.rank_sort_loss(logits, targets, delta=0.5)
    >>> print(round(res.ranking_loss, 6), round(res.sorting_loss, 6))
    0.484848 0.068611
    >>> print(np.round(res.grad, 4))  # > 0 pushes a logit down, < 0 pushes it up
    [ 0.4108 -0.2227 -0.0829  0.0741 -0.1793  0.    ]
    >>> bool(abs(res.grad.sum()) < 1e-12)  # the updates sum to zero
    True

    The negative at -2.0 lies below every positive's window and gets no update.  The dense
    oracle gives the same result, and so does BRS here, because each of its buckets holds a
    single negative (BRS compares positives with bucket means):

    >>> dense = rankref.rank_sort_loss(logits, targets, 0.5, method="dense")
    >>> bool(np.abs(dense.grad - res.grad).max() < 1e-12)
    True
    >>> brs = rankref.rank_sort_loss(logits, targets, 0.5, method="brs")
    >>> print(round(brs.ranking_loss, 6))
    0.484848
    """
    check_method(method, ("bucketed", "dense", "brs"), "rank_sort_loss")
    compute_grad = check_flag(compute_grad, "compute_grad")
    x, t, pos, shape, gdt, d = prepare_ranking(logits, targets, delta, False, "rank_sort_loss")
    n = x.shape[0]
    Z = pos.shape[0]
    if Z == 0 or method == "dense":
        raise_nonfinite(x)
        if Z == 0:
            if not compute_grad:
                return RankSortResult(0.0, 0.0, None, None, None)
            zero = np.zeros(shape, dtype=gdt)
            return RankSortResult(0.0, 0.0, zero, zero.copy(), zero.copy())
        rl, sl, rg, sg = rank_sort_dense(x, t, d)
        if not compute_grad:
            return RankSortResult(rl, sl, None, None, None)
        rg = rg.astype(gdt).reshape(shape)
        sg = sg.astype(gdt).reshape(shape)
        return RankSortResult(rl, sl, rg, sg, np.add(rg, sg, out=np.empty(shape, gdt)))

    pos = pos[stable_argsort(x[pos])]  # by ascending logit, ties in index order
    x, xp, d = rescaled(x, pos, d)
    tp = t[pos].astype(np.float64)
    groups = _pairs.groups_of(tp)  # the IoU order, shared by the sorting terms and scatter
    sigma = quality_scale(tp)
    terms = _pairs.rs_terms(xp, tp * sigma if sigma != 1.0 else tp, d, groups)
    if method == "bucketed":
        engine = BucketEngine(x, t, xp, d)
        fp = engine.fp()
    else:
        raise_nonfinite(x)
        runs = brs_runs(x, t, xp, d)
        counts, means = runs["counts"], runs["means"]
        nz = np.flatnonzero(counts[1:] > 0) + 1
        fp = _pairs.prototype_fp(means[nz], counts[nz], xp, d)
    if not compute_grad:
        re = fp / (terms[:, 0] + fp)
        se = sorting_error(terms) / sigma
        return RankSortResult(float(re.mean()), float(se.mean()), None, None, None)
    ranking_grad = np.zeros(n, dtype=gdt)
    grad = np.zeros(n, dtype=gdt)
    sorting_grad = np.zeros(n, dtype=gdt)
    re, se, r_pos, s_pos, c = _rs_coefficients(
        fp, terms, xp, tp, d, Z, method == "brs",
        functools.partial(_pairs.rs_sorting_scatter, groups=groups), sigma=sigma)
    if method == "bucketed":
        engine.scatter(c, ranking_grad, grad)
    else:
        per_member = np.zeros(counts.shape[0])
        per_member[nz] = _pairs.prototype_grad(means[nz], xp, c, d)
        g = per_member[runs["ids_rel"]].astype(gdt)
        ranking_grad[runs["rel"]] = g
        grad[runs["rel"]] = g
    ranking_grad[pos] = r_pos
    sorting_grad[pos] = s_pos
    grad[pos] = ranking_grad[pos] + sorting_grad[pos]
    return RankSortResult(
        float(re.mean()), float(se.mean()), ranking_grad.reshape(shape),
        sorting_grad.reshape(shape), grad.reshape(shape),
    )


def ap_loss(logits, targets, delta=1.0, interpolate=True, method="bucketed", *,
            compute_grad=True):
    r"""AP Loss (Chen et al., CVPR 2019), as in its official code.

    For a positive i, with the self term counting 1 and ``H = H_delta``:

    .. math::

        \mathrm{rank}^+_i = 1 + \sum_{k\in P, k\ne i} H(x_k - x_i),\quad
        \mathrm{prec}_i = \frac{\mathrm{rank}^+_i}{\mathrm{rank}^+_i + \mathrm{FP}_i}.

    Interpolation visits the positives by ascending logit (ties in index order) with a running
    maximum ``m`` of the precision: if ``prec_i >= m`` then ``m = prec_i`` and
    ``c_i = 1/(rank_i Z)``, else ``c_i = (1-m)/(1-prec_i) / (rank_i Z)``.  Negative j gets
    ``sum_i c_i H(x_j - x_i)``, positive i gets ``-(1-m_i)/Z``, and the loss is
    ``1 - mean(m)``.  Without interpolation ``m_i = prec_i``.  There is no eps gating.
    At ``delta = 0`` without interpolation the loss equals ``1 - average_precision``.

    Parameters
    ----------
    logits : array_like, any shape (ranked as one flat vector)
    targets : array_like, same shape, values in {-1 (ignored), 0, 1}
    delta : float >= 0, default 1.0
        Half-width of the ramp of the relaxed step (:func:`heaviside`); 0 is the exact step.
    interpolate : bool, default True
        Use the running maximum of the precision (AP Loss's interpolation); False uses each
        positive's own precision.
    method : {"bucketed", "dense"}, default "bucketed"
        * ``"bucketed"``: exact for every delta, O(N + P log P), no sort of the N logits
          (:ref:`design-buckets`).
        * ``"dense"``: the O(P N) NumPy oracle (:ref:`design-testing`).
    compute_grad : bool, default True
        False computes the loss value only; ``grad`` is then None.

    Returns
    -------
    APLossResult
        ``(loss, grad)``.

    Notes
    -----
    The errors are formed as ``1 - prec_i = FP_i / rank_i`` (and ``1 - m`` as their running
    minimum), never as ``1 - prec``: a small loss (a trained detector's) is as exact as a large
    one, to a few ulps relative, and the updates sum to zero up to round-off of their own size
    (:ref:`numeric-ranges`).
    Without positives the RS and aLRP repositories' ``APLoss`` raises and the BRS repository's
    and AP-Loss's ``AP_loss`` return zeros; rankref returns loss 0 and a zero gradient.
    At ``delta = 0`` the official clamp divides by zero; rankref uses the exact step.
    ``method="bucketed"`` is exact for every delta in O(N + P log P) (:ref:`design-buckets`).

    Examples
    --------
    >>> import numpy as np
    >>> import rankref
    >>> logits = np.array([2.5, 2.0, 1.8, 1.0, 0.2, -2.0])
    >>> labels = np.array([0, 1, 1, 0, 1, 0])  # -1 ignored, 0 negative, 1 positive
    >>> res = rankref.ap_loss(logits, labels, delta=1.0)
    >>> print(round(res.loss, 6))
    0.369714
    >>> print(np.round(res.grad, 4))
    [ 0.2954 -0.1163 -0.1242  0.0743 -0.1293  0.    ]

    At ``delta = 0`` without interpolation the loss is one minus the average precision:

    >>> plain = rankref.ap_loss(logits, labels, delta=0.0, interpolate=False)
    >>> print(round(plain.loss, 6), round(1 - rankref.average_precision(logits, labels), 6))
    0.411111 0.411111
    """
    interpolate = check_flag(interpolate, "interpolate")
    compute_grad = check_flag(compute_grad, "compute_grad")
    if isinstance(method, str) and method == "brs":
        raise ValueError(
            "method='brs' exists for rank_sort_loss only (the BRS repository's BucketedAPLoss "
            "is RS's ranking term). Use method='bucketed' (exact) or 'dense' for ap_loss."
        )
    check_method(method, ("bucketed", "dense"), "ap_loss")
    x, t, pos, shape, gdt, d = prepare_ranking(logits, targets, delta, True, "ap_loss")
    n = x.shape[0]
    Z = pos.shape[0]
    if Z == 0 or method == "dense":
        raise_nonfinite(x)
        if Z == 0:
            return APLossResult(0.0, np.zeros(shape, dtype=gdt) if compute_grad else None)
        loss, g = ap_loss_dense(x, t, d, bool(interpolate))
        return APLossResult(loss, g.astype(gdt).reshape(shape) if compute_grad else None)

    pos = pos[stable_argsort(x[pos])]  # by ascending logit, ties in index order
    x, xp, d = rescaled(x, pos, d)
    engine = BucketEngine(x, t, xp, d)
    fp = engine.fp()
    rank_pos = 1.0 + (_pairs.rank_pos(xp, d) - (0.5 if d > 0.0 else 1.0))  # self counts 1
    rank = rank_pos + fp
    # the errors 1 - prec = FP / rank, formed without the cancellation of 1 - prec; the running
    # maximum of the precision is the running minimum of the error
    err = fp / rank
    e = np.minimum.accumulate(err) if interpolate else err
    if not compute_grad:
        return APLossResult(float(e.mean()), None)
    grad = np.zeros(n, dtype=gdt)
    engine.scatter(ap_coefficients(err, e, rank, Z), grad)
    grad[pos] = -e / Z
    return APLossResult(float(e.mean()), grad.reshape(shape))


def ap_coefficients(err, e, rank, Z, xp=np):
    """AP Loss's per-positive coefficients from the errors ``err = FP / rank`` and their running
    minimum ``e = 1 - m``: ``1 / (rank Z)`` on the running maximum of the precision, else
    ``((1 - m) / (1 - prec)) / (rank Z) = (e / err) / (rank Z)`` (no ``1 - prec`` formed)."""
    on_max = err <= e
    return xp.where(on_max, (1.0 / rank) / Z,
                    ((e / xp.where(on_max, 1.0, err)) / rank) / Z)
