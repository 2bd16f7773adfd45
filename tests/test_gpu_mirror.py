"""Every rankref_gpu function against rankref, on every available array backend."""
import numpy as np
import pytest
from hypothesis import given, settings
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr
import rankref_gpu as rg
from _cases import ranking_problems
from test_gap import gap_problems


def _cupy():
    try:
        import cupy
        cupy.zeros(1)
        return cupy
    except Exception:  # no CuPy, or no device
        return None


BACKENDS = ["numpy", pytest.param("cupy", marks=[
    pytest.mark.gpu, pytest.mark.skipif(_cupy() is None, reason="needs CuPy and a GPU")])]


@pytest.fixture(params=BACKENDS, scope="module")
def xp(request):
    return np if request.param == "numpy" else _cupy()


def host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def close(a, b, ints=False):
    if ints:
        assert_array_equal(host(a), host(b))
    else:
        assert_allclose(host(a), host(b), rtol=1e-9, atol=1e-12)


@settings(max_examples=int(__import__("os").environ.get("RANKREF_MIRROR_EXAMPLES", "25")))
@given(problem=ranking_problems(max_n=3000))
def test_rank_sort_and_ranks(xp, problem):
    x, t, d = problem
    X, T = xp.asarray(x), xp.asarray(t)
    for method in ("bucketed", "dense", "brs"):
        a, b = rr.rank_sort_loss(x, t, d, method), rg.rank_sort_loss(X, T, d, method)
        assert_allclose(b.ranking_loss, a.ranking_loss, rtol=1e-9, atol=1e-15)
        assert_allclose(b.sorting_loss, a.sorting_loss, rtol=1e-9, atol=1e-15)
        for u, v in zip(a[2:], b[2:]):
            close(v, u)
    ra, rb = rr.relaxed_ranks(x, t, d), rg.relaxed_ranks(X, T, d)
    close(rb.pos_index, ra.pos_index, ints=True)
    for u, v in zip(ra[1:], rb[1:]):
        close(v, u)
    for kind in ("exact", "brs"):
        ba, bb = rr.make_buckets(x, t, d, kind), rg.make_buckets(X, T, d, kind)
        close(bb.edges, ba.edges)
        close(bb.bucket, ba.bucket, ints=True)
        close(bb.counts, ba.counts, ints=True)
        assert_allclose(host(bb.sums), ba.sums, rtol=1e-9, atol=1e-9)
        assert_allclose(host(bb.means), ba.means, rtol=1e-12, atol=1e-12)


@settings(max_examples=int(__import__("os").environ.get("RANKREF_MIRROR_EXAMPLES", "25")))
@given(problem=ranking_problems(max_n=3000, iou=False))
def test_ap_and_average_precision(xp, problem):
    x, t, d = problem
    X, T = xp.asarray(x), xp.asarray(t)
    for method in ("bucketed", "dense"):
        for interp in (True, False):
            a, b = rr.ap_loss(x, t, d, interp, method), rg.ap_loss(X, T, d, interp, method)
            assert_allclose(b.loss, a.loss, rtol=1e-9, atol=1e-15)
            close(b.grad, a.grad)
    if (t > 0).any():
        for interp in (True, False):
            assert_allclose(rg.average_precision(X, T, interp),
                            rr.average_precision(x, t, interp), rtol=1e-12)
    close(rg.sort_scores(X), rr.sort_scores(x), ints=True)
    close(rg.sort_scores(X, False), rr.sort_scores(x, False), ints=True)
    close(rg.heaviside(X, d), rr.heaviside(x, d))


@settings(max_examples=int(__import__("os").environ.get("RANKREF_MIRROR_EXAMPLES", "25")))
@given(problem=gap_problems())
def test_gap(xp, problem):
    s, y, counts, d = problem
    S, Y = xp.asarray(s), xp.asarray(y)
    gc = rg.ClassCounts(s.shape[1]).load_state_dict(counts.state_dict())
    for method in ("bucketed", "dense"):
        for excl in (True, False):
            a = rr.gap_loss(s, y, counts, d, 1.0, method, excl)
            b = rg.gap_loss(S, Y, gc, d, 1.0, method, excl)
            assert_allclose(b.loss, a.loss, rtol=1e-9, atol=1e-15)
            assert_allclose(b.ranking_error, a.ranking_error, rtol=1e-9, atol=1e-15)
            close(b.grad, a.grad)
            close(b.weights, a.weights)
    assert rg.ClassCounts(s.shape[1]).update(Y) == rr.ClassCounts(s.shape[1]).update(y)


def test_samplers_and_reweighting(xp):
    rng = np.random.default_rng(0)
    iou = rng.uniform(0, 0.6, 400) ** 2
    I = xp.asarray(iou)
    for kw in (dict(), dict(floor_thr=0.0, floor_fraction=0.5), dict(num_bins=1)):
        a = rr.iou_balanced_neg_sample(iou, 50, rng=np.random.default_rng(4), **kw)
        b = rg.iou_balanced_neg_sample(I, 50, rng=np.random.default_rng(4), **kw)
        close(b, a, ints=True)
        close(rg.iou_balanced_neg_probabilities(I, 50, **kw),
              rr.iou_balanced_neg_probabilities(iou, 50, **kw))
    g = np.repeat(np.arange(0, 7), 15)
    close(rg.instance_balanced_pos_sample(xp.asarray(g), 20, rng=np.random.default_rng(1)),
          rr.instance_balanced_pos_sample(g, 20, rng=np.random.default_rng(1)), ints=True)
    lab = g % 3
    close(rg.class_balanced_pos_sample(xp.asarray(lab), xp.asarray(g), 20,
                                       rng=np.random.default_rng(2)),
          rr.class_balanced_pos_sample(lab, g, 20, rng=np.random.default_rng(2)), ints=True)
    p, q = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    for beta in (1.0, 0.5):
        for u, v in zip(rr.balanced_l1_loss(p, q, beta=beta),
                        rg.balanced_l1_loss(xp.asarray(p), xp.asarray(q), beta=beta)):
            close(v, u)
    base = np.abs(rng.normal(size=50))
    base[0] = 0.0
    close(rg.lgr_weights(xp.asarray(base)), rr.lgr_weights(base))
    z, yy = rng.normal(size=(20, 5)), rng.integers(-1, 5, 20)
    for u, v in zip(rr.lgr_cross_entropy(z, yy), rg.lgr_cross_entropy(xp.asarray(z),
                                                                       xp.asarray(yy))):
        close(v, u)
    f = rng.integers(1, 1000, 30)
    close(rg.bucketed_class_weights(xp.asarray(f)), rr.bucketed_class_weights(f))
    w = rr.bucketed_class_weights(f[:5])
    close(rg.class_reweighted_targets(xp.asarray([0, 5, -1, 3]), xp.asarray(w)),
          rr.class_reweighted_targets([0, 5, -1, 3], w))
    assert rg.optimal_bias(3, 1000, 4) == rr.optimal_bias(3, 1000, 4)
    assert rg.foreground_prior([xp.asarray([0, 1, -1])]) == rr.foreground_prior([[0, 1, -1]])
    assert rg.guided_scale(1.0, 2.0) == rr.guided_scale(1.0, 2.0)


BAD = [
    ("rank_sort_loss", lambda m: m.rank_sort_loss([0.0, np.nan], [1.0, 0.0])),
    ("rank_sort_loss", lambda m: m.rank_sort_loss([0.0, 1.0], [1.0, 1.5])),
    ("rank_sort_loss", lambda m: m.rank_sort_loss([0.0, 1.0], [1.0, 0.0, 0.0])),
    ("rank_sort_loss", lambda m: m.rank_sort_loss([0.0, 1.0], [1.0, 0.0], delta=-1)),
    ("rank_sort_loss", lambda m: m.rank_sort_loss(np.array(["a", "b"]), [1.0, 0.0])),
    ("rank_sort_loss", lambda m: m.rank_sort_loss([0.0, 1.0], [1.0, 0.0], method="x")),
    ("ap_loss", lambda m: m.ap_loss([0.0, 1.0], [0.5, 0.0])),
    ("ap_loss", lambda m: m.ap_loss([0.0, 1.0], [1.0, 0.0], method="brs")),
    ("make_buckets", lambda m: m.make_buckets([0.0, 1.0], [1.0, 0.0], kind="z")),
    ("relaxed_ranks", lambda m: m.relaxed_ranks([0.0, np.inf], [1.0, 0.0])),
    ("average_precision", lambda m: m.average_precision([0.0, 1.0], [0, 0])),
    ("gap_loss", lambda m: m.gap_loss(np.zeros((2, 3)), np.array([0, 4]), m.ClassCounts(3))),
    ("gap_loss", lambda m: m.gap_loss(np.zeros(6), np.array([0, 1]), m.ClassCounts(3))),
    ("gap_loss", lambda m: m.gap_loss(np.array([[np.nan, 0, 0], [0, 0, 0]]), np.array([0, 3]),
                                      m.ClassCounts(3))),
    ("iou_balanced_neg_sample", lambda m: m.iou_balanced_neg_sample(
        np.array([0.1, 2.0]), 1, rng=np.random.default_rng(0))),
    ("bucketed_class_weights", lambda m: m.bucketed_class_weights([1.0, 0.0])),
    ("balanced_l1_loss", lambda m: m.balanced_l1_loss(np.zeros(2), np.zeros(3))),
    ("lgr_weights", lambda m: m.lgr_weights(np.array([-1.0]))),
]


@pytest.mark.parametrize("name, call", BAD, ids=[b[0] for b in BAD])
def test_same_errors(name, call):
    with pytest.raises(ValueError) as a:
        call(rr)
    with pytest.raises(ValueError) as b:
        call(rg)
    assert str(a.value) == str(b.value)
