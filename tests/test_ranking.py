import numpy as np
import pytest
from hypothesis import given
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr
from _cases import ranking_problems


def test_heaviside_values():
    u = np.array([-2.0, -0.5, -0.25, 0.0, 0.25, 0.5, 2.0, np.inf, -np.inf])
    assert_allclose(rr.heaviside(u, 0.5), [0, 0, 0.25, 0.5, 0.75, 1, 1, 1, 0])
    assert_array_equal(rr.heaviside(u, 0.0), [0, 0, 0, 1, 1, 1, 1, 1, 0])
    assert rr.heaviside(0.0, 1.0) == 0.5
    assert rr.heaviside(0.0, 0) == 1.0


def test_sort_scores_tie_rule():
    x = np.array([1.0, 3.0, 1.0, 3.0, 2.0])
    assert_array_equal(rr.sort_scores(x), [1, 3, 4, 0, 2])
    assert_array_equal(rr.sort_scores(x, descending=False), [0, 2, 4, 1, 3])
    assert_array_equal(rr.sort_scores(np.array([[5, 5], [7, 5]], dtype=np.int64)), [2, 0, 1, 3])
    with pytest.raises(ValueError, match="NaN"):
        rr.sort_scores([1.0, np.nan])


@given(ranking_problems(max_n=1500))
def test_relaxed_ranks_match_definition(problem):
    x, t, delta = problem
    r = rr.relaxed_ranks(x, t, delta)
    pos = np.flatnonzero(t > 0)
    assert_array_equal(r.pos_index, pos)
    neg = x[t == 0]
    rank_pos = np.array([rr.heaviside(x[pos] - x[i], delta).sum() for i in pos])
    fp = np.array([rr.heaviside(neg - x[i], delta).sum() for i in pos])
    assert_allclose(r.rank_pos, rank_pos, rtol=1e-12)
    assert_allclose(r.fp, fp, rtol=1e-9, atol=1e-12)
    assert_allclose(r.rank, rank_pos + fp, rtol=1e-9)


def test_relaxed_ranks_hand():
    r = rr.relaxed_ranks([0.0, 0.25, 1.0, 0.0], [1.0, 0.0, 0.0, 0.5], delta=0.5)
    assert_array_equal(r.pos_index, [0, 3])
    assert_allclose(r.rank_pos, [1.0, 1.0])  # H(0) twice: self and the tied positive
    assert_allclose(r.fp, [1.75, 1.75])


def test_average_precision_hand():
    assert_allclose(rr.average_precision([3, 2, 1, 0], [1, 0, 1, 0]), (1 + 2 / 3) / 2)
    # ties count the positive below the tied entries: 1/2 precision for both
    assert_allclose(rr.average_precision([1.0, 1.0], [1, 0]), 0.5)
    # interpolation: precisions 1/2 (x=2) and 2/3 (x=1) -> both 2/3
    assert_allclose(rr.average_precision([3, 2, 1], [0, 1, 1]), 7 / 12)
    assert_allclose(rr.average_precision([3, 2, 1], [0, 1, 1], interpolate=True), 2 / 3)
    # ignored entries are dropped
    assert_allclose(rr.average_precision([3, 2, 1], [-1, 1, 1]), 1.0)
    with pytest.raises(ValueError, match="no positive"):
        rr.average_precision([1.0, 2.0], [0, 0])
