"""rankref_gpu's positive-positive terms without P x P temporaries (issue 13 item 3): the
segment tree and its divide and conquer over the IoU/class groups against rankref's direct
O(P^2) loops and the dense oracle, on every array backend; bounded memory; the switch between
the dense chunks and the tree."""
import contextlib
import os
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr
import rankref_gpu as rg
from _backends import Backend, backend_params
from _cases import ranking_problems
from rankref import _kernels
from rankref import _pairs as cpu_pairs
from rankref_gpu import _backend, _pairs, _tree
from rankref_gpu._backend import namespace
from test_gap import gap_problems
from test_gpu_exact_delta import pairs_path

EXAMPLES = int(os.environ.get("RANKREF_MIRROR_EXAMPLES", "25"))


@pytest.fixture(params=backend_params(with_cuda_paths=False), scope="module")
def be(request):
    return Backend(request.param)


def _sorted_positives(x, t):
    pos = np.flatnonzero(t > 0)
    pos = pos[np.argsort(x[pos], kind="stable")]
    return x[pos].astype(np.float64), t[pos].astype(np.float64)


def _host(be, a):
    return be.host(a).astype(np.float64)


@settings(max_examples=EXAMPLES)
@given(problem=ranking_problems(max_n=600))
def test_tree_equals_direct_loops(be, problem):
    x, t, d = problem
    xq, tp = _sorted_positives(x, t)
    P = xq.size
    if P == 0:
        return
    direct = _kernels.rs_positive_terms_direct(xq, tp, d)
    rng = np.random.default_rng(P)
    w = rng.uniform(0, 1, P)
    cls = rng.integers(0, 4, P)
    _, grp = np.unique(cls, return_inverse=True)
    k = int(grp.max()) + 1
    X, T, Wb, G = be.asarray(xq), be.asarray(tp), be.asarray(w), be.asarray(grp)
    xp = namespace(X)
    for path in ("tree", "dense"):
        with pairs_path(path):
            terms = _host(be, _pairs.rs_terms(xp, X, T, d))
            assert_allclose(terms, direct, rtol=1e-12, atol=1e-12)
            assert_array_equal(terms[:, 4] == 0.0, direct[:, 4] == 0.0)  # D = 0 exactly
            assert_allclose(_host(be, _pairs.rs_sorting_scatter(xp, X, T, Wb, d)),
                            _kernels.rs_sorting_scatter_direct(xq, tp, w, d), rtol=1e-12,
                            atol=1e-12)
            assert_allclose(_host(be, _pairs.rank_pos(xp, X, d)), direct[:, 0], rtol=1e-12)
            assert_allclose(_host(be, _pairs.class_rank(xp, X, G, d)),
                            cpu_pairs.class_rank(xq, grp, d), rtol=1e-12)
            assert_allclose(_host(be, _pairs.other_class_sums(xp, X, G, k, d)),
                            cpu_pairs.other_class_sums(xq, grp, d), rtol=1e-12, atol=1e-12)
            assert_allclose(_host(be, _pairs.other_class_scatter(xp, X, G, k, Wb, d)),
                            cpu_pairs.other_class_scatter(xq, grp, w, d), rtol=1e-12,
                            atol=1e-12)
            means = np.sort(rng.normal(0.0, 2.0, max(1, P // 3)))
            nb = rng.integers(1, 5, means.size).astype(np.float64)
            M, NB = be.asarray(means), be.asarray(nb)
            assert_allclose(_host(be, _pairs.prototype_fp(xp, M, NB, X, d)),
                            cpu_pairs.prototype_fp(means, nb, xq, d), rtol=1e-12)
            assert_allclose(_host(be, _pairs.prototype_grad(xp, M, X, Wb, d)),
                            cpu_pairs.prototype_grad(means, xq, w, d), rtol=1e-12, atol=1e-12)


@settings(max_examples=EXAMPLES)
@given(problem=ranking_problems(max_n=1500))
def test_losses_on_the_tree_equal_rankref(be, problem):
    """Every loss with the pair terms on the tree, against rankref (values and gradients)."""
    x, t, d = problem
    X, T = be.asarray(x), be.asarray(t)
    lab = (t > 0).astype(np.int8) - (t < 0)
    with pairs_path("tree"):
        for method in ("bucketed", "brs"):
            a, b = rr.rank_sort_loss(x, t, d, method), rg.rank_sort_loss(X, T, d, method)
            assert_allclose([float(b.ranking_loss), float(b.sorting_loss)],
                            [a.ranking_loss, a.sorting_loss], rtol=1e-9, atol=1e-15)
            for u, v in zip(a[2:], b[2:]):
                assert_allclose(_host(be, v), u, rtol=1e-9, atol=1e-12)
        for interp in (True, False):
            a = rr.ap_loss(x, lab, d if d else 1.0, interp)
            b = rg.ap_loss(X, be.asarray(lab), d if d else 1.0, interp)
            assert_allclose(float(b.loss), a.loss, rtol=1e-9, atol=1e-15)
            assert_allclose(_host(be, b.grad), a.grad, rtol=1e-9, atol=1e-12)
        ra, rb = rr.relaxed_ranks(x, t, d), rg.relaxed_ranks(X, T, d)
        for u, v in zip(ra[1:], rb[1:]):
            assert_allclose(_host(be, v), u, rtol=1e-9, atol=1e-12)


@settings(max_examples=EXAMPLES)
@given(problem=gap_problems())
def test_gap_on_the_tree_equals_rankref(be, problem):
    s, y, counts, d = problem
    S, Y = be.asarray(s), be.asarray(y)
    with pairs_path("tree"):
        for excl in (True, False):
            a = rr.gap_loss(s, y, counts, d, 1.0, "bucketed", excl)
            b = rg.gap_loss(S, Y, counts, d, 1.0, "bucketed", excl)
            assert_allclose([float(b.loss), float(b.ranking_error)],
                            [a.loss, a.ranking_error], rtol=1e-9, atol=1e-15)
            assert_allclose(_host(be, b.grad), a.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("path", ["tree", "auto"])
@pytest.mark.parametrize("delta", [0.0, 0.5])
def test_many_positives_match_dense(be, path, delta):
    # rankref's tests/test_pairs.py case: P = 4000 positives among N = 20000, IoU and logit
    # ties, on rankref_gpu ("auto": the switch between dense chunks and tree as shipped)
    rng = np.random.default_rng(4000)
    n, p = 20000, 4000
    x = np.round(rng.normal(0.0, 2.0, n), 2)
    t = np.zeros(n)
    pos = rng.choice(n, p, replace=False)
    t[rng.choice(n, 200, replace=False)] = -1.0
    t[pos] = rng.choice([0.5, 0.6, 0.75, 0.9, 1.0], p)
    X, T = be.asarray(x), be.asarray(t)
    with pairs_path(path) if path == "tree" else contextlib.nullcontext():
        a = rr.rank_sort_loss(x, t, delta, method="dense")
        b = rg.rank_sort_loss(X, T, delta)
        assert_allclose([float(b.ranking_loss), float(b.sorting_loss)],
                        [a.ranking_loss, a.sorting_loss], rtol=1e-9)
        for name in ("ranking_grad", "sorting_grad"):
            assert_allclose(_host(be, getattr(b, name)), getattr(a, name), rtol=1e-9,
                            atol=1e-12, err_msg=name)
        lab = (t > 0).astype(np.int8) - (t < 0)
        a = rr.ap_loss(x, lab, delta if delta else 1.0, method="dense")
        b = rg.ap_loss(X, be.asarray(lab), delta if delta else 1.0)
        assert_allclose(float(b.loss), a.loss, rtol=1e-9)
        assert_allclose(_host(be, b.grad), a.grad, rtol=1e-9, atol=1e-12)


def test_single_positive_and_all_positive(be):
    rng = np.random.default_rng(1)
    x = rng.uniform(-50, 50, 3000)
    with pairs_path("tree"):
        for t in (np.where(np.arange(3000) == 7, 0.8, 0.0), rng.uniform(0.05, 1.0, 3000)):
            a = rr.rank_sort_loss(x, t, 0.5, method="dense")
            b = rg.rank_sort_loss(be.asarray(x), be.asarray(t), 0.5)
            assert_allclose(_host(be, b.grad), a.grad, rtol=1e-9, atol=1e-12)
            assert_allclose(float(b.sorting_loss), a.sorting_loss, rtol=1e-9, atol=1e-15)


def test_budgets_bound_the_chunks_not_the_values(monkeypatch):
    """Tiny query and leaf budgets (many chunks of queries, one layer per tree) give the same
    values: the budgets bound memory only."""
    rng = np.random.default_rng(2)
    xq = np.sort(np.round(rng.normal(0.0, 1.0, 700), 1))
    tp = rng.choice([0.3, 0.5, 0.9], 700)
    xp = _backend.NUMPY
    with pairs_path("tree"):
        want = _pairs.rs_terms(xp, xq, tp, 0.5)
        monkeypatch.setattr(_tree, "QUERY_BUDGET_CPU", 1000)
        monkeypatch.setattr(_tree, "LEAF_BUDGET", 1)
        got = _pairs.rs_terms(xp, xq, tp, 0.5)
    assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def test_no_p_by_p_temporary():
    """At P = 12000 a P x P float64 array would take 1.15 GB: the tree path's peak stays a
    small fraction of it, and so does the dense chunks' (chunked rows)."""
    rng = np.random.default_rng(3)
    P = 12000
    xq = np.sort(rng.normal(0.0, 2.0, P))
    tp = rng.uniform(0.05, 1.0, P)
    xp = _backend.NUMPY
    with pairs_path("tree"):
        g = _pairs.Groups.of(xp, tp)
        tracemalloc.start()
        try:
            _pairs.rs_terms(xp, xq, tp, 0.5, g)
            _pairs.rs_sorting_scatter(xp, xq, tp, np.full(P, 1.0 / P), 0.5, g)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < P * P * 8 / 4, peak
    tracemalloc.start()
    try:
        _pairs.rs_terms_dense(xp, xq[:4000], tp[:4000], 0.5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4000 * 4000 * 8 / 2, peak


def test_switch_by_size():
    assert _pairs.use_dense(_backend.NUMPY, _pairs.DENSE_MAX_P_CPU)
    assert not _pairs.use_dense(_backend.NUMPY, _pairs.DENSE_MAX_P_CPU + 1)
    assert 0 < _pairs.DENSE_MAX_P_CPU <= _pairs.DENSE_MAX_P_GPU
