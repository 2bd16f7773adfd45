"""Bucket structures: rankref's exact threshold buckets and the runs of the published BRS."""
from typing import NamedTuple

import numpy as np

from ._engine import BucketEngine, stable_argsort
from ._validation import check_method, prepare_ranking, raise_nonfinite

__all__ = ["Buckets", "make_buckets"]


class Buckets(NamedTuple):
    """The result of :func:`make_buckets`: the negatives grouped into buckets along the score line.

    Bucket ``b`` covers ``[edges[b-1], edges[b])``, read with ``edges[-1] = -inf`` and
    ``edges[len(edges)] = +inf``: there are ``len(edges) + 1`` buckets, numbered from the lowest
    score up.  Bucket 0 holds the negatives below every threshold: they can never be ranked
    above a positive and receive no gradient.  For ``kind="exact"`` a threshold is an exact
    threshold ``x_i - delta`` or ``x_i + delta``, which a float may not hold, and ``edges`` holds
    the smallest float at or above it: a logit v lies at or above the threshold exactly when
    ``v >= edges[k]`` (:ref:`design-buckets`).

    Attributes
    ----------
    edges : ndarray of float64, shape ``(M,)``
        The sorted thresholds (for ``kind="exact"``, the smallest floats at or above the exact
        thresholds); ``M <= 2P``.
    bucket : ndarray of int64, the logits' shape
        The bucket of every entry, in ``[0, M]``; -1 for entries that are not negatives
        (positives and ignored entries).
    counts : ndarray of int64, shape ``(M + 1,)``
        The number of negatives in each bucket.
    sums : ndarray of float64, shape ``(M + 1,)``
        The sum of the members' logits in each bucket (0 for an empty bucket).
    means : ndarray of float64, shape ``(M + 1,)``
        The mean logit of each bucket, clamped into the bucket (the clamp removes round-off
        only): the prototype that BRS compares positives with.  NaN for an empty bucket.

    Examples
    --------
    >>> import rankref
    >>> b = rankref.make_buckets([2.0, 1.0, 0.9, 1.6, -3.0], [0, 1, 0, 0, 0], delta=0.5)
    >>> print(b.edges, b.bucket, b.counts)
    [0.5 1.5] [ 2 -1  1  2  0] [1 1 2]
    >>> print(b.means)
    [-3.   0.9  1.8]
    """

    edges: np.ndarray
    bucket: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    means: np.ndarray


def brs_runs(x, t, xpos, delta, full=False, xp=np):
    """The buckets of the published BRS (Yavuz et al., ECCV 2024): maximal runs of negatives
    between consecutive positives in the sorted order, cut at ``min(x_P) - delta``.

    As published, the relevant logits are sorted (O(N log N)).  Tie rule: a negative tied with
    a positive is placed *above* it (the ``H_0(0) = 1`` rule), which keeps BRS exact at
    ``delta = 0`` even with ties.  The official sort is unstable at ties.

    Returns a dict with the run of every relevant negative and per-bucket counts, sums of the
    members' own values and means, with the same numbering as the exact buckets: ``edges = [cut] + sorted(x_P)`` (``sorted(x_P)`` at
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
    # per run: the sum of the members' own values, and the mean from the offsets to the run's
    # first member (local, so no digits are lost to a far reference), clamped to the members
    nz = counts > 0
    lower = xp.full(M + 1, np.nan)
    upper = xp.full(M + 1, np.nan)
    if run.shape[0]:
        b = xp.arange(M + 1)[nz]
        lower[nz] = sorted_vals[xp.searchsorted(run, b, side="left")]
        upper[nz] = sorted_vals[xp.searchsorted(run, b, side="right") - 1]
    with np.errstate(over="ignore", invalid="ignore"):
        sums = xp.asarray(xp.bincount(run, weights=sorted_vals, minlength=M + 1),
                          dtype=xp.float64)
        offsum = xp.asarray(xp.bincount(run, weights=sorted_vals - lower[run],
                                        minlength=M + 1), dtype=xp.float64)
        means = xp.full(M + 1, np.nan)
        mean = lower[nz] + offsum[nz] / counts[nz]
        means[nz] = mean
        far = nz & ~xp.isfinite(means)
        if bool(far.any()):  # offsets beyond the float range: the mean as the sum of x_j / n_b
            share = sorted_vals / xp.asarray(counts[run], dtype=xp.float64)
            means[far] = xp.asarray(xp.bincount(run, weights=share, minlength=M + 1),
                                    dtype=xp.float64)[far]
        means[nz] = xp.clip(means[nz], lower[nz], upper[nz])
    ids_rel = xp.empty(rel.shape[0], dtype=xp.int64)
    ids_rel[neg_order] = run
    out = {"edges": edges, "rel": rel, "ids_rel": ids_rel, "counts": counts, "sums": sums,
           "means": means}
    if full:
        below = xp.asarray(x[xp.flatnonzero(negmask & (x < cut))], dtype=xp.float64)
        counts[0] = below.shape[0]
        if below.shape[0]:
            with np.errstate(over="ignore", invalid="ignore"):
                low = xp.min(below)
                sums[0] = xp.sum(below)
                m0 = low + xp.sum(below - low) / counts[0]
                if not bool(xp.isfinite(m0)):  # offsets beyond the float range
                    m0 = xp.sum(below / counts[0])
                means[0] = xp.clip(m0, low, xp.max(below))
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

    ``kind="exact"`` (rankref's bucket engine, :ref:`design-buckets`): the thresholds are the
    thresholds ``sorted({x_i - delta, x_i + delta : i in P})`` (``{x_i}`` at ``delta = 0``), at
    most ``2P`` of them, kept as exact real numbers.  Between two consecutive thresholds
    ``H(x_j - x_i)`` is 0, 1 or affine in ``x_j`` for *every* positive, so a bucket's count and
    sum make FP and the gradient exact for every delta.  A negative's bucket is the number of
    exact thresholds at or below it; so at ``delta = 0`` a negative equal to a positive lands
    above it, and for ``delta > 0`` a negative tied with a positive lands inside its window,
    even when delta is below the logits' resolution.

    ``kind="brs"`` (Yavuz et al., ECCV 2024): the maximal runs of negatives between consecutive
    positives in the sorted order, cut at ``min(x_P) - delta``; ``edges = [cut] + sorted(x_P)``.
    The BRS loss compares positives with the bucket *means*, which is exact only at
    ``delta = 0``.

    Parameters
    ----------
    logits : array_like, any shape
    targets : array_like, same shape (-1 ignored, 0 negative, (0, 1] positive)
    delta : float >= 0, default 0.5
        Half-width of the ramp of the relaxed step (:func:`heaviside`); 0 is the exact step.
    kind : {"exact", "brs"}, default "exact"

    Returns
    -------
    Buckets
        ``(edges, bucket, counts, sums, means)``.  With no positive there are no edges and every
        negative is in bucket 0.

    Examples
    --------
    One positive at 1.0 and four negatives; the exact thresholds are 0.5 and 1.5:

    >>> import rankref
    >>> logits = [2.0, 1.0, 0.9, 1.6, -3.0]
    >>> targets = [0, 1, 0, 0, 0]
    >>> b = rankref.make_buckets(logits, targets, delta=0.5)
    >>> print(b.edges, b.bucket, b.counts)
    [0.5 1.5] [ 2 -1  1  2  0] [1 1 2]

    BRS cuts at ``min(x_P) - delta`` and at the positives instead:

    >>> print(rankref.make_buckets(logits, targets, delta=0.5, kind="brs").edges)
    [0.5 1. ]

    A tie below the logits' resolution: the thresholds ``1 - 1e-300`` and ``1 + 1e-300`` are not
    floats; the edges are the smallest floats at or above them, 1.0 and the next float, and the
    negative at 1.0 lies between them, in bucket 1 (inside the positive's window):

    >>> b = rankref.make_buckets([1.0, 1.0], [1, 0], delta=1e-300)
    >>> print(b.edges.tolist(), b.bucket)
    [1.0, 1.0000000000000002] [-1  1]
    """
    check_method(kind, ("exact", "brs"), "make_buckets", name="kind")
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
        edges, counts, sums, means = runs["edges"], runs["counts"], runs["sums"], runs["means"]
        bucket = np.full(n, -1, dtype=np.int64)
        bucket[t == 0] = 0
        bucket[runs["rel"]] = runs["ids_rel"]
    return Buckets(edges, bucket.reshape(shape), counts, sums, means)
