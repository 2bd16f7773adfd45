"""make_buckets on any array module."""
import numpy as np

import rankref
from rankref.buckets import Buckets, _offset_means, brs_runs

from ._backend import array_module, scatter_max, scatter_min
from ._engine import BucketEngine
from ._mirror import mirror
from ._validation import check_method, prepare_ranking

__all__ = ["make_buckets"]


@mirror(rankref.make_buckets)
def make_buckets(logits, targets, delta=0.5, kind="exact"):
    check_method(kind, ("exact", "brs"), "make_buckets (argument kind)")
    xp = array_module(logits, targets)
    x, t, pos, shape, _, d = prepare_ranking(xp, logits, targets, delta, False, "make_buckets")
    n = x.shape[0]
    if pos.size == 0:
        neg = t == 0
        bucket = xp.where(neg, 0, -1).astype(np.int64)
        count = int(neg.sum())
        total = float(x[neg].astype(np.float64).sum())
        means = xp.asarray([total / count if count else np.nan])
        return Buckets(xp.zeros(0), bucket.reshape(shape), xp.asarray([count], dtype=np.int64),
                       xp.asarray([total]), means)
    xpos = x[pos].astype(np.float64)
    if kind == "exact":
        eng = BucketEngine(xp, x, t, xpos, d, full=True)
        edges, counts, offsum = eng.edges, eng.counts, eng.offsum
        bucket = eng.ids
        sums = offsum.copy()
        sums[1:] += counts[1:] * edges
        nb = counts.shape[0]
        lower = xp.full(nb, np.inf)
        upper = xp.full(nb, -np.inf)
        scatter_min(xp, lower, eng.b, eng.xn)  # members' range, for the means' clamp
        scatter_max(xp, upper, eng.b, eng.xn)
        means = _offset_means(edges, counts, offsum, lower, upper, xp)
        if int(counts[0]):
            means[0] = offsum[0] / counts[0]
    else:
        runs = brs_runs(x, t, xpos, d, full=True, xp=xp)
        edges, counts, offsum, means = runs["edges"], runs["counts"], runs["offsum"], runs["means"]
        bucket = xp.full(n, -1, dtype=np.int64)
        bucket[t == 0] = 0
        bucket[runs["rel"]] = runs["ids_rel"]
        sums = offsum.copy()
        sums[1:] += counts[1:] * edges
    return Buckets(edges, bucket.reshape(shape), counts, sums, means)
