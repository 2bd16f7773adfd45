"""rank_sort_loss (RS, BRS) and ap_loss on any namespace."""
import numpy as np

import rankref
from rankref._engine import scale_for_delta
from rankref.buckets import brs_runs
from rankref._validation import check_flag
from rankref.losses import (APLossResult, RankSortResult, _rs_coefficients, ap_coefficients,
                            quality_scale, sorting_error)

from . import _pairs
from ._backend import namespace
from ._dense import ap_loss_dense, rank_sort_dense
from ._engine import BucketEngine
from ._mirror import LOSS_VALUES, mirror
from ._validation import check_method, prepare_ranking

__all__ = ["rank_sort_loss", "ap_loss"]


def sorted_positives(xp, x, pos, d):
    """The positives by ascending logit (ties in index order), and the power of two by which
    logits and delta are multiplied for a delta above 2**960 (the relaxed step is invariant).

    Returns ``(pos, order, xq, d, sigma)``: ``pos`` sorted (``pos[order]`` of the input),
    ``xq`` their logits as float64 times sigma, ``d`` times sigma."""
    xpos = x[pos]  # one gather of the positives' logits
    order = xp.argsort(xpos)
    pos = pos[order]
    sigma = scale_for_delta(d)
    xq = xp.astype(xpos[order], np.float64)
    if sigma != 1.0:
        xq = xq * sigma
    return pos, order, xq, d * sigma, sigma


def _brs_fp(xp, x, t, xq, d, sigma):
    if sigma != 1.0:
        x = xp.astype(x, np.float64) * sigma  # as rankref: a float64 copy for delta > 2**960
    runs = brs_runs(x, t, xq, d, xp=xp)
    counts, means = runs["counts"], runs["means"]
    nz = xp.flatnonzero(counts[1:] > 0) + 1
    fp = _pairs.prototype_fp(xp, means[nz], xp.astype(counts[nz], np.float64), xq, d)
    return runs, nz, fp


@mirror(rankref.rank_sort_loss, LOSS_VALUES)
def rank_sort_loss(logits, targets, delta=0.5, method="bucketed", *, compute_grad=True):
    check_method(method, ("bucketed", "dense", "brs"), "rank_sort_loss")
    compute_grad = check_flag(compute_grad, "compute_grad")
    xp = namespace(logits, targets)
    x, t, pos, shape, gdt, d, ignored = prepare_ranking(xp, logits, targets, delta, False,
                                                        "rank_sort_loss", with_ignored=True)
    n = x.shape[0]
    Z = pos.shape[0]
    if Z == 0:
        zero = xp.scalar(0.0)
        if not compute_grad:
            return RankSortResult(zero, xp.scalar(0.0), None, None, None)
        g = xp.zeros(shape, dtype=gdt)
        return RankSortResult(zero, xp.scalar(0.0), g, xp.copy(g), xp.copy(g))
    if method == "dense":
        rl, sl, rg, sg = rank_sort_dense(xp, x, t, d)
        if not compute_grad:
            return RankSortResult(xp.scalar(rl), xp.scalar(sl), None, None, None)
        rg = xp.astype(rg, gdt).reshape(shape)
        sg = xp.astype(sg, gdt).reshape(shape)
        return RankSortResult(xp.scalar(rl), xp.scalar(sl), rg, sg,
                              xp.asarray(rg + sg).reshape(shape))  # NumPy: 0-d stays an array
    pos, _, xq, d, sigma = sorted_positives(xp, x, pos, d)
    tp = xp.astype(t[pos], np.float64)
    # the IoU groups (tree path only), shared by the sorting terms and the sorting scatter
    groups = None if _pairs.use_dense(xp, Z) else _pairs.Groups.of(xp, tp)
    qs = quality_scale(tp, xp)  # tiny IoUs: the sorting terms of the qualities times qs
    terms = _pairs.rs_terms(xp, xq, tp * qs, d, groups)  # (exact: a power of two)
    if method == "bucketed":
        engine = BucketEngine(xp, x, t, xq, d, sigma, pos=pos, ignored=ignored)
        fp = engine.fp()
    else:
        runs, nz, fp = _brs_fp(xp, x, t, xq, d, sigma)
    if not compute_grad:
        re = fp / (terms[:, 0] + fp)
        se = sorting_error(terms, xp) / qs
        return RankSortResult(xp.scalar(xp.mean(re)), xp.scalar(xp.mean(se)), None, None, None)
    def scatter(xq_, tp_, w, dd):
        return _pairs.rs_sorting_scatter(xp, xq_, tp_, w, dd, groups)

    re, se, r_pos, s_pos, c = _rs_coefficients(fp, terms, xq, tp, d, Z, method == "brs",
                                               scatter, xp, qs)
    if method == "bucketed":  # each gradient written once, the positives in the same pass
        ranking_grad = engine.gradient(c, gdt, at_pos=r_pos)
        sorting_grad = engine.at_positives(s_pos, gdt)
        grad = ranking_grad + sorting_grad
        return RankSortResult(
            xp.scalar(xp.mean(re)), xp.scalar(xp.mean(se)), ranking_grad.reshape(shape),
            sorting_grad.reshape(shape), grad.reshape(shape),
        )
    ranking_grad = xp.zeros(n, dtype=gdt)
    grad = xp.zeros(n, dtype=gdt)
    sorting_grad = xp.zeros(n, dtype=gdt)
    per_member = xp.zeros(runs["counts"].shape[0])  # BRS: one gradient per run
    per_member[nz] = _pairs.prototype_grad(xp, runs["means"][nz], xq, c, d)
    g = xp.astype(per_member[runs["ids_rel"]], gdt)
    ranking_grad[runs["rel"]] = g
    grad[runs["rel"]] = g
    ranking_grad[pos] = xp.astype(r_pos, gdt)
    sorting_grad[pos] = xp.astype(s_pos, gdt)
    grad[pos] = ranking_grad[pos] + sorting_grad[pos]
    return RankSortResult(
        xp.scalar(xp.mean(re)), xp.scalar(xp.mean(se)), ranking_grad.reshape(shape),
        sorting_grad.reshape(shape), grad.reshape(shape),
    )


@mirror(rankref.ap_loss, LOSS_VALUES)
def ap_loss(logits, targets, delta=1.0, interpolate=True, method="bucketed", *,
            compute_grad=True):
    interpolate = check_flag(interpolate, "interpolate")
    compute_grad = check_flag(compute_grad, "compute_grad")
    if isinstance(method, str) and method == "brs":
        raise ValueError(
            "method='brs' exists for rank_sort_loss only (the BRS repository's BucketedAPLoss "
            "is RS's ranking term). Use method='bucketed' (exact) or 'dense' for ap_loss."
        )
    check_method(method, ("bucketed", "dense"), "ap_loss")
    xp = namespace(logits, targets)
    x, t, pos, shape, gdt, d, ignored = prepare_ranking(xp, logits, targets, delta, True,
                                                        "ap_loss", with_ignored=True)
    n = x.shape[0]
    Z = pos.shape[0]
    if Z == 0:
        return APLossResult(xp.scalar(0.0), xp.zeros(shape, dtype=gdt) if compute_grad else None)
    if method == "dense":
        loss, g = ap_loss_dense(xp, x, t, d, bool(interpolate))
        return APLossResult(xp.scalar(loss),
                            xp.astype(g, gdt).reshape(shape) if compute_grad else None)
    pos, _, xq, d, sigma = sorted_positives(xp, x, pos, d)
    engine = BucketEngine(xp, x, t, xq, d, sigma, pos=pos, ignored=ignored)
    fp = engine.fp()
    # the self term counts 1: remove H(0) from the static sum
    rank_pos = 1.0 + (_pairs.rank_pos(xp, xq, d) - (0.5 if d > 0 else 1.0))
    rank = rank_pos + fp
    err = fp / rank  # 1 - prec without cancellation; its running minimum is 1 - m
    e = -xp.cummax(-err) if interpolate else err
    if not compute_grad:
        return APLossResult(xp.scalar(xp.mean(e)), None)
    grad = engine.gradient(ap_coefficients(err, e, rank, Z, xp), gdt, at_pos=-e / Z)
    return APLossResult(xp.scalar(xp.mean(e)), grad.reshape(shape))
