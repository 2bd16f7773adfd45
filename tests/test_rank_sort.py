import numpy as np
import pytest
from hypothesis import given
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr
from _cases import ranking_problems
from _official import literal_brs, official_rank_sort


def assert_same_result(a, b, rtol=1e-9, atol=1e-12):
    assert_allclose(a.ranking_loss, b.ranking_loss, rtol=rtol, atol=1e-15)
    assert_allclose(a.sorting_loss, b.sorting_loss, rtol=rtol, atol=1e-15)
    for name in ("ranking_grad", "sorting_grad", "grad"):
        assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=atol, err_msg=name)


# ----------------------------------------------------------------------------- hand computed

def test_hand_computed_exact_step():
    # positives x=2 (IoU .9) and x=0 (IoU .5), one negative at x=1, delta=0:
    # the low positive has FP=1, rank=3, RE=1/3; the top one RE=0.  No sorting error.
    res = rr.rank_sort_loss([2.0, 1.0, 0.0], [0.9, 0.0, 0.5], delta=0.0)
    assert_allclose(res.ranking_loss, 1 / 6, rtol=1e-15)
    assert res.sorting_loss == 0.0
    assert_allclose(res.ranking_grad, [0.0, 1 / 6, -1 / 6], rtol=1e-15)
    assert_array_equal(res.sorting_grad, 0.0)


def test_hand_computed_sorting_error():
    # IoU .5 scored above IoU .9: SE of the .9 positive is .3 - .1 = .2, D = 1
    res = rr.rank_sort_loss([2.0, 0.0], [0.5, 0.9], delta=0.0)
    assert res.ranking_loss == 0.0
    assert_allclose(res.sorting_loss, 0.1, rtol=1e-15)
    assert_allclose(res.sorting_grad, [0.1, -0.1], rtol=1e-15)
    assert_array_equal(res.ranking_grad, 0.0)


def test_hand_computed_relaxed_step():
    # delta=.5: rank_pos = H(0) = .5, FP = H(.25) = .75, RE = .75/1.25 = .6
    res = rr.rank_sort_loss([0.0, 0.25], [1.0, 0.0], delta=0.5)
    assert_allclose(res.ranking_loss, 0.6, rtol=1e-15)
    assert_allclose(res.ranking_grad, [-0.6, 0.6], rtol=1e-15)


@pytest.mark.parametrize("method", ["dense", "bucketed", "brs"])
def test_zero_positives(method):
    res = rr.rank_sort_loss(np.arange(5.0), [0, 0, -1, 0, 0], method=method)
    assert res.ranking_loss == 0.0 and res.sorting_loss == 0.0
    for g in res[2:]:
        assert_array_equal(g, 0.0)
        assert g.shape == (5,)


@pytest.mark.parametrize("method", ["dense", "bucketed", "brs"])
def test_no_relevant_negatives_keeps_sorting(method):
    x = np.array([3.0, 2.0, 1.0, -10.0, -11.0])
    t = np.array([0.6, 0.9, 0.7, 0.0, 0.0])
    res = rr.rank_sort_loss(x, t, delta=0.5, method=method)
    assert res.ranking_loss == 0.0
    assert_array_equal(res.ranking_grad, 0.0)
    assert res.sorting_loss > 0.0
    ref = rr.rank_sort_loss(x[:3], t[:3], delta=0.5, method="dense")
    assert_allclose(res.sorting_loss, ref.sorting_loss, rtol=1e-12)
    assert_allclose(res.sorting_grad[:3], ref.sorting_grad, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------- oracle grids

@given(ranking_problems())
def test_bucketed_matches_dense(problem):
    x, t, delta = problem
    assert_same_result(rr.rank_sort_loss(x, t, delta, "bucketed"),
                       rr.rank_sort_loss(x, t, delta, "dense"))


@given(ranking_problems(max_n=800))
def test_brs_equals_dense_at_delta_zero(problem):
    x, t, _ = problem
    assert_same_result(rr.rank_sort_loss(x, t, 0.0, "brs"), rr.rank_sort_loss(x, t, 0.0, "dense"))


@given(ranking_problems(max_n=400))
def test_brs_matches_literal_brs(problem):
    x, t, delta = problem
    if not (t > 0).any():
        return
    res = rr.rank_sort_loss(x, t, delta, "brs")
    rl, sl, g = literal_brs(x, t, delta)
    assert_allclose(res.ranking_loss, rl, rtol=1e-9, atol=1e-15)
    assert_allclose(res.sorting_loss, sl, rtol=1e-9, atol=1e-15)
    assert_allclose(res.grad, g, rtol=1e-9, atol=1e-12)


def test_brs_is_approximate_above_zero(rng):
    x = rng.normal(size=3000)
    t = np.zeros(3000)
    t[:100] = rng.uniform(0.2, 1, 100)
    brs = rr.rank_sort_loss(x, t, 0.5, "brs")
    dense = rr.rank_sort_loss(x, t, 0.5, "dense")
    err = np.abs(brs.grad - dense.grad).max()
    assert 1e-6 < err < 1e-1  # documented: BRS is not exact for delta > 0


@pytest.mark.parametrize("delta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("seed", range(4))
def test_matches_official_rank_sort_float32(delta, seed):
    rng = np.random.default_rng(seed)
    n = 3000
    x = rng.normal(-2, 1.0, n).astype(np.float32)
    t = np.zeros(n, np.float32)
    pos = rng.choice(n, 60, replace=False)
    t[pos] = rng.choice([0.5, 0.6, 0.75, 0.9], 60)  # IoU ties on purpose
    t[rng.choice(n, 50, replace=False)] = -1
    t[pos[:5]] = 1.0
    rl, sl, g = official_rank_sort(x, t, delta)
    for method in ("dense", "bucketed"):
        res = rr.rank_sort_loss(x, t, delta, method)
        assert_allclose(res.ranking_loss, rl, rtol=1e-5)
        assert_allclose(res.sorting_loss, sl, rtol=1e-4, atol=1e-6)
        assert_allclose(res.grad, g, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- invariants

@given(ranking_problems(max_n=2000))
def test_gradients_sum_to_zero(problem):
    x, t, delta = problem
    for method in ("bucketed", "brs"):
        res = rr.rank_sort_loss(x, t, delta, method)
        for g in (res.ranking_grad, res.sorting_grad):
            assert abs(g.sum()) <= 1e-12 * (np.abs(g).sum() + 1.0)


@given(ranking_problems(max_n=2000))
def test_shift_invariance(problem):
    x, t, delta = problem
    a = rr.rank_sort_loss(x, t, delta)
    b = rr.rank_sort_loss(x + 4.0, t, delta)
    assert_same_result(a, b, rtol=1e-9, atol=1e-11)


@given(ranking_problems(max_n=2000))
def test_ignored_entries_get_zero(problem):
    x, t, delta = problem
    for method in ("bucketed", "brs", "dense"):
        res = rr.rank_sort_loss(x, t, delta, method)
        assert_array_equal(res.grad[t < 0], 0.0)


def test_grad_is_sum_of_parts(rng):
    x = rng.normal(size=(50, 8)).astype(np.float32)
    t = np.where(rng.random((50, 8)) < 0.1, rng.uniform(0.1, 1, (50, 8)), 0.0)
    res = rr.rank_sort_loss(x, t)
    assert_array_equal(res.grad, res.ranking_grad + res.sorting_grad)
    assert res.grad.shape == (50, 8) and res.grad.dtype == np.float32


@pytest.mark.parametrize("method", ["dense", "bucketed", "brs"])
def test_deterministic(method, rng):
    x = np.round(rng.normal(size=4000), 1)
    t = np.where(rng.random(4000) < 0.05, rng.choice([0.5, 0.8], 4000), 0.0)
    a = rr.rank_sort_loss(x, t, 0.5, method)
    b = rr.rank_sort_loss(x.copy(), t.copy(), 0.5, method)
    assert a.ranking_loss == b.ranking_loss and a.sorting_loss == b.sorting_loss
    for u, v in zip(a[2:], b[2:]):
        assert_array_equal(u, v)


def test_large_n_matches_dense_strided(rng):
    # one larger case (N = 200k) through every kernel path, checked on a subset of negatives
    n = 200_000
    x = rng.normal(-4.6, 0.4, n)
    t = np.zeros(n)
    pos = rng.choice(n, 150, replace=False)
    t[pos] = rng.uniform(0.3, 1, 150)
    assert_same_result(rr.rank_sort_loss(x, t), rr.rank_sort_loss(x, t, method="dense"))
