# Private Cython kernels of rankref.
#
# Every argument is validated and coerced (dtype, C-contiguity, lengths, finiteness, sorted
# thresholds) by the Python layer before a kernel is called: bounds checks are off.
# Accumulation is in float64.  Results never depend on the number of threads: ``prange`` is
# used only where each iteration writes its own output, and histograms are built per fixed
# segment (a function of the input size only) and merged in order.
#
# The maths is on the "Design" page of the documentation: exact thresholds (s, e), buckets
# [T_{b-1}, T_b) with left reference L_b = s_{b-1}, and window sums that only add
# non-negative terms, in normalised units (offsets divided by delta).
from cython.parallel cimport prange
from libc.math cimport INFINITY, fmax, fmin
from libc.stdint cimport int8_t, int32_t, int64_t, uint16_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy

import numpy as np

ctypedef fused floating:
    float
    double

ctypedef fused target_t:
    float
    double
    int8_t
    int32_t
    int64_t

ctypedef fused bucket_t:
    uint16_t
    int32_t


cdef extern from *:
    """
    /* rankref never changes the process-wide OpenMP thread count (with pip torch both load
       the same libgomp.so.1, so that would change torch's): its choice is private and passed
       to each parallel region with a num_threads clause.  0 = follow OpenMP's default. */
    static int rankref_threads = 0;
    #ifdef _OPENMP
    #include <omp.h>
    #define RANKREF_OPENMP 1
    static int rankref_max_threads(void) {
        return rankref_threads > 0 ? rankref_threads : omp_get_max_threads();
    }
    #else
    #define RANKREF_OPENMP 0
    static int rankref_max_threads(void) { return 1; }
    #endif
    """
    int RANKREF_OPENMP
    int rankref_threads
    int rankref_max_threads() nogil

_OPENMP = bool(RANKREF_OPENMP)


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return _OPENMP


def set_num_threads(int n):
    """Threads rankref's kernels may use from now on (0: OpenMP's default, i.e.
    OMP_NUM_THREADS or the number of cores).  Private to rankref: the process-wide OpenMP
    setting (shared with torch) is left alone.  Results do not depend on it."""
    global rankref_threads
    if n < 0:
        raise ValueError(f"the number of threads must be >= 0, got {n}.")
    rankref_threads = n


def get_num_threads():
    """Threads rankref's kernels may use (1 without OpenMP)."""
    return rankref_max_threads()


cdef inline double sum3(double a, double b, double d) noexcept nogil:
    """(a - b) + d with a relative error of a few ulps (two TwoSums and their errors added:
    no cancellation of a rounded a - b against d).  Beyond the float range: +-inf."""
    cdef double s1, s2, bb, e1, e2
    s1 = a - b
    if s1 - s1 != 0.0:
        return s1
    bb = s1 - a
    e1 = (a - (s1 - bb)) + (-b - bb)
    s2 = s1 + d
    if s2 - s2 != 0.0:
        return s2
    bb = s2 - s1
    e2 = (s1 - (s2 - bb)) + (d - bb)
    return s2 + (e1 + e2)


cdef inline double pair_step(double a, double b, double delta) noexcept nogil:
    """H_delta(a - b) = clip(((a - b) + delta) / delta / 2, 0, 1) to a few ulps relative (the
    numerator by :func:`sum3`; no 2*delta: it overflows); H_0(a - b) = [a >= b]."""
    if delta > 0.0:
        return fmin(fmax((sum3(a, b, delta) / delta) * 0.5, 0.0), 1.0)
    return <double> (a >= b)


# --------------------------------------------------------------------------------------------
# Scans over the N entries
# --------------------------------------------------------------------------------------------

cdef inline bint _block_flags(const target_t* t, Py_ssize_t j0, Py_ssize_t j1, bint binary,
                              bint* any_pos) noexcept nogil:
    """Whether t[j0:j1] holds an invalid value; any_pos: whether it holds a positive.  A
    branch-free loop the compiler can vectorise."""
    cdef Py_ssize_t j
    cdef double tv
    cdef bint bad = False, pos = False
    for j in range(j0, j1):
        tv = <double> t[j]
        if binary:
            bad = bad | ((tv != 0.0) & (tv != 1.0) & (tv != -1.0))
        else:
            bad = bad | (not (tv <= 1.0)) | (tv == -INFINITY)
        pos = pos | (tv > 0.0)
    any_pos[0] = pos
    return bad


def scan_targets(const target_t[::1] t, bint binary):
    """Validate targets and collect the flat indices of the positives (t > 0).

    ``binary`` False: valid targets are t <= 1, not NaN, not -inf (t < 0 ignored).
    ``binary`` True: valid targets are exactly -1, 0 and 1.
    Returns ``(pos_index, bad)``: ``bad`` is the first invalid flat index, or -1.
    Blocks of 256 entries are checked without branches; only blocks holding a positive (or an
    invalid value) are looked at entry by entry.
    """
    cdef Py_ssize_t n = t.shape[0], B = 256
    cdef Py_ssize_t j, j0, j1, npos = 0, cap = 256, bad = -1
    cdef bint oom = False, blk_pos = False
    cdef double tv
    cdef int64_t* buf = <int64_t*> malloc(cap * sizeof(int64_t))
    cdef int64_t* tmp
    if buf == NULL:
        raise MemoryError()
    with nogil:
        j0 = 0
        while j0 < n and bad < 0 and not oom:
            j1 = min(j0 + B, n)
            if _block_flags(&t[0], j0, j1, binary, &blk_pos):
                for j in range(j0, j1):
                    tv = <double> t[j]
                    if binary:
                        if tv != 0.0 and tv != 1.0 and tv != -1.0:
                            bad = j
                            break
                    elif not (tv <= 1.0) or tv == -INFINITY:
                        bad = j
                        break
            if bad < 0 and blk_pos:
                for j in range(j0, j1):
                    if <double> t[j] > 0.0:
                        if npos == cap:
                            cap = 2 * cap
                            tmp = <int64_t*> realloc(buf, cap * sizeof(int64_t))
                            if tmp == NULL:
                                oom = True
                                break
                            buf = tmp
                        buf[npos] = j
                        npos += 1
            j0 = j1
    if oom:
        free(buf)
        raise MemoryError()
    out = np.empty(npos, dtype=np.int64)
    cdef int64_t[::1] out_v = out
    for j in range(npos):
        out_v[j] = buf[j]
    free(buf)
    return out, bad


def first_nonfinite(const floating[::1] x):
    """Index of the first NaN or +-inf entry of ``x``, or -1."""
    cdef Py_ssize_t j, n = x.shape[0], bad = -1
    cdef bint any_bad = False
    cdef double v
    with nogil:
        for j in range(n):
            v = x[j]
            any_bad = any_bad | (not (v - v == 0.0))
        if any_bad:
            for j in range(n):
                v = x[j]
                if not (v - v == 0.0):
                    bad = j
                    break
    return bad


# --------------------------------------------------------------------------------------------
# Bucket search.  E holds the M sorted thresholds followed by two +inf sentinels, each threshold
# as the smallest float at or above its exact real value, so that for a float v:
# T <= v  <=>  E[k] <= v, exactly.  A uniform grid of K cells over [E[0], E[M-1]] is indexed by
# cell_of(), a monotone function of v, and lut[c] = #{k : cell_of(E[k]) < c}.  Monotonicity
# makes every float of an earlier cell <= v and every float of a later cell > v, so only the
# floats of v's own cell are compared: the answer is exact whatever the rounding.
# --------------------------------------------------------------------------------------------

cdef inline Py_ssize_t cell_of(double v, double e0, double inv_w, Py_ssize_t K) noexcept nogil:
    cdef double f = (v - e0) * inv_w
    if f < <double> (K - 1):
        return <Py_ssize_t> f
    return K - 1


def build_lut(const double[::1] E, Py_ssize_t M, double inv_w, int32_t[::1] lut):
    """Fill ``lut`` (length K + 1) with lut[c] = #{k < M : cell_of(E[k]) < c}."""
    cdef Py_ssize_t K = lut.shape[0] - 1, k, c
    cdef double e0 = E[0]
    for c in range(K + 1):
        lut[c] = 0
    for k in range(M):
        lut[cell_of(E[k], e0, inv_w, K) + 1] += 1
    for c in range(K):
        lut[c + 1] += lut[c]


cdef inline Py_ssize_t find_bucket(double v, const double* E, const int32_t* lut,
                                   Py_ssize_t K, double e0, double inv_w) noexcept nogil:
    """#{k : E[k] <= v} for v >= E[0] (the exact thresholds below or at v).  A v beyond the
    last threshold falls in the last cell, whose every threshold is <= v."""
    cdef Py_ssize_t c = cell_of(v, e0, inv_w, K), lo, n, half
    lo = lut[c]
    n = lut[c + 1] - lo
    if n <= 2:
        # floats past the cell (or the sentinels) are > v, so this count is exact
        return lo + (E[lo] <= v) + (E[lo + 1] <= v)
    while n > 0:
        half = n >> 1
        if E[lo + half] <= v:
            lo = lo + half + 1
            n = n - half - 1
        else:
            n = half
    return lo


cdef inline Py_ssize_t _bin_segment(const floating* x, const target_t* t, bucket_t* ids,
                                    Py_ssize_t j0, Py_ssize_t j1, const double* E,
                                    const int32_t* lut, Py_ssize_t K, double inv_w,
                                    int64_t* cnt, double* sm) noexcept nogil:
    # one segment of bin_negatives; returns the first non-finite index, or -1.  The negatives
    # below every threshold (bucket 0: most of them once trained) are counted in a register:
    # cnt[0] += 1 in memory would chain every entry on a store-to-load forward.
    cdef Py_ssize_t j, b, below = 0
    cdef double v, e0 = E[0]
    for j in range(j0, j1):
        v = x[j]
        if not (v - v == 0.0):
            cnt[0] += below
            return j
        b = 0
        if t[j] == 0:
            if v >= e0:
                b = find_bucket(v, E, lut, K, e0, inv_w)
            if b > 0:
                sm[b] += v - E[b - 1]
                cnt[b] += 1
            else:
                below += 1
        ids[j] = <bucket_t> b
    cnt[0] += below
    return -1


def bin_negatives(const floating[::1] x, const target_t[::1] t, bucket_t[::1] ids,
                  const double[::1] E, const int32_t[::1] lut, double inv_w,
                  int64_t[::1] counts, double[::1] offsum, Py_ssize_t segments, int threads):
    """Histogram the negatives (t == 0) over the exact-threshold buckets, record every entry's
    bucket in ``ids`` (0 for entries that are not negatives: they get no update from the
    scatter), and check every logit.

    ``counts[b]`` (b >= 0) and ``offsum[b] = sum (x_j - E[b-1])`` (b >= 1, every term >= 0) are
    accumulated; both must be zeroed by the caller.  The entries are cut into ``segments`` fixed
    pieces with a histogram each, merged in order, so the result does not depend on the number
    of ``threads`` (which only says how many may work on the segments).
    Returns the first flat index whose logit is NaN or inf, or -1.
    """
    cdef Py_ssize_t n = x.shape[0], M = E.shape[0] - 2, K = lut.shape[0] - 1
    cdef Py_ssize_t nb = M + 1, S = segments, s, b, seg, bad = -1
    cdef int64_t* cnt
    cdef double* sm
    cdef Py_ssize_t* first_bad
    if n == 0:
        return -1
    if S == 1:
        # no private histograms: accumulate straight into the outputs
        with nogil:
            bad = _bin_segment(&x[0], &t[0], &ids[0], 0, n, &E[0], &lut[0], K, inv_w,
                               &counts[0], &offsum[0])
        return bad
    cnt = <int64_t*> calloc(S * nb, sizeof(int64_t))
    sm = <double*> calloc(S * nb, sizeof(double))
    first_bad = <Py_ssize_t*> malloc(S * sizeof(Py_ssize_t))
    if cnt == NULL or sm == NULL or first_bad == NULL:
        free(cnt)
        free(sm)
        free(first_bad)
        raise MemoryError()
    seg = (n + S - 1) // S
    with nogil:
        for s in prange(S, schedule="dynamic", chunksize=1, num_threads=threads):
            first_bad[s] = _bin_segment(&x[0], &t[0], &ids[0], min(s * seg, n),
                                        min((s + 1) * seg, n), &E[0], &lut[0], K, inv_w,
                                        &cnt[s * nb], &sm[s * nb])
        for s in range(S):
            if first_bad[s] >= 0:
                bad = first_bad[s]
                break
        for s in range(S):
            for b in range(nb):
                counts[b] += cnt[s * nb + b]
                offsum[b] += sm[s * nb + b]
    free(cnt)
    free(sm)
    free(first_bad)
    return bad


cdef inline void _scatter_range(const floating* x, const bucket_t* ids, Py_ssize_t j0,
                                Py_ssize_t j1, const double* R, const double* A,
                                const double* B, floating* out, floating* out2, bint both,
                                bint divide, double delta) noexcept nogil:
    cdef Py_ssize_t j, b
    cdef double g
    if divide:
        for j in range(j0, j1):
            b = ids[j]
            if b > 0:
                # (x - R) / delta overflows outside the windows for a tiny delta: select there
                g = A[b] + (B[b] * ((x[j] - R[b]) / delta) if B[b] != 0.0 else 0.0)
                out[j] = <floating> g
                if both:
                    out2[j] = <floating> g
    else:
        for j in range(j0, j1):
            b = ids[j]
            if b > 0:
                g = A[b] + B[b] * (x[j] - R[b])
                out[j] = <floating> g
                if both:
                    out2[j] = <floating> g


def scatter_negatives(const floating[::1] x, const bucket_t[::1] ids, const double[::1] R,
                      const double[::1] A, const double[::1] B, floating[::1] out,
                      floating[::1] out2, bint both, bint divide, double delta, int threads):
    """Write the gradient of every negative of bucket b = ids[j] >= 1:
    g_j = A[b] + B[b] (x_j - R[b])  (``divide``: A[b] + B[b] (x_j - R[b]) / delta, where
    1/(2 delta) would overflow or B underflow).  R[b] is the bucket's left reference where
    B[b] != 0 and 0 elsewhere, so that B[b] (x_j - R[b]) is 0, not NaN, for logits spanning more
    than the floats.  Entries with id 0 are not written (the caller passes zeroed outputs).  With
    ``both`` the value goes to ``out2`` too."""
    cdef Py_ssize_t n = x.shape[0], chunk = 65536, nchunks, c
    if n == 0:
        return
    nchunks = (n + chunk - 1) // chunk
    with nogil:
        if threads > 1:
            for c in prange(nchunks, schedule="dynamic", chunksize=1, num_threads=threads):
                _scatter_range(&x[0], &ids[0], c * chunk, min((c + 1) * chunk, n), &R[0], &A[0],
                               &B[0], &out[0], &out2[0], both, divide, delta)
        else:
            _scatter_range(&x[0], &ids[0], 0, n, &R[0], &A[0], &B[0], &out[0], &out2[0], both,
                           divide, delta)


# --------------------------------------------------------------------------------------------
# Exact thresholds of sorted positives: merge the lower (x - delta) and upper (x + delta) lists,
# each already sorted by the real value s + e, in O(P).
# --------------------------------------------------------------------------------------------

cdef inline bint _pair_le(double s1, double e1, double s2, double e2) noexcept nogil:
    return s1 < s2 or (s1 == s2 and e1 <= e2)


def merge_thresholds(const double[::1] ls, const double[::1] le, const double[::1] hs,
                     const double[::1] he, double[::1] s, double[::1] e, int64_t[::1] lo,
                     int64_t[::1] hi):
    """Merge two sorted threshold lists (pairs compared as reals s + e) into ``s, e`` (length
    2P), and give each input threshold its rank #{T <= it} in the merged list."""
    cdef Py_ssize_t P = ls.shape[0], i = 0, j = 0, k = 0, g
    cdef int64_t* slot = <int64_t*> malloc(2 * P * sizeof(int64_t))
    if slot == NULL:
        raise MemoryError()
    with nogil:
        while i < P or j < P:
            if j >= P or (i < P and _pair_le(ls[i], le[i], hs[j], he[j])):
                s[k] = ls[i]
                e[k] = le[i]
                slot[k] = i
                i += 1
            else:
                s[k] = hs[j]
                e[k] = he[j]
                slot[k] = P + j
                j += 1
            k += 1
        # rank = one past the last threshold equal to it
        g = 2 * P
        for k in range(2 * P - 1, -1, -1):
            if k < 2 * P - 1 and not (s[k] == s[k + 1] and e[k] == e[k + 1]):
                g = k + 1
            if slot[k] < P:
                lo[slot[k]] = g
            else:
                hi[slot[k] - P] = g
    free(slot)


# --------------------------------------------------------------------------------------------
# Window sums that only add non-negative terms.
#
# An aggregate of consecutive members (sorted keys) is (W, O, L): the weights, the members'
# offsets sum w (x - L) / delta >= 0, and the reference L = the smallest key.  Joining a left
# aggregate A and a right one B gives (W_A + W_B, O_A + O_B + W_B (L_B - L_A)/delta, L_A): every
# term >= 0.  A query point q whose window [q - delta, q + delta) holds the aggregate gets
#     sum_k w_k (x_k - q + delta) / delta = O + W ((L - q) + delta) / delta,
# again a sum of non-negative terms: no prefix difference, no cancellation, whatever the spreads.
#
# The windows of sorted queries slide monotonically, and a two-stack sliding-window aggregate
# (front stack of suffix aggregates, back stack of one running aggregate) answers every query
# with O(1) joins: O(n + Q) in all.  Zero weights are skipped (no 0 * inf from a span that
# overflows for a tiny delta: such spans are never inside a window).
# --------------------------------------------------------------------------------------------

cdef enum:
    MAXCH = 2  # at most two weight channels per aggregate
    CDQ_BASE = 16  # blocks of at most this many elements: all pairs directly


cdef inline void _join_right(double* W, double* O, double L, const double* W2, const double* O2,
                             double L2, Py_ssize_t m, double delta) noexcept nogil:
    """(W, O, L) := (W, O, L) joined with the aggregate (W2, O2, L2) on its right."""
    cdef Py_ssize_t ch
    cdef double f = (L2 - L) / delta
    for ch in range(m):
        O[ch] = O[ch] + O2[ch]
        if W2[ch] != 0.0:
            O[ch] = O[ch] + W2[ch] * f
        W[ch] = W[ch] + W2[ch]


def sliding_window_sums(const double[::1] key, const double[:, ::1] W, const double[:, ::1] O,
                        const double[::1] qx, const int64_t[::1] qlo, const int64_t[::1] qhi,
                        double delta, double[:, ::1] out):
    """out[q, ch] = (sum_{k in [qlo_q, qhi_q)} O[k,ch] + W[k,ch] ((key_k - qx_q) + delta)/delta) / 2
    for queries whose windows [qlo, qhi) are non-decreasing in both ends (sorted queries).

    ``key`` sorted ascending; W, O (n, m) with m <= 2, non-negative (O in units of delta).
    With ``[qlo, qhi)`` the query's window this is the affine part of sum_k w_k H(x_k - qx)."""
    cdef Py_ssize_t n = key.shape[0], m = W.shape[1], Q = qx.shape[0]
    cdef Py_ssize_t q, k, ch, l = 0, r = 0, mid = 0, a, b
    cdef double Wb[MAXCH]
    cdef double Ob[MAXCH]
    cdef double Wq[MAXCH]
    cdef double Oq[MAXCH]
    cdef double Lb = 0.0, f
    cdef double* fW
    cdef double* fO
    if Q == 0:
        return
    if n == 0:
        for q in range(Q):
            for ch in range(m):
                out[q, ch] = 0.0
        return
    fW = <double*> malloc(n * m * sizeof(double))
    fO = <double*> malloc(n * m * sizeof(double))
    if fW == NULL or fO == NULL:
        free(fW)
        free(fO)
        raise MemoryError()
    for ch in range(m):
        Wb[ch] = 0.0
        Ob[ch] = 0.0
    with nogil:
        for q in range(Q):
            a = qlo[q]
            b = qhi[q]
            if b <= a:
                for ch in range(m):
                    out[q, ch] = 0.0
                continue
            if a >= r:  # no overlap with the current window: start afresh at a
                l = a
                r = a
                mid = a
                for ch in range(m):
                    Wb[ch] = 0.0
                    Ob[ch] = 0.0
            while r < b:  # push onto the back stack
                if r == mid:
                    Lb = key[r]
                    for ch in range(m):
                        Wb[ch] = W[r, ch]
                        Ob[ch] = O[r, ch]
                else:
                    _join_right(Wb, Ob, Lb, &W[r, 0], &O[r, 0], key[r], m, delta)
                r += 1
            if a > l:  # pop from the front
                l = a
                if l >= mid:  # front exhausted: [l, r) becomes the front, with suffix aggregates
                    for k in range(r - 1, l - 1, -1):
                        for ch in range(m):
                            fW[k * m + ch] = W[k, ch]
                            fO[k * m + ch] = O[k, ch]
                        if k + 1 < r:
                            _join_right(&fW[k * m], &fO[k * m], key[k], &fW[(k + 1) * m],
                                        &fO[(k + 1) * m], key[k + 1], m, delta)
                    mid = r
                    for ch in range(m):
                        Wb[ch] = 0.0
                        Ob[ch] = 0.0
            # the window [l, r) = front [l, mid) joined with back [mid, r)
            if l < mid:
                for ch in range(m):
                    Wq[ch] = fW[l * m + ch]
                    Oq[ch] = fO[l * m + ch]
                if r > mid:
                    _join_right(Wq, Oq, key[l], Wb, Ob, Lb, m, delta)
            else:
                for ch in range(m):
                    Wq[ch] = Wb[ch]
                    Oq[ch] = Ob[ch]
            f = sum3(key[l], qx[q], delta) / delta
            for ch in range(m):
                out[q, ch] = 0.5 * (Oq[ch] + (Wq[ch] * f if Wq[ch] != 0.0 else 0.0))
    free(fW)
    free(fO)


cdef inline void _join_left(double* C, double* O, double R, double C2, double O2,
                            double R2, double delta) noexcept nogil:
    """Right-anchored aggregates (C, O = sum c (R - x) / delta, R = largest key): (C, O, R) :=
    the aggregate (C2, O2, R2) on its left joined with it."""
    O[0] = O[0] + O2
    if C2 != 0.0:
        O[0] = O[0] + C2 * ((R - R2) / delta)
    C[0] = C[0] + C2


def window_coefficients(const double[::1] xq, const double[::1] c, const double[::1] L,
                        const int64_t[::1] ilo, const int64_t[::1] ihi, double delta,
                        double[::1] tagC, double[::1] tagO):
    """For every bucket b with left key L_b and the positives [ilo_b, ihi_b) whose windows hold
    it (both ends non-decreasing in b; ``xq`` sorted ascending, ``c >= 0``):
    tagC[b] = sum_i c_i and tagO[b] = sum_i c_i ((L_b - x_i) + delta) / delta, so that
    sum_i c_i H(x - x_i) = (tagO[b] + tagC[b] (x - L_b) / delta) / 2 on bucket b.  A two-stack
    sliding aggregate with the largest key as reference: only non-negative terms are added."""
    cdef Py_ssize_t M = L.shape[0], P = xq.shape[0], b, k, l = 0, r = 0, mid = 0, a, e
    cdef double Cb = 0.0, Ob = 0.0, Rb = 0.0, Cq, Oq, Rq
    cdef double* fC
    cdef double* fO
    if M == 0:
        return
    fC = <double*> malloc((P + 1) * sizeof(double))
    fO = <double*> malloc((P + 1) * sizeof(double))
    if fC == NULL or fO == NULL:
        free(fC)
        free(fO)
        raise MemoryError()
    with nogil:
        for b in range(M):
            a = ilo[b]
            e = ihi[b]
            if e <= a:
                tagC[b] = 0.0
                tagO[b] = 0.0
                continue
            if a >= r:
                l = a
                r = a
                mid = a
                Cb = 0.0
                Ob = 0.0
            while r < e:  # push x_r on the right: the reference moves to x_r
                if r == mid:
                    Cb = c[r]
                    Ob = 0.0
                else:
                    Ob = Ob + (Cb * ((xq[r] - Rb) / delta) if Cb != 0.0 else 0.0)
                    Cb = Cb + c[r]
                Rb = xq[r]
                r += 1
            if a > l:
                l = a
                if l >= mid:  # suffix aggregates of [k, r), reference x_{r-1}
                    fC[r - 1] = c[r - 1]
                    fO[r - 1] = 0.0
                    for k in range(r - 2, l - 1, -1):
                        fC[k] = fC[k + 1] + c[k]
                        fO[k] = fO[k + 1] + (c[k] * ((xq[r - 1] - xq[k]) / delta)
                                             if c[k] != 0.0 else 0.0)
                    mid = r
                    Cb = 0.0
                    Ob = 0.0
            if l < mid:
                Cq = fC[l]
                Oq = fO[l]
                Rq = xq[mid - 1]
                if r > mid:  # the back aggregate is on the right: the reference moves to Rb
                    Oq = Oq + Ob + (Cq * ((Rb - Rq) / delta) if Cq != 0.0 else 0.0)
                    Cq = Cq + Cb
                    Rq = Rb
            else:
                Cq = Cb
                Oq = Ob
                Rq = Rb
            tagC[b] = Cq
            tagO[b] = Oq + (Cq * (sum3(L[b], Rq, delta) / delta) if Cq != 0.0 else 0.0)
    free(fC)
    free(fO)


# --------------------------------------------------------------------------------------------
# Sums over the members of earlier groups (the IoU and class sweeps), offline: a divide and
# conquer over the groups (CDQ).  Each call splits its groups in two halves by element count,
# solves both, adds the contributions of the earlier half's members to the later half's queries
# with one sliding-window pass (both halves sorted by key), and merges the halves by key.  Every
# level reads and writes its elements sequentially: O(n log G) work, cache-friendly, and again
# only non-negative terms are added.
# --------------------------------------------------------------------------------------------

cdef inline bint _below(double x, double s, double e) noexcept nogil:
    """x < the exact threshold s + e."""
    return x < s or (x == s and e > 0.0)


cdef inline void _threshold(double x, double d, double* s, double* e) noexcept nogil:
    """The exact real x + d as s + e (TwoSum); beyond the float range: +-inf with e = 0."""
    cdef double bb
    s[0] = x + d
    if s[0] - s[0] != 0.0:
        e[0] = 0.0
        return
    bb = s[0] - x
    e[0] = (x - (s[0] - bb)) + (d - bb)


cdef struct Cdq:
    # the elements are numbered by "slot", their position in the (group, key) order, so that
    # the elements of a block of groups are the slots [e0, e1): every per-element array is
    # indexed by slot, and a block's data stays in one piece of memory (cache-local).
    uint64_t* el            # (rank << 32) | slot, sorted by rank within each solved block
    uint64_t* tmp
    const int64_t* gptr     # group boundaries (G + 1) in slots
    const double* key       # by slot
    const int32_t* lo       # window [lo, hi) in ranks, by slot
    const int32_t* hi
    const double* We        # weights as a member of an earlier group (me channels), by slot
    const double* Wl        # ... of a later group (ml channels)
    double* Ae              # sums over the earlier groups, by slot
    double* Al              # sums over the later groups, by slot
    Py_ssize_t me
    Py_ssize_t ml
    double delta
    double inv_delta        # 1/delta where it is finite and normal, else 0 (then divide)
    # scratch of one step: n + 1 entries (times MAXCH for the weights)
    int32_t* mr             # members: ranks (then a sentinel), keys, weights
    double* mk
    double* mW
    double* suf             # suffix sums of the weights: the members at or above hi
    double* SW              # within a segment: suffix aggregates relative to their own key
    double* SO
    double* PW              # ... prefix aggregates relative to the segment's first key
    double* PO
    int8_t* cut             # segment boundaries
    int32_t* qa             # queries: window [qa, qb) in members, and its segment boundary
    int32_t* qb
    int32_t* qm
    int32_t* ql             # ... and the window ends in ranks (then a sentinel)


cdef inline double _per(const Cdq* S, double x) noexcept nogil:
    """x / delta (by the reciprocal where it is a normal float)."""
    if S.inv_delta != 0.0:
        return x * S.inv_delta
    return x / S.delta


cdef inline void _count_below(const int32_t* mr, const int32_t* ql, Py_ssize_t nq,
                              int32_t* out) noexcept nogil:
    """out[j] = #{i : mr[i] < ql[j]} for ascending mr (ended by a sentinel above every ql) and
    non-decreasing ql: a branch-free merge."""
    cdef Py_ssize_t i = 0, j = 0
    cdef bint below
    while j < nq:
        below = mr[i] < ql[j]
        out[j] = <int32_t> i
        i += below
        j += 1 - below


cdef inline void _cdq_contribute(Cdq* S, const uint64_t* mem, Py_ssize_t nm, const uint64_t* qs,
                                 Py_ssize_t nq, const double* W, double* A,
                                 const Py_ssize_t m) noexcept nogil:
    """A[q] += sum over the members k of W_k H(key_k - key_q), for the members mem[:nm] and the
    queries qs[:nq] (both sorted by rank, so that the windows slide forward).

    The windows are cut into segments so that each holds at most one boundary (as a two-stack
    queue would: a new boundary at the window's end whenever its start passes the last one).
    A window is then a suffix of one segment (aggregated relative to its first key) joined with
    a prefix of the next (relative to the boundary's key): only non-negative terms are added."""
    cdef Py_ssize_t i, j, ch, s, a, b, c, mid, start
    cdef double f, fa, kw
    cdef double Wf[MAXCH]
    cdef double Of[MAXCH]
    cdef double d = S.delta
    cdef int32_t* mr = S.mr
    cdef double* mk = S.mk
    cdef double* mW = S.mW
    cdef double* suf = S.suf
    cdef double* SW = S.SW
    cdef double* SO = S.SO
    cdef double* PW = S.PW
    cdef double* PO = S.PO
    cdef int8_t* cut = S.cut
    cdef int32_t* qa = S.qa
    cdef int32_t* qb = S.qb
    cdef int32_t* qm = S.qm
    cdef int32_t* ql = S.ql
    for i in range(nm):
        s = <Py_ssize_t> (mem[i] & 0xffffffffu)
        mr[i] = <int32_t> (mem[i] >> 32)
        mk[i] = S.key[s]
        cut[i] = 0
        for ch in range(m):
            mW[i * m + ch] = W[s * m + ch]
    mr[nm] = 0x7fffffff
    mk[nm] = mk[nm - 1]
    cut[nm] = 1
    # the windows in members: [qa, qb) = the members with rank in [lo_q, hi_q)
    for j in range(nq):
        ql[j] = S.lo[<Py_ssize_t> (qs[j] & 0xffffffffu)]
    _count_below(mr, ql, nq, qa)
    for j in range(nq):
        ql[j] = S.hi[<Py_ssize_t> (qs[j] & 0xffffffffu)]
    _count_below(mr, ql, nq, qb)
    # segment boundaries: a new one at the window's end once its start reaches the last one
    mid = 0
    for j in range(nq):
        if qa[j] >= mid and qb[j] > qa[j]:
            mid = qb[j]
            cut[mid] = 1
        qm[j] = <int32_t> mid
    # per member: suffix sums (all members above), and the aggregates within its segment
    for ch in range(m):
        suf[nm * m + ch] = 0.0
    for i in range(nm - 1, -1, -1):
        f = _per(S, mk[i + 1] - mk[i])  # inf across a far boundary: discarded below
        for ch in range(m):
            suf[i * m + ch] = suf[(i + 1) * m + ch] + mW[i * m + ch]
            if cut[i + 1]:
                SW[i * m + ch] = mW[i * m + ch]
                SO[i * m + ch] = 0.0
            else:
                SO[i * m + ch] = SO[(i + 1) * m + ch] + SW[(i + 1) * m + ch] * f
                SW[i * m + ch] = SW[(i + 1) * m + ch] + mW[i * m + ch]
    start = 0
    for ch in range(m):
        PW[ch] = 0.0
        PO[ch] = 0.0
    for i in range(nm):  # PW[i + 1], PO[i + 1]: members [start of i's segment, i]
        if cut[i]:
            start = i
        f = _per(S, mk[i] - mk[start])
        for ch in range(m):
            if cut[i]:
                PW[(i + 1) * m + ch] = mW[i * m + ch]
                PO[(i + 1) * m + ch] = 0.0
            else:
                PW[(i + 1) * m + ch] = PW[i * m + ch] + mW[i * m + ch]
                PO[(i + 1) * m + ch] = PO[i * m + ch] + mW[i * m + ch] * f
    for j in range(nq):
        s = <Py_ssize_t> (qs[j] & 0xffffffffu)
        a = qa[j]
        b = qb[j]
        c = qm[j]
        if b <= a:
            for ch in range(m):
                A[s * m + ch] += suf[b * m + ch]
            continue
        # front: [a, c) relative to mk[a]; back: [c, b) relative to mk[c], moved to mk[a]
        for ch in range(m):
            Wf[ch] = 0.0
            Of[ch] = 0.0
        if a < c:
            for ch in range(m):
                Wf[ch] = SW[a * m + ch]
                Of[ch] = SO[a * m + ch]
        if b > c:
            kw = _per(S, mk[c] - mk[a])
            for ch in range(m):
                Of[ch] += PO[b * m + ch] + PW[b * m + ch] * kw
                Wf[ch] += PW[b * m + ch]
        fa = _per(S, sum3(mk[a], S.key[s], d))
        for ch in range(m):
            A[s * m + ch] += suf[b * m + ch] + 0.5 * (Of[ch] + Wf[ch] * fa)


cdef inline double _step(const Cdq* S, Py_ssize_t rk, Py_ssize_t sk, Py_ssize_t sq) noexcept nogil:
    """H(key_k - key_q) as the window sums see it (k: rank rk, slot sk; q: slot sq)."""
    if rk >= S.hi[sq]:
        return 1.0
    if rk < S.lo[sq]:
        return 0.0
    return 0.5 * _per(S, sum3(S.key[sk], S.key[sq], S.delta))


cdef void _cdq_base(Cdq* S, Py_ssize_t g0, Py_ssize_t g1) noexcept nogil:
    """A few elements: every pair of different groups directly, then an insertion sort."""
    cdef Py_ssize_t e0 = S.gptr[g0], e1 = S.gptr[g1], g, h, i, j, ch, ri, rj
    cdef double f
    cdef uint64_t tmp
    for g in range(g0, g1):
        for h in range(g + 1, g1):
            for i in range(S.gptr[g], S.gptr[g + 1]):      # slot i earlier, slot j later
                ri = <Py_ssize_t> (S.el[i] >> 32)
                for j in range(S.gptr[h], S.gptr[h + 1]):
                    rj = <Py_ssize_t> (S.el[j] >> 32)
                    if S.me:
                        f = _step(S, ri, i, j)
                        if f != 0.0:
                            for ch in range(S.me):
                                S.Ae[j * S.me + ch] += S.We[i * S.me + ch] * f
                    if S.ml:
                        f = _step(S, rj, j, i)
                        if f != 0.0:
                            for ch in range(S.ml):
                                S.Al[i * S.ml + ch] += S.Wl[j * S.ml + ch] * f
    for i in range(e0 + 1, e1):
        tmp = S.el[i]
        j = i - 1
        while j >= e0 and S.el[j] > tmp:
            S.el[j + 1] = S.el[j]
            j -= 1
        S.el[j + 1] = tmp


cdef void _cdq(Cdq* S, Py_ssize_t g0, Py_ssize_t g1) noexcept nogil:
    cdef Py_ssize_t e0 = S.gptr[g0], e1 = S.gptr[g1], gm, lo, hi, half, es, i, j, k, take
    cdef uint64_t u, v
    if g1 - g0 <= 1:
        return  # one group: already sorted by rank (the input is in (group, key) order)
    if e1 - e0 <= CDQ_BASE:
        _cdq_base(S, g0, g1)
        return
    # split at the group boundary nearest to the middle element (at least one group a side)
    half = (e0 + e1) // 2
    lo = g0 + 1
    hi = g1 - 1
    while lo < hi:
        gm = (lo + hi) // 2
        if S.gptr[gm] < half:
            lo = gm + 1
        else:
            hi = gm
    gm = lo
    if gm > g0 + 1 and half - S.gptr[gm - 1] < S.gptr[gm] - half:
        gm = gm - 1
    es = S.gptr[gm]
    _cdq(S, g0, gm)
    _cdq(S, gm, g1)
    # the earlier half's members to the later half's queries, and the reverse
    if S.me == 1:
        _cdq_contribute(S, &S.el[e0], es - e0, &S.el[es], e1 - es, S.We, S.Ae, 1)
    elif S.me == 2:
        _cdq_contribute(S, &S.el[e0], es - e0, &S.el[es], e1 - es, S.We, S.Ae, 2)
    if S.ml == 1:
        _cdq_contribute(S, &S.el[es], e1 - es, &S.el[e0], es - e0, S.Wl, S.Al, 1)
    elif S.ml == 2:
        _cdq_contribute(S, &S.el[es], e1 - es, &S.el[e0], es - e0, S.Wl, S.Al, 2)
    # merge the two halves by rank (branch-free)
    i = e0
    j = es
    k = e0
    while i < es and j < e1:
        u = S.el[i]
        v = S.el[j]
        take = v < u
        S.tmp[k] = v if take else u
        j += take
        i += 1 - take
        k += 1
    if i < es:
        memcpy(&S.tmp[k], &S.el[i], (es - i) * sizeof(uint64_t))
    elif j < e1:
        memcpy(&S.tmp[k], &S.el[j], (e1 - j) * sizeof(uint64_t))
    memcpy(&S.el[e0], &S.tmp[e0], (e1 - e0) * sizeof(uint64_t))


cdef void _free_cdq(Cdq* S, double* skey, int32_t* slo, int32_t* shi, double* sWe, double* sWl,
                    double* sAe, double* sAl) noexcept nogil:
    free(S.el); free(S.tmp); free(skey); free(slo); free(shi); free(sWe); free(sWl)
    free(sAe); free(sAl); free(S.mr); free(S.mk); free(S.mW); free(S.suf); free(S.SW)
    free(S.SO); free(S.PW); free(S.PO); free(S.cut); free(S.qa); free(S.qb); free(S.qm)
    free(S.ql)


def group_sums(const double[::1] key, const int64_t[::1] lo, const int64_t[::1] hi,
               const double[:, ::1] We, const double[:, ::1] Wl, const int64_t[::1] order,
               const int64_t[::1] gptr, double delta, double[:, ::1] earlier,
               double[:, ::1] later):
    """earlier[q, ch] = sum over the members k of the groups before q's of We[k, ch] H(key_k - key_q),
    later[q, ch] = the same over the groups after q's, with Wl (a zero-column weight skips it).

    Elements are identified by their rank in ``key`` (sorted); [lo[q], hi[q]) is q's window
    in ranks (its members at or above hi count 1); ``order`` lists the ranks by (group, key) with
    group g at [gptr[g], gptr[g+1]).  An offline divide and conquer over the groups: O(n log G),
    each level a merge of 8-byte (rank, slot) pairs and sliding passes over the block's own
    memory; only non-negative terms are added."""
    cdef Cdq S
    cdef Py_ssize_t n = key.shape[0], me = We.shape[1], ml = Wl.shape[1]
    cdef Py_ssize_t G = gptr.shape[0] - 1, i, ch, r
    cdef double inv
    cdef double* skey
    cdef int32_t* slo
    cdef int32_t* shi
    cdef double* sWe
    cdef double* sWl
    cdef double* sAe
    cdef double* sAl
    for i in range(n):
        for ch in range(me):
            earlier[i, ch] = 0.0
        for ch in range(ml):
            later[i, ch] = 0.0
    if n == 0 or G <= 1:
        return
    if n >= (1 << 31) - 1:
        raise ValueError("too many positives for one call (2**31 - 1 at most).")
    if me > MAXCH or ml > MAXCH:
        raise ValueError("at most two weight channels per direction.")
    cdef Py_ssize_t mc = max(me, ml, 1)
    S.el = <uint64_t*> malloc(n * sizeof(uint64_t))
    S.tmp = <uint64_t*> malloc(n * sizeof(uint64_t))
    skey = <double*> malloc(n * sizeof(double))
    slo = <int32_t*> malloc(n * sizeof(int32_t))
    shi = <int32_t*> malloc(n * sizeof(int32_t))
    sWe = <double*> malloc((n * me + 1) * sizeof(double))
    sWl = <double*> malloc((n * ml + 1) * sizeof(double))
    sAe = <double*> calloc(n * me + 1, sizeof(double))
    sAl = <double*> calloc(n * ml + 1, sizeof(double))
    S.mr = <int32_t*> malloc((n + 1) * sizeof(int32_t))
    S.mk = <double*> malloc((n + 1) * sizeof(double))
    S.mW = <double*> malloc((n + 1) * mc * sizeof(double))
    S.suf = <double*> malloc((n + 1) * mc * sizeof(double))
    S.SW = <double*> malloc((n + 1) * mc * sizeof(double))
    S.SO = <double*> malloc((n + 1) * mc * sizeof(double))
    S.PW = <double*> malloc((n + 1) * mc * sizeof(double))
    S.PO = <double*> malloc((n + 1) * mc * sizeof(double))
    S.cut = <int8_t*> malloc((n + 1) * sizeof(int8_t))
    S.qa = <int32_t*> malloc((n + 1) * sizeof(int32_t))
    S.qb = <int32_t*> malloc((n + 1) * sizeof(int32_t))
    S.qm = <int32_t*> malloc((n + 1) * sizeof(int32_t))
    S.ql = <int32_t*> malloc((n + 1) * sizeof(int32_t))
    if (S.el == NULL or S.tmp == NULL or skey == NULL or slo == NULL or shi == NULL
            or sWe == NULL or sWl == NULL or sAe == NULL or sAl == NULL or S.mr == NULL
            or S.mk == NULL or S.mW == NULL or S.suf == NULL or S.SW == NULL or S.SO == NULL
            or S.PW == NULL or S.PO == NULL or S.cut == NULL or S.qa == NULL or S.qb == NULL
            or S.qm == NULL or S.ql == NULL):
        _free_cdq(&S, skey, slo, shi, sWe, sWl, sAe, sAl)
        raise MemoryError()
    with nogil:
        for i in range(n):
            r = order[i]
            S.el[i] = (<uint64_t> r << 32) | <uint64_t> i
            skey[i] = key[r]
            slo[i] = <int32_t> lo[r]
            shi[i] = <int32_t> hi[r]
            for ch in range(me):
                sWe[i * me + ch] = We[r, ch]
            for ch in range(ml):
                sWl[i * ml + ch] = Wl[r, ch]
        S.gptr = &gptr[0]
        S.key = skey
        S.lo = slo
        S.hi = shi
        S.We = sWe
        S.Wl = sWl
        S.Ae = sAe
        S.Al = sAl
        S.me = me
        S.ml = ml
        S.delta = delta
        S.inv_delta = 0.0
        if delta > 0.0:
            inv = 1.0 / delta
            if 1e-300 <= inv <= 1e300:
                S.inv_delta = inv
        _cdq(&S, 0, G)
        for i in range(n):
            r = order[i]
            for ch in range(me):
                earlier[r, ch] = sAe[i * me + ch]
            for ch in range(ml):
                later[r, ch] = sAl[i * ml + ch]
    _free_cdq(&S, skey, slo, shi, sWe, sWl, sAe, sAl)


def self_windows(const double[::1] key, double delta, int64_t[::1] lo, int64_t[::1] hi):
    """For sorted keys: lo[i] = #{k : key_k < key_i - delta}, hi[i] = #{k : key_k < key_i + delta}
    (exact thresholds), by two pointers in O(n).  At delta = 0 both are #{k : key_k < key_i}."""
    cdef Py_ssize_t n = key.shape[0], i, a = 0, b = 0
    cdef double ls, le, hs, he
    with nogil:
        for i in range(n):
            if delta > 0.0:
                _threshold(key[i], -delta, &ls, &le)
                _threshold(key[i], delta, &hs, &he)
            else:
                ls = hs = key[i]
                le = he = 0.0
            while a < n and _below(key[a], ls, le):
                a += 1
            if b < a:
                b = a
            while b < n and _below(key[b], hs, he):
                b += 1
            lo[i] = a
            hi[i] = b


def group_suffix_sums(const double[:, ::1] W, const int64_t[::1] gptr, double[:, ::1] out):
    """out[k] = sum of W over k and the later elements of k's group (added from the group's
    end: non-negative terms only); out has one extra row per group end handled by the caller
    through ``end`` indices, so out[gptr[g+1]] is never read for group g."""
    cdef Py_ssize_t G = gptr.shape[0] - 1, m = W.shape[1], g, k, ch
    with nogil:
        for g in range(G):
            for ch in range(m):
                out[gptr[g + 1] - 1, ch] = W[gptr[g + 1] - 1, ch] if gptr[g + 1] > gptr[g] \
                    else 0.0
            for k in range(gptr[g + 1] - 2, gptr[g] - 1, -1):
                for ch in range(m):
                    out[k, ch] = out[k + 1, ch] + W[k, ch]


# --------------------------------------------------------------------------------------------
# Positive-positive terms by direct O(P^2) loops: faster below a small P (the crossover is
# measured by benchmarks/bench_ranking.py --pairs), and an independent check of the trees.
# --------------------------------------------------------------------------------------------

cdef inline void _rs_row(Py_ssize_t i, const double* xp, const double* tp, Py_ssize_t P,
                         double delta, double* out) noexcept nogil:
    cdef double xi = xp[i], ti = tp[i], h, dt, ge
    cdef double rp = 0.0, ae = 0.0, bd = 0.0, td = 0.0, ms = 0.0
    cdef Py_ssize_t k
    for k in range(P):
        # branch-free: a masked term adds an exact 0.0 (every added term is >= 0)
        h = pair_step(xp[k], xi, delta)
        ge = <double> (tp[k] >= ti)
        dt = tp[k] - ti
        rp += h
        ae += ge * (h * dt)
        bd += (1.0 - ge) * (h * -dt)
        td += ge * h
        ms += (1.0 - ge) * h
    out[0] = rp
    out[1] = ae
    out[2] = bd
    out[3] = td
    out[4] = ms


def rs_positive_terms_direct(const double[::1] xp, const double[::1] tp, double delta):
    """Per positive i, with H_ik = H(x_k - x_i) over all positives k (self included), the
    columns: rank_pos = sum H, the excess sum_{t_k>=t_i} H (t_k - t_i), the deficit
    sum_{t_k<t_i} H (t_i - t_k), the target mass sum_{t_k>=t_i} H and the missorted mass
    D = sum_{t_k<t_i} H.  Every sum adds non-negative terms only, so the sorting error
    (:func:`rankref.losses.sorting_error`) is exact to a few ulps relative.
    """
    cdef Py_ssize_t P = xp.shape[0], i
    out = np.zeros((P, 5), dtype=np.float64)
    cdef double[:, ::1] o = out
    if P == 0:
        return out
    with nogil:
        for i in range(P):
            _rs_row(i, &xp[0], &tp[0], P, delta, &o[i, 0])
    return out


def rs_sorting_scatter_direct(const double[::1] xp, const double[::1] tp, const double[::1] w,
                              double delta):
    """g_k = sum_{i : t_k < t_i} H(x_k - x_i) w_i (the sorting pmf of RS loss)."""
    cdef Py_ssize_t P = xp.shape[0], k, i
    cdef double s
    out = np.zeros(P, dtype=np.float64)
    cdef double[::1] o = out
    with nogil:
        for k in range(P):
            s = 0.0
            for i in range(P):
                s += (<double> (tp[k] < tp[i])) * (pair_step(xp[k], xp[i], delta) * w[i])
            o[k] = s
    return out
