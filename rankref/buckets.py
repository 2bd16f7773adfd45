"""Bucket structures: rankref's exact breakpoint buckets and the runs of the published BRS."""
from typing import NamedTuple

import numpy as np

from ._engine import BucketEngine, stable_argsort
from ._validation import check_method, prepare_ranking, raise_nonfinite

__all__ = ["Buckets", "make_buckets"]


class Buckets(NamedTuple):
    """Negatives grouped into buckets along the score line.

    Bucket ``b`` covers ``[edges[b-1], edges[b])`` with ``edges[-1] = -inf`` and
    ``edges[len(edges)] = +inf``; there are ``len(edges) + 1`` buckets, numbered from the lowest
    score up.  Bucket 0 holds the negatives below every breakpoint: they can never be ranked
    above a positive and receive no gradient.
    """

    edges: np.ndarray
    """Sorted breakpoints, float64."""
    bucket: np.ndarray
    """Bucket id of every entry (logits' shape, int64); -1 for entries that are not negatives."""
    counts: np.ndarray
    """Number of negatives per bucket, int64."""
    sums: np.ndarray
    """Sum of the members' logits per bucket, float64."""
    means: np.ndarray
    """Mean logit per bucket (the BRS prototype), float64; NaN for an empty bucket."""


def _offset_means(edges, counts, offsum, lower, upper, xp=np):
    """Bucket means ``edges[b-1] + offsum[b] / counts[b]`` clamped into the members' range
    ``[lower[b], upper[b]]`` (the clamp only removes round-off); NaN for empty buckets."""
    means = xp.full(counts.shape[0], np.nan)
    nz = xp.flatnonzero(counts[1:] > 0) + 1
    means[nz] = xp.clip(edges[nz - 1] + offsum[nz] / counts[nz], lower[nz], upper[nz])
    return means


def _edge_clamped_means(edges, counts, offsum, xp=np):
    """Means of the breakpoint buckets, clamped into the bucket ``[edges[b-1], edges[b])``
    itself (no pass over the members is needed for the round-off clamp)."""
    lower = xp.concatenate([xp.full(1, -np.inf), edges])
    upper = xp.concatenate([xp.nextafter(edges, -np.inf), xp.full(1, np.inf)])
    return _offset_means(edges, counts, offsum, lower, upper, xp)


def _no_positive_buckets(x, t, shape, xp=np):
    """With no positive there are no edges: every negative is in bucket 0."""
    neg = t == 0
    count = xp.reshape(xp.asarray(xp.sum(neg), dtype=xp.int64), (1,))
    total = xp.reshape(xp.sum(xp.asarray(x[neg], dtype=xp.float64)), (1,))
    mean = xp.where(count > 0, total / xp.maximum(count, 1), np.nan)
    return Buckets(xp.zeros(0), xp.asarray(xp.where(neg, 0, -1), dtype=xp.int64).reshape(shape),
                   count, total, mean)


def brs_runs(x, t, xpos, delta, full=False, xp=np):
    """The buckets of the published BRS (Yavuz et al., ECCV 2024): maximal runs of negatives
    between consecutive positives in the sorted order, cut at ``min(x_P) - delta``.

    As published, the relevant logits are sorted (O(N log N)).  Tie rule: a negative tied with
    a positive is placed *above* it (the ``H_0(0) = 1`` rule), which keeps BRS exact at
    ``delta = 0`` even with ties.  The official sort is unstable at ties.

    Returns a dict with the run of every relevant negative and per-bucket statistics, with the
    same numbering as the exact buckets: ``edges = [cut] + sorted(x_P)`` (``sorted(x_P)`` at
    ``delta = 0``), bucket ``b >= 1`` being ``[edges[b-1], edges[b])``.  Only array primitives
    are used, so ``xp`` may be NumPy or CuPy.
    """
    d = float(delta)
    P = xpos.shape[0]
    xs = xp.sort(xpos)
    cut = xs[:1] - d
    edges = xp.concatenate([cut, xs]) if d > 0 else xs
    M = edges.shape[0]
    negmask = t == 0
    rel = xp.flatnonzero(negmask & (x >= cut))
    vals = xp.concatenate([xpos, xp.asarray(x[rel], dtype=xp.float64)])
    # ascending; ties keep the positives (first) below
    order = stable_argsort(vals) if xp is np else xp.argsort(vals, kind="stable")
    is_pos = order < P
    pos_below = xp.cumsum(is_pos)
    neg_order = order[~is_pos] - P  # relevant negatives by ascending logit
    run = pos_below[~is_pos] + (1 if d > 0 else 0)  # bucket of each, ascending
    sorted_vals = vals[order[~is_pos]]
    counts = xp.asarray(xp.bincount(run, minlength=M + 1), dtype=xp.int64)
    offsum = xp.asarray(xp.bincount(run, weights=sorted_vals - edges[run - 1], minlength=M + 1),
                        dtype=xp.float64)
    # members' range per run (runs are contiguous in the sorted order), for the means' clamp
    nz = counts > 0
    lower = xp.full(M + 1, np.nan)
    upper = xp.full(M + 1, np.nan)
    if run.shape[0]:
        b = xp.arange(M + 1)[nz]
        lower[nz] = sorted_vals[xp.searchsorted(run, b, side="left")]
        upper[nz] = sorted_vals[xp.searchsorted(run, b, side="right") - 1]
    means = _offset_means(edges, counts, offsum, lower, upper, xp)
    ids_rel = xp.empty(rel.shape[0], dtype=xp.int64)
    ids_rel[neg_order] = run
    out = {"edges": edges, "rel": rel, "ids_rel": ids_rel, "counts": counts,
           "offsum": offsum, "means": means}
    if full:
        below = xp.flatnonzero(negmask & (x < cut))
        counts[0] = below.shape[0]
        offsum[0] = xp.sum(xp.asarray(x[below], dtype=xp.float64))
        if below.shape[0]:
            means[0] = offsum[0] / counts[0]
    return out


def _member_sums(x, bucket, counts, edges):
    """Per-bucket sums of the members' own values (float64) and means clamped into the range
    of the members (the clamp removes round-off only).  A sum beyond the float range is +-inf;
    the mean is still computed (as the sum of the x_j / n_b)."""
    neg = bucket >= 0
    ids = bucket[neg]
    vals = x[neg].astype(np.float64)
    nb = counts.shape[0]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        sums = np.bincount(ids, weights=vals, minlength=nb).astype(np.float64)  # int64 if empty
        over = ~np.isfinite(sums)
        if over.any():  # a partial sum overflowed: again at a scale no partial sum exceeds
            k = int(counts.max()).bit_length()
            scaled = np.bincount(ids, weights=vals * 2.0**-k, minlength=nb) * 2.0**k
            sums[over] = scaled[over]  # still +-inf where the exact sum is beyond the range
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        far = (counts > 0) & ~np.isfinite(sums)
        if far.any():  # the mean of finite values is finite: sum the x_j / n_b instead
            means[far] = np.bincount(ids, weights=vals / counts[ids], minlength=nb)[far]
    # the clamp into the members' own range removes the round-off of the sum
    lower = np.full(nb, np.inf)
    upper = np.full(nb, -np.inf)
    np.minimum.at(lower, ids, vals)
    np.maximum.at(upper, ids, vals)
    full = counts > 0
    means[full] = np.clip(means[full], lower[full], upper[full])
    return sums, means


def make_buckets(logits, targets, delta=0.5, kind="exact"):
    r"""Group the negatives into buckets, as the bucketed losses see them.

    ``kind="exact"`` (rankref, DESIGN.md section 3): the breakpoints are
    ``E = sorted({x_i - delta, x_i + delta : i in P})`` (``{x_i}`` at ``delta = 0``), at most
    ``2P`` of them.  Between two consecutive breakpoints ``H(x_j - x_i)`` is 0, 1 or affine in
    ``x_j`` for *every* positive, so a bucket's count and sum make FP and the gradient exact for
    every delta.  A negative's bucket is ``searchsorted(E, x_j, side="right")``; a negative
    equal to a positive therefore lands above it.

    ``kind="brs"`` (Yavuz et al., ECCV 2024): the maximal runs of negatives between consecutive
    positives in the sorted order, cut at ``min(x_P) - delta``; ``edges = [cut] + sorted(x_P)``.
    The BRS loss compares positives with the bucket *means*, which is exact only at
    ``delta = 0``.

    Parameters
    ----------
    logits : array_like, any shape
    targets : array_like, same shape (-1 ignored, 0 negative, (0, 1] positive)
    delta : float >= 0, default 0.5
    kind : {"exact", "brs"}

    Returns
    -------
    Buckets
        ``(edges, bucket, counts, sums, means)``.  With no positive there are no edges and every
        negative is in bucket 0.
    """
    check_method(kind, ("exact", "brs"), "make_buckets (argument kind)")
    x, t, pos, shape, _, d = prepare_ranking(logits, targets, delta, False, "make_buckets")
    n = x.shape[0]
    if pos.size == 0:
        raise_nonfinite(x)
        bucket = np.where(t == 0, 0, -1).astype(np.int64)
        counts = np.array([np.count_nonzero(bucket == 0)], dtype=np.int64)
        edges = np.zeros(0)
        sums, means = _member_sums(x, bucket, counts, edges)
        return Buckets(edges, bucket.reshape(shape), counts, sums, means)
    if kind == "exact":
        # counts and ids only (no window sums): exact for every delta without rescaling;
        # a threshold beyond the float range is +-inf
        eng = BucketEngine(x, t, np.sort(x[pos].astype(np.float64)), d)
        edges, counts = eng.edges, eng.counts
        bucket = eng.bucket_ids()
        sums, means = _member_sums(x, bucket, counts, edges)
    else:
        xp = x[pos].astype(np.float64)
        raise_nonfinite(x)
        runs = brs_runs(x, t, xp, d, full=True)
        edges, counts = runs["edges"], runs["counts"]
        bucket = np.full(n, -1, dtype=np.int64)
        bucket[t == 0] = 0
        bucket[runs["rel"]] = runs["ids_rel"]
        sums, means = _member_sums(x, bucket, counts, edges)  # the members' own values
    return Buckets(edges, bucket.reshape(shape), counts, sums, means)
