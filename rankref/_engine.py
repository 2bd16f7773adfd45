"""The bucket engine: exact breakpoint buckets for every delta (DESIGN.md section 3).

Every ranking loss of rankref (AP, RS, GAP) sends negative j the gradient
``g_j = sum_i c_i H(x_j - x_i)`` and needs ``FP_i = sum_j H(x_j - x_i)``.  With the
breakpoints ``E = sorted({x_i - d, x_i + d})`` (``{x_i}`` at d = 0), ``H(x_j - x_i)`` is, on each
bucket ``[E[b-1], E[b])``, 0, 1 or affine in ``x_j`` for every positive i, so a bucket's count
and the sum of its members' offsets are all that FP and the gradient need, exactly.

Cost: sorting 2P breakpoints, one pass over N that bins the negatives (no sort of N), the
window sums, O(P * window) <= O(P^2), and one pass over N that writes the gradient.
"""
import numpy as np

from . import _kernels
from ._validation import nonfinite_error

__all__ = ["BucketEngine"]

_MAX_CELLS = 1 << 22
_SEGMENTS = 8  # fixed: the binning's result must not depend on the number of threads


class BucketEngine:
    """Bin the negatives of ``x`` (entries with ``t == 0``) against the positives ``xq``.

    Parameters
    ----------
    x : 1-D C-contiguous float32/float64 array
        All logits.  Every entry is checked to be finite during binning.
    t : 1-D C-contiguous kernel-typed array
        Targets; negatives are the entries equal to 0.
    xq : 1-D float64 array, non-empty and finite
        Logits of the positives (the "queries").
    delta : float >= 0
    name : str
        The argument's name in the error raised for a non-finite logit.
    full : bool
        Also histogram bucket 0 (negatives below ``E[0]``), for :func:`make_buckets`.

    Attributes
    ----------
    ids : int32 array
        Every entry's bucket (-1 for entries that are not negatives, 0 below ``E[0]``).
    """

    def __init__(self, x, t, xq, delta, *, full=False, name="logits"):
        d = float(delta)
        xq = np.ascontiguousarray(xq, dtype=np.float64)
        if d > 0.0:
            a = xq - d
            e = xq + d
            edges = np.sort(np.concatenate([a, e]))
        else:
            a = xq
            e = xq
            edges = np.sort(xq)
        M = edges.shape[0]
        self.delta = d
        self.x = x
        self.t = t
        self.a = a
        self.edges = edges
        self.lo = np.searchsorted(edges, a, side="right").astype(np.int64)
        self.hi = np.searchsorted(edges, e, side="right").astype(np.int64)
        # edges with two +inf sentinels, and the grid lookup table of the bucket search
        self._E = np.empty(M + 2, dtype=np.float64)
        self._E[:M] = edges
        self._E[M:] = np.inf
        K = int(min(max(16, 8 * M), _MAX_CELLS))
        span = float(edges[-1] - edges[0])
        inv_w = K / span if span > 0.0 else 0.0
        if not np.isfinite(inv_w):
            inv_w = 0.0
        lut = np.empty(K + 1, dtype=np.int32)
        _kernels.build_lut(self._E, M, inv_w, lut)
        self._lut = lut
        self._inv_w = inv_w
        self.counts = np.zeros(M + 1, dtype=np.int64)
        self.offsum = np.zeros(M + 1, dtype=np.float64)
        self.ids = np.empty(x.shape[0], dtype=np.int32)
        segments = _SEGMENTS if M < 200_000 else 1
        bad = _kernels.bin_negatives(
            x, t, self._E, lut, inv_w, self.counts, self.offsum, self.ids, full, segments
        )
        if bad >= 0:
            nonfinite_error(x, bad, name)
        above = np.cumsum(self.counts[::-1])[::-1].astype(np.float64)
        if full:
            above -= self.counts[0]  # bucket 0 never counts (hi >= 1 anyway)
        self.above = above

    @property
    def num_buckets(self):
        return self.edges.shape[0] + 1

    def fp(self):
        """``FP_i = sum_{negatives j} H(x_j - x_i)`` for every query i (float64)."""
        out = np.empty(self.a.shape[0], dtype=np.float64)
        _kernels.window_fp(
            self._E, self.counts, self.offsum, self.above, self.lo, self.hi, self.a,
            self.delta, out,
        )
        return out

    def coefficients(self, c):
        """Per-bucket ``(A, B)`` with ``sum_i c_i H(x - x_i) = A[b] + B[b] (x - E[b-1])``."""
        c = np.ascontiguousarray(c, dtype=np.float64)
        A = np.zeros(self.num_buckets, dtype=np.float64)
        B = np.zeros(self.num_buckets, dtype=np.float64)
        _kernels.window_coefficients(self._E, self.lo, self.hi, self.a, c, self.delta, A, B)
        return A, B

    def scatter(self, c, out, out2=None):
        """Write ``g_j = sum_i c_i H(x_j - x_i)`` for every negative j into ``out`` (and
        ``out2``).  Entries that are not negatives, or lie below ``E[0]``, are not written."""
        A, B = self.coefficients(c)
        both = out2 is not None
        _kernels.scatter_negatives(
            self.x, self.ids, self._E, A, B, out, out2 if both else out, both
        )
