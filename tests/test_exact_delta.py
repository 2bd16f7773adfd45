"""Exact for every finite delta >= 0 and every finite input (issue 12): the bucketed engine
matches the dense oracle, and the dense oracle matches an exact rational evaluation, for delta
below the logits' resolution, subnormal delta and delta up to the float maximum."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr
import _exact

TINY = np.nextafter(0.0, 1.0)  # 5e-324
MAX = np.finfo(np.float64).max


# ------------------------------------------------------------------ the reproducers of the issue

def test_ties_below_resolution_count_one_half():
    assert rr.rank_sort_loss([1.0, 1.0], [1.0, 0.0], 1e-300).ranking_loss == 0.5
    assert rr.rank_sort_loss([1e17, 1e17], [1.0, 0.0], 0.5).ranking_loss == 0.5
    assert rr.relaxed_ranks([1e6, 1e6], [1.0, 0.0], 1e-10).fp[0] == 0.5
    assert_allclose(rr.ap_loss([1e17, 1e17], [1, 0], 1.0).loss, 1 / 3, rtol=1e-15)
    s = np.full((2, 2), 1e17)
    a = rr.gap_loss(s, np.array([0, 1]), None, delta=1.0, weights=np.ones(2))
    b = rr.gap_loss(s, np.array([0, 1]), None, delta=1.0, weights=np.ones(2), method="dense")
    assert_allclose(a.loss, b.loss, rtol=1e-15)
    assert_allclose(a.grad, b.grad, rtol=1e-15)


def test_extreme_delta_values():
    assert_allclose(rr.rank_sort_loss([0.0, 1.0], [1.0, 0.0], 1e308).ranking_loss, 0.5,
                    rtol=1e-15)
    for x, t, d in (([-1e308, 1e308, 0.0], [1.0, 0.0, 0.0], 1e300),
                    (np.zeros(3), [1.0, 0.0, 0.0], TINY)):
        a = rr.rank_sort_loss(x, t, d)
        b = rr.rank_sort_loss(x, t, d, method="dense")
        assert np.isfinite(a.grad).all()
        assert_allclose(a.grad, b.grad, rtol=1e-12)
        assert_allclose(a.ranking_loss, b.ranking_loss, rtol=1e-12)
    g = rr.rank_sort_loss(np.zeros(3), [1.0, 0.0, 0.0], TINY).grad
    assert_allclose(g, [-2 / 3, 1 / 3, 1 / 3], rtol=1e-15)  # FP = 1, rank_pos = 1/2
    # AP: the self term counts 1, so rank = 1 + FP = 2 and prec = 1/2
    assert_allclose(rr.ap_loss(np.zeros(3), [1, 0, 0], TINY).grad, [-0.5, 0.25, 0.25],
                    rtol=1e-15)
    res = rr.gap_loss(np.zeros((1, 3)), np.array([0]), None, delta=TINY, weights=np.ones(3))
    assert np.isfinite(res.grad).all()
    assert_allclose(res.grad, [[-2 / 3, 1 / 3, 1 / 3]], rtol=1e-15)
    assert_array_equal(rr.make_buckets([255.0, 255.0], [0.0, 1.0], 1e300).sums, [0, 255, 0])
    assert rr.heaviside(np.inf, 1e308) == 1.0
    res = rr.gap_loss(np.ones((1, 3)), np.array([0]), None, delta=1e308, weights=np.ones(3))
    assert_allclose(res.loss, 2 / 3, rtol=1e-15)


def test_dense_oracle_does_not_overflow():
    assert rr.heaviside(1.0, MAX) == 0.5 + 0.5 / MAX
    assert rr.heaviside(-MAX, MAX) == 0.0 and rr.heaviside(MAX, MAX) == 1.0
    assert rr.heaviside(TINY, TINY) == 1.0 and rr.heaviside(0.0, TINY) == 0.5
    r = rr.rank_sort_loss([-MAX, MAX, 0.0, 1.0], [1.0, 0.0, 0.5, 0.0], MAX, method="dense")
    assert np.isfinite(r.grad).all() and np.isfinite([r.ranking_loss, r.sorting_loss]).all()


# ------------------------------------------------------------------ property tests

def _ulp(v):
    return np.spacing(np.abs(v)) if v != 0 else TINY


@st.composite
def extreme_problems(draw, binary=False, max_n=7):
    """Tiny problems where exact arithmetic is cheap: logits near one base value (ties and
    neighbours one ulp apart) or spanning the float range, deltas from subnormal to MAX and at
    the logits' resolution."""
    n = draw(st.integers(1, max_n))
    base = draw(st.sampled_from([0.0, 1.0, -3.5, 1e6, 1e17, 1e300, -1e308, 5e-310]))
    layout = draw(st.sampled_from(["near", "spread", "grid"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if layout == "near":
        steps = rng.integers(-3, 4, n)
        x = np.array([base + k * _ulp(base) for k in steps])
    elif layout == "spread":
        x = rng.choice([-MAX, -1e308, -1e17, -1.0, -TINY, 0.0, TINY, 1.0, 1e17, 1e308, MAX], n)
    else:
        x = base + rng.integers(-2, 3, n) * 0.5
    kind = draw(st.sampled_from(["absolute", "resolution"]))
    if kind == "absolute":
        delta = draw(st.sampled_from([0.0, TINY, 1e-310, 1e-300, 1e-20, 0.25, 0.5, 1e20, 1e300,
                                      MAX / 2, MAX]))
    else:
        delta = _ulp(base) * draw(st.sampled_from([0.1, 0.5, 1.0, 1.5, 3.0]))
    if binary:
        t = rng.choice([-1.0, 0.0, 1.0], n, p=[0.1, 0.5, 0.4])
    else:
        t = rng.choice([-1.0, 0.0, 0.4, 0.7, 1.0], n, p=[0.1, 0.4, 0.2, 0.2, 0.1])
    return x, t, float(delta)


def _close(a, b, rtol):
    """Elementwise to ``rtol``, with an absolute floor of ``rtol`` times the largest entry:
    an entry that is a difference of larger terms (e.g. a positive's sorting update) carries
    their round-off, in any float64 evaluation."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = float(np.abs(b).max()) if b.size else 0.0
    assert_allclose(a, b, rtol=rtol, atol=rtol * scale + 1e-300)


@given(extreme_problems())
def test_rank_sort_exact(problem):
    x, t, d = problem
    rl, sl, rg, sg = _exact.rank_sort(x, t, d)
    dense = rr.rank_sort_loss(x, t, d, "dense")
    _close([dense.ranking_loss, dense.sorting_loss], [rl, sl], 1e-12)
    _close(dense.ranking_grad, rg, 1e-12)
    _close(dense.sorting_grad, sg, 1e-12)
    fast = rr.rank_sort_loss(x, t, d, "bucketed")
    for name in ("ranking_grad", "sorting_grad", "grad"):
        assert np.isfinite(getattr(fast, name)).all()
        _close(getattr(fast, name), getattr(dense, name), 1e-9)
    _close([fast.ranking_loss, fast.sorting_loss], [dense.ranking_loss, dense.sorting_loss], 1e-9)
    r = rr.relaxed_ranks(x, t, d)
    pos = np.flatnonzero(t > 0)
    neg = x[t == 0]
    fp = [sum(_exact.h(_exact.F(float(v)) - _exact.F(float(x[i])), _exact.F(d)) for v in neg)
          for i in pos]
    _close(r.fp, [float(v) for v in fp], 1e-12)


@given(extreme_problems(binary=True))
def test_ap_exact(problem):
    x, t, d = problem
    for interpolate in (True, False):
        loss, g = _exact.ap(x, t, d, interpolate)
        dense = rr.ap_loss(x, t, d, interpolate, "dense")
        _close(dense.loss, loss, 1e-12)
        _close(dense.grad, g, 1e-12)
        fast = rr.ap_loss(x, t, d, interpolate)
        assert np.isfinite(fast.grad).all()
        _close(fast.loss, dense.loss, 1e-9)
        _close(fast.grad, dense.grad, 1e-9)


@given(extreme_problems(max_n=8), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_gap_exact(problem, C, seed):
    x, t, d = problem
    n = x.size // C
    if n == 0:
        return
    s = x[: n * C].reshape(n, C)
    y = np.random.default_rng(seed).integers(-1, C + 1, n)
    w = np.ones(C)
    loss, err, g = _exact.gap(s, y, d, w)
    dense = rr.gap_loss(s, y, None, d, weights=w, method="dense")
    _close([dense.loss, dense.ranking_error], [loss, err], 1e-12)
    _close(dense.grad.ravel(), g, 1e-12)
    fast = rr.gap_loss(s, y, None, d, weights=w)
    assert np.isfinite(fast.grad).all()
    _close([fast.loss, fast.ranking_error], [dense.loss, dense.ranking_error], 1e-9)
    _close(fast.grad, dense.grad, 1e-9)


@given(extreme_problems(max_n=40))
def test_buckets_are_exact(problem):
    """A negative's bucket counts the exact thresholds x_i +- delta at or below it."""
    x, t, d = problem
    b = rr.make_buckets(x, t, d)
    pos = x[t > 0]
    neg = np.flatnonzero(t == 0)
    F = _exact.F
    for j in neg:
        v = F(float(x[j]))
        if d > 0:
            expected = sum((F(float(p)) - F(d) <= v) + (F(float(p)) + F(d) <= v) for p in pos)
        else:
            expected = sum(F(float(p)) <= v for p in pos)
        assert b.bucket[j] == expected
    assert b.counts.sum() == neg.size
    full = b.counts > 0
    assert np.isfinite(b.means[full]).all()


def test_more_extremes_found_by_fuzzing():
    # thresholds x -+ delta not representable although delta is above the resolution
    assert rr.rank_sort_loss([1e16, 1e16 + 2], [1.0, 0.0], 3.0).ranking_loss == 0.625
    assert_allclose(rr.ap_loss([1e16, 1e16 + 2], [1, 0], 3.0).loss, 5 / 11, rtol=1e-15)
    # BRS bucket sums from the members' own values (not from a far edge)
    assert_array_equal(rr.make_buckets([-3.0, -3.0, 5.0], [0.0, 0.0, 1.0], 1e200, "brs").sums,
                       [0.0, -6.0, 0.0])
    # a tiny coefficient over a huge delta: the slope c / (2 delta) must not underflow
    kw = dict(delta=1e200, gamma=10.0, exclude_foreground=False)
    a = rr.gap_loss([[1.0, -2.0, 3.0, -3.0]], [2], [0, 100, 2**63 - 1, 0], **kw)
    b = rr.gap_loss([[1.0, -2.0, 3.0, -3.0]], [2], [0, 100, 2**63 - 1, 0], method="dense", **kw)
    assert_allclose(a.grad, b.grad, rtol=1e-12)
    assert abs(a.grad.sum()) <= 1e-12 * np.abs(a.grad).sum()
    # a spread beyond float32's: bucketed equals dense
    x = np.array([-2**31, 0, -2**31, 1, -2**31, 1, 2**31 - 1, 2**31 - 4], np.int32)
    t = np.array([0, 1, 1, 0, 1, 0, 0, 1], np.int8)
    assert_allclose(rr.rank_sort_loss(x, t, 37.92845691774583).ranking_grad,
                    rr.rank_sort_loss(x, t, 37.92845691774583, method="dense").ranking_grad,
                    rtol=1e-12)
