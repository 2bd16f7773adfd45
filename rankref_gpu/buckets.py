"""make_buckets on any namespace."""
import numpy as np

import rankref
from rankref.buckets import Buckets, _edge_clamped_means, _no_positive_buckets, brs_runs

from ._backend import namespace
from ._engine import BucketEngine
from ._mirror import mirror
from ._validation import check_method, prepare_ranking

__all__ = ["make_buckets"]


@mirror(rankref.make_buckets)
def make_buckets(logits, targets, delta=0.5, kind="exact"):
    check_method(kind, ("exact", "brs"), "make_buckets (argument kind)")
    xp = namespace(logits, targets)
    x, t, pos, shape, _, d = prepare_ranking(xp, logits, targets, delta, False, "make_buckets")
    n = x.shape[0]
    if pos.shape[0] == 0:
        return _no_positive_buckets(x, t, shape, xp)
    xpos = xp.astype(x[pos], np.float64)
    if kind == "exact":
        eng = BucketEngine(xp, x, t, xpos, d, full=True)
        edges, counts, offsum = eng.edges, eng.counts, eng.offsum
        bucket = eng.ids
        sums = xp.copy(offsum)
        sums[1:] += counts[1:] * edges
        means = _edge_clamped_means(edges, counts, offsum, xp)
        c0 = counts[:1]  # bucket 0 (below every breakpoint): its raw mean, NaN when empty
        means[:1] = xp.where(c0 > 0, offsum[:1] / xp.maximum(c0, 1), means[:1])
    else:
        runs = brs_runs(x, t, xpos, d, full=True, xp=xp)
        edges, counts, offsum, means = runs["edges"], runs["counts"], runs["offsum"], runs["means"]
        bucket = xp.full(n, -1, dtype=np.int64)
        bucket[t == 0] = 0
        bucket[runs["rel"]] = runs["ids_rel"]
        sums = xp.copy(offsum)
        sums[1:] += counts[1:] * edges
    return Buckets(edges, bucket.reshape(shape), counts, sums, means)
