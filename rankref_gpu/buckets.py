"""make_buckets on any namespace."""
import numpy as np

import rankref
from rankref.buckets import Buckets, brs_runs

from ._backend import namespace
from ._engine import exact_buckets
from ._mirror import mirror
from ._validation import check_method, prepare_ranking

__all__ = ["make_buckets"]


@mirror(rankref.make_buckets)
def make_buckets(logits, targets, delta=0.5, kind="exact"):
    check_method(kind, ("exact", "brs"), "make_buckets", name="kind")
    xp = namespace(logits, targets)
    x, t, pos, shape, _, d = prepare_ranking(xp, logits, targets, delta, False, "make_buckets")
    n = x.shape[0]
    xpos = xp.astype(x[pos], np.float64)
    if kind == "exact" or pos.shape[0] == 0:
        # ids and counts without rescaling (exact for every delta; a threshold beyond the
        # float range is +-inf), sums and means of the members' own values; with no positive
        # there is no threshold and every negative is in bucket 0
        edges, bucket, counts, sums, means = exact_buckets(xp, x, t, xp.sort(xpos), d)
    else:
        runs = brs_runs(x, t, xpos, d, full=True, xp=xp)
        edges, counts, sums, means = runs["edges"], runs["counts"], runs["sums"], runs["means"]
        bucket = xp.full(n, -1, dtype=np.int64)
        bucket[t == 0] = 0
        bucket[runs["rel"]] = runs["ids_rel"]
    return Buckets(edges, bucket.reshape(shape), counts, sums, means)
