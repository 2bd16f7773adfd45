"""make_buckets on any array module."""
import numpy as np

import rankref
from rankref.buckets import Buckets, _edge_clamped_means, _no_positive_buckets, brs_runs

from ._backend import array_module
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
        return _no_positive_buckets(x, t, shape, xp)
    xpos = x[pos].astype(np.float64)
    if kind == "exact":
        eng = BucketEngine(xp, x, t, xpos, d, full=True)
        edges, counts, offsum = eng.edges, eng.counts, eng.offsum
        bucket = eng.ids
        sums = offsum.copy()
        sums[1:] += counts[1:] * edges
        means = _edge_clamped_means(edges, counts, offsum, xp)
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
