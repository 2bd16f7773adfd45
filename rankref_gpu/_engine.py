"""The bucket engine of DESIGN.md section 3 with array primitives shared by NumPy and CuPy:
``sort`` of the 2P breakpoints, ``searchsorted``, ``bincount`` with weights, ``cumsum``, gathers
and ``where``.  Same numbering and the same sums as :class:`rankref._engine.BucketEngine`.

Window sums use a ragged expansion of the (positive, bucket) pairs of every window, chunked to
bound memory, and ``bincount``: each term is non-negative, as in the Cython loops, so nothing
cancels.  On CuPy, ``bincount`` with weights accumulates with atomic additions, so float sums
can differ in the last bits from run to run (integer outputs are exact).
"""
import numpy as np

from ._backend import CHUNK, to_host
from ._validation import nonfinite_error


def _ragged(xp, lo, hi, budget=CHUNK):
    """Yield ``(i0, i1, rows, cols)``: the pairs (i, b), b in [lo_i, hi_i), of positives
    [i0, i1), with ``rows`` relative to i0."""
    lens = to_host(hi - lo)
    P = lens.shape[0]
    i0 = 0
    while i0 < P:
        total, i1 = 0, i0
        while i1 < P and (i1 == i0 or total + lens[i1] <= budget):
            total += int(lens[i1])
            i1 += 1
        if total:
            ends = xp.cumsum(hi[i0:i1] - lo[i0:i1])
            k = xp.arange(total)
            rows = xp.searchsorted(ends, k, side="right")
            cols = lo[i0:i1][rows] + (k - (ends - (hi[i0:i1] - lo[i0:i1]))[rows])
            yield i0, i1, rows, cols
        i0 = i1


class BucketEngine:
    """Bin the negatives (``t == 0``) of ``x`` against the positives ``xq`` (float64)."""

    def __init__(self, xp, x, t, xq, delta, *, full=False, name="logits"):
        d = float(delta)
        self.xp = xp
        self.delta = d
        if d > 0:
            a, e = xq - d, xq + d
            edges = xp.sort(xp.concatenate([a, e]))
        else:
            a = e = xq
            edges = xp.sort(xq)
        M = edges.shape[0]
        self.a, self.edges = a, edges
        self.lo = xp.searchsorted(edges, a, side="right").astype(np.int64)
        self.hi = xp.searchsorted(edges, e, side="right").astype(np.int64)
        self.neg = xp.flatnonzero(t == 0)
        xn = x[self.neg].astype(np.float64)
        bad = xp.flatnonzero(~xp.isfinite(xn))
        if bad.size:
            nonfinite_error(x, int(self.neg[int(bad[0])]), name)
        self.xn = xn
        self.b = xp.searchsorted(edges, xn, side="right")
        inside = self.b > 0
        off = xp.where(inside, xn - edges[xp.maximum(self.b - 1, 0)], xn if full else 0.0)
        counts = xp.bincount(self.b, minlength=M + 1).astype(np.int64)
        if not full:
            counts[0] = 0
        self.counts = counts
        self.offsum = xp.bincount(self.b, weights=off, minlength=M + 1).astype(np.float64)
        above = xp.cumsum(counts[::-1])[::-1].astype(np.float64)
        if full:
            above -= counts[0]
        self.above = above
        if full:
            ids = xp.full(x.shape[0], -1, dtype=np.int64)
            ids[self.neg] = self.b
            self.ids = ids

    @property
    def num_buckets(self):
        return self.edges.shape[0] + 1

    def fp(self):
        xp, d = self.xp, self.delta
        if d <= 0:
            return self.above[self.hi]
        window = xp.zeros(self.a.shape[0])
        for i0, i1, rows, cols in _ragged(xp, self.lo, self.hi):
            terms = self.offsum[cols] + self.counts[cols] * (
                self.edges[cols - 1] - self.a[i0:i1][rows])
            window[i0:i1] = xp.bincount(rows, weights=terms, minlength=i1 - i0)
        return self.above[self.hi] + window / (2.0 * d)

    def coefficients(self, c):
        xp, d, nb = self.xp, self.delta, self.num_buckets
        A = xp.zeros(nb)
        B = xp.zeros(nb)
        if d > 0:
            for i0, i1, rows, cols in _ragged(xp, self.lo, self.hi):
                ci = c[i0:i1][rows]
                A += xp.bincount(cols, weights=ci * (self.edges[cols - 1] - self.a[i0:i1][rows])
                                 / (2.0 * d), minlength=nb)
                B += xp.bincount(cols, weights=ci / (2.0 * d), minlength=nb)
        A += xp.cumsum(xp.bincount(self.hi, weights=c, minlength=nb))
        return A, B

    def scatter(self, c, out, out2=None):
        A, B = self.coefficients(c)
        keep = self.b > 0
        b = self.b[keep]
        g = (A[b] + B[b] * (self.xn[keep] - self.edges[b - 1])).astype(out.dtype)
        out[self.neg[keep]] = g
        if out2 is not None:
            out2[self.neg[keep]] = g
