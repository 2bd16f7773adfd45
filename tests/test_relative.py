"""Issue 21: every loss value and update exact to a few ulps *relative*, small losses included.

The references are exact rationals (``_fuzz_exact``, literally the official loops).  Every
judge here is relative: a few ulps per operation of the value's own size (or, for an update
that adds terms of both signs, of the sum of its terms' absolute values), never an absolute
floor.  The inputs are those of a trained detector: positives far above the negatives, whose
last members sit a hair inside the positives' ramps, so that the losses are 1e-10 and less;
and RS qualities near 1e-300.
"""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import _fuzz_exact as ex
import rankref
import rankref_gpu
from _backends import be  # noqa: F401  (fixture)
from test_gpu_exact_delta import pairs_path

ULP = 2.0 ** -53

PKGS = [pytest.param(rankref, id="rankref"), pytest.param(rankref_gpu, id="rankref_gpu")]


def _rel(n):
    """A few ulps per operation (the longest path: n terms summed, the steps, the ratios)."""
    return 8 * (n + 8) * ULP


def _exact_close(got, exact, mass, n, what):
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    want = np.array([float(q) for q in exact])
    tol = _rel(n) * np.array([float(m) for m in mass])
    err = np.abs(got - want)
    assert np.all(err <= tol), (what, got, want, err / np.maximum(tol, 1e-320))


def _sums_to_zero(g, n, loss=0.0):
    """Zero up to round-off of the updates' own size: the sum of their absolute values, or the
    mass of their terms where an entry adds both signs (at most twice the loss)."""
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    mass = max(math.fsum(np.abs(g)), 2.0 * float(loss))
    assert abs(math.fsum(g)) <= _rel(n) * mass, (math.fsum(g), g)


def _fr(a):
    return [Fraction(float(v)) for v in np.asarray(a, dtype=np.float64).reshape(-1)]


ISSUE_X, ISSUE_T = [0.0, -0.999999999], [1, 0]
ISSUE_LOSS = 4.999999856090342e-10  # H / (1 + H), H = (1 - 0.999999999) / 2 exactly


@pytest.mark.parametrize("method", ["bucketed", "dense"])
@pytest.mark.parametrize("pkg", [rankref, rankref_gpu], ids=["rankref", "rankref_gpu"])
def test_issue_example(pkg, method):
    loss, grad = pkg.ap_loss(ISSUE_X, ISSUE_T, 1.0, method=method)
    v = Fraction(-0.999999999)
    H = (v + 1) / 2
    assert float(H / (1 + H)) == ISSUE_LOSS
    assert abs(float(loss) - ISSUE_LOSS) <= 4 * ULP * ISSUE_LOSS
    np.testing.assert_allclose(grad, [-ISSUE_LOSS, ISSUE_LOSS], rtol=4 * ULP, atol=0)
    _sums_to_zero(grad, 2)


def test_issue_example_every_backend(be):  # noqa: F811
    for path in ("dense", "tree"):
        with pairs_path(path):
            for method in ("bucketed", "dense"):
                res = rankref_gpu.ap_loss(be.asarray(np.array(ISSUE_X)),
                                          be.asarray(np.array(ISSUE_T)), 1.0, method=method)
                assert abs(float(res.loss) - ISSUE_LOSS) <= 4 * ULP * ISSUE_LOSS
                g = be.host(res.grad)
                np.testing.assert_allclose(g, [-ISSUE_LOSS, ISSUE_LOSS], rtol=4 * ULP, atol=0)


def test_heaviside_is_relative():
    u = np.array([-0.999999999, -0.9999999999999999, -1.0 + 2.0 ** -40, 1e-300, 0.999999])
    for d in (1.0, 0.5, 3.0):
        got = rankref.heaviside(u * d, d)
        want = [ex.H(Fraction(float(v)), Fraction(d)) for v in u * d]
        _exact_close(got, want, want, 1, "heaviside")
        _exact_close(rankref_gpu.heaviside(u * d, d), want, want, 1, "rankref_gpu.heaviside")


@st.composite
def trained(draw, binary):
    """A trained detector's logits: positives high, negatives far below or a hair inside the
    lowest positives' ramp; IoUs of any size (near 1e-300 included) for RS."""
    P = draw(st.integers(1, 5))
    N = draw(st.integers(0, 6))
    base = draw(st.sampled_from([0.0, 3.0, -7.25, 1e3, 0.1]))
    d = draw(st.sampled_from([1.0, 0.5, 0.75, 2.0]))
    xp = [base + draw(st.sampled_from([0.0, 0.25, 1.0, 2.0 ** -40, 0.5])) for _ in range(P)]
    xn = []
    for _ in range(N):
        gap = draw(st.sampled_from([1.0 - 1e-9, 1.0 - 2.0 ** -52, 1.0 - 1e-12, 0.9999, 20.0]))
        xn.append(base - gap * d - draw(st.sampled_from([0.0, 2.0 ** -44, 1e-12])))
    if binary:
        tp = [1.0] * P
    else:
        tp = [draw(st.sampled_from([1.0, 0.9, 0.7, 0.7 + 2.0 ** -52, 1e-300, 5e-301, 5e-324,
                                    3e-310, 0.5])) for _ in range(P)]
    x = np.array(xp + xn)
    t = np.array(tp + [0.0] * N)
    order = np.array(draw(st.permutations(range(P + N))), dtype=np.int64)
    return x[order], t[order], d


def _check_ap(res, x, t, d, interp):
    loss, eg, mass = ex.ap_loss(_fr(x), [int(v) for v in t], Fraction(d), interp)
    n = x.size
    _exact_close([res.loss], [loss], [loss], n, "ap loss")
    _exact_close(res.grad, eg, mass, n, "ap grad")
    _sums_to_zero(res.grad, n)


def _check_rs(res, x, t, d):
    rl, sl, erg, esg, amb, (mr, ms) = ex.rank_sort(_fr(x), _fr(t), Fraction(d))
    n = x.size
    _exact_close([res.ranking_loss], [rl], [rl], n, "rs ranking loss")
    _exact_close([res.sorting_loss], [sl], [sl], n, "rs sorting loss")
    if not amb:
        _exact_close(res.ranking_grad, erg, mr, n, "rs ranking grad")
        _exact_close(res.sorting_grad, esg, ms, n, "rs sorting grad")
    _sums_to_zero(res.ranking_grad, n)
    _sums_to_zero(res.sorting_grad, n, res.sorting_loss)


@pytest.mark.parametrize("pkg", PKGS)
@settings(max_examples=60, deadline=None)
@given(prob=trained(binary=True), interp=st.booleans())
def test_ap_trained_regime_relative(pkg, prob, interp):
    x, t, d = prob
    for method in ("bucketed", "dense"):
        _check_ap(pkg.ap_loss(x, t, d, interp, method), x, t, d, interp)


@pytest.mark.parametrize("pkg", PKGS)
@settings(max_examples=60, deadline=None)
@given(prob=trained(binary=False))
def test_rs_trained_regime_and_tiny_qualities_relative(pkg, prob):
    x, t, d = prob
    for method in ("bucketed", "dense"):
        _check_rs(pkg.rank_sort_loss(x, t, d, method), x, t, d)


@settings(max_examples=30, deadline=None)
@given(prob=trained(binary=False))
def test_rs_tree_path_relative(prob):
    """rankref_gpu's segment tree (its pair terms' other path)."""
    x, t, d = prob
    with pairs_path("tree"):
        _check_rs(rankref_gpu.rank_sort_loss(x, t, d), x, t, d)


def test_tiny_qualities_do_not_underflow():
    """RS's sorting error with IoUs near 1e-300: no 1 - t (which rounds to 1), no underflow of
    H t (the qualities are scaled by a power of two)."""
    x = np.array([0.0, 0.25, 0.5, -0.4999999999])
    for t in (np.array([1e-300, 5e-324, 2e-300, 0.0]), np.array([5e-324, 1e-323, 2e-323, 0.0])):
        for pkg in (rankref, rankref_gpu):  # (exact thresholds: no window cancels here)
            for method in ("bucketed", "dense", "brs"):
                d = 0.5 if method != "brs" else 0.0  # (BRS is exact at delta = 0)
                res = pkg.rank_sort_loss(x, t, d, method)
                _check_rs(res, x, t, d)
                # (the second set's exact mean is below the smallest subnormal: 0 is right)
                assert res.sorting_loss > 0 or d == 0 or t[0] < 1e-320


@pytest.mark.parametrize("pkg", PKGS)
@settings(max_examples=30, deadline=None)
@given(prob=trained(binary=True), excl=st.booleans())
def test_gap_trained_regime_relative(pkg, prob, excl):
    x, t, d = prob
    n = x.size
    # two classes: the positives alternate between them, the negatives are background rows
    C = 2
    scores = np.full((n, C), x.min() - 50.0)
    labels = np.full(n, C)
    k = 0
    for r in range(n):
        if t[r] == 1:
            labels[r] = k % C
            k += 1
        scores[r, labels[r] if labels[r] < C else 0] = x[r]
    w = np.array([1.0, 0.5])
    for method in ("bucketed", "dense"):
        res = pkg.gap_loss(scores, labels, None, d, method=method, exclude_foreground=excl,
                           weights=w)
        loss, rerr, eg, amb, mass = ex.gap(_fr(scores), labels.tolist(), C, _fr(w),
                                           Fraction(d), excl)
        _exact_close([res.loss], [loss], [loss], n * C, "gap loss")
        _exact_close([res.ranking_error], [rerr], [rerr], n * C, "gap ranking error")
        if not amb:
            _exact_close(res.grad, eg, mass, n * C, "gap grad")
        _sums_to_zero(res.grad, n * C, res.loss)
