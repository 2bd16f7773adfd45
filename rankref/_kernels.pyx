# Private Cython kernels of rankref.
#
# Every argument is validated and coerced (dtype, C-contiguity, lengths, finiteness, sorted
# breakpoints) by the Python layer before a kernel is called: bounds checks are off.
# Accumulation is in float64.  Results never depend on the number of threads: ``prange`` is
# used only where each iteration writes its own output, and histograms are built per fixed
# segment (a function of the input size only) and merged in order.
#
# The maths is on the "Design" page of the documentation: exact thresholds (s, e), buckets
# [T_{b-1}, T_b) with left reference L_b = s_{b-1}, and window sums that only add
# non-negative terms, in normalised units (offsets divided by delta).
from cython.parallel cimport prange
from libc.math cimport INFINITY, fmax, fmin
from libc.stdint cimport int8_t, int32_t, int64_t, uint16_t
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


cdef inline double relaxed_step(double u, double delta) noexcept nogil:
    """H_delta(u) = clip(1/2 + (u / delta) / 2, 0, 1) (no 2*delta: it overflows); H_0(u) = [u >= 0]."""
    if delta > 0.0:
        return fmin(fmax((u / delta) * 0.5 + 0.5, 0.0), 1.0)
    return <double> (u >= 0.0)


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
    # one segment of bin_negatives; returns the first non-finite index, or -1
    cdef Py_ssize_t j, b
    cdef double v, e0 = E[0]
    for j in range(j0, j1):
        v = x[j]
        if not (v - v == 0.0):
            return j
        b = 0
        if t[j] == 0:
            if v >= e0:
                b = find_bucket(v, E, lut, K, e0, inv_w)
                if b > 0:
                    sm[b] += v - E[b - 1]
            cnt[b] += 1
        ids[j] = <bucket_t> b
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
                                Py_ssize_t j1, const double* E, const double* A,
                                const double* B, floating* out, floating* out2, bint both,
                                bint divide, double delta) noexcept nogil:
    cdef Py_ssize_t j, b
    cdef double g
    for j in range(j0, j1):
        b = ids[j]
        if b > 0:
            g = A[b]
            if B[b] != 0.0:  # buckets outside every window read A only
                if divide:
                    g = g + B[b] * ((x[j] - E[b - 1]) / delta)
                else:
                    g = g + B[b] * (x[j] - E[b - 1])
            if g != 0.0:
                out[j] = <floating> g
                if both:
                    out2[j] = <floating> g


def scatter_negatives(const floating[::1] x, const bucket_t[::1] ids, const double[::1] E,
                      const double[::1] A, const double[::1] B, floating[::1] out,
                      floating[::1] out2, bint both, bint divide, double delta, int threads):
    """Write the gradient of every negative of bucket b = ids[j] >= 1:
    g_j = A[b] + B[b] (x_j - E[b-1])  (``divide``: A[b] + B[b] (x_j - E[b-1]) / delta, for a
    delta so small that 1/delta overflows).  Entries with id 0 and zero gradients are not
    written (the caller passes zeroed outputs).  With ``both`` the value goes to ``out2`` too."""
    cdef Py_ssize_t n = x.shape[0], chunk = 65536, nchunks, c
    if n == 0:
        return
    nchunks = (n + chunk - 1) // chunk
    with nogil:
        if threads > 1:
            for c in prange(nchunks, schedule="dynamic", chunksize=1, num_threads=threads):
                _scatter_range(&x[0], &ids[0], c * chunk, min((c + 1) * chunk, n), &E[0], &A[0],
                               &B[0], &out[0], &out2[0], both, divide, delta)
        else:
            _scatter_range(&x[0], &ids[0], 0, n, &E[0], &A[0], &B[0], &out[0], &out2[0], both,
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
            f = ((key[l] - qx[q]) + delta) / delta
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
            tagO[b] = Oq + (Cq * (((L[b] - Rq) + delta) / delta) if Cq != 0.0 else 0.0)
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


cdef struct Elem:
    double key
    double w[2 * MAXCH]     # weights as a member of an earlier group, then of a later group
    double acc[2 * MAXCH]   # sums over the earlier groups' members, then the later groups'
    int64_t idx


cdef struct Sweep:
    Elem* el                # elements, being sorted by key group by group
    Elem* tmp
    const int64_t* gptr     # group boundaries (G + 1)
    Py_ssize_t me           # channels summed over the earlier groups (0: none)
    Py_ssize_t ml           # channels summed over the later groups (0: none)
    double delta
    double inv_delta        # 1/delta where it is finite and normal, else 0 (then divide)
    double* suf             # members of one step: suffix sums and front aggregates
    double* fW
    double* fO


cdef inline double _per(const Sweep* S, double x) noexcept nogil:
    if S.inv_delta != 0.0:
        return x * S.inv_delta
    return x / S.delta


cdef void _cdq_contribute(Sweep* S, Elem* mem, Py_ssize_t nm, Elem* qs, Py_ssize_t nq,
                          Py_ssize_t m, Py_ssize_t off) noexcept nogil:
    """Add the members mem[:nm] (sorted by key; weights w[off:off+m]) to the queries qs[:nq]
    (sorted by key; sums acc[off:off+m]): sum_k w_k H(key_k - key_q), by one sliding pass."""
    cdef Py_ssize_t i, k, ch, a = 0, b = 0
    cdef Py_ssize_t l = 0, r = 0, mid = 0
    cdef Elem* q
    cdef double Wb[MAXCH]
    cdef double Ob[MAXCH]
    cdef double Wq[MAXCH]
    cdef double Oq[MAXCH]
    cdef double Lb = 0.0, f, d = S.delta, ls, le, hs, he
    for ch in range(m):
        S.suf[nm * m + ch] = 0.0
        Wb[ch] = 0.0
        Ob[ch] = 0.0
    for i in range(nm - 1, -1, -1):
        for ch in range(m):
            S.suf[i * m + ch] = S.suf[(i + 1) * m + ch] + mem[i].w[off + ch]
    for i in range(nq):
        q = &qs[i]
        if d > 0.0:
            _threshold(q.key, -d, &ls, &le)
            _threshold(q.key, d, &hs, &he)
        else:
            ls = hs = q.key
            le = he = 0.0
        # the window [a, b): members with key in [key_q - delta, key_q + delta)
        while a < nm and _below(mem[a].key, ls, le):
            a += 1
        if b < a:
            b = a
        while b < nm and _below(mem[b].key, hs, he):
            b += 1
        for ch in range(m):
            q.acc[off + ch] += S.suf[b * m + ch]
        if b <= a:
            continue
        # two-stack sliding aggregate over [a, b), as in sliding_window_sums
        if a >= r:
            l = a
            r = a
            mid = a
            for ch in range(m):
                Wb[ch] = 0.0
                Ob[ch] = 0.0
        while r < b:
            if r == mid:
                Lb = mem[r].key
                for ch in range(m):
                    Wb[ch] = mem[r].w[off + ch]
                    Ob[ch] = 0.0
            else:
                f = _per(S, mem[r].key - Lb)
                for ch in range(m):
                    if mem[r].w[off + ch] != 0.0:
                        Ob[ch] += mem[r].w[off + ch] * f
                    Wb[ch] += mem[r].w[off + ch]
            r += 1
        if a > l:
            l = a
            if l >= mid:
                for k in range(r - 1, l - 1, -1):
                    for ch in range(m):
                        S.fW[k * m + ch] = mem[k].w[off + ch]
                        S.fO[k * m + ch] = 0.0
                    if k + 1 < r:
                        f = _per(S, mem[k + 1].key - mem[k].key)
                        for ch in range(m):
                            S.fO[k * m + ch] = S.fO[(k + 1) * m + ch]
                            if S.fW[(k + 1) * m + ch] != 0.0:
                                S.fO[k * m + ch] += S.fW[(k + 1) * m + ch] * f
                            S.fW[k * m + ch] += S.fW[(k + 1) * m + ch]
                mid = r
                for ch in range(m):
                    Wb[ch] = 0.0
                    Ob[ch] = 0.0
        if l < mid:
            for ch in range(m):
                Wq[ch] = S.fW[l * m + ch]
                Oq[ch] = S.fO[l * m + ch]
            if r > mid:
                f = _per(S, Lb - mem[l].key)
                for ch in range(m):
                    Oq[ch] += Ob[ch]
                    if Wb[ch] != 0.0:
                        Oq[ch] += Wb[ch] * f
                    Wq[ch] += Wb[ch]
        else:
            for ch in range(m):
                Wq[ch] = Wb[ch]
                Oq[ch] = Ob[ch]
        f = _per(S, (mem[l].key - q.key) + d)
        for ch in range(m):
            q.acc[off + ch] += 0.5 * (Oq[ch] + (Wq[ch] * f if Wq[ch] != 0.0 else 0.0))


cdef inline double _step(const Sweep* S, double xk, double xq) noexcept nogil:
    """H(xk - xq) with the exact window thresholds of xq (as the window sums see it)."""
    cdef double s, e, d = S.delta
    if d > 0.0:
        _threshold(xq, d, &s, &e)
        if not _below(xk, s, e):
            return 1.0
        _threshold(xq, -d, &s, &e)
        if _below(xk, s, e):
            return 0.0
        return 0.5 * _per(S, (xk - xq) + d)
    return 1.0 if xk >= xq else 0.0


cdef void _cdq_base(Sweep* S, Py_ssize_t g0, Py_ssize_t g1) noexcept nogil:
    """A few elements: every pair of different groups directly, then an insertion sort."""
    cdef Py_ssize_t e0 = S.gptr[g0], e1 = S.gptr[g1], g, h, i, j, ch
    cdef double f
    cdef Elem tmp
    for g in range(g0, g1):
        for h in range(g + 1, g1):
            for i in range(S.gptr[g], S.gptr[g + 1]):      # i earlier, j later
                for j in range(S.gptr[h], S.gptr[h + 1]):
                    if S.me:
                        f = _step(S, S.el[i].key, S.el[j].key)
                        if f != 0.0:
                            for ch in range(S.me):
                                S.el[j].acc[ch] += S.el[i].w[ch] * f
                    if S.ml:
                        f = _step(S, S.el[j].key, S.el[i].key)
                        if f != 0.0:
                            for ch in range(S.ml):
                                S.el[i].acc[MAXCH + ch] += S.el[j].w[MAXCH + ch] * f
    for i in range(e0 + 1, e1):  # stable: equal keys keep the earlier group first
        tmp = S.el[i]
        j = i - 1
        while j >= e0 and S.el[j].key > tmp.key:
            S.el[j + 1] = S.el[j]
            j -= 1
        S.el[j + 1] = tmp


cdef void _cdq(Sweep* S, Py_ssize_t g0, Py_ssize_t g1) noexcept nogil:
    cdef Py_ssize_t e0 = S.gptr[g0], e1 = S.gptr[g1], gm, lo, hi, half, es, i, j, k
    if g1 - g0 <= 1:
        return  # one group: already sorted by key (the input is in (group, key) order)
    if e1 - e0 <= 16:
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
    if S.me:  # the earlier half's members to the later half's queries
        _cdq_contribute(S, &S.el[e0], es - e0, &S.el[es], e1 - es, S.me, 0)
    if S.ml:  # and the later half's members to the earlier half's queries
        _cdq_contribute(S, &S.el[es], e1 - es, &S.el[e0], es - e0, S.ml, MAXCH)
    # merge the two halves by key (ties: the earlier half first)
    i = e0
    j = es
    k = e0
    while i < es and j < e1:
        if S.el[i].key <= S.el[j].key:
            S.tmp[k] = S.el[i]
            i += 1
        else:
            S.tmp[k] = S.el[j]
            j += 1
        k += 1
    while i < es:
        S.tmp[k] = S.el[i]
        i += 1
        k += 1
    while j < e1:
        S.tmp[k] = S.el[j]
        j += 1
        k += 1
    memcpy(&S.el[e0], &S.tmp[e0], (e1 - e0) * sizeof(Elem))


def group_sums(const double[::1] key, const double[:, ::1] We, const double[:, ::1] Wl,
               const int64_t[::1] gptr, double delta, double[:, ::1] earlier,
               double[:, ::1] later):
    """earlier[q, ch] = sum over the members k of the groups before q's of We[k, ch] H(key_k - key_q),
    later[q, ch] = the same over the groups after q's, with Wl (a zero-column Wl or We skips it).

    Elements are in (group, key) order, group g being [gptr[g], gptr[g+1]).  An offline divide
    and conquer over the groups: O(n log G), every level reading and writing its elements
    sequentially (each element carries its key, weights and sums); only non-negative terms are
    added."""
    cdef Sweep S
    cdef Py_ssize_t n = key.shape[0], me = We.shape[1], ml = Wl.shape[1]
    cdef Py_ssize_t G = gptr.shape[0] - 1, i, ch
    cdef double inv
    for i in range(n):
        for ch in range(me):
            earlier[i, ch] = 0.0
        for ch in range(ml):
            later[i, ch] = 0.0
    if n == 0 or G <= 1:
        return
    S.gptr = &gptr[0]
    S.me = me
    S.ml = ml
    S.delta = delta
    S.inv_delta = 0.0
    if delta > 0.0:
        inv = 1.0 / delta
        if 1e-300 <= inv <= 1e300:
            S.inv_delta = inv
    S.el = <Elem*> malloc(n * sizeof(Elem))
    S.tmp = <Elem*> malloc(n * sizeof(Elem))
    S.suf = <double*> malloc((n + 1) * MAXCH * sizeof(double))
    S.fW = <double*> malloc(n * MAXCH * sizeof(double))
    S.fO = <double*> malloc(n * MAXCH * sizeof(double))
    if S.el == NULL or S.tmp == NULL or S.suf == NULL or S.fW == NULL or S.fO == NULL:
        free(S.el)
        free(S.tmp)
        free(S.suf)
        free(S.fW)
        free(S.fO)
        raise MemoryError()
    with nogil:
        for i in range(n):
            S.el[i].key = key[i]
            S.el[i].idx = i
            for ch in range(2 * MAXCH):
                S.el[i].w[ch] = 0.0
                S.el[i].acc[ch] = 0.0
            for ch in range(me):
                S.el[i].w[ch] = We[i, ch]
            for ch in range(ml):
                S.el[i].w[MAXCH + ch] = Wl[i, ch]
        _cdq(&S, 0, G)
        for i in range(n):
            for ch in range(me):
                earlier[S.el[i].idx, ch] = S.el[i].acc[ch]
            for ch in range(ml):
                later[S.el[i].idx, ch] = S.el[i].acc[MAXCH + ch]
    free(S.el)
    free(S.tmp)
    free(S.suf)
    free(S.fW)
    free(S.fO)


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
    cdef double xi = xp[i], ti = tp[i], h, q, ge
    cdef double rp = 0.0, cn = 0.0, tn = 0.0, td = 0.0, ms = 0.0
    cdef Py_ssize_t k
    for k in range(P):
        # branch-free: a masked term adds an exact 0.0
        h = relaxed_step(xp[k] - xi, delta)
        q = h * (1.0 - tp[k])
        ge = <double> (tp[k] >= ti)
        rp += h
        cn += q
        tn += ge * q
        td += ge * h
        ms += (1.0 - ge) * h
    out[0] = rp
    out[1] = cn
    out[2] = tn
    out[3] = td
    out[4] = ms


def rs_positive_terms_direct(const double[::1] xp, const double[::1] tp, double delta):
    """Per positive i, with H_ik = H(x_k - x_i) over all positives k (self included):
    columns rank_pos, sum H(1-t_k), sum_{t_k>=t_i} H(1-t_k), sum_{t_k>=t_i} H, sum_{t_k<t_i} H.
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
                s += (<double> (tp[k] < tp[i])) * (relaxed_step(xp[k] - xp[i], delta) * w[i])
            o[k] = s
    return out
