"""rankref_gpu is exact for every finite delta >= 0 and every finite input (issue 12), on every
array backend: the reproducers of the issue give rankref's values, and the property tests of
test_exact_delta.py hold against the exact rational oracle (tests/_exact.py), with the pair
terms computed both ways (dense chunks and segment tree)."""
import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import _exact
import rankref as rr
import rankref_gpu as rg
from _backends import Backend, backend_params
from rankref_gpu import _pairs
from test_exact_delta import MAX, TINY, _close, extreme_problems

PATHS = ("dense", "tree")


@pytest.fixture(params=backend_params(with_cuda_paths=False), scope="module")
def be(request):
    return Backend(request.param)


@contextlib.contextmanager
def pairs_path(path):
    """Compute the pair terms with the dense chunks ("dense") or the segment tree ("tree")."""
    keep = _pairs.DENSE_MAX_P_CPU, _pairs.DENSE_MAX_P_GPU
    limit = 10**9 if path == "dense" else -1
    _pairs.DENSE_MAX_P_CPU = _pairs.DENSE_MAX_P_GPU = limit
    try:
        yield path
    finally:
        _pairs.DENSE_MAX_P_CPU, _pairs.DENSE_MAX_P_GPU = keep


def _both_paths():
    """Run a loop body once with each way of computing the pair terms."""
    for path in PATHS:
        with pairs_path(path):
            yield path


def _host(be, a):
    return be.host(a).astype(np.float64)


# ------------------------------------------------------------------ the reproducers of the issue

@pytest.mark.parametrize("path", PATHS)
def test_issue_reproducers_give_rankrefs_values(be, path):
    cases = [
        ([1.0, 1.0], [1.0, 0.0], 1e-300),
        ([1e17, 1e17], [1.0, 0.0], 0.5),
        ([0.0, 1.0], [1.0, 0.0], 1e308),
        ([-1e308, 1e308, 0.0], [1.0, 0.0, 0.0], 1e300),
        (np.zeros(3), [1.0, 0.0, 0.0], TINY),
    ]
    with pairs_path(path):
        for x, t, d in cases:
            x, t = np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64)
            a, b = rr.rank_sort_loss(x, t, d), rg.rank_sort_loss(be.asarray(x), be.asarray(t), d)
            assert_allclose(float(b.ranking_loss), a.ranking_loss, rtol=1e-15)
            assert_allclose(float(b.sorting_loss), a.sorting_loss, rtol=1e-15, atol=1e-300)
            assert np.isfinite(_host(be, b.grad)).all()
            assert_allclose(_host(be, b.grad), a.grad, rtol=1e-15)
        assert float(rg.rank_sort_loss(be.asarray([1.0, 1.0]), be.asarray([1.0, 0.0]),
                                       1e-300).ranking_loss) == 0.5
        assert float(rg.rank_sort_loss(be.asarray([1e17, 1e17]), be.asarray([1.0, 0.0]),
                                       0.5).ranking_loss) == 0.5
        assert_array_equal(_host(be, rg.relaxed_ranks(be.asarray([1e6, 1e6]),
                                                       be.asarray([1.0, 0.0]), 1e-10).fp), [0.5])
        for x, d in (([1e17, 1e17, 0.0], 1.0), (np.zeros(3), TINY)):
            lab = np.array([1, 0, 0])[:len(x)]
            a = rr.ap_loss(np.asarray(x), lab, d)
            b = rg.ap_loss(be.asarray(np.asarray(x)), be.asarray(lab), d)
            assert_allclose(float(b.loss), a.loss, rtol=1e-15)
            assert_allclose(_host(be, b.grad), a.grad, rtol=1e-15)
        assert_allclose(float(rg.ap_loss(be.asarray([1e17, 1e17]), be.asarray([1, 0]), 1.0).loss),
                        1 / 3, rtol=1e-15)
        s = np.full((2, 2), 1e17)
        for scores, labels, d, w in ((s, [0, 1], 1.0, np.ones(2)),
                                     (np.ones((1, 3)), [0], 1e308, np.ones(3)),
                                     (np.zeros((1, 3)), [0], TINY, np.ones(3))):
            a = rr.gap_loss(scores, np.array(labels), None, delta=d, weights=w)
            b = rg.gap_loss(be.asarray(scores), be.asarray(np.array(labels)), None, delta=d,
                            weights=w)
            assert_allclose(float(b.loss), a.loss, rtol=1e-15)
            assert np.isfinite(_host(be, b.grad)).all()
            assert_allclose(_host(be, b.grad), a.grad, rtol=1e-15)
        res = rg.gap_loss(be.asarray(np.ones((1, 3))), be.asarray(np.array([0])), None,
                          delta=1e308, weights=np.ones(3))
        assert_allclose(float(res.loss), 2 / 3, rtol=1e-15)
        b = rg.make_buckets(be.asarray([255.0, 255.0]), be.asarray([0.0, 1.0]), 1e300)
        assert_array_equal(_host(be, b.sums), [0, 255, 0])
        assert float(rg.heaviside(be.asarray(np.inf), 1e308)) == 1.0


def test_dense_oracle_does_not_overflow(be):
    r = rg.rank_sort_loss(be.asarray([-MAX, MAX, 0.0, 1.0]), be.asarray([1.0, 0.0, 0.5, 0.0]),
                          MAX, method="dense")
    assert np.isfinite(_host(be, r.grad)).all()
    assert np.isfinite([float(r.ranking_loss), float(r.sorting_loss)]).all()
    assert float(rg.heaviside(be.asarray(1.0), MAX)) == 0.5 + 0.5 / MAX


# ------------------------------------------------------------------ property tests


@given(extreme_problems())
def test_rank_sort_exact(be, problem):
    x, t, d = problem
    rl, sl, rgrad, sgrad = _exact.rank_sort(x, t, d)
    X, T = be.asarray(x), be.asarray(t)
    for _ in _both_paths():
        for method in ("bucketed", "dense"):
            res = rg.rank_sort_loss(X, T, d, method)
            for name, want in (("ranking_grad", rgrad), ("sorting_grad", sgrad)):
                got = _host(be, getattr(res, name))
                assert np.isfinite(got).all()
                _close(got, want, 1e-9)
            _close([float(res.ranking_loss), float(res.sorting_loss)], [rl, sl], 1e-9)
            vals = rg.rank_sort_loss(X, T, d, method, compute_grad=False)
            _close([float(vals.ranking_loss), float(vals.sorting_loss)], [rl, sl], 1e-9)
        r = rg.relaxed_ranks(X, T, d)
        pos = np.flatnonzero(t > 0)
        neg = x[t == 0]
        F = _exact.F
        fp = [sum(_exact.h(F(float(v)) - F(float(x[i])), F(d)) for v in neg) for i in pos]
        rank_pos = [sum(_exact.h(F(float(x[k])) - F(float(x[i])), F(d)) for k in pos)
                    for i in pos]
        _close(_host(be, r.fp), [float(v) for v in fp], 1e-12)
        _close(_host(be, r.rank_pos), [float(v) for v in rank_pos], 1e-12)


@given(extreme_problems(binary=True))
def test_ap_exact(be, problem):
    x, t, d = problem
    X, T = be.asarray(x), be.asarray(t)
    for interpolate in (True, False):
        loss, g = _exact.ap(x, t, d, interpolate)
        for _ in _both_paths():
            for method in ("bucketed", "dense"):
                res = rg.ap_loss(X, T, d, interpolate, method)
                got = _host(be, res.grad)
                assert np.isfinite(got).all()
                _close(float(res.loss), loss, 1e-9)
                _close(got, g, 1e-9)


@given(extreme_problems(max_n=8), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_gap_exact(be, problem, C, seed):
    x, t, d = problem
    n = x.size // C
    if n == 0:
        return
    s = x[: n * C].reshape(n, C)
    y = np.random.default_rng(seed).integers(-1, C + 1, n)
    w = np.ones(C)
    loss, err, g = _exact.gap(s, y, d, w)
    S, Y = be.asarray(s), be.asarray(y)
    for _ in _both_paths():
        for method in ("bucketed", "dense"):
            res = rg.gap_loss(S, Y, None, d, weights=w, method=method)
            got = _host(be, res.grad).ravel()
            assert np.isfinite(got).all()
            _close([float(res.loss), float(res.ranking_error)], [loss, err], 1e-9)
            _close(got, g, 1e-9)
        # Excl. FG off: the other classes' positives count as negatives (rankref's values)
        a = rr.gap_loss(s, y, None, d, weights=w, exclude_foreground=False)
        b = rg.gap_loss(S, Y, None, d, weights=w, exclude_foreground=False)
        _close(float(b.loss), a.loss, 1e-9)
        _close(_host(be, b.grad), a.grad, 1e-9)


@given(extreme_problems(max_n=40))
def test_buckets_are_exact(be, problem):
    """A negative's bucket counts the exact thresholds x_i +- delta at or below it, and the
    sums and means are rankref's (the members' own values)."""
    x, t, d = problem
    b = rg.make_buckets(be.asarray(x), be.asarray(t), d)
    a = rr.make_buckets(x, t, d)
    bucket = be.host(b.bucket)
    pos = x[t > 0]
    F = _exact.F
    for j in np.flatnonzero(t == 0):
        v = F(float(x[j]))
        if d > 0:
            expected = sum((F(float(p)) - F(d) <= v) + (F(float(p)) + F(d) <= v) for p in pos)
        else:
            expected = sum(F(float(p)) <= v for p in pos)
        assert bucket[j] == expected
    assert_array_equal(bucket, a.bucket)
    assert_array_equal(be.host(b.counts), a.counts)
    assert_array_equal(_host(be, b.edges), a.edges)
    assert_allclose(_host(be, b.sums), a.sums, rtol=1e-12)
    assert_allclose(_host(be, b.means), a.means, rtol=1e-12)
    full = a.counts > 0
    assert np.isfinite(_host(be, b.means)[full]).all()


@pytest.mark.parametrize("delta", [0.0, TINY, 1e-300, 1e-12, 0.5, 1e20, 1e300, MAX])
@pytest.mark.parametrize("layout", ["near", "spread", "grid"])
def test_extreme_deltas_at_scale_equal_rankref(be, layout, delta):
    """Hundreds of positives (the pair terms on the tree, and on the dense chunks), logits one
    ulp apart, spanning the float range, or on a grid, and deltas from subnormal to MAX: every
    output finite and equal to rankref's."""
    rng = np.random.default_rng(7)
    n = 800
    if layout == "near":
        x = 1e6 + rng.integers(-3, 4, n) * np.spacing(1e6)
    elif layout == "spread":
        x = rng.choice([-MAX, -1e308, -1e17, -1.0, -TINY, 0.0, TINY, 1.0, 1e17, 1e308, MAX], n)
    else:
        x = rng.integers(-8, 9, n) * 0.25
    t = rng.choice([-1.0, 0.0, 0.4, 0.7, 1.0], n, p=[0.05, 0.55, 0.15, 0.15, 0.1])
    lab = np.sign(t).astype(np.int8)
    s, y = x.reshape(-1, 4), rng.integers(-1, 5, n // 4)
    X, T = be.asarray(x), be.asarray(t)
    want_rs = rr.rank_sort_loss(x, t, delta)
    want_ap = rr.ap_loss(x, lab, delta)
    want_gap = [rr.gap_loss(s, y, None, delta, weights=np.ones(4), exclude_foreground=e)
                for e in (True, False)]
    for _ in _both_paths():
        got = rg.rank_sort_loss(X, T, delta)
        _close([float(got.ranking_loss), float(got.sorting_loss)],
               [want_rs.ranking_loss, want_rs.sorting_loss], 1e-9)
        for name in ("ranking_grad", "sorting_grad"):
            g = _host(be, getattr(got, name))
            assert np.isfinite(g).all()
            _close(g, getattr(want_rs, name), 1e-9)
        got = rg.ap_loss(X, be.asarray(lab), delta)
        assert np.isfinite(_host(be, got.grad)).all()
        _close(float(got.loss), want_ap.loss, 1e-9)
        _close(_host(be, got.grad), want_ap.grad, 1e-9)
        for e, want in zip((True, False), want_gap):
            got = rg.gap_loss(be.asarray(s), be.asarray(y), None, delta, weights=np.ones(4),
                              exclude_foreground=e)
            assert np.isfinite(_host(be, got.grad)).all()
            _close([float(got.loss), float(got.ranking_error)],
                   [want.loss, want.ranking_error], 1e-9)
            _close(_host(be, got.grad), want.grad, 1e-9)
