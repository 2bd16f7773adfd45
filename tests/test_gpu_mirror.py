"""Every rankref_gpu function against rankref, on every array backend (tests/_backends.py):
NumPy and torch CPU here, CuPy and torch CUDA where a GPU exists.  One body per function."""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr
import rankref_gpu as rg
from _backends import be  # noqa: F401  (the backend fixture)
from _cases import ranking_problems
from test_gap import gap_problems

EXAMPLES = int(os.environ.get("RANKREF_MIRROR_EXAMPLES", "25"))


def close(be, got, want, ints=False, dtype=None):
    """``got`` is an array of the backend (of ``dtype``) equal to ``want`` (rankref's)."""
    be.check_array(got, dtype=dtype)
    if ints:
        assert_array_equal(be.host(got), want)
    else:
        assert_allclose(be.host(got), want, rtol=1e-9, atol=1e-12)


def close_scalar(be, got, want):
    be.check_scalar(got)
    assert_allclose(float(got), want, rtol=1e-9, atol=1e-15)


@settings(max_examples=EXAMPLES)
@given(problem=ranking_problems(max_n=3000))
def test_rank_sort_and_ranks(be, problem):
    x, t, d = problem
    X, T = be.asarray(x), be.asarray(t)
    for method in ("bucketed", "dense", "brs"):
        a, b = rr.rank_sort_loss(x, t, d, method), rg.rank_sort_loss(X, T, d, method)
        close_scalar(be, b.ranking_loss, a.ranking_loss)
        close_scalar(be, b.sorting_loss, a.sorting_loss)
        for u, v in zip(a[2:], b[2:]):
            close(be, v, u, dtype="float64")
        v = rg.rank_sort_loss(X, T, d, method, compute_grad=False)
        assert v[2:] == (None, None, None)
        close_scalar(be, v.ranking_loss, a.ranking_loss)
        close_scalar(be, v.sorting_loss, a.sorting_loss)
    ra, rb = rr.relaxed_ranks(x, t, d), rg.relaxed_ranks(X, T, d)
    close(be, rb.pos_index, ra.pos_index, ints=True, dtype="int64")
    for u, v in zip(ra[1:], rb[1:]):
        close(be, v, u, dtype="float64")
    for kind in ("exact", "brs"):
        ba, bb = rr.make_buckets(x, t, d, kind), rg.make_buckets(X, T, d, kind)
        close(be, bb.edges, ba.edges, dtype="float64")
        close(be, bb.bucket, ba.bucket, ints=True, dtype="int64")
        close(be, bb.counts, ba.counts, ints=True, dtype="int64")
        be.check_array(bb.sums, "float64")
        assert_allclose(be.host(bb.sums), ba.sums, rtol=1e-9, atol=1e-9)
        be.check_array(bb.means, "float64")
        assert_allclose(be.host(bb.means), ba.means, rtol=1e-12, atol=1e-12)


@settings(max_examples=EXAMPLES)
@given(problem=ranking_problems(max_n=3000, iou=False))
def test_ap_and_average_precision(be, problem):
    x, t, d = problem
    X, T = be.asarray(x), be.asarray(t)
    for method in ("bucketed", "dense"):
        for interp in (True, False):
            a, b = rr.ap_loss(x, t, d, interp, method), rg.ap_loss(X, T, d, interp, method)
            close_scalar(be, b.loss, a.loss)
            close(be, b.grad, a.grad, dtype="float64")
            v = rg.ap_loss(X, T, d, interp, method, compute_grad=False)
            assert v.grad is None
            close_scalar(be, v.loss, a.loss)
    if (t > 0).any():
        for interp in (True, False):
            got = rg.average_precision(X, T, interp)
            be.check_scalar(got)
            assert_allclose(float(got), rr.average_precision(x, t, interp), rtol=1e-12)
    close(be, rg.sort_scores(X), rr.sort_scores(x), ints=True, dtype="int64")
    close(be, rg.sort_scores(X, False), rr.sort_scores(x, False), ints=True, dtype="int64")
    close(be, rg.heaviside(X, d), rr.heaviside(x, d), dtype="float64")


@settings(max_examples=EXAMPLES)
@given(problem=gap_problems())
def test_gap(be, problem):
    s, y, counts, d = problem
    S, Y = be.asarray(s), be.asarray(y)
    gc = rg.ClassCounts(s.shape[1]).load_state_dict(counts.state_dict())
    for method in ("bucketed", "dense"):
        for excl in (True, False):
            a = rr.gap_loss(s, y, counts, d, 1.0, method, excl)
            b = rg.gap_loss(S, Y, gc, d, 1.0, method, excl)
            close_scalar(be, b.loss, a.loss)
            close_scalar(be, b.ranking_error, a.ranking_error)
            close(be, b.grad, a.grad, dtype="float64")
            close(be, b.weights, a.weights, dtype="float64")
            v = rg.gap_loss(S, Y, gc, d, 1.0, method, excl, compute_grad=False)
            assert v.grad is None
            close_scalar(be, v.loss, a.loss)
    for w in (None, np.linspace(0.5, 2.0, s.shape[1])):  # weights override, as an array
        a = rr.gap_loss(s, y, None if w is not None else counts, d, weights=w)
        b = rg.gap_loss(S, Y, None if w is not None else counts, d,
                        weights=None if w is None else be.asarray(w))
        close_scalar(be, b.loss, a.loss)
        close(be, b.grad, a.grad)
    assert rg.ClassCounts(s.shape[1]).update(Y) == rr.ClassCounts(s.shape[1]).update(y)


def test_samplers_and_reweighting(be):
    rng = np.random.default_rng(0)
    iou = rng.uniform(0, 0.6, 400) ** 2
    iou_b = be.asarray(iou)
    for kw in (dict(), dict(floor_thr=0.0, floor_fraction=0.5), dict(num_bins=1)):
        a = rr.iou_balanced_neg_sample(iou, 50, rng=np.random.default_rng(4), **kw)
        b = rg.iou_balanced_neg_sample(iou_b, 50, rng=np.random.default_rng(4), **kw)
        close(be, b, a, ints=True, dtype="int64")
        close(be, rg.iou_balanced_neg_probabilities(iou_b, 50, **kw),
              rr.iou_balanced_neg_probabilities(iou, 50, **kw))
    g = np.repeat(np.arange(0, 7), 15)
    close(be, rg.instance_balanced_pos_sample(be.asarray(g), 20, rng=np.random.default_rng(1)),
          rr.instance_balanced_pos_sample(g, 20, rng=np.random.default_rng(1)), ints=True)
    lab = g % 3
    close(be, rg.class_balanced_pos_sample(be.asarray(lab), be.asarray(g), 20,
                                           rng=np.random.default_rng(2)),
          rr.class_balanced_pos_sample(lab, g, 20, rng=np.random.default_rng(2)), ints=True)
    p, q = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    for beta in (1.0, 0.5):
        for u, v in zip(rr.balanced_l1_loss(p, q, beta=beta),
                        rg.balanced_l1_loss(be.asarray(p), be.asarray(q), beta=beta)):
            close(be, v, u, dtype="float64")
    base = np.abs(rng.normal(size=50))
    base[0] = 0.0
    close(be, rg.lgr_weights(be.asarray(base)), rr.lgr_weights(base), dtype="float64")
    z, yy = rng.normal(size=(20, 5)), rng.integers(-1, 5, 20)
    for u, v in zip(rr.lgr_cross_entropy(z, yy),
                    rg.lgr_cross_entropy(be.asarray(z), be.asarray(yy))):
        close(be, v, u, dtype="float64")
    f = rng.integers(1, 1000, 30)
    close(be, rg.bucketed_class_weights(be.asarray(f)), rr.bucketed_class_weights(f))
    w = rr.bucketed_class_weights(f[:5])
    labels = np.array([0, 5, -1, 3])
    close(be, rg.class_reweighted_targets(be.asarray(labels), be.asarray(w)),
          rr.class_reweighted_targets(labels, w), dtype="float64")
    assert rg.optimal_bias(3, 1000, 4) == rr.optimal_bias(3, 1000, 4)
    batches = [np.array([0, 1, -1]), np.array([2, 0])]
    assert rg.foreground_prior([be.asarray(b) for b in batches]) == rr.foreground_prior(batches)
    assert rg.guided_scale(1.0, 2.0) == rr.guided_scale(1.0, 2.0)


def _one_positive_per_kind(rng, n):
    x = rng.normal(size=n)
    t = np.where(rng.random(n) < 0.2, rng.uniform(0.2, 1.0, n), 0.0)
    t[rng.random(n) < 0.05] = -1.0
    t[0], t[1] = 0.8, 0.0
    return x, t


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", "int64"])
def test_logit_dtypes(be, dtype):
    """Gradients in rankref's dtype (float32 for 16/32-bit floats, float64 otherwise), loss
    values float64, every value equal to rankref's on the same (widened) logits."""
    if dtype == "bfloat16" and be.lib != "torch":
        pytest.skip("bfloat16 is a torch dtype")
    rng = np.random.default_rng(3)
    x, t = _one_positive_per_kind(rng, 500)
    if dtype == "int64":
        x = np.round(x * 3)
    X = be.asarray(x, dtype)
    x_host = be.host(X)  # the logits rg sees, widened exactly (bfloat16 -> float32)
    gdt = "float64" if dtype in ("float64", "int64") else "float32"
    tol = dict(rtol=1e-6, atol=1e-9) if gdt == "float32" else dict(rtol=1e-9, atol=1e-12)
    T = be.asarray(t)
    for method in ("bucketed", "brs", "dense"):
        a, b = rr.rank_sort_loss(x_host, t, 0.5, method), rg.rank_sort_loss(X, T, 0.5, method)
        close_scalar(be, b.ranking_loss, a.ranking_loss)
        close_scalar(be, b.sorting_loss, a.sorting_loss)
        for u, v in zip(a[2:], b[2:]):
            be.check_array(v, gdt, x.shape)
            assert_allclose(be.host(v), u, **tol)
    tb = (t > 0).astype(np.int8) - (t < 0)
    a, b = rr.ap_loss(x_host, tb, 1.0), rg.ap_loss(X, be.asarray(tb), 1.0)
    close_scalar(be, b.loss, a.loss)
    be.check_array(b.grad, gdt)
    assert_allclose(be.host(b.grad), a.grad, **tol)
    y = np.where(rng.random(100) < 0.5, rng.integers(0, 5, 100), 5)
    s = x[:500].reshape(100, 5)
    S = be.asarray(s, dtype)
    a = rr.gap_loss(be.host(S), y, None, weights=np.ones(5))
    b = rg.gap_loss(S, be.asarray(y), None, weights=np.ones(5))
    close_scalar(be, b.loss, a.loss)
    be.check_array(b.grad, gdt, (100, 5))
    assert_allclose(be.host(b.grad), a.grad, **tol)


@pytest.mark.parametrize("tdtype", ["bool", "int8", "int16", "uint8", "int32", "int64",
                                    "float16", "float32", "float64"])
def test_target_dtypes(be, tdtype):
    rng = np.random.default_rng(5)
    x = rng.normal(size=200)
    t = (rng.random(200) < 0.2).astype(tdtype)
    a, b = rr.rank_sort_loss(x, t, 0.5), rg.rank_sort_loss(be.asarray(x), be.asarray(t), 0.5)
    close_scalar(be, b.ranking_loss, a.ranking_loss)
    close(be, b.grad, a.grad)


def test_non_contiguous(be):
    """Strided and transposed inputs are ranked in their logical (C) order."""
    rng = np.random.default_rng(7)
    big = rng.normal(size=(80, 12))
    tbig = np.where(rng.random((80, 12)) < 0.15, rng.uniform(0.1, 1.0, (80, 12)), 0.0)
    X, T = be.asarray(big), be.asarray(tbig)
    for sl in (np.s_[:, ::2], np.s_[::-1, 1::3] if be.lib != "torch" else np.s_[5:, 1::3]):
        x, t = np.ascontiguousarray(big[sl]), np.ascontiguousarray(tbig[sl])
        a, b = rr.rank_sort_loss(x, t, 0.5), rg.rank_sort_loss(X[sl], T[sl], 0.5)
        close_scalar(be, b.ranking_loss, a.ranking_loss)
        close(be, b.grad, a.grad)
        assert tuple(b.grad.shape) == x.shape
    a, b = rr.rank_sort_loss(big.T, tbig.T, 0.5), rg.rank_sort_loss(X.T, T.T, 0.5)
    close(be, b.grad, a.grad)
    y = np.array([3, 20, 0, 3, 17])  # scores [5, 20]: 5 rows, 20 classes
    a = rr.gap_loss(big[::4, :5].T.copy(), y, None, weights=np.ones(20))
    b = rg.gap_loss(X[::4, :5].T, be.asarray(y), None, weights=np.ones(20))
    close(be, b.grad, a.grad)


def test_mixed_inputs_follow_the_first_device_array(be):
    """A list or NumPy targets with backend logits: computed and returned in the backend."""
    x = np.array([0.3, -1.0, 2.0, 0.5])
    t = [1.0, 0.0, 0.0, 0.7]
    a, b = rr.rank_sort_loss(x, t), rg.rank_sort_loss(be.asarray(x), np.asarray(t))
    close_scalar(be, b.ranking_loss, a.ranking_loss)
    close(be, b.grad, a.grad)
    b = rg.rank_sort_loss(x, be.asarray(t))
    close(be, b.grad, a.grad)


def test_no_positive_and_no_negative(be):
    for x, t in ((np.zeros(4), np.zeros(4)), (np.arange(4.0), np.ones(4)),
                 (np.arange(4.0), -np.ones(4))):
        a, b = rr.rank_sort_loss(x, t), rg.rank_sort_loss(be.asarray(x), be.asarray(t))
        close_scalar(be, b.ranking_loss, a.ranking_loss)
        close_scalar(be, b.sorting_loss, a.sorting_loss)
        close(be, b.grad, a.grad, dtype="float64")
        ba, bb = rr.make_buckets(x, t), rg.make_buckets(be.asarray(x), be.asarray(t))
        for u, v in zip(ba, bb):
            be.check_array(v)
            assert_array_equal(be.host(v), u)
    a, b = rr.ap_loss(np.zeros(3), np.zeros(3)), rg.ap_loss(be.asarray(np.zeros(3)),
                                                            be.asarray(np.zeros(3)))
    close_scalar(be, b.loss, a.loss)
    y = np.array([3, 3, -1])
    a = rr.gap_loss(np.zeros((3, 3)), y, rr.ClassCounts(3))
    b = rg.gap_loss(be.asarray(np.zeros((3, 3))), be.asarray(y), rg.ClassCounts(3))
    close_scalar(be, b.loss, a.loss)
    close(be, b.grad, a.grad)
    empty = rg.relaxed_ranks(be.asarray(np.zeros(3)), be.asarray(np.zeros(3)))
    for field in empty:
        be.check_array(field)
        assert be.host(field).shape == (0,)


def test_scalar_heaviside(be):
    got = rg.heaviside(be.asarray(0.3), 0.5)
    if be.lib == "numpy":
        assert type(got) is float and got == rr.heaviside(0.3, 0.5)
    else:
        be.check_array(got, "float64", ())
        assert float(got) == rr.heaviside(0.3, 0.5)


# --------------------------------------------------------------------------- errors

# Each case calls ``m`` (rankref or rankref_gpu) with arrays made by ``A`` (NumPy for rankref,
# the backend for rankref_gpu): the ValueError messages must be identical.
BAD = [
    ("rank_sort_loss", lambda m, A: m.rank_sort_loss(A([0.0, np.nan]), A([1.0, 0.0]))),
    ("rank_sort_loss", lambda m, A: m.rank_sort_loss(A([0.0, 1.0]), A([1.0, 1.5]))),
    ("rank_sort_loss", lambda m, A: m.rank_sort_loss(A([0.0, 1.0]), A([1.0, 0.0, 0.0]))),
    ("rank_sort_loss", lambda m, A: m.rank_sort_loss(A([0.0, 1.0]), A([1.0, 0.0]), delta=-1)),
    ("rank_sort_loss", lambda m, A: m.rank_sort_loss(np.array(["a", "b"]), A([1.0, 0.0]))),
    ("rank_sort_loss", lambda m, A: m.rank_sort_loss(A([0.0, 1.0]), np.array(["a", "b"]))),
    ("rank_sort_loss", lambda m, A: m.rank_sort_loss(A([0.0, 1.0]), A([1.0, 0.0]),
                                                     method="x")),
    ("rank_sort_loss", lambda m, A: m.rank_sort_loss(A([np.inf, 0.0, np.nan]),
                                                     A([0.0, 0.0, 1.0]))),  # positive first
    ("rank_sort_loss", lambda m, A: m.rank_sort_loss(A([np.inf, 0.0, 1.0]), A([0.0, -1, 1.0]),
                                                     method="brs")),
    ("rank_sort_loss", lambda m, A: m.rank_sort_loss(A([np.inf, 0.0]), A([-1.0, 0.0]))),
    ("rank_sort_loss", lambda m, A: m.rank_sort_loss(A([0.0, 1.0]), A([np.nan, 0.0]))),
    ("rank_sort_loss", lambda m, A: m.rank_sort_loss(A([0.0, 1.0]), A(np.array([3, 0],
                                                                            np.uint8)))),
    ("ap_loss", lambda m, A: m.ap_loss(A([0.0, 1.0]), A([0.5, 0.0]))),
    ("ap_loss", lambda m, A: m.ap_loss(A([0.0, 1.0]), A([1.0, 0.0]), method="brs")),
    ("ap_loss", lambda m, A: m.ap_loss(A([-np.inf, 1.0, np.nan]), A([0, 1, 1]))),
    ("make_buckets", lambda m, A: m.make_buckets(A([0.0, 1.0]), A([1.0, 0.0]), kind="z")),
    ("make_buckets", lambda m, A: m.make_buckets(A([np.nan, 1.0]), A([0.0, 0.0]))),
    ("relaxed_ranks", lambda m, A: m.relaxed_ranks(A([0.0, np.inf]), A([1.0, 0.0]))),
    ("average_precision", lambda m, A: m.average_precision(A([0.0, 1.0]), A([0, 0]))),
    ("average_precision", lambda m, A: m.average_precision(A([0.0, 1.0]), A([0, 2]))),
    ("average_precision", lambda m, A: m.average_precision(A([np.nan, 1.0]), A([0, 1]))),
    ("heaviside", lambda m, A: m.heaviside(A([0.0, np.nan]), 0.5)),
    ("heaviside", lambda m, A: m.heaviside(A([0.0]), -0.5)),
    ("sort_scores", lambda m, A: m.sort_scores(A([0.0, np.nan]))),
    ("gap_loss", lambda m, A: m.gap_loss(A(np.zeros((2, 3))), A([0, 4]), m.ClassCounts(3))),
    ("gap_loss", lambda m, A: m.gap_loss(A(np.zeros(6)), A([0, 1]), m.ClassCounts(3))),
    ("gap_loss", lambda m, A: m.gap_loss(A(np.zeros((2, 3))), A([0.0, 1.0]),
                                         m.ClassCounts(3))),
    ("gap_loss", lambda m, A: m.gap_loss(A(np.zeros((2, 3))), A([0, 1, 1]), m.ClassCounts(3))),
    ("gap_loss", lambda m, A: m.gap_loss(A([[np.nan, 0, 0], [0, 0, 0]]), A([0, 3]),
                                         m.ClassCounts(3))),
    # the positives are checked first, in class order: (1, 0) before (0, 2) and (2, 1)
    ("gap_loss", lambda m, A: m.gap_loss(A([[np.inf, 0, np.nan], [np.nan, 0, 0],
                                            [0, np.inf, 0]]), A([2, 0, 3]), None,
                                         weights=np.ones(3))),
    ("gap_loss", lambda m, A: m.gap_loss(A(np.zeros((2, 3))), A([0, 1]), None,
                                         weights=np.ones(2))),
    ("gap_loss", lambda m, A: m.gap_loss(A(np.zeros((2, 3))), A([0, 1]), m.ClassCounts(3),
                                         method="brs")),
    ("ClassCounts.update", lambda m, A: m.ClassCounts(3).update(A([0, 7]))),
    ("iou_balanced_neg_sample", lambda m, A: m.iou_balanced_neg_sample(
        A([0.1, 2.0]), 1, rng=np.random.default_rng(0))),
    ("bucketed_class_weights", lambda m, A: m.bucketed_class_weights(A([1.0, 0.0]))),
    ("class_reweighted_targets", lambda m, A: m.class_reweighted_targets(
        A([0, 1]), A([[1.0]]))),
    ("class_reweighted_targets", lambda m, A: m.class_reweighted_targets(
        A([0, 9]), A([1.0, 0.5]))),
    ("class_reweighted_targets", lambda m, A: m.class_reweighted_targets(
        A([0, 1]), A([1.0, np.inf]))),
    ("balanced_l1_loss", lambda m, A: m.balanced_l1_loss(A(np.zeros(2)), A(np.zeros(3)))),
    ("balanced_l1_loss", lambda m, A: m.balanced_l1_loss(A([0.0, np.nan]), A(np.zeros(2)))),
    ("lgr_weights", lambda m, A: m.lgr_weights(A([-1.0]))),
    ("lgr_cross_entropy", lambda m, A: m.lgr_cross_entropy(A(np.zeros((2, 3))), A([0, 3]))),
    ("lgr_cross_entropy", lambda m, A: m.lgr_cross_entropy(A(np.zeros(3)), A([0, 1, 2]))),
    ("foreground_prior", lambda m, A: m.foreground_prior([A([0, 1]), A([-2])])),
]


@pytest.mark.parametrize("name, call", BAD, ids=[b[0] for b in BAD])
def test_same_errors(be, name, call):
    with pytest.raises(ValueError) as a:
        call(rr, np.asarray)
    with pytest.raises(ValueError) as b:
        call(rg, be.asarray)
    # a dtype is named in its library's spelling (torch.float64 for a tensor)
    assert str(a.value) == str(b.value).replace("torch.", "")


@pytest.mark.parametrize("delta", [0.0, 0.5])
def test_small_slices_and_chunks(be, monkeypatch, delta):
    """The sliced passes over N, the chunked window pairs and the chunked dense pair terms give
    rankref's values whatever the slice and chunk sizes (here tiny, so every loop runs)."""
    from rankref_gpu import _backend

    rng = np.random.default_rng(8)
    x = np.round(rng.normal(size=700) * 4) / 4
    t = np.where(rng.random(700) < 0.15, rng.uniform(0.1, 1.0, 700), 0.0)
    t[rng.random(700) < 0.05] = -1.0
    want = [rr.rank_sort_loss(x, t, delta, m) for m in ("bucketed", "brs", "dense")]
    want_b = rr.make_buckets(x, t, delta)
    for chunk, pass_chunk in ((97, 13), (1, 1), (5000, 64)):
        monkeypatch.setattr(_backend, "CHUNK", chunk)
        monkeypatch.setattr(_backend, "PASS_CHUNK", pass_chunk)
        X, T = be.asarray(x), be.asarray(t)
        for a, m in zip(want, ("bucketed", "brs", "dense")):
            b = rg.rank_sort_loss(X, T, delta, m)
            close_scalar(be, b.ranking_loss, a.ranking_loss)
            close_scalar(be, b.sorting_loss, a.sorting_loss)
            close(be, b.grad, a.grad)
        got = rg.make_buckets(X, T, delta)
        close(be, got.bucket, want_b.bucket, ints=True)
        close(be, got.counts, want_b.counts, ints=True)
        assert_allclose(be.host(got.sums), want_b.sums, rtol=1e-9, atol=1e-9)
        with pytest.raises(ValueError) as a:
            rr.rank_sort_loss(np.r_[x, np.inf], np.r_[t, 0.0])
        with pytest.raises(ValueError) as b:
            rg.rank_sort_loss(be.asarray(np.r_[x, np.inf]), be.asarray(np.r_[t, 0.0]))
        assert str(a.value) == str(b.value)
