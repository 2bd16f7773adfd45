"""The bucket engine with array primitives (any namespace of :mod:`rankref_gpu._backend`).

The same buckets and the same sums as :class:`rankref._engine.BucketEngine`, exact for every
delta:

* the thresholds ``x_i - delta`` and ``x_i + delta`` of the positives (``x_i`` at delta = 0)
  are exact reals ``s + e`` (TwoSum), sorted by ``(s, e)``;
* a negative's bucket ``b = #{T <= x}`` is ``searchsorted(s, x, "left")`` plus the thresholds of
  the run of equal ``s == x`` whose exact value is at or below ``x`` (``e <= 0``);
* window sums use a static segment tree (:mod:`rankref_gpu._tree`) with local references (a
  bucket's left threshold, a node's leftmost key): only non-negative terms are added;
* the gradient coefficients of a bucket come from the same tree over the positives on
  ``y = -x`` (the positives whose windows hold the bucket are a contiguous range).

The passes over the N logits work on fixed slices with masks (no compaction of the negatives,
no data-dependent size, no device sync): entries that are not needed (non-negatives, and
bucket 0 unless it is asked for) are sent to spare bins that are dropped.  Nothing N-sized is
kept between the binning and the gradient scatter, so the engine's extra memory is
O(P + PASS_CHUNK); the only N-sized arrays of a loss are its outputs.

Reproducibility: integer outputs are exact everywhere, and the tree sums use no atomics.  The
per-bucket offset sums of the binning pass are bitwise reproducible on NumPy and torch CPU
(sequential accumulation, fixed slices); on CUDA they use atomic additions (reproducible to
round-off) unless ``torch.use_deterministic_algorithms(True)`` is on, and on CuPy always.
"""
import numpy as np

from . import _backend
from ._tree import Tree, exact_sum

_SPARE = 1024  # dropped bins of the binning pass (a power of two)


class Thresholds:
    """The exact thresholds of the positives ``xq`` (float64, sorted ascending) for ``d``.

    ``s, e``: float64 (M,) sorted by the real value ``s + e``; ``lo, hi``: int64 (P,)
    ``#{T <= x_i - delta}`` and ``#{T <= x_i + delta}`` (both ``#{T <= x_i}`` at delta = 0).
    """

    def __init__(self, xp, xq, d):
        self.xp = xp
        P = xq.shape[0]
        if d > 0 and P > 0:
            ls, le = exact_sum(xp, xq, -d)
            hs, he = exact_sum(xp, xq, d)
            s_all, e_all = xp.concatenate([ls, hs]), xp.concatenate([le, he])
            order = xp.lexsort([e_all, s_all])
            s, e = s_all[order], e_all[order]
            # #{T <= T_k} is the end of the run of thresholds equal to T_k (equal reals have
            # equal (s, e) pairs)
            new = xp.concatenate([xp.ones(1, dtype=bool), (s[1:] != s[:-1]) | (e[1:] != e[:-1])])
            run = xp.cumsum(new) - 1
            rank = xp.empty(2 * P, dtype=np.int64)
            rank[order] = xp.searchsorted(run, run, side="right")
            self.lo, self.hi = rank[:P], rank[P:]
        else:
            s, e = xq, xp.zeros(P)
            self.lo = self.hi = xp.searchsorted(xq, xq, side="right")
        # each threshold as the smallest float at or above its exact value (as rankref keeps
        # them): for every float v, v >= it exactly when v >= s + e, and these are the edges
        # make_buckets reports; the e <= 0 fix-up below then counts the equal floats
        with np.errstate(over="ignore"):
            s = xp.where(e > 0.0, xp.nextafter(s, xp.full(s.shape, np.inf)), s)
        e = xp.zeros(s.shape)
        self.s, self.e = s, e
        M = s.shape[0]
        # b(v) = #{T <= v} = left + (s[left] == v) * (thresholds e <= 0 of the run at left)
        nonpos = xp.concatenate([xp.zeros(1, dtype=np.int64), xp.cumsum(e <= 0.0)])
        run_end = xp.searchsorted(s, s, side="right")
        self._fix = xp.concatenate([nonpos[run_end] - nonpos[:M], xp.zeros(1, dtype=np.int64)])
        self._s_pad = xp.concatenate([s, xp.full(1, np.inf)])
        # left reference of bucket b >= 1 is s[b - 1] (bucket 0: any finite value, unused)
        self.left_ref = xp.concatenate([s[:1], s])

    def bucket(self, v):
        """``#{T <= v}`` for float64 values ``v`` (exact)."""
        xp = self.xp
        left = xp.searchsorted(self.s, v, side="left")
        return left + xp.where(self._s_pad[left] == v, self._fix[left], 0)


class BucketEngine:
    """Bin the negatives (``t == 0``) of ``x`` against the positives ``xq`` (float64, sorted
    ascending, finite).

    ``sigma`` (a power of two, :func:`rankref._engine.scale_for_delta`) multiplies the logits
    as they are read: ``xq`` and ``d`` must already be multiplied by it.  ``x`` must be finite
    (the callers validate every logit first).  Per-positive inputs and outputs (``c``, ``fp``)
    follow the order of ``xq``.
    """

    def __init__(self, xp, x, t, xq, d, sigma=1.0):
        d = float(d)
        self.xp, self.x, self.t, self.xq, self.d, self.sigma = xp, x, t, xq, d, sigma
        th = Thresholds(xp, xq, d)
        self.th, self.lo, self.hi = th, th.lo, th.hi
        M = th.s.shape[0]
        size = M + 1 + _SPARE
        counts = xp.zeros(size, dtype=np.int64)
        offsum = xp.zeros(size)
        for c0, c1, neg, b, v in self._slices():
            with np.errstate(all="ignore"):  # offsets of entries far away are dropped
                off = v - th.left_ref[b]
            # entries not needed (not negatives, or below every threshold) go to _SPARE
            # dropped bins, spread so that atomic additions on a GPU do not all hit one address
            keep = neg & (b > 0)
            idx = xp.where(keep, b, (xp.arange(c1 - c0) & (_SPARE - 1)) + (M + 1))
            counts += xp.count(idx, size)
            offsum += xp.segment_sum(idx, off, size)
        self.counts, self.offsum = counts[:M + 1], offsum[:M + 1]

    def _slices(self):
        """Yield ``(c0, c1, is_negative, bucket, value)`` for fixed slices of the logits
        (values as float64, multiplied by sigma)."""
        xp = self.xp
        n, step = self.x.shape[0], _backend.PASS_CHUNK
        for c0 in range(0, n, step):
            c1 = min(n, c0 + step)
            v = xp.asarray(self.x[c0:c1], dtype=np.float64)
            if self.sigma != 1.0:
                v = v * self.sigma
            yield c0, c1, self.t[c0:c1] == 0, self.th.bucket(v), v

    @property
    def num_buckets(self):
        return self.th.s.shape[0] + 1

    def fp(self):
        """``FP_i = sum_{negatives j} H(x_j - x_i)`` for every positive (float64)."""
        xp, d, th = self.xp, self.d, self.th
        above = xp.flip(xp.cumsum(xp.flip(self.counts)))  # negatives in buckets >= b, exact
        fp = xp.astype(above[self.hi], np.float64)
        if d > 0:
            M = th.s.shape[0]
            W = xp.reshape(xp.astype(self.counts[1:], np.float64), (M, 1))
            with np.errstate(all="ignore"):  # buckets outside every window are never read
                O = xp.reshape(self.offsum[1:] / d, (M, 1))
            win = Tree(xp, th.s, W, d, O).query(self.lo - 1, self.hi - 1, self.xq)[0]
            fp = fp + 0.5 * win[:, 0]
        return fp

    def coefficients(self, c):
        """Per bucket ``(A, B)``: ``sum_i c_i H(x - x_i) = A[b] + B[b] (x - L_b) / delta`` on
        bucket b (``c >= 0``).  ``A[b]`` adds the positives whose window ends at or below the
        bucket; the window part comes from the tree over the positives on ``y = -x``, whose
        reference is then each node's largest logit."""
        xp, d, th = self.xp, self.d, self.th
        P = self.xq.shape[0]
        M = th.s.shape[0]
        b = xp.arange(1, M + 1)
        below = xp.searchsorted(self.hi, b, side="right")   # #{i : hi_i <= b}
        inside = xp.searchsorted(self.lo, b, side="right")  # #{i : lo_i <= b}
        y = -xp.flip(self.xq)
        tree = Tree(xp, y, xp.reshape(xp.flip(c), (P, 1)), d)
        # positives [below, inside) hold the bucket in their window: [P - inside, P - below)
        win, wsum, pre = tree.query(P - inside, P - below, -th.s, P - below, xp.full(M, P),
                                    weights=True)
        zero = xp.zeros(1)
        A = xp.concatenate([zero, pre[:, 0] + 0.5 * win[:, 0]])
        B = xp.concatenate([zero, 0.5 * wsum[:, 0]]) if d > 0 else xp.zeros(M + 1)
        return A, B

    def scatter(self, c, out, out2=None):
        """Write ``g_j = sum_i c_i H(x_j - x_i)`` into the negatives of the flat ``out`` (and
        ``out2``); other entries are left as they are.  Buckets outside every window read A
        only (never ``x - L_b``, which may overflow there)."""
        xp, d = self.xp, self.d
        A, B = self.coefficients(c)
        ref = self.th.left_ref
        for c0, c1, neg, b, v in self._slices():
            g = A[b]
            if d > 0:
                Bb = B[b]
                with np.errstate(all="ignore"):
                    g = g + xp.where(Bb != 0, Bb * ((v - ref[b]) / d), 0.0)
            g = xp.astype(g, out.dtype)
            out[c0:c1] = xp.where(neg, g, out[c0:c1])
            if out2 is not None:
                out2[c0:c1] = xp.where(neg, g, out2[c0:c1])


def exact_buckets(xp, x, t, xq, d):
    """make_buckets' exact buckets: ``(edges, ids, counts, sums, means)``.  The thresholds are
    not rescaled (beyond the float range they are +-inf), so the ids are exact for every
    delta; sums and means are those of the members' own values (rankref's ``_member_sums``:
    a sum whose partial sums overflow is summed again at a scale, a mean is computed as the sum
    of ``x_j / n_b`` where the sum is beyond the range, and clamped into its members' range)."""
    th = Thresholds(xp, xq, float(d))
    M = th.s.shape[0]
    n = x.shape[0]
    size = M + 1 + _SPARE
    ids = xp.full(n, -1, dtype=np.int64)
    counts = xp.zeros(size, dtype=np.int64)
    sums = xp.zeros(size)
    lo = xp.full(size, np.inf)  # the members' range, for the clamp of the means
    hi = xp.full(size, -np.inf)
    step = _backend.PASS_CHUNK

    def spare(c0, c1):
        return (xp.arange(c1 - c0) & (_SPARE - 1)) + (M + 1)

    for c0 in range(0, n, step):
        c1 = min(n, c0 + step)
        v = xp.asarray(x[c0:c1], dtype=np.float64)
        neg = t[c0:c1] == 0
        b = th.bucket(v)
        ids[c0:c1] = xp.where(neg, b, -1)
        idx = xp.where(neg, b, spare(c0, c1))
        counts += xp.count(idx, size)
        with np.errstate(all="ignore"):
            sums += xp.segment_sum(idx, v, size)
        lo = xp.minimum(lo, xp.segment_min(idx, v, size))
        hi = xp.maximum(hi, xp.segment_max(idx, v, size))
    counts, sums, lo, hi = counts[:M + 1], sums[:M + 1], lo[:M + 1], hi[:M + 1]
    full = counts > 0
    over = full & ~xp.isfinite(sums)
    if xp.any_flags(over)[0]:  # a partial sum overflowed: again at a scale none exceeds
        k = int(xp.to_host(xp.max(counts))).bit_length()
        scaled = xp.zeros(size)
        for c0 in range(0, n, step):
            c1 = min(n, c0 + step)
            v = xp.asarray(x[c0:c1], dtype=np.float64)
            b = ids[c0:c1]
            with np.errstate(all="ignore"):
                scaled += xp.segment_sum(xp.where(b >= 0, b, spare(c0, c1)), v * 2.0**-k, size)
        with np.errstate(all="ignore"):
            sums = xp.where(over, scaled[:M + 1] * 2.0**k, sums)
    with np.errstate(all="ignore"):
        means = xp.where(full, sums / xp.maximum(counts, 1), np.nan)
    far = full & ~xp.isfinite(sums)
    if xp.any_flags(far)[0]:  # the mean of finite values is finite: sum the x_j / n_b
        scaled = xp.zeros(size)
        for c0 in range(0, n, step):
            c1 = min(n, c0 + step)
            v = xp.asarray(x[c0:c1], dtype=np.float64)
            b = ids[c0:c1]
            idx = xp.where(b >= 0, b, spare(c0, c1))
            with np.errstate(all="ignore"):  # entries that are not negatives are dropped
                share = v / xp.astype(counts[xp.maximum(b, 0)], np.float64)
            scaled += xp.segment_sum(idx, share, size)
        means = xp.where(far, scaled[:M + 1], means)
    # the clamp into the members' own range removes the round-off of the sum
    means = xp.where(full, xp.clip(means, lo, hi), np.nan)
    return th.s, ids, counts, sums, means
