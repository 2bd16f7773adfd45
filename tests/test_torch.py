"""rankref.torch: the functions and modules against rankref, dtypes, dispatch, layers."""
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import given
from numpy.testing import assert_allclose, assert_array_equal

torch = pytest.importorskip("torch")
import rankref as rr  # noqa: E402
import rankref.torch as rt  # noqa: E402
from rankref.torch import _bridge  # noqa: E402

from _cases import ranking_problems  # noqa: E402
from _torch_helpers import BACKEND, assert_backend_equal, problem  # noqa: E402


def test_import_rankref_does_not_import_torch():
    code = ("import sys, rankref; assert 'torch' not in sys.modules; "
            "import rankref.torch; assert 'torch' in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tempfile.gettempdir())  # the installed package, not the checkout
    assert out.stdout.strip() == "ok", out.stderr


def test_losses_are_registered_custom_ops():
    for name in ("rank_sort_loss", "ap_loss", "gap_loss", "class_targets", "balanced_l1_loss",
                 "lgr_cross_entropy"):
        assert hasattr(torch.ops.rankref, name)


@pytest.mark.parametrize("method", ["bucketed", "dense", "brs"])
def test_rank_sort_grads_equal_reference(method):
    x, t = problem(shape=(60, 10))
    xt = torch.tensor(x, requires_grad=True)
    r, s = rt.rank_sort_loss(xt, torch.tensor(t), 0.5, method)
    (r + s).backward()
    ref = rr.rank_sort_loss(x, t, 0.5, method)
    assert r.dtype == torch.float64 and r.shape == ()
    assert_backend_equal(r, ref.ranking_loss)
    assert_backend_equal(s, ref.sorting_loss)
    assert_backend_equal(xt.grad, ref.grad)


@given(ranking_problems(max_n=400))
def test_rank_sort_and_ap_match_rankref_on_adversarial_problems(case):
    x, t, delta = case
    xt = torch.tensor(x, requires_grad=True)
    r, s = rt.rank_sort_loss(xt, torch.tensor(t), delta)
    (r + s).backward()
    ref = rr.rank_sort_loss(x, t, delta)
    assert_backend_equal(r, ref.ranking_loss)
    assert_backend_equal(s, ref.sorting_loss)
    assert_backend_equal(xt.grad, ref.grad)
    tb = np.sign(t)
    xt.grad = None
    loss = rt.ap_loss(xt, torch.tensor(tb), delta)
    loss.backward()
    ref = rr.ap_loss(x, tb, delta)
    assert_backend_equal(loss, ref.loss)
    assert_backend_equal(xt.grad, ref.grad)


def test_separate_weights_and_loss_weight():
    x, t = problem(1)
    ref = rr.rank_sort_loss(x, t)
    xt = torch.tensor(x, requires_grad=True)
    r, s = rt.rank_sort_loss(xt, torch.tensor(t))
    (0.3 * r + 2.0 * s).backward()
    assert_allclose(xt.grad.numpy(), 0.3 * ref.ranking_grad + 2.0 * ref.sorting_grad,
                    rtol=1e-12, atol=1e-18)
    xt.grad = None
    r, s = rt.RankSortLoss(loss_weight=4.0)(xt, torch.tensor(t))
    (r + s).backward()
    assert_allclose(r.item(), 4 * ref.ranking_loss, rtol=1e-12)
    assert_allclose(xt.grad.numpy(), 4 * ref.grad, rtol=1e-12, atol=1e-18)
    xt.grad = None
    loss = rt.APLoss(loss_weight=3.0)(xt, torch.tensor(t > 0, dtype=torch.int8))
    loss.backward()
    ref = rr.ap_loss(x, (t > 0).astype(np.int8))
    assert_allclose(loss.item(), 3 * ref.loss, rtol=1e-12)
    assert_allclose(xt.grad.numpy(), 3 * ref.grad, rtol=1e-12, atol=1e-18)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_inputs(dtype):
    x, t = problem(2)
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    r, s = rt.rank_sort_loss(xt, torch.tensor(t))
    assert r.dtype == torch.float32
    (r + s).backward()
    assert xt.grad.dtype == dtype
    ref = rr.rank_sort_loss(xt.detach().float().numpy(), t)
    assert_allclose(xt.grad.float().numpy(), ref.grad, rtol=1e-2, atol=1e-3)
    assert_allclose(r.item(), ref.ranking_loss, rtol=1e-6)


@pytest.mark.parametrize("tdtype", [torch.bool, torch.uint8, torch.int8, torch.int16,
                                    torch.int32, torch.int64, torch.float16, torch.bfloat16,
                                    torch.float32, torch.float64])
def test_every_target_dtype(tdtype):
    x, t = problem(3)
    tb = np.where(t > 0, 1, 0)  # representable by every dtype
    got = rt.ap_loss(torch.tensor(x), torch.tensor(tb).to(tdtype))
    assert_backend_equal(got, rr.ap_loss(x, tb).loss)
    r, _ = rt.rank_sort_loss(torch.tensor(x), torch.tensor(tb).to(tdtype))
    assert_backend_equal(r, rr.rank_sort_loss(x, tb).ranking_loss)


def test_autocast_runs_in_float32():
    x, t = problem(3)
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        r, s = rt.rank_sort_loss(xt, torch.tensor(t))
    assert r.dtype == torch.float32
    ref = rr.rank_sort_loss(x.astype(np.float32), t)
    assert_backend_equal(r, np.float32(ref.ranking_loss))


def test_zero_positives_graph_connected():
    lin = torch.nn.Linear(3, 1)
    feats = torch.randn(50, 3)
    logits = lin(feats).squeeze(1)
    r, s = rt.rank_sort_loss(logits, torch.zeros(50))
    assert r.item() == 0 and s.item() == 0
    (r + s).backward()
    assert lin.weight.grad is not None and (lin.weight.grad == 0).all()
    loss = rt.ap_loss(lin(feats).squeeze(1), torch.zeros(50))
    loss.backward()
    assert loss.item() == 0


def test_empty_and_zero_dim_inputs():
    r, s = rt.rank_sort_loss(torch.zeros(0, 4, requires_grad=True), torch.zeros(0, 4))
    assert (r.item(), s.item()) == (0.0, 0.0)
    x = torch.tensor(1.5, requires_grad=True)
    r, s = rt.rank_sort_loss(x, torch.tensor(0.7))
    (r + s).backward()
    assert (r.item(), s.item(), x.grad.item()) == (0.0, 0.0, 0.0)


def test_non_contiguous_inputs():
    x, t = problem(4, n=400, shape=(20, 20))
    xt = torch.tensor(x).t()  # a transposed view
    tt = torch.tensor(t).t()
    assert not xt.is_contiguous()
    r, s = rt.rank_sort_loss(xt, tt)
    ref = rr.rank_sort_loss(x.T, t.T)
    assert_backend_equal(r, ref.ranking_loss)


def test_gap_function_matches_rankref():
    rng = np.random.default_rng(0)
    n, C = 80, 6
    scores = rng.normal(size=(n, C))
    labels = np.where(rng.random(n) < 0.3, rng.integers(0, C, n), C)
    counts = rr.ClassCounts(C).update(labels)
    ref = rr.gap_loss(scores, labels, counts)
    for cnt in (counts, counts.counts, torch.tensor(counts.counts)):
        st = torch.tensor(scores, requires_grad=True)
        loss = rt.gap_loss(st, torch.tensor(labels), cnt)
        loss.backward()
        assert_backend_equal(loss, ref.loss)
        assert_backend_equal(st.grad, ref.grad)
    w = np.linspace(0.5, 2, C)
    got = rt.gap_loss(torch.tensor(scores), torch.tensor(labels), None, weights=torch.tensor(w))
    assert_backend_equal(got, rr.gap_loss(scores, labels, None, weights=w).loss)


def test_gap_module_matches_rankref():
    rng = np.random.default_rng(0)
    n, C = 80, 6
    scores = rng.normal(size=(n, C))
    labels = np.where(rng.random(n) < 0.3, rng.integers(0, C, n), C)
    mod = rt.GAPLoss(C, loss_weight=0.1)
    st = torch.tensor(scores, requires_grad=True)
    loss = mod(st, torch.tensor(labels))
    loss.backward()
    counts = rr.ClassCounts(C).update(labels)
    ref = rr.gap_loss(scores, labels, counts)
    assert_allclose(loss.item(), 0.1 * ref.loss, rtol=1e-12)
    assert_allclose(st.grad.numpy(), 0.1 * ref.grad, rtol=1e-12, atol=1e-18)
    assert_backend_equal(mod.last_ranking_error, ref.ranking_error)
    assert mod.class_counts == counts
    assert mod.counts.dtype == torch.int64


def test_balanced_l1_and_lgr_modules():
    rng = np.random.default_rng(1)
    p = torch.tensor(rng.normal(size=(20, 4)), requires_grad=True)
    tgt = torch.tensor(rng.normal(size=(20, 4)))
    loss = rt.BalancedL1Loss(loss_weight=2.0)(p, tgt)
    loss.backward()
    l_ref, g_ref = rr.balanced_l1_loss(p.detach().numpy(), tgt.numpy())
    assert_allclose(loss.item(), 2 * l_ref.mean(), rtol=1e-12)
    assert_allclose(p.grad.numpy(), 2 * g_ref / g_ref.size, rtol=1e-12)
    # mmdetection's weight_reduce_loss: weight, then sum / avg_factor
    p.grad = None
    w = torch.tensor(rng.random((20, 4)))
    loss = rt.BalancedL1Loss()(p, tgt, weight=w, avg_factor=7.0)
    loss.backward()
    assert_allclose(loss.item(), (l_ref * w.numpy()).sum() / 7.0, rtol=1e-12)
    assert_allclose(p.grad.numpy(), g_ref * w.numpy() / 7.0, rtol=1e-12)
    none = rt.BalancedL1Loss(reduction="none")(p, tgt)
    assert_allclose(none.detach().numpy(), l_ref, rtol=1e-12)
    with pytest.raises(ValueError, match="avg_factor"):
        rt.BalancedL1Loss(reduction="sum")(p, tgt, avg_factor=2.0)
    with pytest.raises(ValueError, match="avg_factor"):
        rt.BalancedL1Loss()(p, tgt, avg_factor=0.0)
    z = torch.tensor(rng.normal(size=(10, 5)), requires_grad=True)
    y = torch.tensor(rng.integers(0, 5, 10))
    loss = rt.LGRCrossEntropyLoss(reduction="sum")(z, y)
    loss.backward()
    l_ref, g_ref = rr.lgr_cross_entropy(z.detach().numpy(), y.numpy())
    assert_allclose(loss.item(), l_ref.sum(), rtol=1e-12)
    assert_allclose(z.grad.numpy(), g_ref, rtol=1e-12)
    w = torch.tensor(rng.random(10))
    loss = rt.LGRCrossEntropyLoss()(z, y, weight=w, avg_factor=4)
    assert_allclose(loss.item(), (l_ref * w.numpy()).sum() / 4, rtol=1e-12)


def test_samplers_on_tensors():
    iou = torch.rand(300) ** 2
    a = rt.iou_balanced_neg_sample(iou, 40, rng=torch.Generator().manual_seed(3))
    b = rt.iou_balanced_neg_sample(iou, 40, rng=torch.Generator().manual_seed(3))
    assert a.dtype == torch.int64 and a.numel() == 40 and torch.equal(a, b)
    c = rr.iou_balanced_neg_sample(iou.numpy(), 40, rng=np.random.default_rng(5))
    d = rt.iou_balanced_neg_sample(iou, 40, rng=np.random.default_rng(5))
    assert_array_equal(d.numpy(), c)
    g = torch.tensor([0, 1, 1, 1, 2, 2, 3] * 5)
    s = rt.instance_balanced_pos_sample(g, 10, rng=torch.Generator().manual_seed(0))
    assert s.numel() == 10 and (g[s] > 0).all()
    with pytest.raises(TypeError, match="rng"):
        rt.instance_balanced_pos_sample(g, 10, rng=0)


def test_guided_loss_scaling_gradient():
    mod = rt.GuidedLossScaling()
    loc = torch.tensor(0.8, requires_grad=True)
    cls = torch.tensor(20.0, requires_grad=True)
    loss = mod(loc, cls)
    loss.backward()
    g = 0.8 / 20.0
    # L = loc + g p^2 cls - log p^2: dL/dp = 2 p g cls - 2/p = 2*0.8 - 2 at p = 1
    assert_allclose(mod.p.grad.item(), 2 * 0.8 - 2, rtol=1e-6)
    assert_allclose(cls.grad.item(), g, rtol=1e-6)  # g is detached
    assert_allclose(loc.grad.item(), 1.0)
    assert_allclose(loss.item(), 0.8 + 0.8, rtol=1e-6)
    with pytest.raises(ValueError, match="init"):
        rt.GuidedLossScaling(init=0.0)


def test_init_prior_bias():
    conv = torch.nn.Conv2d(4, 9, 3)
    rt.init_prior_bias_(conv, 0.01)
    assert_allclose(conv.bias.detach().numpy(), -np.log(99), rtol=1e-6)
    for bad in (1.5, 0.0, float("nan"), True):
        with pytest.raises(ValueError, match="prior"):
            rt.init_prior_bias_(conv, bad)
    with pytest.raises(ValueError, match="bias"):
        rt.init_prior_bias_(torch.nn.Conv2d(4, 9, 3, bias=False), 0.01)


@pytest.mark.parametrize("refine", ["non_local", "conv", None])
def test_balanced_feature_pyramid(refine):
    bfp = rt.BalancedFeaturePyramid(8, 4, refine_level=1, refine_type=refine)
    feats = [torch.randn(2, 8, 32 // 2**i, 40 // 2**i) for i in range(4)]
    outs = bfp(feats)
    assert [o.shape for o in outs] == [f.shape for f in feats]
    if refine is None:
        assert sum(p.numel() for p in bfp.parameters()) == 0
        # no parameters: the output is the input plus the rescaled average of the levels
        mean = sum(torch.nn.functional.interpolate(f, size=(16, 20)) if i else
                   torch.nn.functional.adaptive_max_pool2d(f, (16, 20))
                   for i, f in enumerate(feats)) / 4
        assert torch.allclose(outs[1], feats[1] + mean)
    with pytest.raises(ValueError, match="levels"):
        bfp(feats[:3])
    with pytest.raises(ValueError, match="refine_level"):
        rt.BalancedFeaturePyramid(8, 4, refine_level=4)


def test_training_raises_ap():
    # a linear scorer on a separable, detection-like problem: RS loss + SGD
    g = torch.Generator().manual_seed(0)
    n, d = 3000, 8
    feats = torch.randn(n, d, generator=g)
    w_true = torch.randn(d, generator=g)
    score = feats @ w_true
    pos = score > torch.quantile(score, 0.97)
    targets = torch.zeros(n)
    targets[pos] = 0.5 + 0.5 * torch.rand(int(pos.sum()), generator=g)
    model = torch.nn.Linear(d, 1)
    torch.nn.init.normal_(model.weight, std=0.01, generator=g)
    labels = pos.numpy().astype(np.int8)
    ap0 = rr.average_precision(model(feats).detach().numpy().ravel(), labels)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss_fn = rt.RankSortLoss()
    for _ in range(300):
        opt.zero_grad()
        r, s = loss_fn(model(feats).squeeze(1), targets)
        (r + s).backward()
        opt.step()
    ap1 = rr.average_precision(model(feats).detach().numpy().ravel(), labels)
    assert ap0 < 0.3 and ap1 > 0.9, (ap0, ap1)


# ------------------------------------------------------------------ dispatch

def test_backend_choice(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv(_bridge.ENV, raising=False)
    assert _bridge.backend(cpu) is _bridge.HOST and _bridge.backend(cuda) is _bridge.TENSOR
    monkeypatch.setenv(_bridge.ENV, "cpu")
    assert _bridge.backend(cpu) is _bridge.HOST and _bridge.backend(cuda) is _bridge.HOST
    monkeypatch.setenv(_bridge.ENV, " GPU ")
    assert _bridge.backend(cpu) is _bridge.TENSOR and _bridge.backend(cuda) is _bridge.TENSOR
    monkeypatch.setenv(_bridge.ENV, "cupy")
    with pytest.raises(ValueError, match="RANKREF_TORCH_BACKEND"):
        rt.rank_sort_loss(torch.zeros(3), torch.zeros(3))


def test_gpu_backend_gets_the_tensors_themselves(monkeypatch):
    """The gpu path hands torch tensors (not arrays, not copies to another library) to
    rankref_gpu, and takes its results back as they are."""
    import rankref_gpu

    seen = {}
    real = rankref_gpu.rank_sort_loss

    def spy(logits, targets, *args, **kw):
        seen["types"] = (type(logits), type(targets))
        seen["compute_grad"] = kw.get("compute_grad")
        return real(logits, targets, *args, **kw)

    monkeypatch.setattr(rankref_gpu, "rank_sort_loss", spy)
    monkeypatch.setenv(_bridge.ENV, "gpu")
    x, t = problem(5)
    xt = torch.tensor(x, requires_grad=True)
    r, s = rt.rank_sort_loss(xt, torch.tensor(t))
    (r + s).backward()
    assert seen == {"types": (torch.Tensor, torch.Tensor), "compute_grad": True}
    ref = rr.rank_sort_loss(x, t)
    assert_allclose([r.item(), s.item()], [ref.ranking_loss, ref.sorting_loss], rtol=1e-10)
    assert_allclose(xt.grad.numpy(), ref.grad, rtol=1e-9, atol=1e-15)


@pytest.mark.skipif(BACKEND == "gpu", reason="checks the host path")
def test_cpu_backend_is_bitwise_rankref(monkeypatch):
    monkeypatch.setenv(_bridge.ENV, "cpu")
    x, t = problem(6, n=400, shape=(50, 8))
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    r, s = rt.rank_sort_loss(xt, torch.tensor(t))
    (r + s).backward()
    ref = rr.rank_sort_loss(x.astype(np.float32), t)
    assert_array_equal(xt.grad.numpy(), ref.grad)


# ------------------------------------------------------------------ documentation

MODULES = ["RankSortLoss", "APLoss", "GAPLoss", "BalancedL1Loss", "LGRCrossEntropyLoss",
           "GuidedLossScaling", "BalancedFeaturePyramid"]


@pytest.mark.parametrize("name", MODULES + ["rank_sort_loss", "ap_loss", "gap_loss",
                                            "balanced_l1_loss", "lgr_cross_entropy",
                                            "init_prior_bias_", "register_mmdet"])
def test_every_public_object_has_a_parameters_section(name):
    doc = getattr(rt, name).__doc__
    assert "Parameters\n    ----------" in doc, name


@pytest.mark.parametrize("name", ["RankSortLoss", "APLoss", "GAPLoss"])
def test_ranking_docs_cover_the_issue_topics(name):
    doc = getattr(rt, name).__doc__
    for topic in ("gather", "method", "loss_weight", "mmdetection call", "rankref_gpu",
                  "use_sigmoid"):
        assert topic in doc, (name, topic)


def test_extra_repr_shows_the_configuration():
    assert repr(rt.RankSortLoss(delta=0.25, gather=True)) == (
        "RankSortLoss(delta=0.25, method='bucketed', loss_weight=1.0, gather=True)")
    assert "interpolate=False" in repr(rt.APLoss(interpolate=False))
    r = repr(rt.GAPLoss(5, loss_weight=0.1))
    assert "num_classes=5" in r and "loss_weight=0.1" in r and "sync_counts=True" in r
    assert "beta=2.0" in repr(rt.BalancedL1Loss(beta=2.0))
    assert "refine_type='conv'" in repr(rt.BalancedFeaturePyramid(4, 2, 1, "conv"))
