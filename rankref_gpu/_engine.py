"""The bucket engine with array primitives (any namespace of :mod:`rankref_gpu._backend`).

The same buckets and the same sums as :class:`rankref._engine.BucketEngine`, exact for every
delta:

* the thresholds ``x_i - delta`` and ``x_i + delta`` of the positives (``x_i`` at delta = 0)
  are exact reals ``s + e`` (TwoSum), sorted by ``(s, e)``, then kept as the smallest float of
  the logits' type at or above them, so a negative's bucket ``b = #{T <= x}`` is
  ``searchsorted(T, x, "right")`` in the logits' own dtype (float32 logits are not copied to
  float64);
* window sums use a static segment tree (:mod:`rankref_gpu._tree`) with local references (a
  bucket's left threshold, a node's leftmost key): only non-negative terms are added;
* the gradient coefficients of a bucket come from the same tree over the positives on
  ``y = -x`` (the positives whose windows hold the bucket are a contiguous range).

The passes over the N logits use masks (no compaction of the negatives, no data-dependent
size, no device sync): entries that are not needed (non-negatives, and bucket 0) are sent to
bins that are dropped.  Each entry's bin (int32 on torch) and its offset from the bin's left
edge (float64) are kept from the binning to the gradient (12 bytes per logit, plus O(P): the
engine's memory; the binning's one temporary, the left edges gathered, takes 8 bytes per logit
while it runs, and the gradient's are bounded by PASS_CHUNK), so the gradient reads them once
instead of searching and subtracting again.
``benchmarks/bench_gpu.py --census`` counts the operators and bytes of these passes
(``docs/gpu_cost.rst``).

Reproducibility: integer outputs are exact everywhere, and the tree sums use no atomics.  The
per-bucket offset sums of the binning pass are bitwise reproducible on NumPy and torch CPU
(sequential accumulation); on CUDA they use atomic additions (reproducible to
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
    ``vdt``: the float type of the values to bin (float64, or float32 for float32 logits):
    each threshold is kept as the smallest value of that type at or above it (held in float64),
    so that ``v >= T`` exactly when ``v >= s`` for every ``v`` of that type.
    """

    def __init__(self, xp, xq, d, vdt=np.float64):
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
            if vdt == np.float32:  # up to float32 (s is now at or above the exact value)
                s32 = xp.astype(s, np.float32)
                up = xp.nextafter(s32, xp.full(s.shape, np.inf, dtype=np.float32))
                s = xp.astype(xp.where(xp.astype(s32, np.float64) < s, up, s32), np.float64)
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
    (the callers validate every logit first).  Per-positive inputs and outputs (``c``, ``fp``,
    ``at_pos``) follow the order of ``xq``; ``pos`` (optional) are the positives' flat indices
    in that order, which lets :meth:`gradient` write their values in the same pass;
    ``ignored=False`` (only with ``pos``) says that no target is negative, so that every entry
    is a negative or one of ``pos`` and no mask of the targets is formed.

    The passes over the N logits are a few array operations each, in the logits' own dtype
    where the comparison is exact (no float64 copy of float32 logits), with int32 bin ids on
    torch, and every gradient entry is written once.  Each entry's bin and its offset from the
    bin's left edge (float64) are kept from the binning to the gradient (12 bytes per logit)
    so that the gradient reads them instead of searching and subtracting again.
    """

    def __init__(self, xp, x, t, xq, d, sigma=1.0, pos=None, ignored=True):
        d = float(d)
        self.xp, self.x, self.t, self.xq, self.d, self.sigma = xp, x, t, xq, d, sigma
        # float32 logits are compared with the thresholds rounded up to float32 (exact: for a
        # float32 v, v >= T exactly when v >= that float); other dtypes, or a rescaled delta,
        # in float64
        f32 = x.dtype == xp.float32 and sigma == 1.0
        self.vdt = np.float32 if f32 else np.float64
        th = Thresholds(xp, xq, d, self.vdt)
        self.th, self.lo, self.hi = th, th.lo, th.hi
        M = th.s.shape[0]
        P = xq.shape[0]
        # bins: _SPARE keys below the first threshold (entries there are dropped, spread by
        # value so that atomic additions on a GPU do not all hit one address), then the
        # thresholds: bin k >= _SPARE + 1 is bucket k - _SPARE.  Entries that are not negatives
        # go to the same bins shifted by S (dropped as well); the positives, when ``pos`` is
        # given, to bins 2 S + their rank.
        self.S = S = M + 1 + _SPARE
        keys = xp.astype(_spare_keys(xp, th.s, d, self.vdt), _dtype(xp, self.vdt))
        # left edge of every bin (float64): bin k >= 1 starts at keys[k - 1]; dropped bins at 0
        left = xp.concatenate([xp.zeros(_SPARE + 1), th.s, xp.zeros(S + P)])
        v = self._values()
        bins = xp.bin_index(keys, v)
        if ignored or pos is None:
            xp.add_masked(bins, t != 0, S)  # not a negative: the dropped copy
        self.pos = pos
        if pos is not None:
            bins[pos] = xp.arange(2 * S, 2 * S + P, dtype=bins.dtype)
        with np.errstate(all="ignore"):  # offsets of dropped entries are never read
            self.offsets = v - xp.take(left, bins)
        self.bins = bins
        size = 2 * S + P
        counts = xp.add_counts(xp.zeros(size, dtype=np.int64), bins)
        offsum = xp.add_sums(xp.zeros(size), bins, self.offsets)
        lo_bin = _SPARE + 1
        self.counts = xp.concatenate([counts[:1], counts[lo_bin:lo_bin + M]])
        self.offsum = xp.concatenate([offsum[:1], offsum[lo_bin:lo_bin + M]])

    def _values(self):
        """The logits in the comparison dtype (times sigma)."""
        xp = self.xp
        v = self.x
        if self.vdt == np.float64 and v.dtype != xp.float64:
            v = xp.astype(v, np.float64)
        if self.sigma != 1.0:
            v = v * self.sigma
        return v

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

    def _per_bin(self, values, at_pos=None):
        """Bucket values (M + 1) onto the bins: dropped bins 0, the positives' bins
        ``at_pos`` (or 0)."""
        xp = self.xp
        P = self.xq.shape[0]
        tail = xp.zeros(P) if at_pos is None else xp.astype(at_pos, np.float64)
        return xp.concatenate([xp.zeros(_SPARE + 1), values[1:], xp.zeros(self.S), tail])

    def gradient(self, c, dtype, at_pos=None):
        """A new flat array of ``dtype``: ``g_j = sum_i c_i H(x_j - x_i)`` on the negatives,
        ``at_pos`` on the positives (registered with ``pos``; 0 without ``at_pos``), 0 on every
        other entry.

        Per bin, ``g = A + K u`` with ``u`` the entry's offset from the bin's left edge and
        ``K = B / delta`` (0 outside every window, so an offset there is never scaled); below
        ``delta = 2**-900`` (where ``B / delta`` could overflow) and for float64 or rescaled
        logits (whose offsets may be infinite), ``u / delta`` is formed first and guarded."""
        xp, d = self.xp, self.d
        if at_pos is not None and self.pos is None:
            raise ValueError("BucketEngine.gradient: at_pos needs the positives (pos=)")
        A, B = self.coefficients(c)
        n = self.x.shape[0]
        A_bins = self._per_bin(A, at_pos)
        if d == 0:  # H is 0 or 1: g = A[bin]
            return xp.astype(xp.take(A_bins, self.bins), dtype)
        plain = d > 2.0**-900 and self.vdt == np.float32 and self.sigma == 1.0
        AK = xp.stack([A_bins, self._per_bin(B / d if plain else B)], axis=1)
        step = _backend.PASS_CHUNK
        out = None
        for c0 in range(0, n, step):
            c1 = min(n, c0 + step)
            coef = xp.take_rows(AK, self.bins[c0:c1])
            u = self.offsets[c0:c1]
            if not plain:
                with np.errstate(all="ignore"):
                    u = xp.where(coef[:, 1] != 0, u / d, 0.0)
            if c1 - c0 == n:
                return xp.addcmul_into(coef[:, 0], coef[:, 1], u, None, dtype)
            if out is None:
                out = xp.empty(n, dtype=dtype)
            xp.addcmul_into(coef[:, 0], coef[:, 1], u, out[c0:c1], dtype)
        return out if out is not None else xp.zeros(0, dtype=dtype)

    def at_positives(self, values, dtype):
        """A new flat array of ``dtype``: ``values`` on the positives (registered with
        ``pos``), 0 elsewhere: one gather from a table of the bins in ``dtype``."""
        xp = self.xp
        table = xp.astype(self._per_bin(xp.zeros(self.th.s.shape[0] + 1), values), dtype)
        return xp.take(table, self.bins)

    def scatter(self, c, out, out2=None):
        """Write ``g_j = sum_i c_i H(x_j - x_i)`` into the negatives of the flat ``out`` (and
        ``out2``) and 0 into every other entry (the callers then set the positives)."""
        g = self.gradient(c, out.dtype)
        n = out.shape[0]
        step = _backend.PASS_CHUNK
        for c0 in range(0, n, step):  # the engine has registered no positives: they got 0
            c1 = min(n, c0 + step)
            out[c0:c1] = g[c0:c1]
            if out2 is not None:
                out2[c0:c1] = g[c0:c1]


def _dtype(xp, vdt):
    return xp.float32 if vdt == np.float32 else xp.float64


def _spare_keys(xp, s, d, vdt):
    """The bin keys: ``_SPARE`` keys below the first threshold ``s[0]`` (geometric steps of
    ``max(delta, |s[0]|, 1) * 2**-20``, doubling every 16 keys), then the thresholds ``s``."""
    if s.shape[0] == 0:
        return s
    scale = max(d, 1.0) * 2.0**-20
    k = xp.arange(_SPARE, 0, -1)
    with np.errstate(all="ignore"):
        steps = xp.exp2(xp.astype(k, np.float64) / 16.0) * scale
        below = xp.minimum(s[:1] - steps * xp.maximum(xp.abs(s[:1]), 1.0), s[:1])
    if vdt == np.float32:  # rounded down to float32 (monotone), never above s[0]
        with np.errstate(over="ignore"):  # keys below -FLT_MAX become -inf: still monotone
            below32 = xp.astype(below, np.float32)
        below = xp.where(xp.astype(below32, np.float64) > below,
                         xp.astype(xp.nextafter(below32, xp.full(below.shape, -np.inf,
                                                                 dtype=np.float32)),
                                   np.float64),
                         xp.astype(below32, np.float64))
    return xp.concatenate([below, s])


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
