"""The bucket engine: exact threshold buckets for every delta (see the "Design" docs page).

Every ranking loss of rankref (AP, RS, GAP) sends negative j the gradient
``g_j = sum_i c_i H(x_j - x_i)`` and needs ``FP_i = sum_j H(x_j - x_i)``.  The thresholds
``x_i - delta`` and ``x_i + delta`` of the positives (``x_i`` at delta = 0) are kept as exact
reals ``s + e`` (``s`` a float, ``e`` its exact rounding error), so every bucket
``[T_{b-1}, T_b)`` holds exactly the negatives on which ``H(x_j - x_i)`` is 0, 1 or affine for
every positive i, whatever delta (ties below the logits' resolution included).

Cost: sorting the 2P thresholds, one pass over N that histograms the negatives (no sort of N),
O(P log P) window sums on a segment tree (only non-negative terms are added), and one pass over
N that writes the gradient.
"""
import math
import os

import numpy as np

from . import _kernels
from ._validation import nonfinite_error

__all__ = ["BucketEngine", "Thresholds", "stable_argsort", "two_sum", "scale_for_delta", "rescaled", "threads_for"]

_MAX_CELLS = 1 << 22
# Sizes below which a kernel runs on one thread: a parallel region costs a wake-up of every
# thread, and on a busy machine a descheduled thread holds up the whole region.  Measured with
# benchmarks/bench_ranking.py --loaded (see the Speed section of the docs).
PARALLEL_MIN_N = 1 << 21
_SEGMENT_MIN = 1 << 19       # entries per binning segment
_HIST_BUDGET = 1 << 22       # private histogram entries in all
# delta above which the problem is rescaled by a power of two (so that sums of offsets, 2 delta
# and x +- delta stay finite); below _TINY_DELTA, 1/delta is not used (it would overflow).
_HUGE_DELTA = 2.0 ** 960
_TINY_DELTA = 1e-300


def _idle_cpus():
    """CPUs this process may use that no other runnable thread is using right now.

    An OpenMP parallel region ends at a barrier that waits for every thread of the team, so on a
    busy machine one descheduled thread holds up the whole call (measured: 2x slower than one
    thread with 3 busy processes on 2 cores).  Linux reports the runnable threads of the whole
    machine in /proc/stat ("procs_running", this thread included); elsewhere every CPU counts as
    idle."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"procs_running"):
                    return max(1, cpus - (int(line.split()[1]) - 1))
    except (OSError, ValueError, IndexError):
        pass
    return cpus


def threads_for(n):
    """Threads a kernel over ``n`` entries may use: one below ``PARALLEL_MIN_N`` entries (a
    parallel region does not pay off there), else rankref's thread count capped by the CPUs
    idle right now.  Results never depend on it."""
    if n < PARALLEL_MIN_N:
        return 1
    want = _kernels.get_num_threads()
    return min(want, _idle_cpus()) if want > 1 else 1


def stable_argsort(a):
    """``np.argsort(a, kind="stable")`` (ties in index order) from NumPy's much faster
    unstable argsort: only runs of equal values are re-sorted, by (run, index) as one int64."""
    order = np.argsort(a)
    n = a.shape[0]
    if n < 2:
        return order.astype(np.int64)
    v = a[order]
    new = v[1:] != v[:-1]
    if new.all():
        return order.astype(np.int64)
    run = np.concatenate([[0], np.cumsum(new)])
    return np.sort(run * n + order) % n


def two_sum(a, b):
    """Error-free sum: ``s = fl(a + b)`` and ``e`` with ``s + e == a + b`` exactly (Knuth)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def scale_for_delta(delta):
    """The power of two ``sigma`` by which logits and delta are multiplied before binning:
    1 unless delta > 2**960, then ``2**-floor(log2(delta))`` (so delta * sigma is in [1, 2)).
    The relaxed step is invariant under this scaling, so every output is unchanged."""
    if delta > _HUGE_DELTA:
        return math.ldexp(1.0, -math.frexp(delta)[1] + 1)
    return 1.0


def rescaled(x, pos, delta):
    """``(x, x[pos] as float64, delta)``, multiplied by :func:`scale_for_delta` (a float64 copy
    of ``x`` is made only for a delta above 2**960)."""
    xpos = x[pos].astype(np.float64)
    sigma = scale_for_delta(delta)
    if sigma == 1.0:
        return x, xpos, delta
    return x.astype(np.float64) * sigma, xpos * sigma, delta * sigma


def ceiling(s, e):
    """The smallest float at or above the exact real ``s + e`` (``s`` rounded to nearest, ``e``
    its rounding error): ``s`` where ``e <= 0``, the next float up where ``e > 0`` (+inf just
    above the largest float).  For every float v, ``v >= ceiling  <=>  v >= s + e``, so
    comparisons with it are exact."""
    with np.errstate(over="ignore"):
        return np.where(e > 0.0, np.nextafter(s, np.inf), s)


class Thresholds:
    """The exact thresholds of positives ``xq`` (float64, sorted ascending) for ``delta``.

    Attributes
    ----------
    s : float64 array of length M, sorted: each threshold ``x_i - delta``, ``x_i + delta``
        (``x_i`` at delta = 0) as the smallest float at or above its exact value, so that a
        float v lies at or above a threshold exactly when ``v >= s``.
    lo, hi : int64 arrays, one per positive: ``#{T <= x_i - delta}`` and ``#{T <= x_i + delta}``
        (both ``#{T <= x_i}`` at delta = 0); non-decreasing.
    """

    def __init__(self, xq, delta):
        P = xq.shape[0]
        if delta > 0.0:
            with np.errstate(over="ignore", invalid="ignore"):
                lo_s, lo_e = two_sum(xq, -delta)
                hi_s, hi_e = two_sum(xq, delta)
            # a threshold beyond the float range is +-inf: no finite logit reaches it
            lo_e = np.where(np.isinf(lo_s), 0.0, lo_e)
            hi_e = np.where(np.isinf(hi_s), 0.0, hi_e)
            s, e = np.empty(2 * P), np.empty(2 * P)
            self.lo, self.hi = np.empty(P, dtype=np.int64), np.empty(P, dtype=np.int64)
            # x - delta and x + delta are each sorted already (rounding is monotone): merge
            _kernels.merge_thresholds(lo_s, lo_e, hi_s, hi_e, s, e, self.lo, self.hi)
            self.s = ceiling(s, e)
        else:
            self.s = xq.copy()
            self.lo = self.hi = np.searchsorted(xq, xq, side="right").astype(np.int64)


def positions(keys, ts, te):
    """#{k : keys_k < T} for sorted float64 ``keys`` and exact thresholds ``T = ts + te``."""
    return np.searchsorted(keys, ceiling(ts, te), side="left").astype(np.int64)


class BucketEngine:
    """Bin the negatives of ``x`` (entries with ``t == 0``) against the positives ``xq``.

    Parameters
    ----------
    x : 1-D C-contiguous float32/float64 array
        All logits.  Every entry is checked to be finite during binning.  For the window sums
        (``fp``, ``scatter``) a delta above 2**960 must be removed first with :func:`rescaled`;
        the bucket counts and ids are exact for every delta as they are.
    t : 1-D C-contiguous kernel-typed array
        Targets; negatives are the entries equal to 0.
    xq : 1-D float64 array, non-empty, finite and sorted ascending
        Logits of the positives (the "queries"), scaled like ``x``.  Per-positive inputs and
        outputs (``c``, ``fp``) follow this order.
    delta : float >= 0 (scaled like ``x``)
    name : str
        The argument's name in the error raised for a non-finite logit.
    """

    def __init__(self, x, t, xq, delta, *, name="logits"):
        d = float(delta)
        th = Thresholds(xq, d)
        M = th.s.shape[0]
        self.delta = d
        self.x, self.t, self.xq = x, t, xq
        self.edges, self.lo, self.hi = th.s, th.lo, th.hi
        # thresholds with two +inf sentinels, and the grid lookup table of the bucket search
        self._E = np.concatenate([th.s, [np.inf, np.inf]])
        # ~8 cells per threshold keeps most cells empty; past 2**17 cells (512 kB) the table
        # stops fitting the cache, and 2 cells per threshold bins faster (measured)
        K = int(min(max(16, min(8 * M, max(2 * M, 1 << 17))), _MAX_CELLS))
        with np.errstate(over="ignore", invalid="ignore"):
            span = float(th.s[-1] - th.s[0])
        inv_w = K / span if 0.0 < span < np.inf else 0.0
        if not 0.0 < inv_w < np.inf:
            K, inv_w = 1, 0.0  # no usable grid (one value, or thresholds beyond the floats)
        lut = np.empty(K + 1, dtype=np.int32)
        _kernels.build_lut(self._E, M, inv_w, lut)
        self._lut, self._inv_w = lut, inv_w
        self.counts = np.zeros(M + 1, dtype=np.int64)
        self.offsum = np.zeros(M + 1, dtype=np.float64)
        n = x.shape[0]
        # every entry's bucket (0: no update), 2 bytes per entry while the ids fit
        self.ids = np.empty(n, dtype=np.uint16 if M < np.iinfo(np.uint16).max else np.int32)
        segments = 1
        if n >= PARALLEL_MIN_N:
            segments = int(max(1, min(n // _SEGMENT_MIN, 16, _HIST_BUDGET // (M + 1))))
        bad = _kernels.bin_negatives(x, t, self.ids, self._E, lut, inv_w, self.counts,
                                     self.offsum, segments, threads_for(n))
        if bad >= 0:
            nonfinite_error(x, bad, name)

    @property
    def num_buckets(self):
        return self.edges.shape[0] + 1

    def fp(self):
        """``FP_i = sum_{negatives j} H(x_j - x_i)`` for every query i (float64)."""
        M = self.edges.shape[0]
        above = np.cumsum(self.counts[::-1])[::-1]  # negatives in buckets >= b (exact ints)
        fp = above[self.hi].astype(np.float64)
        if self.delta > 0.0:
            W = self.counts[1:].astype(np.float64).reshape(M, 1)
            with np.errstate(over="ignore", invalid="ignore"):
                O = (self.offsum[1:] / self.delta).reshape(M, 1)
            win = np.empty((self.xq.shape[0], 1))
            _kernels.sliding_window_sums(self.edges, W, O, self.xq, self.lo - 1, self.hi - 1,
                                         self.delta, win)
            fp += win[:, 0]
        return fp

    def coefficients(self, c):
        """Per-bucket ``(A, B, divide)``: ``sum_i c_i H(x - x_i) = A[b] + B[b] (x - E[b-1])``
        on bucket b (``(x - E[b-1]) / delta`` when ``divide``: 1/delta would overflow)."""
        c = np.ascontiguousarray(c, dtype=np.float64)
        M = self.edges.shape[0]
        b = np.arange(M + 1)
        below = np.searchsorted(self.hi, b, side="right")  # positives with hi_i <= b
        A = np.concatenate([[0.0], np.cumsum(c)])[below]   # sum of their c_i (non-negative)
        B = np.zeros(M + 1)
        divide = False
        if self.delta > 0.0:
            inside = np.searchsorted(self.lo, b[1:], side="right")  # positives with lo_i <= b
            tagC = np.empty(M)
            tagO = np.empty(M)
            _kernels.window_coefficients(self.xq, c, self.edges, below[1:], inside, self.delta,
                                         tagC, tagO)
            A[1:] += 0.5 * tagO
            # B = c / (2 delta) would overflow for a tiny delta (or a huge c), or lose the
            # digits of a tiny c for a huge delta: then the scatter divides each offset by delta
            divide = self.delta < _TINY_DELTA
            if not divide:
                with np.errstate(under="ignore", over="ignore"):
                    B[1:] = (0.5 * tagC) * (1.0 / self.delta)
                used = tagC > 0.0
                divide = bool(used.any() and (B[1:][used].min() < 1e-290
                                              or not np.isfinite(B[1:]).all()))
            if divide:
                B[1:] = 0.5 * tagC
        return A, B, divide

    def scatter(self, c, out, out2=None):
        """Write ``g_j = sum_i c_i H(x_j - x_i)`` for every negative j into ``out`` (and
        ``out2``).  Entries that are not negatives, or lie below every threshold, are not
        written (pass zeroed outputs)."""
        A, B, divide = self.coefficients(c)
        # each bucket's reference: its left threshold inside a window, 0 outside (where B = 0)
        R = np.where(B != 0.0, np.concatenate([[0.0], self.edges]), 0.0)
        both = out2 is not None
        # a delta above 2**960 makes x a rescaled float64 copy: scatter in float64, then round
        # into the caller's (float32) outputs; entries not written keep their values exactly
        o1 = out if out.dtype == self.x.dtype else out.astype(self.x.dtype)
        o2 = o1 if not both else (out2 if out2.dtype == self.x.dtype
                                  else out2.astype(self.x.dtype))
        _kernels.scatter_negatives(self.x, self.ids, R, A, B, o1, o2, both,
                                   divide, self.delta, threads_for(self.x.shape[0]))
        if o1 is not out:
            out[...] = o1
        if both and o2 is not out2:
            out2[...] = o2

    def bucket_ids(self):
        """Every entry's bucket (int64; -1 for entries that are not negatives)."""
        return np.where(self.t == 0, self.ids.astype(np.int64), -1)
