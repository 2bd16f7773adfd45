"""The O(P log P) positive-positive terms (issue 13): window sums against the direct O(P^2)
loops and the dense oracle, at sizes where P^2 work would dominate, and determinism."""
import numpy as np
import pytest
from hypothesis import given
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr
from rankref import _engine, _kernels, _pairs
from rankref.synthetic import detection_batch
from _cases import ranking_problems


@pytest.fixture
def window_sums_only(monkeypatch):
    """Every pair term through the window sums (no direct loops below DIRECT_MAX_P)."""
    monkeypatch.setattr(_pairs, "DIRECT_MAX_P", -1)


def _sorted_positives(x, t):
    pos = np.flatnonzero(t > 0)
    pos = pos[np.argsort(x[pos], kind="stable")]
    return x[pos].astype(np.float64), t[pos].astype(np.float64)


@given(ranking_problems(max_n=600))
def test_window_sums_equal_direct_loops(problem):
    x, t, delta = problem
    xp, tp = _sorted_positives(x, t)
    if xp.size == 0:
        return
    direct = _kernels.rs_positive_terms_direct(xp, tp, delta)
    keep = _pairs.DIRECT_MAX_P
    _pairs.DIRECT_MAX_P = -1
    try:
        window = _pairs.rs_terms(xp, tp, delta)
        w = np.random.default_rng(xp.size).uniform(0, 1, xp.size)
        scatter = _pairs.rs_sorting_scatter(xp, tp, w, delta)
        rank = _pairs.rank_pos(xp, delta)
    finally:
        _pairs.DIRECT_MAX_P = keep
    assert_allclose(window, direct, rtol=1e-12, atol=1e-12)
    assert_array_equal(window[:, 4] == 0.0, direct[:, 4] == 0.0)  # D = 0 exactly: same gating
    assert_allclose(scatter, _kernels.rs_sorting_scatter_direct(xp, tp, w, delta), rtol=1e-12,
                    atol=1e-12)
    assert_allclose(rank, direct[:, 0], rtol=1e-12)


@pytest.mark.parametrize("delta", [0.0, 0.5])
def test_many_positives_match_dense(delta, window_sums_only):
    # P = 4000 positives among N = 20000, IoU and logit ties: the size where P^2 terms dominate
    rng = np.random.default_rng(4000)
    n, p = 20000, 4000
    x = np.round(rng.normal(0.0, 2.0, n), 2)
    t = np.zeros(n)
    pos = rng.choice(n, p, replace=False)
    t[pos] = rng.choice([0.5, 0.6, 0.75, 0.9, 1.0], p)
    t[rng.choice(n, 200, replace=False)] = -1.0
    t[pos] = rng.choice([0.5, 0.6, 0.75, 0.9, 1.0], p)
    a = rr.rank_sort_loss(x, t, delta)
    b = rr.rank_sort_loss(x, t, delta, method="dense")
    assert_allclose([a.ranking_loss, a.sorting_loss], [b.ranking_loss, b.sorting_loss],
                    rtol=1e-9)
    for name in ("ranking_grad", "sorting_grad"):
        assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-12, err_msg=name)
    lab = (t > 0).astype(np.int8) - (t < 0)
    a = rr.ap_loss(x, lab, delta if delta else 1.0)
    b = rr.ap_loss(x, lab, delta if delta else 1.0, method="dense")
    assert_allclose(a.loss, b.loss, rtol=1e-9)
    assert_allclose(a.grad, b.grad, rtol=1e-9, atol=1e-12)


def test_single_positive_and_all_positive(window_sums_only):
    rng = np.random.default_rng(1)
    x = rng.uniform(-50, 50, 3000)
    for t in (np.where(np.arange(3000) == 7, 0.8, 0.0), rng.uniform(0.05, 1.0, 3000)):
        a = rr.rank_sort_loss(x, t, 0.5)
        b = rr.rank_sort_loss(x, t, 0.5, method="dense")
        assert_allclose(a.grad, b.grad, rtol=1e-9, atol=1e-12)
        assert_allclose(a.sorting_loss, b.sorting_loss, rtol=1e-9, atol=1e-15)


def test_bitwise_deterministic_across_threads(monkeypatch):
    # above PARALLEL_MIN_N the binning runs in fixed segments: the thread count changes nothing
    n = _engine.PARALLEL_MIN_N + 12345
    x, t = detection_batch(n // 100 + 1, 100, 500, "early", seed=3)
    x, t = x.ravel()[:n], t.ravel()[:n]
    monkeypatch.setattr(_engine, "_idle_cpus", lambda: 64)
    results = []
    for threads in (1, 2, 1):
        _kernels.set_num_threads(threads)
        results.append(rr.rank_sort_loss(x, t, 0.5))
    _kernels.set_num_threads(0)
    for other in results[1:]:
        assert other.ranking_loss == results[0].ranking_loss
        assert other.sorting_loss == results[0].sorting_loss
        assert_array_equal(other.grad, results[0].grad)


def test_threads_are_private_to_rankref():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    _kernels.set_num_threads(1)
    try:
        assert torch.get_num_threads() == before
    finally:
        _kernels.set_num_threads(0)


def test_stable_argsort_is_argsort_stable():
    rng = np.random.default_rng(1)
    for _ in range(200):
        a = np.round(rng.normal(size=rng.integers(0, 300)), int(rng.integers(0, 3)))
        if rng.random() < 0.3:
            a[rng.random(a.size) < 0.3] = -0.0  # -0.0 and 0.0 tie
        assert_array_equal(_engine.stable_argsort(a), np.argsort(a, kind="stable"))
