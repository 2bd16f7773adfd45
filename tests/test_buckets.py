from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr
from _cases import ranking_problems


def _ceiling(value):
    """The smallest float64 at or above an exact rational."""
    f = float(value)
    return f if F(f) >= value else float(np.nextafter(f, np.inf))


@given(ranking_problems(max_n=3000))
def test_exact_buckets_are_breakpoint_bins(problem):
    x, t, delta = problem
    b = rr.make_buckets(x, t, delta, kind="exact")
    xp = x[t > 0]
    neg = t == 0
    if xp.size == 0:
        assert b.edges.size == 0
        assert_array_equal(b.bucket[neg], 0)
        return
    edges = np.sort([_ceiling(F(float(p)) + sign * F(delta)) for p in xp for sign in (-1, 1)]
                    if delta > 0 else xp)
    assert_array_equal(b.edges, edges)  # the smallest floats at or above x_i -+ delta
    ids = np.searchsorted(edges, x, side="right")
    assert_array_equal(b.bucket[neg], ids[neg])
    assert_array_equal(b.bucket[~neg], -1)
    assert_array_equal(b.counts, np.bincount(ids[neg], minlength=edges.size + 1))
    sums = np.bincount(ids[neg], weights=x[neg], minlength=edges.size + 1)
    assert_allclose(b.sums, sums, rtol=1e-12, atol=1e-9)
    full = b.counts > 0
    assert_allclose(b.means[full], sums[full] / b.counts[full], rtol=1e-12, atol=1e-12)
    assert np.isnan(b.means[~full]).all()
    assert b.edges.size <= 2 * xp.size


@given(ranking_problems(max_n=3000))
def test_brs_buckets_are_runs_between_positives(problem):
    x, t, delta = problem
    b = rr.make_buckets(x, t, delta, kind="brs")
    xp = x[t > 0]
    if xp.size == 0:
        return
    cut = xp.min() - delta
    edges = np.concatenate([[cut], np.sort(xp)]) if delta > 0 else np.sort(xp)
    assert_array_equal(b.edges, edges)
    neg = t == 0
    # a negative tied with a positive lies above it: side='right'
    ids = np.where(x >= cut, np.searchsorted(edges, x, side="right"), 0)
    assert_array_equal(b.bucket[neg], ids[neg])
    assert b.counts.sum() == neg.sum()
    full = b.counts > 0
    lo = np.array([x[neg][ids[neg] == k].min() for k in np.flatnonzero(full)])
    hi = np.array([x[neg][ids[neg] == k].max() for k in np.flatnonzero(full)])
    assert (b.means[full] >= lo).all() and (b.means[full] <= hi).all()


def test_hand_buckets():
    x = np.array([0.0, 0.4, 1.0, 1.2, 2.0, -3.0])
    t = np.array([1.0, 0.0, 0.0, 0.0, 0.5, 0.0])
    b = rr.make_buckets(x, t, delta=0.5)
    assert_array_equal(b.edges, [-0.5, 0.5, 1.5, 2.5])
    assert_array_equal(b.bucket, [-1, 1, 2, 2, -1, 0])
    assert_array_equal(b.counts, [1, 1, 2, 0, 0])
    assert_allclose(b.sums, [-3.0, 0.4, 2.2, 0.0, 0.0])
    assert_allclose(b.means[:3], [-3.0, 0.4, 1.1])
    brs = rr.make_buckets(x, t, delta=0.5, kind="brs")
    assert_array_equal(brs.edges, [-0.5, 0.0, 2.0])
    assert_array_equal(brs.bucket, [-1, 2, 2, 2, -1, 0])


def test_bucket_shape_follows_logits():
    x = np.zeros((4, 3))
    t = np.zeros((4, 3))
    t[1, 1] = 1.0
    b = rr.make_buckets(x, t)
    assert b.bucket.shape == (4, 3)
    with pytest.raises(ValueError, match="kind"):
        rr.make_buckets(x, t, kind="mean")
