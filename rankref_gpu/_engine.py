"""The bucket engine with array primitives (any namespace of :mod:`rankref_gpu._backend`).

Same numbering and the same sums as :class:`rankref._engine.BucketEngine`: ``sort`` of the 2P
breakpoints, ``searchsorted`` of every logit, per-bucket counts and offset sums
(``xp.count``/``xp.segment_sum``), ``cumsum``, gathers and ``where``.  The passes over the N
logits work on fixed slices with masks (no compaction of the negatives, no data-dependent size,
no device sync): entries that are not needed (non-negatives, and bucket 0 unless it is asked
for) are sent to spare bins that are dropped.  Nothing N-sized is
kept between the binning and the gradient scatter, so the engine's extra memory is
O(P + PASS_CHUNK); the only N-sized arrays of a loss are its outputs.

Window sums use a ragged expansion of the (positive, bucket) pairs of every window, chunked to
bound memory: each term is non-negative, as in the Cython loops, so nothing cancels.

Reproducibility: integer outputs are exact everywhere.  Float sums are bitwise reproducible on
NumPy and torch CPU (sequential accumulation, fixed slices); on CUDA they use atomic additions
(reproducible to round-off) unless ``torch.use_deterministic_algorithms(True)`` is on, and on
CuPy always.
"""
import numpy as np

from . import _backend

_SPARE = 1024  # dropped bins of the binning pass (a power of two)


class _RaggedPlan:
    """The pairs (i, b), b in [lo_i, hi_i), of every positive, in chunks of about ``budget``
    pairs (default CHUNK).  Planning reads one number back from the device (the total), and
    one small array when there are several chunks; iterating reads nothing."""

    def __init__(self, xp, lo, hi, budget=None):
        budget = budget or _backend.CHUNK
        self.xp, self.lo, self.hi = xp, lo, hi
        P = lo.shape[0]
        lens = hi - lo
        self.ends = xp.cumsum(lens)  # int64, exact
        self.starts = self.ends - lens
        total = int(self.ends[-1]) if P else 0
        self.chunks = []
        if total == 0:
            return
        nchunks = -(-total // budget)
        if nchunks == 1:
            self.chunks = [(0, P, 0, total)]
            return
        # chunk k: the positives whose pairs start in [k budget, (k+1) budget); read back the
        # cuts and the number of pairs before each in one transfer
        c = xp.searchsorted(self.starts, xp.arange(1, nchunks) * budget, side="left")
        before = xp.where(c < P, self.starts[xp.minimum(c, P - 1)], total)
        host = xp.to_host(xp.stack([c, before]))
        cuts = [0] + [int(v) for v in host[0]] + [P]
        at = [0] + [int(v) for v in host[1]] + [total]
        self.chunks = [(i0, i1, at[k], at[k + 1] - at[k])
                       for k, (i0, i1) in enumerate(zip(cuts[:-1], cuts[1:])) if i1 > i0]

    def __iter__(self):
        """Yield ``(i0, i1, rows, cols)``, ``rows`` relative to i0."""
        xp = self.xp
        for i0, i1, base, total in self.chunks:
            if total == 0:
                continue
            k = xp.arange(total)
            ends = self.ends[i0:i1] - base
            rows = xp.searchsorted(ends, k, side="right")
            cols = self.lo[i0:i1][rows] + (k - (self.starts[i0:i1] - base)[rows])
            yield i0, i1, rows, cols


class BucketEngine:
    """Bin the negatives (``t == 0``) of ``x`` against the positives ``xq`` (float64).

    ``x`` must be finite (the callers validate every logit first).  The passes over the N
    logits (binning, gradient scatter) run in fixed slices of ``PASS_CHUNK`` entries and keep
    nothing N-sized between them: each pass recomputes a slice's buckets from ``x`` (one
    ``searchsorted`` into the 2P edges), so the extra memory of the engine is O(P + PASS_CHUNK).
    """

    def __init__(self, xp, x, t, xq, delta, *, full=False):
        d = float(delta)
        self.xp, self.x, self.t = xp, x, t
        self.delta = d
        if d > 0:
            a, e = xq - d, xq + d
            edges = xp.sort(xp.concatenate([a, e]))
        else:
            a = e = xq
            edges = xp.sort(xq)
        M = edges.shape[0]
        self.a, self.edges = a, edges
        self.lo = xp.astype(xp.searchsorted(edges, a, side="right"), np.int64)
        self.hi = xp.astype(xp.searchsorted(edges, e, side="right"), np.int64)
        size = M + 1 + _SPARE
        counts = xp.zeros(size, dtype=np.int64)
        offsum = xp.zeros(size)
        if full:
            self.ids = xp.full(x.shape[0], -1, dtype=np.int64)
        for c0, c1, neg, b, off in self._slices():
            if full:  # bucket 0 (below every edge) holds the raw logits
                off = xp.where(b > 0, off, xp.asarray(x[c0:c1], dtype=np.float64))
                self.ids[c0:c1] = xp.where(neg, b, -1)
                keep = neg
            else:  # bucket 0 is not needed: never in a window
                keep = neg & (b > 0)
            # the others go to _SPARE dropped bins, spread so that atomic additions on a GPU
            # do not all hit one address (most logits of a detector are far below)
            idx = xp.where(keep, b, (xp.arange(c1 - c0) & (_SPARE - 1)) + (M + 1))
            counts += xp.count(idx, size)
            offsum += xp.segment_sum(idx, off, size)
        counts, offsum = counts[:M + 1], offsum[:M + 1]
        self.counts, self.offsum = counts, offsum
        above = xp.astype(xp.flip(xp.cumsum(xp.flip(counts))), np.float64)
        if full:
            above -= counts[0]
        self.above = above
        self._plan = None

    def _slices(self):
        """Yield ``(c0, c1, is_negative, bucket, offset)`` for slices of the logits, where
        ``offset = x - edges[bucket - 1]`` (``x - edges[0]`` in bucket 0)."""
        xp, edges = self.xp, self.edges
        n, step = self.x.shape[0], _backend.PASS_CHUNK
        for c0 in range(0, n, step):
            c1 = min(n, c0 + step)
            x64 = xp.asarray(self.x[c0:c1], dtype=np.float64)
            b = xp.searchsorted(edges, x64, side="right")
            left = b - 1
            left *= left > 0
            yield c0, c1, self.t[c0:c1] == 0, b, x64 - edges[left]

    @property
    def num_buckets(self):
        return self.edges.shape[0] + 1

    def _pairs(self):
        if self._plan is None:
            self._plan = _RaggedPlan(self.xp, self.lo, self.hi)
        return self._plan

    def fp(self):
        xp, d = self.xp, self.delta
        if d <= 0:
            return self.above[self.hi]
        window = xp.zeros(self.a.shape[0])
        for i0, i1, rows, cols in self._pairs():
            terms = self.offsum[cols] + self.counts[cols] * (
                self.edges[cols - 1] - self.a[i0:i1][rows])
            window[i0:i1] = xp.segment_sum(rows, terms, i1 - i0)
        return self.above[self.hi] + window / (2.0 * d)

    def coefficients(self, c):
        xp, d, nb = self.xp, self.delta, self.num_buckets
        A = xp.zeros(nb)
        B = xp.zeros(nb)
        if d > 0:
            for i0, i1, rows, cols in self._pairs():
                ci = c[i0:i1][rows]
                A += xp.segment_sum(cols, ci * (self.edges[cols - 1] - self.a[i0:i1][rows])
                                    / (2.0 * d), nb)
                B += xp.segment_sum(cols, ci / (2.0 * d), nb)
        A += xp.cumsum(xp.segment_sum(self.hi, c, nb))
        return A, B

    def scatter(self, c, out, out2=None):
        """Write ``g_j = A[b] + B[b] (x_j - edges[b-1])`` into the negatives of the flat
        ``out`` (and ``out2``).  Bucket 0 has A = B = 0 (every window starts at a bucket
        >= 1), so negatives below the edges get exactly 0, as the zeroed outputs hold."""
        xp = self.xp
        A, B = self.coefficients(c)
        for c0, c1, neg, b, off in self._slices():
            g = B[b]
            g *= off
            g += A[b]
            g = xp.astype(g, out.dtype)
            out[c0:c1] = xp.where(neg, g, out[c0:c1])
            if out2 is not None:
                out2[c0:c1] = xp.where(neg, g, out2[c0:c1])
