import os
import socket
import tempfile

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

torch = pytest.importorskip("torch")
import rankref as rr  # noqa: E402
import rankref.torch as rt  # noqa: E402


def _problem(seed=0, n=600, shape=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = np.where(rng.random(n) < 0.08, rng.uniform(0.2, 1.0, n), 0.0)
    t[rng.random(n) < 0.03] = -1
    if shape:
        x, t = x.reshape(shape), t.reshape(shape)
    return x, t


def test_import_rankref_does_not_import_torch():
    import subprocess
    import sys
    code = "import sys, rankref; assert 'torch' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tempfile.gettempdir())  # the installed package, not the checkout
    assert out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("method", ["bucketed", "dense", "brs"])
def test_rank_sort_grads_equal_reference(method):
    x, t = _problem(shape=(60, 10))
    xt = torch.tensor(x, requires_grad=True)
    r, s = rt.rank_sort_loss(xt, torch.tensor(t), 0.5, method)
    (r + s).backward()
    ref = rr.rank_sort_loss(x, t, 0.5, method)
    assert r.item() == ref.ranking_loss and s.item() == ref.sorting_loss
    assert_array_equal(xt.grad.numpy(), ref.grad)


def test_separate_weights_and_loss_weight():
    x, t = _problem(1)
    ref = rr.rank_sort_loss(x, t)
    xt = torch.tensor(x, requires_grad=True)
    r, s = rt.rank_sort_loss(xt, torch.tensor(t))
    (0.3 * r + 2.0 * s).backward()
    assert_allclose(xt.grad.numpy(), 0.3 * ref.ranking_grad + 2.0 * ref.sorting_grad,
                    rtol=1e-15, atol=1e-18)
    xt.grad = None
    r, s = rt.RankSortLoss(loss_weight=4.0)(xt, torch.tensor(t))
    (r + s).backward()
    assert_allclose(r.item(), 4 * ref.ranking_loss, rtol=1e-15)
    assert_allclose(xt.grad.numpy(), 4 * ref.grad, rtol=1e-15, atol=1e-18)
    xt.grad = None
    loss = rt.APLoss(loss_weight=3.0)(xt, torch.tensor(t > 0, dtype=torch.int8))
    loss.backward()
    ref = rr.ap_loss(x, (t > 0).astype(np.int8))
    assert_allclose(loss.item(), 3 * ref.loss, rtol=1e-15)
    assert_allclose(xt.grad.numpy(), 3 * ref.grad, rtol=1e-15, atol=1e-18)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_inputs(dtype):
    x, t = _problem(2)
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    r, s = rt.rank_sort_loss(xt, torch.tensor(t))
    assert r.dtype == torch.float32
    (r + s).backward()
    assert xt.grad.dtype == dtype
    ref = rr.rank_sort_loss(xt.detach().float().numpy(), t)
    assert_allclose(xt.grad.float().numpy(), ref.grad, rtol=1e-2, atol=1e-3)
    assert_allclose(r.item(), ref.ranking_loss, rtol=1e-6)


def test_autocast_runs_in_float32():
    x, t = _problem(3)
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        r, s = rt.rank_sort_loss(xt, torch.tensor(t))
    assert r.dtype == torch.float32
    ref = rr.rank_sort_loss(x.astype(np.float32), t)
    assert r.item() == np.float32(ref.ranking_loss)


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


def test_gap_module_and_buffer_roundtrip():
    rng = np.random.default_rng(0)
    n, C = 80, 6
    scores = rng.normal(size=(n, C))
    labels = np.where(rng.random(n) < 0.3, rng.integers(0, C, n), C)
    mod = rt.GAPLoss(C, lam=0.1)
    st = torch.tensor(scores, requires_grad=True)
    loss = mod(st, torch.tensor(labels))
    loss.backward()
    counts = rr.ClassCounts(C).update(labels)
    ref = rr.gap_loss(scores, labels, counts)
    assert_allclose(loss.item(), 0.1 * ref.loss, rtol=1e-12)
    assert_allclose(st.grad.numpy(), 0.1 * ref.grad, rtol=1e-12, atol=1e-18)
    assert mod.last_ranking_error == ref.ranking_error
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "gap.pt")
        torch.save(mod.state_dict(), path)
        other = rt.GAPLoss(C)
        other.load_state_dict(torch.load(path))
    assert_array_equal(other.counts.numpy(), counts.counts)
    assert other.class_counts == counts


def test_balanced_l1_and_lgr_modules():
    rng = np.random.default_rng(1)
    p = torch.tensor(rng.normal(size=(20, 4)), requires_grad=True)
    tgt = torch.tensor(rng.normal(size=(20, 4)))
    loss = rt.BalancedL1Loss(loss_weight=2.0)(p, tgt)
    loss.backward()
    l_ref, g_ref = rr.balanced_l1_loss(p.detach().numpy(), tgt.numpy())
    assert_allclose(loss.item(), 2 * l_ref.mean(), rtol=1e-12)
    assert_allclose(p.grad.numpy(), 2 * g_ref / g_ref.size, rtol=1e-12)
    z = torch.tensor(rng.normal(size=(10, 5)), requires_grad=True)
    y = torch.tensor(rng.integers(0, 5, 10))
    loss = rt.LGRCrossEntropyLoss(reduction="sum")(z, y)
    loss.backward()
    l_ref, g_ref = rr.lgr_cross_entropy(z.detach().numpy(), y.numpy())
    assert_allclose(loss.item(), l_ref.sum(), rtol=1e-12)
    assert_allclose(z.grad.numpy(), g_ref, rtol=1e-12)


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
    with pytest.raises(ValueError, match="rng"):
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


def test_init_prior_bias():
    conv = torch.nn.Conv2d(4, 9, 3)
    rt.init_prior_bias_(conv, 0.01)
    assert_allclose(conv.bias.detach().numpy(), -np.log(99), rtol=1e-6)
    with pytest.raises(ValueError, match="prior"):
        rt.init_prior_bias_(conv, 1.5)


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


# ------------------------------------------------------------------ torch.distributed (gloo)

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out_dir):
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    rng = np.random.default_rng(100 + rank)
    n = 50 + 17 * rank  # unequal sizes
    feats = torch.tensor(rng.normal(size=(n, 4)), dtype=torch.float32)
    t = np.where(rng.random((n, 3)) < 0.1, rng.uniform(0.3, 1, (n, 3)), 0.0)
    targets = torch.tensor(t, dtype=torch.float32)
    r, s = rt.RankSortLoss(gather=True)(ddp(feats), targets)
    (r + s).backward()
    labels = torch.tensor(np.where(rng.random(n) < 0.4, rng.integers(0, 3, n), 3))
    gap = rt.GAPLoss(3, sync_counts=True)
    gap(model(feats).detach().requires_grad_(), labels)
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), r=r.item(), s=s.item(),
             wgrad=model.weight.grad.numpy(), bgrad=model.bias.grad.numpy(),
             counts=gap.counts.numpy(), feats=feats.numpy(), targets=t,
             labels=labels.numpy())
    dist.destroy_process_group()


def test_distributed_gather_and_sync_counts():
    import torch.multiprocessing as mp
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_worker, args=(2, _free_port(), d), nprocs=2, join=True)
        res = [np.load(os.path.join(d, f"rank{k}.npz")) for k in range(2)]
    # one process on the concatenated batch, same initial weights
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    feats = torch.tensor(np.concatenate([r["feats"] for r in res]))
    t = torch.tensor(np.concatenate([r["targets"] for r in res]), dtype=torch.float32)
    r, s = rt.RankSortLoss()(model(feats), t)
    (r + s).backward()
    for k in range(2):
        assert_allclose(res[k]["r"], r.item(), rtol=1e-6)
        assert_allclose(res[k]["s"], s.item(), rtol=1e-6)
        assert_allclose(res[k]["wgrad"], model.weight.grad.numpy(), rtol=1e-4, atol=1e-6)
        assert_allclose(res[k]["bgrad"], model.bias.grad.numpy(), rtol=1e-4, atol=1e-6)
    all_labels = np.concatenate([r["labels"] for r in res])
    expected = rr.ClassCounts(3).update(all_labels).counts
    assert_array_equal(res[0]["counts"], expected)
    assert_array_equal(res[1]["counts"], expected)
