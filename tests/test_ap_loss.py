import numpy as np
import pytest
from hypothesis import given
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr
from _cases import ranking_problems


def test_hand_computed_plain():
    # positives at 3 and 1, negatives at 2 and 0: precisions 1 and 2/3
    res = rr.ap_loss([3.0, 2.0, 1.0, 0.0], [1, 0, 1, 0], delta=0.0, interpolate=False)
    assert_allclose(res.loss, 1 / 6, rtol=1e-15)
    assert_allclose(res.grad, [0.0, 1 / 6, -1 / 6, 0.0], rtol=1e-15, atol=0)


def test_hand_computed_interpolated():
    # negative on top, positives at 2 and 1: precisions 1/2 (x=2) and 2/3 (x=1);
    # interpolation lifts 1/2 to 2/3, and the x=2 positive's negatives get (1-m)/(1-prec)/rank
    res = rr.ap_loss([3.0, 2.0, 1.0], [0, 1, 1], delta=0.0, interpolate=True)
    assert_allclose(res.loss, 1 / 3, rtol=1e-15)
    assert_allclose(res.grad, [1 / 3, -1 / 6, -1 / 6], rtol=1e-15)
    plain = rr.ap_loss([3.0, 2.0, 1.0], [0, 1, 1], delta=0.0, interpolate=False)
    assert_allclose(plain.loss, 5 / 12, rtol=1e-15)


@given(ranking_problems(iou=False))
def test_bucketed_matches_dense(problem):
    x, t, delta = problem
    for interpolate in (True, False):
        a = rr.ap_loss(x, t, delta, interpolate, "bucketed")
        b = rr.ap_loss(x, t, delta, interpolate, "dense")
        assert_allclose(a.loss, b.loss, rtol=1e-9, atol=1e-15)
        assert_allclose(a.grad, b.grad, rtol=1e-9, atol=1e-12)


@given(ranking_problems(iou=False, max_n=2000))
def test_one_minus_average_precision(problem):
    x, t, _ = problem
    if not (t > 0).any():
        return
    for interpolate in (False, True):
        loss = rr.ap_loss(x, t, 0.0, interpolate).loss
        assert_allclose(loss, 1.0 - rr.average_precision(x, t, interpolate), rtol=1e-12,
                        atol=1e-15)


@given(ranking_problems(iou=False, max_n=2000))
def test_gradient_sums_to_zero_and_ignored_zero(problem):
    x, t, delta = problem
    g = rr.ap_loss(x, t, delta).grad
    assert abs(g.sum()) <= 1e-12 * (np.abs(g).sum() + 1.0)
    assert_array_equal(g[t < 0], 0.0)


def test_zero_positives():
    res = rr.ap_loss(np.ones((3, 2)), np.zeros((3, 2)))
    assert res.loss == 0.0
    assert_array_equal(res.grad, 0.0)


def test_iou_targets_rejected_with_pointer():
    with pytest.raises(ValueError, match="rank_sort_loss"):
        rr.ap_loss([0.0, 1.0], [0.7, 0.0])
    with pytest.raises(ValueError, match="rank_sort_loss"):
        rr.ap_loss([0.0, 1.0], [1.0, 0.0], method="brs")
