# Private Cython kernels of rankref.
#
# Every argument is validated and coerced (dtype, C-contiguity, lengths, finiteness of the
# breakpoints) by the Python layer before a kernel is called: bounds checks are off.
# Accumulation is always in float64.  ``prange`` is used only where each iteration writes its
# own output, so results do not depend on the number of threads.
from cython.parallel cimport prange
from libc.math cimport INFINITY, fmax, fmin
from libc.stdint cimport int8_t, int32_t, int64_t
from libc.stdlib cimport free, malloc, realloc

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


cdef inline double heaviside(double u, double delta) noexcept nogil:
    """Relaxed step H_delta(u) of DESIGN.md section 2 (H_0(0) = 1)."""
    if delta > 0.0:
        return fmin(fmax(u / (2.0 * delta) + 0.5, 0.0), 1.0)
    return <double> (u >= 0.0)


cdef extern from *:
    """
    #ifdef _OPENMP
    #define RANKREF_OPENMP 1
    #else
    #define RANKREF_OPENMP 0
    #endif
    """
    int RANKREF_OPENMP

_OPENMP = bool(RANKREF_OPENMP)


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return _OPENMP


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
    cdef bint oom = False
    cdef double tv
    cdef int64_t* buf = <int64_t*> malloc(cap * sizeof(int64_t))
    cdef int64_t* tmp
    if buf == NULL:
        raise MemoryError()
    with nogil:
        for j in range(n):
            tv = <double> t[j]
            if binary:
                if tv != 0.0 and tv != 1.0 and tv != -1.0:
                    bad = j
                    break
            elif not (tv <= 1.0) or tv == -INFINITY:
                bad = j
                break
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
    cdef double v
    with nogil:
        for j in range(n):
            v = x[j]
            if not (v - v == 0.0):
                bad = j
                break
    return bad


# Bucket search.  E holds the M sorted breakpoints followed by two +inf sentinels.  A uniform
# grid of K cells over [E[0], E[M-1]] is indexed by cell_of(), a monotone function of v, and
# lut[c] = #{k : cell_of(E[k]) < c}.  Monotonicity makes every edge of an earlier cell <= v and
# every edge of a later cell > v, so only the edges of v's own cell are compared: the answer is
# exact whatever the rounding, and the grid only affects speed.

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


cdef inline Py_ssize_t find_bucket(double v, const double* E, Py_ssize_t M,
                                   const int32_t* lut, Py_ssize_t K,
                                   double e0, double inv_w) noexcept nogil:
    """#{e in E[:M] : e <= v}, for v >= E[0]."""
    cdef Py_ssize_t c, lo, n, half
    if v >= E[M - 1]:
        return M
    c = cell_of(v, e0, inv_w, K)
    lo = lut[c]
    n = lut[c + 1] - lo
    if n <= 2:
        # edges past the cell (or the sentinels) are > v, so this count is exact
        return lo + (E[lo] <= v) + (E[lo + 1] <= v)
    while n > 0:
        half = n >> 1
        if E[lo + half] <= v:
            lo = lo + half + 1
            n = n - half - 1
        else:
            n = half
    return lo


cdef inline Py_ssize_t _bin_segment(const floating* x, const target_t* t, Py_ssize_t j0,
                                    Py_ssize_t j1, const double* E, Py_ssize_t M,
                                    const int32_t* lut, Py_ssize_t K, double inv_w,
                                    int64_t* cnt, double* sm, int32_t* ids,
                                    bint full) noexcept nogil:
    # one segment of bin_negatives; returns the first non-finite index, or -1
    cdef Py_ssize_t j, b
    cdef double v, e0 = E[0]
    for j in range(j0, j1):
        v = x[j]
        if not (v - v == 0.0):
            return j
        if t[j] == 0:
            if v >= e0:
                b = find_bucket(v, E, M, lut, K, e0, inv_w)
                cnt[b] += 1
                sm[b] += v - E[b - 1]
            else:
                b = 0
                if full:
                    cnt[0] += 1
                    sm[0] += v
            ids[j] = <int32_t> b
        else:
            ids[j] = -1
    return -1


def bin_negatives(const floating[::1] x, const target_t[::1] t,
                  const double[::1] E, const int32_t[::1] lut, double inv_w,
                  int64_t[::1] counts, double[::1] offsum,
                  int32_t[::1] ids, bint full, Py_ssize_t segments):
    """Bin the negatives (t == 0) into the breakpoint buckets, and check every logit.

    ``E`` holds the M sorted breakpoints followed by two +inf sentinels.  Bucket b >= 1 is
    [E[b-1], E[b]); ``counts[b]`` and ``offsum[b] = sum (x_j - E[b-1])`` are accumulated for
    b >= 1 (offsets keep every partial sum small and non-negative).  Negatives below E[0] are in
    bucket 0, histogrammed (raw sum) only when ``full``.  ``ids[j]`` receives every entry's
    bucket, -1 for entries that are not negatives.

    The entries are cut into a fixed number of ``segments``, each with its own histogram,
    merged in order: the result does not depend on the number of threads.
    Returns the first flat index whose logit is NaN or inf, or -1.
    """
    cdef Py_ssize_t n = x.shape[0], M = E.shape[0] - 2, K = lut.shape[0] - 1
    cdef Py_ssize_t nb = M + 1, S = segments, s, b, seg, bad = -1, r
    cdef int64_t* cnt = <int64_t*> malloc(S * nb * sizeof(int64_t))
    cdef double* sm = <double*> malloc(S * nb * sizeof(double))
    cdef Py_ssize_t* first_bad = <Py_ssize_t*> malloc(S * sizeof(Py_ssize_t))
    if cnt == NULL or sm == NULL or first_bad == NULL:
        free(cnt)
        free(sm)
        free(first_bad)
        raise MemoryError()
    seg = (n + S - 1) // S
    with nogil:
        for b in range(S * nb):
            cnt[b] = 0
            sm[b] = 0.0
        for s in prange(S, schedule="static", chunksize=1):
            if n > 0:
                first_bad[s] = _bin_segment(&x[0], &t[0], min(s * seg, n), min((s + 1) * seg, n),
                                            &E[0], M, &lut[0], K, inv_w,
                                            &cnt[s * nb], &sm[s * nb], &ids[0], full)
            else:
                first_bad[s] = -1
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


def scatter_negatives(const floating[::1] x, const int32_t[::1] ids,
                      const double[::1] E, const double[::1] A, const double[::1] B,
                      floating[::1] out, floating[::1] out2, bint both):
    """Write the gradient of every negative above E[0]: g_j = A[b] + B[b] (x_j - E[b-1]),
    with b = ids[j] from :func:`bin_negatives`.

    Entries with ids[j] <= 0 are left untouched (the caller passes zeroed outputs).
    With ``both`` the same value is written to ``out2`` as well.
    """
    cdef Py_ssize_t n = x.shape[0], j
    cdef int32_t b
    cdef double g
    for j in prange(n, nogil=True, schedule="static"):
        b = ids[j]
        if b > 0:
            g = A[b] + B[b] * (x[j] - E[b - 1])
            out[j] = <floating> g
            if both:
                out2[j] = <floating> g


# --------------------------------------------------------------------------------------------
# Per-positive window sums over the buckets (O(P * window) <= O(P * 2P))
# --------------------------------------------------------------------------------------------

cdef inline double _window_sum(Py_ssize_t lo, Py_ssize_t hi, double a, const double* E,
                               const int64_t* counts, const double* offsum) noexcept nogil:
    # sum over buckets b in [lo, hi) and members j of (x_j - a), every term >= 0
    cdef double s = 0.0
    cdef Py_ssize_t b
    for b in range(lo, hi):
        s += offsum[b] + <double> counts[b] * (E[b - 1] - a)  # empty buckets add 0.0
    return s


def window_fp(const double[::1] E, const int64_t[::1] counts, const double[::1] offsum,
              const double[::1] above, const int64_t[::1] lo, const int64_t[::1] hi,
              const double[::1] a, double delta, double[::1] fp):
    """FP_i = #{negatives in buckets >= hi_i} + sum_{window} (x_j - a_i) / (2 delta).

    ``above[b]`` is the number of negatives in buckets >= b; ``a_i = x_i - delta``.
    """
    cdef Py_ssize_t P = lo.shape[0], i
    cdef const double* Ep = &E[0]
    cdef const int64_t* cp = &counts[0]
    cdef const double* sp = &offsum[0]
    for i in prange(P, nogil=True, schedule="static"):
        if delta > 0.0:
            fp[i] = above[hi[i]] + _window_sum(lo[i], hi[i], a[i], Ep, cp, sp) / (2.0 * delta)
        else:
            fp[i] = above[hi[i]]


def window_coefficients(const double[::1] E, const int64_t[::1] lo, const int64_t[::1] hi,
                        const double[::1] a, const double[::1] c, double delta,
                        double[::1] A, double[::1] B):
    """Per-bucket affine gradient g(x) = A[b] + B[b] (x - E[b-1]) = sum_i c_i H(x - x_i).

    Each positive adds c_i to every bucket >= hi_i (a difference array), and
    c_i (E[b-1] - a_i)/(2 delta) to A[b], c_i/(2 delta) to B[b] on its window [lo_i, hi_i).
    All coefficients are >= 0, so no partial sum cancels.  ``A`` and ``B`` must be zeroed.
    """
    cdef Py_ssize_t P = lo.shape[0], nb = A.shape[0], i, b
    cdef double ci, run = 0.0
    cdef double* T = <double*> malloc(nb * sizeof(double))
    if T == NULL:
        raise MemoryError()
    with nogil:
        for b in range(nb):
            T[b] = 0.0
        for i in range(P):
            ci = c[i]
            if ci == 0.0:
                continue
            T[hi[i]] += ci
            if delta > 0.0:
                for b in range(lo[i], hi[i]):
                    A[b] += ci * (E[b - 1] - a[i]) / (2.0 * delta)
                    B[b] += ci / (2.0 * delta)
        for b in range(nb):
            run = run + T[b]
            A[b] += run
    free(T)


# --------------------------------------------------------------------------------------------
# Positive-positive terms, O(P^2)
# --------------------------------------------------------------------------------------------

cdef inline void _rs_row(Py_ssize_t i, const double* xp, const double* tp, Py_ssize_t P,
                         double delta, double* out) noexcept nogil:
    cdef double xi = xp[i], ti = tp[i], h, q, ge
    cdef double rp = 0.0, cn = 0.0, tn = 0.0, td = 0.0, ms = 0.0
    cdef Py_ssize_t k
    for k in range(P):
        # branch-free: a masked term adds an exact 0.0
        h = heaviside(xp[k] - xi, delta)
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


def rs_positive_terms(const double[::1] xp, const double[::1] tp, double delta):
    """Per positive i, with H_ik = H(x_k - x_i) over all positives k (self included):
    columns rank_pos, sum H(1-t_k), sum_{t_k>=t_i} H(1-t_k), sum_{t_k>=t_i} H, sum_{t_k<t_i} H.
    """
    cdef Py_ssize_t P = xp.shape[0], i
    out = np.zeros((P, 5), dtype=np.float64)
    cdef double[:, ::1] o = out
    if P == 0:
        return out
    for i in prange(P, nogil=True, schedule="dynamic"):
        _rs_row(i, &xp[0], &tp[0], P, delta, &o[i, 0])
    return out


cdef inline double _rs_sort_col(Py_ssize_t k, const double* xp, const double* tp,
                                const double* w, Py_ssize_t P, double delta) noexcept nogil:
    cdef double s = 0.0, xk = xp[k], tk = tp[k]
    cdef Py_ssize_t i
    for i in range(P):
        s += (<double> (tk < tp[i])) * (heaviside(xk - xp[i], delta) * w[i])
    return s


def rs_sorting_scatter(const double[::1] xp, const double[::1] tp, const double[::1] w,
                       double delta):
    """g_k = sum_{i : t_k < t_i} H(x_k - x_i) w_i (the sorting pmf of RS loss)."""
    cdef Py_ssize_t P = xp.shape[0], k
    out = np.zeros(P, dtype=np.float64)
    cdef double[::1] o = out
    if P == 0:
        return out
    for k in prange(P, nogil=True, schedule="dynamic"):
        o[k] = _rs_sort_col(k, &xp[0], &tp[0], &w[0], P, delta)
    return out


cdef inline double _others_sum(Py_ssize_t i, const double* xp, Py_ssize_t P,
                               double delta) noexcept nogil:
    cdef double s = 0.0, xi = xp[i]
    cdef Py_ssize_t k
    for k in range(P):
        if k != i:
            s += heaviside(xp[k] - xi, delta)
    return s


def positive_rank_others(const double[::1] xp, double delta):
    """sum_{k != i} H(x_k - x_i) over the positives (the AP-Loss rank without its self term)."""
    cdef Py_ssize_t P = xp.shape[0], i
    out = np.zeros(P, dtype=np.float64)
    cdef double[::1] o = out
    if P == 0:
        return out
    for i in prange(P, nogil=True, schedule="dynamic"):
        o[i] = _others_sum(i, &xp[0], P, delta)
    return out


# --------------------------------------------------------------------------------------------
# BRS prototypes: every bucket is represented by its mean (O(P * B))
# --------------------------------------------------------------------------------------------

cdef inline double _proto_fp(double xi, const double* means, const double* n_b,
                             Py_ssize_t nb, double delta) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t b
    for b in range(nb):
        s += n_b[b] * heaviside(means[b] - xi, delta)
    return s


def prototype_fp(const double[::1] means, const double[::1] n_b, const double[::1] xp,
                 double delta):
    """FP_i = sum_b |b| H(mean_b - x_i) (the BRS approximation)."""
    cdef Py_ssize_t P = xp.shape[0], nb = means.shape[0], i
    out = np.zeros(P, dtype=np.float64)
    cdef double[::1] o = out
    if P == 0 or nb == 0:
        return out
    for i in prange(P, nogil=True, schedule="static"):
        o[i] = _proto_fp(xp[i], &means[0], &n_b[0], nb, delta)
    return out


cdef inline double _proto_grad(double mb, const double* xp, const double* c, Py_ssize_t P,
                               double delta) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t i
    for i in range(P):
        if c[i] != 0.0:
            s += c[i] * heaviside(mb - xp[i], delta)
    return s


def prototype_grad(const double[::1] means, const double[::1] xp, const double[::1] c,
                   double delta):
    """Per-member gradient of each BRS bucket: G_b = sum_i c_i H(mean_b - x_i)."""
    cdef Py_ssize_t P = xp.shape[0], nb = means.shape[0], b
    out = np.zeros(nb, dtype=np.float64)
    cdef double[::1] o = out
    if P == 0 or nb == 0:
        return out
    for b in prange(nb, nogil=True, schedule="static"):
        o[b] = _proto_grad(means[b], &xp[0], &c[0], P, delta)
    return out


# --------------------------------------------------------------------------------------------
# Grouped positive-positive terms (GAP): positives sorted by class, class of i = [start_i, stop_i)
# --------------------------------------------------------------------------------------------

cdef inline double _range_sum(double xi, const double* xs, Py_ssize_t k0, Py_ssize_t k1,
                              double delta) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t k
    for k in range(k0, k1):
        s += heaviside(xs[k] - xi, delta)
    return s


def class_rank(const double[::1] xs, const int64_t[::1] start, const int64_t[::1] stop,
               double delta):
    """rank_pos_i = sum_{k in class(i)} H(x_k - x_i), self included (O(sum_m P_m^2))."""
    cdef Py_ssize_t P = xs.shape[0], i
    out = np.zeros(P, dtype=np.float64)
    cdef double[::1] o = out
    if P == 0:
        return out
    for i in prange(P, nogil=True, schedule="dynamic"):
        o[i] = _range_sum(xs[i], &xs[0], start[i], stop[i], delta)
    return out


def other_class_sums(const double[::1] xs, const int64_t[::1] start, const int64_t[::1] stop,
                     double delta):
    """sum_{k not in class(i)} H(x_k - x_i): other classes' positives ranked above i."""
    cdef Py_ssize_t P = xs.shape[0], i
    out = np.zeros(P, dtype=np.float64)
    cdef double[::1] o = out
    if P == 0:
        return out
    for i in prange(P, nogil=True, schedule="dynamic"):
        o[i] = (_range_sum(xs[i], &xs[0], 0, start[i], delta)
                + _range_sum(xs[i], &xs[0], stop[i], P, delta))
    return out


cdef inline double _range_scatter(double xk, const double* xs, const double* c, Py_ssize_t i0,
                                  Py_ssize_t i1, double delta) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t i
    for i in range(i0, i1):
        s += c[i] * heaviside(xk - xs[i], delta)
    return s


def other_class_scatter(const double[::1] xs, const int64_t[::1] start,
                        const int64_t[::1] stop, const double[::1] c, double delta):
    """g_k = sum_{i not in class(k)} c_i H(x_k - x_i): the gradient a positive receives as a
    negative of the other classes."""
    cdef Py_ssize_t P = xs.shape[0], k
    out = np.zeros(P, dtype=np.float64)
    cdef double[::1] o = out
    if P == 0:
        return out
    for k in prange(P, nogil=True, schedule="dynamic"):
        o[k] = (_range_scatter(xs[k], &xs[0], &c[0], 0, start[k], delta)
                + _range_scatter(xs[k], &xs[0], &c[0], stop[k], P, delta))
    return out


# --------------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------------

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static void rankref_set_threads(int n) { omp_set_num_threads(n); }
    static int rankref_max_threads(void) { return omp_get_max_threads(); }
    #else
    static void rankref_set_threads(int n) { (void) n; }
    static int rankref_max_threads(void) { return 1; }
    #endif
    """
    void rankref_set_threads(int n) nogil
    int rankref_max_threads() nogil


def set_num_threads(int n):
    """Number of OpenMP threads for the following kernel calls (no effect without OpenMP).
    Results do not depend on it."""
    if n < 1:
        raise ValueError(f"the number of threads must be >= 1, got {n}.")
    rankref_set_threads(n)


def get_num_threads():
    """Number of OpenMP threads the kernels use (1 without OpenMP)."""
    return rankref_max_threads()
