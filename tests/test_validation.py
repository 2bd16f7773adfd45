import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr

X = np.array([0.5, -1.0, 2.0, 0.0])
T = np.array([1.0, 0.0, 0.0, -1.0])

CALLS = {
    "rank_sort_loss": lambda x, t, **k: rr.rank_sort_loss(x, t, **k),
    "ap_loss": lambda x, t, **k: rr.ap_loss(x, t, **k),
    "relaxed_ranks": lambda x, t, **k: rr.relaxed_ranks(x, t, **k),
    "make_buckets": lambda x, t, **k: rr.make_buckets(x, t, **k),
}


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 1, 3])  # a positive, a negative, an ignored entry
def test_nonfinite_logits(name, bad, where):
    x = X.copy()
    x[where] = bad
    with pytest.raises(ValueError, match="logits must be finite"):
        CALLS[name](x, T)


@pytest.mark.parametrize("method", ["dense", "brs"])
def test_nonfinite_logits_other_methods(method):
    with pytest.raises(ValueError, match="logits"):
        rr.rank_sort_loss([0.0, np.nan], [1.0, 0.0], method=method)
    with pytest.raises(ValueError, match="logits"):
        rr.rank_sort_loss([0.0, np.nan], [0.0, 0.0], method=method)


@pytest.mark.parametrize("name", CALLS)
def test_shape_mismatch(name):
    with pytest.raises(ValueError, match="targets has shape"):
        CALLS[name](X, T[:3])
    with pytest.raises(ValueError, match="targets has shape"):
        CALLS[name](X.reshape(2, 2), T)


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize("delta", [-0.1, np.nan, np.inf, "0.5", None])
def test_bad_delta(name, delta):
    with pytest.raises(ValueError, match="delta"):
        CALLS[name](X, T, delta=delta)
    with pytest.raises(ValueError, match="delta"):
        rr.heaviside([0.0], delta)


@pytest.mark.parametrize("name", ["rank_sort_loss", "relaxed_ranks", "make_buckets"])
@pytest.mark.parametrize("bad", [1.5, np.nan, np.inf, -np.inf, 2])
def test_bad_targets(name, bad):
    t = T.astype(np.float64) if not isinstance(bad, int) else T.astype(np.int64)
    t[1] = bad
    with pytest.raises(ValueError, match="targets"):
        CALLS[name](X, t)


@pytest.mark.parametrize("bad", [0.5, 2, -2, np.nan])
def test_ap_targets_must_be_binary(bad):
    t = T.copy()
    t[1] = bad
    with pytest.raises(ValueError, match="-1 .ignored.*rank_sort_loss"):
        rr.ap_loss(X, t)


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize("logits", [np.array(["a", "b", "c", "d"]), np.array([1j, 0, 0, 0]),
                                    np.array([True, False, True, False]),
                                    np.array([None] * 4, dtype=object)])
def test_non_numeric_logits(name, logits):
    with pytest.raises(ValueError, match="logits must be a real numeric array"):
        CALLS[name](logits, T)


def test_non_numeric_targets():
    with pytest.raises(ValueError, match="targets must be a numeric array"):
        rr.rank_sort_loss(X, np.array(["1", "0", "0", "0"]))


def test_bad_method():
    with pytest.raises(ValueError, match="method must be one of"):
        rr.rank_sort_loss(X, T, method="fast")
    with pytest.raises(ValueError, match="method must be one of"):
        rr.ap_loss(X, T, method="fast")


def test_readonly_and_noncontiguous_inputs(rng):
    x = rng.normal(size=(40, 6))
    t = np.where(rng.random((40, 6)) < 0.1, 0.7, 0.0)
    ref = rr.rank_sort_loss(np.ascontiguousarray(x[:, ::2]), np.ascontiguousarray(t[:, ::2]))
    xs, ts = x[:, ::2], t[:, ::2]
    xs.flags.writeable = False
    ts.flags.writeable = False
    res = rr.rank_sort_loss(xs, ts)
    assert_array_equal(res.grad, ref.grad)
    x.flags.writeable = False
    rr.ap_loss(x, (t > 0).astype(np.int8))
    rr.make_buckets(x, t)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32])
def test_dtypes(dtype, rng):
    x = (rng.normal(size=500) * 4).astype(dtype)
    t = np.where(rng.random(500) < 0.1, 0.8, 0.0)
    res = rr.rank_sort_loss(x, t)
    expected = np.float64 if dtype in (np.float64, np.int32) else np.float32
    assert res.grad.dtype == expected
    ref = rr.rank_sort_loss(x.astype(np.float64), t, method="dense")
    assert_allclose(res.grad, ref.grad, rtol=1e-6, atol=1e-7)
    assert_allclose(res.ranking_loss, ref.ranking_loss, rtol=1e-12)


@pytest.mark.parametrize("tdtype", [bool, np.int8, np.uint8, np.int16, np.int64, np.float32])
def test_target_dtypes(tdtype, rng):
    x = rng.normal(size=300)
    lab = rng.random(300) < 0.1
    ref = rr.ap_loss(x, lab.astype(np.float64))
    res = rr.ap_loss(x, lab.astype(tdtype))
    assert_array_equal(res.grad, ref.grad)


def test_empty_input():
    res = rr.rank_sort_loss(np.zeros(0), np.zeros(0))
    assert res.ranking_loss == 0.0 and res.grad.shape == (0,)


# ------------------------------------------------------------------------------ issue 12 rules

from fractions import Fraction  # noqa: E402

import rankref_gpu as rg  # noqa: E402
from rankref._validation import ArgumentTypeError  # noqa: E402

PKGS = [rr, rg]


@pytest.mark.parametrize("pkg", PKGS)
@pytest.mark.parametrize("delta", [10**400, -(10**400), np.longdouble("1e-4000"),
                                   np.longdouble("1e4000"), Fraction(1, 10**400), True,
                                   np.timedelta64(1, "s")])
def test_scalars_float64_cannot_hold_are_refused_naming_them(pkg, delta):
    with pytest.raises(ValueError, match="delta"):
        pkg.rank_sort_loss(X, T, delta=delta)
    with pytest.raises(ValueError, match="delta"):
        pkg.heaviside([0.0], delta)


def test_scalars_of_any_real_type_are_rounded_to_float64():
    ref = rr.rank_sort_loss(X, T, delta=0.5)
    for d in (Fraction(1, 2), np.float32(0.5), np.longdouble(0.5), np.float16(0.5)):
        res = rr.rank_sort_loss(X, T, delta=d)
        assert_array_equal(res.grad, ref.grad)
    assert rr.heaviside(0.0, 2**53 + 1) == 0.5


@pytest.mark.parametrize("value", ["False", None, 0, 1, 0.5, [True], np.array([True, False])])
def test_flags_accept_bool_only(value):
    for call, name in ((lambda v: rr.rank_sort_loss(X, T, compute_grad=v), "compute_grad"),
                       (lambda v: rr.ap_loss(X, T, interpolate=v), "interpolate"),
                       (lambda v: rr.average_precision(X, T, interpolate=v), "interpolate"),
                       (lambda v: rr.sort_scores(X, descending=v), "descending"),
                       (lambda v: rr.gap_loss(np.zeros((2, 2)), [0, 1], None,
                                              weights=[1.0, 1.0], exclude_foreground=v),
                        "exclude_foreground")):
        with pytest.raises(TypeError, match=name) as info:
            call(value)
        assert isinstance(info.value, ValueError)  # ArgumentTypeError is both
        assert isinstance(info.value, ArgumentTypeError)
    assert rr.rank_sort_loss(X, T, compute_grad=np.bool_(False)).grad is None


@pytest.mark.parametrize("pkg", PKGS)
def test_arrays_float64_cannot_hold_exactly_are_refused(pkg):
    big = np.array([2**63 + 1, 2**63], np.uint64)
    with pytest.raises(ValueError, match=r"logits must be exactly representable.*2\*\*53"):
        pkg.rank_sort_loss(big, [1.0, 0.0], 0.0)
    with pytest.raises(ValueError, match="scores"):
        pkg.average_precision(np.array([2**63 - 2, 2**63 - 1], np.int64), [0, 1])
    near_one = np.array([np.longdouble(1) + np.longdouble(2) ** -60, np.longdouble(1)])
    if near_one[0] != near_one[1]:  # long double wider than float64 on this platform
        with pytest.raises(ValueError, match="logits"):
            pkg.rank_sort_loss(near_one, [1.0, 0.0])
        with pytest.raises(ValueError, match="targets"):
            pkg.ap_loss([1.0, 0.0], near_one)
    # exactly representable: accepted and exact
    res = pkg.rank_sort_loss(np.array([2**53, -(2**53)], np.int64), [1.0, 0.0], 0.0)
    assert float(res.ranking_loss) == 0.0
    # sort_scores sorts in the input's dtype: int64 beyond 2**53 is fine
    assert rr.sort_scores(np.array([2**63 - 2, 2**63 - 1], np.int64)).tolist() == [1, 0]


@pytest.mark.parametrize("pkg", PKGS)
def test_uint64_labels_are_range_checked_not_wrapped(pkg):
    y = np.array([2**64 - 1, 0], np.uint64)
    with pytest.raises(ValueError, match="18446744073709551615"):
        pkg.ClassCounts(2).update(y)
    with pytest.raises(ValueError, match="labels"):
        pkg.gap_loss(np.zeros((2, 2)), y, np.ones(2))
    with pytest.raises(ValueError, match="labels"):
        pkg.class_reweighted_targets(np.array([2**64 - 1], np.uint64), [0.5])
    with pytest.raises(ValueError, match="labels"):
        pkg.lgr_cross_entropy([[0.0, 1.0]], np.array([2**64 - 1], np.uint64))
    with pytest.raises(ValueError, match="assigned_gt_inds"):
        pkg.instance_balanced_pos_sample(np.array([0, 2**63 + 1, 1], np.uint64), 1,
                                         rng=np.random.default_rng(0))


def test_lgr_labels_message_has_no_background():
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\] or -1") as info:
        rr.lgr_cross_entropy([[0.0, 1.0, 2.0]], [3])
    assert "background" not in str(info.value)


def test_gap_weights_and_counts():
    s = np.zeros((2, 2))
    with pytest.raises(ValueError, match="weights"):
        rr.gap_loss(s, [0, 1], None, weights=np.array([1 + 5j, 1]))
    with pytest.raises(ValueError, match="weights"):
        rr.gap_loss(s, [0, 1], None, weights=["a", "b"])
    for counts in ("counts", [np.nan, 1.0], [1.0], [-1.0, 1.0]):
        with pytest.raises(ValueError, match="counts"):
            rr.gap_loss(s, [0, 1], counts, weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="weights must be at most"):
        rr.gap_loss(s.astype(np.float32), [0, 1], None, weights=[1e308, 1.0])
    res = rr.gap_loss(s, [0, 1], None, weights=[1e308, 1e308])  # float64: finite
    assert np.isfinite(res.grad).all() and np.isfinite(res.loss)


def test_class_counts_state_and_limits():
    cc = rr.ClassCounts(2)
    with pytest.raises(ValueError, match="num_classes"):
        rr.ClassCounts(2**24 + 1)
    for state, exc, name in (
            (None, TypeError, "state"), ([1, 2], TypeError, "state"),
            ({"counts": np.ones(2)}, ValueError, "num_classes"),
            ({"num_classes": 2}, ValueError, "counts"),
            ({"num_classes": 2.5, "counts": [1.0, 1.0]}, TypeError, "num_classes"),
            ({"num_classes": "2", "counts": [1.0, 1.0]}, TypeError, "num_classes"),
            ({"num_classes": 2, "counts": np.array([1 + 2j, 1])}, ValueError, "counts"),
            ({"num_classes": 2, "counts": ["a", "b"]}, ValueError, "counts"),
            ({"num_classes": 2, "counts": [1.0, 1.0], "x": 1}, ValueError, "state")):
        with pytest.raises(exc, match=name):
            cc.load_state_dict(state)
        assert_array_equal(cc.counts, [0.0, 0.0])
    big = rr.ClassCounts(2).load_state_dict({"num_classes": 2, "counts": [1e308, 2.0**53]})
    with pytest.raises(ValueError, match="other"):
        big.merge(big)
    with pytest.raises(ValueError, match=r"2\*\*53"):
        big.update(np.array([1]))
    assert_array_equal(big.counts, [1e308, 2.0**53])
    with pytest.raises(TypeError):
        big + 5
    with pytest.raises(TypeError, match="other"):
        big.merge(5)
    assert type(rg.ClassCounts(2) + rg.ClassCounts(2)) is rg.ClassCounts
    with pytest.raises(ValueError, match="gamma"):
        cc.weights(10**400)


def test_sampler_work_does_not_depend_on_num_bins():
    iou = np.arange(40) / 40
    for num_bins in (10**9, 2**64, 10**400):
        got = rr.iou_balanced_neg_sample(iou, 10, num_bins=num_bins,
                                         rng=np.random.default_rng(3))
        # a quota int(10 / num_bins) = 0: the bins take nothing, the uniform fill decides
        ref = rr.iou_balanced_neg_sample(iou, 10, num_bins=1, rng=np.random.default_rng(3))
        assert_array_equal(got, ref)
        p = rr.iou_balanced_neg_probabilities(iou, 10, num_bins=num_bins)
        assert_allclose(p, np.full(40, 0.25), rtol=1e-15)
    assert_array_equal(rr.iou_balanced_neg_sample([0.1, 0.2], 10**400,
                                                  rng=np.random.default_rng(0)), [0, 1])
    with pytest.raises(ValueError, match="floor_fraction"):
        rr.iou_balanced_neg_probabilities(iou, 1, floor_fraction=-(10**400))


def test_sampling_free_exact_ratios():
    assert_allclose(rr.optimal_bias(1e-300, 1e10), np.log(1e-300) - np.log(1e10 - 1e-300),
                    rtol=1e-15)
    assert_allclose(rr.optimal_bias(1e300, 1e300, 10**10), -np.log(10**10 - 1), rtol=1e-15)
    assert_allclose(rr.optimal_bias(10**400, 10**401), -np.log(9.0), rtol=1e-15)
    assert rr.guided_scale(2**64, 1.0) == 2.0**64
    with pytest.raises(ValueError, match="cls_loss"):
        rr.guided_scale(1.0, 5e-324)
    for bad in (5, None, 1.5, "abc"):
        with pytest.raises(TypeError, match="label_batches"):
            rr.foreground_prior(bad)


mpmath = pytest.importorskip("mpmath")


def _bl1_ref(d, a, g, beta):
    a, g, beta, d = map(mpmath.mpf, (a, g, beta, d))
    x = abs(d)
    with mpmath.workdps(1200):
        b = mpmath.expm1(g / a)
        if x < beta:
            loss = a / b * (b * x + 1) * mpmath.log1p(b * x / beta) - a * x
            slope = a * mpmath.log1p(b * x / beta) + a * (1 - beta) / (b * x + beta)
        else:
            loss, slope = g * x + g / b - a * beta, g
        return float(loss), float(slope * (0 if d == 0 else mpmath.sign(d)))


@pytest.mark.parametrize("alpha, gamma", [(5e-324, 1.5), (1e-3, 1.0), (1.0, 1e-300),
                                          (1e-300, 1e300), (1.0, 1e-10), (0.5, 1.5),
                                          (1e300, 1e-300), (3.0, 1e300)])
@pytest.mark.parametrize("beta", [1.0, 0.3, 7.0])
def test_balanced_l1_is_exact_for_every_alpha_gamma(alpha, gamma, beta):
    d = np.array([0.0, 1e-320, 1e-300, 1e-10, 0.25, 0.999, 1.0, 1.5, -3.0, 100.0])
    loss, grad = rr.balanced_l1_loss(d, np.zeros_like(d), alpha, gamma, beta)
    ref = np.array([_bl1_ref(v, alpha, gamma, beta) for v in d])
    assert_allclose(loss, ref[:, 0], rtol=1e-12, atol=1e-300)
    assert_allclose(grad, ref[:, 1], rtol=1e-12, atol=1e-300)
    g_loss, g_grad = rg.balanced_l1_loss(d, np.zeros_like(d), alpha, gamma, beta)
    assert_array_equal(g_loss, loss)
    assert_array_equal(g_grad, grad)


def test_reweighting_beyond_float64_is_refused_and_finite_otherwise():
    with pytest.raises(ValueError, match="pred and target"):
        rr.balanced_l1_loss([1e308], [-1e308])
    loss, grad = rr.balanced_l1_loss([1e308], [-1e308], gamma=0.1)
    assert_allclose(loss, [2e307], rtol=1e-15)
    assert_allclose(grad, [0.1], rtol=1e-15)
    loss, grad = rr.balanced_l1_loss(np.array(0.0), np.array(2.0))  # 0-d stays 0-d
    assert isinstance(loss, np.ndarray) and loss.shape == () and grad.shape == ()
    with pytest.raises(ValueError, match="logits"):
        rr.lgr_cross_entropy([[-1e308, 1e308]], [0])
    loss, grad = rr.lgr_cross_entropy([[-1e308, 1e308]], [0], gamma=0.4)
    assert_allclose(loss, [8e307], rtol=1e-15)
    assert_allclose(grad, [[-0.4, 0.4]], rtol=1e-15)
    # the other class's probability underflows (e^-800), the exact loss does not
    loss, _ = rr.lgr_cross_entropy([[0.0, -800.0]], [0], alpha=1.7e308, gamma=1.7e308)
    with mpmath.workdps(60):
        u = mpmath.exp(-800) / (1 + mpmath.exp(-800))
        rho = 1.7e308 * mpmath.log1p(mpmath.expm1(1) * u) / u
        assert_allclose(loss, [float(rho * mpmath.log1p(mpmath.exp(-800)))], rtol=1e-12)
    assert_allclose(rr.lgr_weights([0.7], alpha=1e-300, gamma=1e300), [1e300 / 0.7],
                    rtol=1e-12)
    with pytest.raises(ValueError, match="base"):
        rr.lgr_weights([0.0], alpha=1e-3)
    assert_allclose(rr.lgr_weights([0.0], alpha=1.5, gamma=1e-10), [1.0000000000333e-10],
                    rtol=1e-12)


def test_torch_module_edges():
    torch = pytest.importorskip("torch")
    import rankref.torch as rt
    with pytest.raises(ValueError, match="loss_weight"):
        rt.APLoss(loss_weight=1e308)
    with pytest.raises(ValueError, match="num_classes"):
        rt.GAPLoss(2**31)
    # the mean of an empty batch is 0, with a gradient
    x = torch.zeros(0, requires_grad=True)
    loss = rt.BalancedL1Loss()(x, torch.zeros(0))
    loss.backward()
    assert loss.item() == 0.0 and x.grad.shape == (0,)
    assert rt.LGRCrossEntropyLoss()(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64)) == 0
    # g = L_loc / L_cls in float64: exact even where it is subnormal in float32
    out = rt.GuidedLossScaling()(torch.tensor(1e-10), torch.tensor(1e30))
    assert_allclose(out.item(), 2 * float(torch.tensor(1e-10)), rtol=1e-7)
    with pytest.raises(ValueError, match="cls_loss"):
        rt.GuidedLossScaling()(torch.tensor(1.0, dtype=torch.float64),
                               torch.tensor(5e-324, dtype=torch.float64))
    with pytest.raises(ValueError, match="cls_loss"):
        rt.GuidedLossScaling()(torch.tensor(1.0), torch.tensor(float("nan")))
    lin = rt.init_prior_bias_(torch.nn.Linear(2, 3), 5e-324)
    assert_allclose(lin.bias.detach().numpy(), np.log(5e-324), rtol=1e-6)
    with pytest.raises(ValueError, match="prior"):
        rt.init_prior_bias_(torch.nn.Linear(2, 3), 10**400)
    bfp = rt.BalancedFeaturePyramid(2, 2, refine_level=1)
    with pytest.raises(ValueError, match=r"inputs\[1\]"):
        bfp([torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 1, 1, dtype=torch.float64)])
    with pytest.raises(ValueError, match=r"inputs\[0\]"):
        bfp([torch.zeros(1, 2, 0, 0), torch.zeros(1, 2, 1, 1)])
    with pytest.raises(TypeError, match="inputs"):
        bfp(torch.zeros(2, 1, 2, 1, 1))
    # an avg_factor so small that the loss overflows float32
    with pytest.raises(ValueError, match="avg_factor"):
        rt.RankSortLoss()(torch.tensor([[0.0, 1.0]]), (torch.tensor([0]), torch.tensor([0.5])),
                          avg_factor=1e-300)
    # a label beyond int64's bins is refused and the counts stay
    gap = rt.GAPLoss(1)
    with pytest.raises(ValueError, match="labels"):
        gap(torch.zeros(2, 1), torch.tensor([2**63 - 1, 0]))
    assert gap.counts.tolist() == [0]
    with pytest.raises(ValueError, match="prefix"):
        rt.register_mmdet(object(), prefix="1x")
    # float32 results that cannot hold the exact loss are refused
    with pytest.raises(ValueError, match="float32"):
        rt.balanced_l1_loss(torch.tensor([3e38]), torch.tensor([-3e38]), gamma=1.0)
    # 0-d balanced L1 keeps its shape
    assert rt.balanced_l1_loss(torch.tensor(0.0), torch.tensor(0.5)).shape == ()
