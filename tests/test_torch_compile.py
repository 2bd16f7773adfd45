"""torch.compile (custom ops, no graph break), values-only evaluation, float16 with loss
scaling."""
import numpy as np
import pytest
from numpy.testing import assert_allclose

torch = pytest.importorskip("torch")
import rankref as rr  # noqa: E402
import rankref.torch as rt  # noqa: E402
import rankref_gpu as rg  # noqa: E402

from _torch_helpers import EXACT, problem  # noqa: E402

C = 4


def _model_and_losses(seed=0):
    torch.manual_seed(seed)
    head = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, C))
    reg = torch.nn.Linear(8, 4)
    losses = dict(rs=rt.RankSortLoss(), ap=rt.APLoss(), gap=rt.GAPLoss(C, loss_weight=0.1),
                  bl1=rt.BalancedL1Loss(), lgr=rt.LGRCrossEntropyLoss())
    return head, reg, losses


def _batch(seed=1, n=300):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, 8, generator=g)
    labels = torch.where(torch.rand(n, generator=g) < 0.1,
                         torch.randint(0, C, (n,), generator=g), C)
    scores = torch.where(labels < C, torch.rand(n, generator=g), 0.0)
    dense = torch.where(torch.rand(n, C, generator=g) < 0.05, 0.8, 0.0)
    boxes = torch.randn(n, 4, generator=g)
    return feats, labels, scores, dense, boxes


def _step(head, reg, losses, feats, labels, scores, dense, boxes):
    z = head(feats)
    total = losses["rs"](z, (labels, scores), weight=torch.ones(z.shape[0]), avg_factor=5.0)
    ranking, sorting = losses["rs"](z, dense)
    total = total + 0.5 * ranking + 2.0 * sorting
    total = total + losses["ap"](z, labels) + losses["gap"](z, labels)
    total = total + losses["bl1"](reg(feats), boxes, avg_factor=3.0)
    softmax_logits = torch.cat([z, torch.zeros_like(z[:, :1])], dim=1)
    total = total + losses["lgr"](softmax_logits, labels)
    return total


def test_compile_fullgraph_traces_every_loss_and_matches_eager():
    torch._dynamo.reset()
    batch = _batch()
    head, reg, losses = _model_and_losses()
    explain = torch._dynamo.explain(lambda *b: _step(head, reg, losses, *b))(*batch)
    assert explain.graph_break_count == 0 and explain.graph_count == 1
    losses["gap"].reset_counts()

    eager_total = _step(head, reg, losses, *batch)
    eager_total.backward()
    eager = {k: p.grad.clone() for k, p in [*head.named_parameters(), *reg.named_parameters()]}
    eager_counts = losses["gap"].counts.clone()

    head2, reg2, losses2 = _model_and_losses()
    step = torch.compile(lambda *b: _step(head2, reg2, losses2, *b), fullgraph=True,
                         backend="aot_eager")
    total = step(*batch)
    total.backward()
    assert total.item() == eager_total.item()
    for k, p in [*head2.named_parameters(), *reg2.named_parameters()]:
        assert torch.equal(p.grad, eager[k]), k
    assert torch.equal(losses2["gap"].counts, eager_counts)
    # a second compiled call reuses the graph and keeps counting
    step(*batch).backward()
    assert torch.equal(losses2["gap"].counts, 2 * eager_counts)


def test_compiled_evaluation_under_no_grad():
    torch._dynamo.reset()
    batch = _batch(2)
    head, reg, losses = _model_and_losses()
    step = torch.compile(lambda *b: _step(head, reg, losses, *b), fullgraph=True,
                         backend="aot_eager")
    with torch.no_grad():
        compiled = step(*batch)
    losses["gap"].reset_counts()
    with torch.no_grad():
        eager = _step(head, reg, losses, *batch)
    assert compiled.item() == eager.item()


def _spy(monkeypatch, mod, name, seen):
    real = getattr(mod, name)

    def spy(*args, **kw):
        seen.append(kw.get("compute_grad"))
        return real(*args, **kw)

    monkeypatch.setattr(mod, name, spy)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "no_requires_grad"])
def test_evaluation_computes_values_only(monkeypatch, mode):
    backend = rr if EXACT else rg
    seen = []
    for name in ("rank_sort_loss", "ap_loss", "gap_loss"):
        _spy(monkeypatch, backend, name, seen)
    x, t = problem(0, shape=(100, 6))
    y = torch.tensor(np.where(np.random.default_rng(0).random(100) < 0.3,
                              np.arange(100) % 6, 6))
    xt = torch.tensor(x, requires_grad=(mode != "no_requires_grad"))
    ctx = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode,
           "no_requires_grad": torch.enable_grad}[mode]
    gap = rt.GAPLoss(6)
    with ctx():
        r, s = rt.RankSortLoss()(xt, torch.tensor(t))
        a = rt.APLoss()(xt, torch.tensor(np.sign(t)))
        g = gap(xt, y)
    assert seen == [False, False, False]
    assert not r.requires_grad
    full = rr.rank_sort_loss(x, t)
    assert_allclose([r.item(), s.item()], [full.ranking_loss, full.sorting_loss], rtol=1e-12)
    assert_allclose(a.item(), rr.ap_loss(x, np.sign(t)).loss, rtol=1e-12)
    ref = rr.gap_loss(x, y.numpy(), rr.ClassCounts(6).update(y.numpy()))
    assert_allclose(g.item(), ref.loss, rtol=1e-12)
    assert gap.class_counts == rr.ClassCounts(6).update(y.numpy())  # counts still updated
    seen.clear()
    xt = torch.tensor(x, requires_grad=True)
    rt.RankSortLoss()(xt, torch.tensor(t))
    assert seen == [True]


def test_fp16_loss_scaling_gives_the_fp32_gradients():
    """float16 gradients underflow without loss scaling; a GradScaler step recovers the
    float32 gradients (to 1e-2 relative)."""
    torch.manual_seed(0)
    n, d = 20000, 16
    feats = torch.randn(n, d)
    t = torch.zeros(n, C)
    t.view(-1)[torch.randperm(n * C)[:800]] = 0.3 + 0.7 * torch.rand(800)
    rs = rt.RankSortLoss()

    def run(fp16, scaler=None):
        torch.manual_seed(1)
        model = torch.nn.Linear(d, C)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with torch.autocast("cpu", dtype=torch.float16, enabled=fp16):
            z = model(feats)
        z.retain_grad()
        loss = sum(rs(z, t))
        if scaler is None:
            loss.backward()
        else:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        grads = [p.grad.clone() for p in model.parameters()]
        if scaler is None:
            opt.step()
        else:
            scaler.step(opt)
            scaler.update()
        return z.grad, grads, [p.detach().clone() for p in model.parameters()]

    z32, g32, p32 = run(False)
    z16, _, _ = run(True)
    assert z16.dtype == torch.float16
    underflow = int(((z16 == 0) & (z32 != 0)).sum())
    assert underflow > 0  # documented: without loss scaling some updates flush to zero
    zs, gs, ps = run(True, torch.amp.GradScaler("cpu", init_scale=2.0**16))
    assert int(((zs == 0) & (z32 != 0)).sum()) == 0
    for a, b in zip(gs, g32):
        assert_allclose(a.numpy(), b.numpy(), rtol=1e-2, atol=1e-2 * float(b.abs().max()))
    for a, b in zip(ps, p32):  # and the optimiser step itself
        assert_allclose(a.numpy(), b.numpy(), rtol=1e-2, atol=1e-4)
