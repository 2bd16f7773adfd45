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
from libc.stdint cimport int8_t, int32_t, int64_t
from libc.stdlib cimport calloc, free, malloc, realloc

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


cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define RANKREF_OPENMP 1
    static void rankref_set_threads(int n) { omp_set_num_threads(n); }
    static int rankref_max_threads(void) { return omp_get_max_threads(); }
    #else
    #define RANKREF_OPENMP 0
    static void rankref_set_threads(int n) { (void) n; }
    static int rankref_max_threads(void) { return 1; }
    #endif
    """
    int RANKREF_OPENMP
    void rankref_set_threads(int n) nogil
    int rankref_max_threads() nogil

_OPENMP = bool(RANKREF_OPENMP)


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return _OPENMP


def set_num_threads(int n):
    """Number of OpenMP threads for the following kernel calls (no effect without OpenMP).
    Results do not depend on it."""
    if n < 1:
        raise ValueError(f"the number of threads must be >= 1, got {n}.")
    rankref_set_threads(n)


def get_num_threads():
    """Number of OpenMP threads the kernels may use (1 without OpenMP)."""
    return rankref_max_threads()


cdef inline double relaxed_step(double u, double delta) noexcept nogil:
    """H_delta(u) = clip(1/2 + (u / delta) / 2, 0, 1) (no 2*delta: it overflows); H_0(u) = [u >= 0]."""
    if delta > 0.0:
        return fmin(fmax((u / delta) * 0.5 + 0.5, 0.0), 1.0)
    return <double> (u >= 0.0)


# --------------------------------------------------------------------------------------------
# Scans over the N entries
# --------------------------------------------------------------------------------------------

def scan_targets(const target_t[::1] t, bint binary):
    """Validate targets and collect the flat indices of the positives (t > 0).

    ``binary`` False: valid targets are t <= 1, not NaN, not -inf (t < 0 ignored).
    ``binary`` True: valid targets are exactly -1, 0 and 1.
    Returns ``(pos_index, bad)``: ``bad`` is the first invalid flat index, or -1.
    """
    cdef Py_ssize_t n = t.shape[0]
    cdef Py_ssize_t j, npos = 0, cap = 256, bad = -1
    cdef bint oom = False, any_bad = False
    cdef double tv
    cdef int64_t* buf = <int64_t*> malloc(cap * sizeof(int64_t))
    cdef int64_t* tmp
    if buf == NULL:
        raise MemoryError()
    with nogil:
        # the validity test is accumulated without a branch; positives are rare
        for j in range(n):
            tv = <double> t[j]
            if binary:
                any_bad = any_bad | ((tv != 0.0) & (tv != 1.0) & (tv != -1.0))
            else:
                any_bad = any_bad | (not (tv <= 1.0)) | (tv == -INFINITY)
            if tv > 0.0:
                if npos == cap:
                    cap = 2 * cap
                    tmp = <int64_t*> realloc(buf, cap * sizeof(int64_t))
                    if tmp == NULL:
                        oom = True
                        break
                    buf = tmp
                buf[npos] = j
                npos += 1
        if any_bad:
            for j in range(n):
                tv = <double> t[j]
                if binary:
                    if tv != 0.0 and tv != 1.0 and tv != -1.0:
                        bad = j
                        break
                elif not (tv <= 1.0) or tv == -INFINITY:
                    bad = j
                    break
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
# Bucket search.  E holds the M sorted threshold floats s followed by two +inf sentinels, Er the
# exact rounding errors e (zeros for the sentinels): threshold k is the real s_k + e_k, and
# T <= v  <=>  s < v  or  (s == v and e <= 0).  A uniform grid of K cells over [E[0], E[M-1]] is
# indexed by cell_of(), a monotone function of v, and lut[c] = #{k : cell_of(E[k]) < c}.
# Monotonicity makes every float of an earlier cell <= v and every float of a later cell > v, so
# only the floats of v's own cell are compared: the answer is exact whatever the rounding.
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


cdef inline Py_ssize_t find_bucket(double v, const double* E, const double* Er, Py_ssize_t M,
                                   const int32_t* lut, Py_ssize_t K, double e0,
                                   double inv_w) noexcept nogil:
    """#{k < M : (E[k], Er[k]) <= v} for v >= E[0] (the exact thresholds below or at v)."""
    cdef Py_ssize_t c, lo, n, half
    if v >= E[M - 1]:
        lo = M
    else:
        c = cell_of(v, e0, inv_w, K)
        lo = lut[c]
        n = lut[c + 1] - lo
        if n <= 2:
            # floats past the cell (or the sentinels) are > v, so this count is exact
            lo = lo + (E[lo] <= v) + (E[lo + 1] <= v)
        else:
            while n > 0:
                half = n >> 1
                if E[lo + half] <= v:
                    lo = lo + half + 1
                    n = n - half - 1
                else:
                    n = half
    # a threshold whose float equals v but whose exact value is above it (e > 0) is above v
    while lo > 0 and E[lo - 1] == v and Er[lo - 1] > 0.0:
        lo -= 1
    return lo


cdef inline Py_ssize_t _bin_segment(const floating* x, const target_t* t, Py_ssize_t j0,
                                    Py_ssize_t j1, const double* E, const double* Er,
                                    Py_ssize_t M, const int32_t* lut, Py_ssize_t K,
                                    double inv_w, int64_t* cnt, double* sm) noexcept nogil:
    # one segment of bin_negatives; returns the first non-finite index, or -1
    cdef Py_ssize_t j, b
    cdef double v, e0 = E[0]
    for j in range(j0, j1):
        v = x[j]
        if not (v - v == 0.0):
            return j
        if t[j] == 0:
            if v >= e0:
                b = find_bucket(v, E, Er, M, lut, K, e0, inv_w)
                cnt[b] += 1
                if b > 0:
                    sm[b] += v - E[b - 1]
            else:
                cnt[0] += 1
    return -1


def bin_negatives(const floating[::1] x, const target_t[::1] t,
                  const double[::1] E, const double[::1] Er, const int32_t[::1] lut,
                  double inv_w, int64_t[::1] counts, double[::1] offsum,
                  Py_ssize_t segments, int threads):
    """Histogram the negatives (t == 0) over the exact-threshold buckets, and check every
    logit.

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
            bad = _bin_segment(&x[0], &t[0], 0, n, &E[0], &Er[0], M, &lut[0], K, inv_w,
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
            first_bad[s] = _bin_segment(&x[0], &t[0], min(s * seg, n), min((s + 1) * seg, n),
                                        &E[0], &Er[0], M, &lut[0], K, inv_w,
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


def bucket_ids(const floating[::1] x, const target_t[::1] t, const double[::1] E,
               const double[::1] Er, const int32_t[::1] lut, double inv_w, int64_t[::1] ids):
    """ids[j] = bucket of negative j (0 below every threshold), -1 for entries that are not
    negatives.  Logits are finite (checked by the binning pass)."""
    cdef Py_ssize_t n = x.shape[0], M = E.shape[0] - 2, K = lut.shape[0] - 1, j
    cdef double v, e0 = E[0]
    with nogil:
        for j in range(n):
            if t[j] == 0:
                v = x[j]
                ids[j] = find_bucket(v, &E[0], &Er[0], M, &lut[0], K, e0, inv_w) \
                    if v >= e0 else 0
            else:
                ids[j] = -1


cdef inline void _scatter_range(const floating* x, const target_t* t, Py_ssize_t j0,
                                Py_ssize_t j1, const double* E, const double* Er, Py_ssize_t M,
                                const int32_t* lut, Py_ssize_t K, double inv_w,
                                const double* A, const double* B, floating* out,
                                floating* out2, bint both, bint divide,
                                double delta) noexcept nogil:
    cdef Py_ssize_t j, b
    cdef double v, g, e0 = E[0]
    for j in range(j0, j1):
        if t[j] == 0:
            v = x[j]
            if v >= e0:
                b = find_bucket(v, E, Er, M, lut, K, e0, inv_w)
                if b > 0:
                    g = A[b]
                    if B[b] != 0.0:  # buckets outside every window read A only
                        if divide:
                            g = g + B[b] * ((v - E[b - 1]) / delta)
                        else:
                            g = g + B[b] * (v - E[b - 1])
                    if g != 0.0:
                        out[j] = <floating> g
                        if both:
                            out2[j] = <floating> g


def scatter_negatives(const floating[::1] x, const target_t[::1] t, const double[::1] E,
                      const double[::1] Er, const int32_t[::1] lut, double inv_w,
                      const double[::1] A, const double[::1] B, floating[::1] out,
                      floating[::1] out2, bint both, bint divide, double delta, int threads):
    """Write the gradient of every negative: g_j = A[b] + B[b] (x_j - E[b-1]) on bucket b >= 1
    (``divide``: A[b] + B[b] (x_j - E[b-1]) / delta, for a delta so small that 1/delta
    overflows).  Entries that are not negatives, bucket 0 and zero gradients are not written
    (the caller passes zeroed outputs).  With ``both`` the value is written to ``out2`` too."""
    cdef Py_ssize_t n = x.shape[0], M = E.shape[0] - 2, K = lut.shape[0] - 1
    cdef Py_ssize_t chunk = 65536, nchunks = (n + chunk - 1) // chunk, c
    if n == 0:
        return
    with nogil:
        if threads > 1:
            for c in prange(nchunks, schedule="dynamic", chunksize=1, num_threads=threads):
                _scatter_range(&x[0], &t[0], c * chunk, min((c + 1) * chunk, n), &E[0], &Er[0],
                               M, &lut[0], K, inv_w, &A[0], &B[0], &out[0], &out2[0], both,
                               divide, delta)
        else:
            _scatter_range(&x[0], &t[0], 0, n, &E[0], &Er[0], M, &lut[0], K, inv_w, &A[0],
                           &B[0], &out[0], &out2[0], both, divide, delta)


# --------------------------------------------------------------------------------------------
# Window sums on a segment tree with local references (only non-negative terms are added)
#
# Leaves p < n carry a key (sorted ascending), weights W[p, ch] >= 0 and offsets O[p, ch] =
# sum w (x - key_p) / delta >= 0 of the members they aggregate (0 for a single member).  A node's
# key is the key of its leftmost leaf, its O the members' offsets from that key, divided by
# delta.  For a query point q and a leaf range, every canonical node v adds
#     O_v + W_v ((key_v - q) + delta) / delta,
# which is >= 0 inside q's window [q - delta, q + delta): no prefix difference, no cancellation.
# Nodes outside every window may hold inf offsets (huge spans, tiny delta); queries never read
# them, and zero weights are skipped (no 0 * inf).
# --------------------------------------------------------------------------------------------

cdef struct Tree:
    Py_ssize_t S        # number of leaves (power of two)
    Py_ssize_t m        # channels
    double* key         # 2S
    double* W           # 2S * m
    double* O           # 2S * m
    double delta


cdef inline double _per_delta(const Tree* T, double diff) noexcept nogil:
    # a true division (not a product with 1/delta): exact ratios such as delta/delta stay exact,
    # and 1/delta would overflow for subnormal delta
    return diff / T.delta


cdef int _tree_init(Tree* T, const double* key, Py_ssize_t n, Py_ssize_t m,
                    double delta) noexcept nogil:
    cdef Py_ssize_t S = 1, v, p
    while S < n:
        S <<= 1
    T.S = S
    T.m = m
    T.delta = delta
    T.key = <double*> malloc(2 * S * sizeof(double))
    T.W = <double*> calloc(2 * S * m, sizeof(double))
    T.O = <double*> calloc(2 * S * m, sizeof(double))
    if T.key == NULL or T.W == NULL or T.O == NULL:
        free(T.key)
        free(T.W)
        free(T.O)
        return -1
    for p in range(S):
        T.key[S + p] = key[p] if p < n else key[n - 1]
    for v in range(S - 1, 0, -1):
        T.key[v] = T.key[2 * v]
    return 0


cdef void _tree_free(Tree* T) noexcept nogil:
    free(T.key)
    free(T.W)
    free(T.O)


cdef void _tree_build(Tree* T, const double* W, const double* O, Py_ssize_t n) noexcept nogil:
    """Static build: all n leaves present."""
    cdef Py_ssize_t S = T.S, m = T.m, p, v, ch, l, r
    cdef double w
    for p in range(n):
        for ch in range(m):
            T.W[(S + p) * m + ch] = W[p * m + ch]
            T.O[(S + p) * m + ch] = O[p * m + ch]
    for v in range(S - 1, 0, -1):
        l = 2 * v
        r = 2 * v + 1
        for ch in range(m):
            w = T.W[r * m + ch]
            T.W[v * m + ch] = T.W[l * m + ch] + w
            T.O[v * m + ch] = T.O[l * m + ch] + T.O[r * m + ch]
            if w != 0.0:
                T.O[v * m + ch] += w * _per_delta(T, T.key[r] - T.key[v])


cdef void _tree_insert(Tree* T, Py_ssize_t p, const double* w, const double* o) noexcept nogil:
    cdef Py_ssize_t m = T.m, v = T.S + p, ch
    cdef double kp = T.key[v], dist
    for ch in range(m):
        T.W[v * m + ch] += w[ch]
        T.O[v * m + ch] += o[ch]
    v >>= 1
    while v >= 1:
        dist = _per_delta(T, kp - T.key[v])
        for ch in range(m):
            T.W[v * m + ch] += w[ch]
            if w[ch] != 0.0:
                T.O[v * m + ch] += o[ch] + w[ch] * dist
            else:
                T.O[v * m + ch] += o[ch]
        v >>= 1


cdef void _tree_query(const Tree* T, double q, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t end,
                      double* out) noexcept nogil:
    """out[ch] = sum_{[hi, end)} W + (sum over the window [lo, hi) of node terms) / 2."""
    cdef Py_ssize_t m = T.m, S = T.S, l, r, ch, v
    cdef double f
    cdef double above[2]
    cdef double win[2]
    for ch in range(m):
        above[ch] = 0.0
        win[ch] = 0.0
    l = hi + S
    r = end + S
    while l < r:
        if l & 1:
            for ch in range(m):
                above[ch] += T.W[l * m + ch]
            l += 1
        if r & 1:
            r -= 1
            for ch in range(m):
                above[ch] += T.W[r * m + ch]
        l >>= 1
        r >>= 1
    l = lo + S
    r = hi + S
    while l < r:
        if l & 1:
            v = l
            l += 1
            f = _per_delta(T, (T.key[v] - q) + T.delta)
            for ch in range(m):
                if T.W[v * m + ch] != 0.0:
                    win[ch] += T.O[v * m + ch] + T.W[v * m + ch] * f
        if r & 1:
            r -= 1
            v = r
            f = _per_delta(T, (T.key[v] - q) + T.delta)
            for ch in range(m):
                if T.W[v * m + ch] != 0.0:
                    win[ch] += T.O[v * m + ch] + T.W[v * m + ch] * f
        l >>= 1
        r >>= 1
    for ch in range(m):
        out[ch] = above[ch] + 0.5 * win[ch]


def static_window_sums(const double[::1] key, const double[:, ::1] W, const double[:, ::1] O,
                       const double[::1] qx, const int64_t[::1] qlo, const int64_t[::1] qhi,
                       const int64_t[::1] qend, double delta, double[:, ::1] out, int threads):
    """For every query q: out[q] = sum_{leaves [qhi, qend)} W
    + sum_{leaves [qlo, qhi)} (O + W ((key - qx) + delta) / delta) / 2, i.e.
    sum_k w_k H_delta(x_k - qx) when [qlo, qhi) is qx's window and [qhi, qend) lies above it.

    ``key`` sorted ascending (n >= 1 leaves); W, O of shape (n, m), m <= 2."""
    cdef Tree T
    cdef Py_ssize_t n = key.shape[0], m = W.shape[1], Q = qx.shape[0], q
    if n == 0 or Q == 0:
        return
    if _tree_init(&T, &key[0], n, m, delta) != 0:
        raise MemoryError()
    with nogil:
        _tree_build(&T, &W[0, 0], &O[0, 0], n)
        if threads > 1:
            for q in prange(Q, schedule="static", num_threads=threads):
                _tree_query(&T, qx[q], qlo[q], qhi[q], qend[q], &out[q, 0])
        else:
            for q in range(Q):
                _tree_query(&T, qx[q], qlo[q], qhi[q], qend[q], &out[q, 0])
    _tree_free(&T)


def sweep_window_sums(const double[::1] key, const double[:, ::1] W, const int64_t[::1] order,
                      const int64_t[::1] group_ptr, const double[::1] qx,
                      const int64_t[::1] qlo, const int64_t[::1] qhi, const int64_t[::1] qend,
                      bint strict, double delta, double[:, ::1] out, double[:, ::1] out_all,
                      bint query_all):
    """Window sums over a growing set: the leaves ``order[group_ptr[g]:group_ptr[g+1]]`` form
    group g (leaf p is also query p).  Groups are processed in order; with ``strict`` a group is
    queried before it is inserted (it sees the earlier groups only), otherwise after (it also sees
    itself).  out[p] is the query of leaf p, as in :func:`static_window_sums`.  With
    ``query_all``, out_all[p] is the query of leaf p on the final tree (every leaf inserted): the
    same additions in the same order as the last group's queries, so sums over equal sets are
    bitwise equal."""
    cdef Tree T
    cdef Py_ssize_t n = key.shape[0], m = W.shape[1], G = group_ptr.shape[0] - 1
    cdef Py_ssize_t g, k, p, ch
    cdef double zero[2]
    zero[0] = 0.0
    zero[1] = 0.0
    if n == 0:
        return
    if _tree_init(&T, &key[0], n, m, delta) != 0:
        raise MemoryError()
    with nogil:
        for g in range(G):
            if strict:
                for k in range(group_ptr[g], group_ptr[g + 1]):
                    p = order[k]
                    _tree_query(&T, qx[p], qlo[p], qhi[p], qend[p], &out[p, 0])
            for k in range(group_ptr[g], group_ptr[g + 1]):
                p = order[k]
                _tree_insert(&T, p, &W[p, 0], zero)
            if not strict:
                for k in range(group_ptr[g], group_ptr[g + 1]):
                    p = order[k]
                    _tree_query(&T, qx[p], qlo[p], qhi[p], qend[p], &out[p, 0])
        if query_all:
            for p in range(n):
                _tree_query(&T, qx[p], qlo[p], qhi[p], qend[p], &out_all[p, 0])
    _tree_free(&T)


def window_coefficients(const double[::1] key, const int64_t[::1] lo, const int64_t[::1] hi,
                        const double[::1] qx, const double[::1] c, double delta,
                        double[::1] tagC, double[::1] tagO):
    """Range-add, then push down: for every leaf b,
    tagC[b] = sum_{i : lo_i <= b < hi_i} c_i  and
    tagO[b] = sum_{i : lo_i <= b < hi_i} c_i ((key_b - qx_i) + delta) / delta,
    so that sum_i c_i H_delta(x - qx_i) over those i equals (tagO[b] + tagC[b] (x - key_b)/delta)/2
    for x in leaf b.  Every addition is of non-negative terms (c >= 0)."""
    cdef Tree T
    cdef Py_ssize_t n = key.shape[0], P = qx.shape[0], S, i, l, r, v, p
    cdef double ci, f
    if n == 0:
        return
    if _tree_init(&T, &key[0], n, 1, delta) != 0:
        raise MemoryError()
    S = T.S
    with nogil:
        for i in range(P):
            ci = c[i]
            if ci == 0.0 or lo[i] >= hi[i]:
                continue
            l = lo[i] + S
            r = hi[i] + S
            while l < r:
                if l & 1:
                    T.W[l] += ci
                    T.O[l] += ci * _per_delta(&T, (T.key[l] - qx[i]) + delta)
                    l += 1
                if r & 1:
                    r -= 1
                    T.W[r] += ci
                    T.O[r] += ci * _per_delta(&T, (T.key[r] - qx[i]) + delta)
                l >>= 1
                r >>= 1
        for v in range(1, S):
            ci = T.W[v]
            if ci != 0.0:
                f = T.O[v]
                T.W[2 * v] += ci
                T.O[2 * v] += f
                T.W[2 * v + 1] += ci
                T.O[2 * v + 1] += f + ci * _per_delta(&T, T.key[2 * v + 1] - T.key[v])
        for p in range(n):
            tagC[p] = T.W[S + p]
            tagO[p] = T.O[S + p]
    _tree_free(&T)


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
