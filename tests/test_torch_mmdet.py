"""rankref.torch with mmdetection 3.x conventions: the mmdet call of every loss module, bad
input, and registration in an mmengine Registry."""
import importlib.util

import numpy as np
import pytest
from numpy.testing import assert_allclose

torch = pytest.importorskip("torch")
import rankref as rr  # noqa: E402
import rankref.torch as rt  # noqa: E402

from rankref.torch import _registry  # noqa: E402
from rankref.torch._registry import (MMDetAPLoss, MMDetGAPLoss, MMDetRankSortLoss,  # noqa: E402
                                     MMDetRoIRankSortLoss)

from _torch_helpers import assert_backend_equal  # noqa: E402


def _gfl_batch(seed=0, n=500, C=5, pos=0.06):
    """A GFL-style batch: labels in [0, C] (C background), IoU scores, label weights."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, C))
    fg = rng.random(n) < pos
    labels = np.where(fg, rng.integers(0, C, n), C)
    scores = np.where(fg, rng.uniform(0.1, 1.0, n), 0.0)
    weight = (rng.random(n) > 0.05).astype(np.float32)
    return x, labels, scores, weight


def _rs_targets(labels, scores, weight, C):
    """The [N, C] RS targets the mmdet call must build (written out by hand)."""
    n = labels.shape[0]
    t = np.zeros((n, C))
    for i in range(n):
        if labels[i] < C:
            t[i, labels[i]] = scores[i]
    if weight is not None:
        t[weight == 0] = -1
    return t


def test_rank_sort_mmdet_call_builds_the_rs_targets():
    x, labels, scores, weight = _gfl_batch()
    C = x.shape[1]
    loss_fn = rt.RankSortLoss(loss_weight=2.0)
    xt = torch.tensor(x, requires_grad=True)
    loss = loss_fn(xt, (torch.tensor(labels), torch.tensor(scores)), weight=torch.tensor(weight))
    assert loss.shape == ()
    loss.backward()
    ref = rr.rank_sort_loss(x, _rs_targets(labels, scores, weight, C))
    assert_allclose(loss.item(), 2 * (ref.ranking_loss + ref.sorting_loss), rtol=1e-12)
    assert_allclose(xt.grad.numpy(), 2 * ref.grad, rtol=1e-12, atol=1e-18)
    # the same as the rankref call on those targets (which returns the pair)
    r, s = loss_fn(torch.tensor(x), torch.tensor(_rs_targets(labels, scores, weight, C)))
    assert_backend_equal(r + s, loss.detach())


def test_rank_sort_avg_factor_replaces_the_number_of_positives():
    x, labels, scores, _ = _gfl_batch(1)
    t = _rs_targets(labels, scores, None, x.shape[1])
    P = int((t > 0).sum())
    ref = rr.rank_sort_loss(x, t)
    for avg in (7.5, torch.tensor(7.5), torch.tensor([7.5], dtype=torch.float32)):
        xt = torch.tensor(x, requires_grad=True)
        loss = rt.RankSortLoss()(xt, (torch.tensor(labels), torch.tensor(scores)),
                                 avg_factor=avg)
        loss.backward()
        assert_allclose(loss.item(), (ref.ranking_loss + ref.sorting_loss) * P / 7.5,
                        rtol=1e-12)
        assert_allclose(xt.grad.numpy(), ref.grad * P / 7.5, rtol=1e-12, atol=1e-18)


def test_rank_sort_weight_per_entry_and_per_anchor():
    x, labels, scores, weight = _gfl_batch(2)
    y, q = torch.tensor(labels), torch.tensor(scores)
    per_anchor = rt.RankSortLoss()(torch.tensor(x), (y, q), weight=torch.tensor(weight))
    w2 = torch.tensor(weight)[:, None].expand(-1, x.shape[1]).contiguous()
    per_entry = rt.RankSortLoss()(torch.tensor(x), (y, q), weight=w2)
    assert per_anchor.item() == per_entry.item()


def test_positive_with_quality_zero_is_a_negative_of_its_class():
    x = torch.tensor([[3.0, 0.0], [2.0, 0.0], [1.0, 0.0]])
    labels = torch.tensor([0, 0, 2])
    with_zero = rt.RankSortLoss(delta=0.0)(x, (labels, torch.tensor([0.0, 0.8, 0.0])))
    as_negative = sum(rt.RankSortLoss(delta=0.0)(x, torch.tensor([[0.0, 0], [0.8, 0], [0, 0]])))
    assert with_zero.item() == as_negative.item() == 0.5  # the negative ranks above it


def test_ap_loss_accepts_mmdet_labels():
    x, labels, scores, weight = _gfl_batch(3)
    C = x.shape[1]
    binary = (_rs_targets(labels, np.ones_like(scores), weight, C))
    ref = rr.ap_loss(x, binary)
    for target in (torch.tensor(labels), (torch.tensor(labels), torch.tensor(scores)),
                   [torch.tensor(labels)]):
        xt = torch.tensor(x, requires_grad=True)
        loss = rt.APLoss(loss_weight=0.5)(xt, target, torch.tensor(weight), avg_factor=None)
        loss.backward()
        assert_allclose(loss.item(), 0.5 * ref.loss, rtol=1e-12)
        assert_allclose(xt.grad.numpy(), 0.5 * ref.grad, rtol=1e-12, atol=1e-18)
    P = int((binary > 0).sum())
    loss = rt.APLoss()(torch.tensor(x), torch.tensor(labels), avg_factor=3.0,
                       weight=torch.tensor(weight))
    assert_allclose(loss.item(), ref.loss * P / 3.0, rtol=1e-12)


def test_gap_loss_mmdet_call():
    rng = np.random.default_rng(4)
    n, C = 120, 4
    scores = rng.normal(size=(n, C))
    labels = np.where(rng.random(n) < 0.3, rng.integers(0, C, n), C)
    weight = (rng.random(n) > 0.1).astype(np.float32)
    mod = rt.GAPLoss(C, loss_weight=0.1)
    st = torch.tensor(scores, requires_grad=True)
    loss = mod(st, torch.tensor(labels), torch.tensor(weight), avg_factor=37.0,
               reduction_override="mean")
    loss.backward()
    used = np.where(weight == 0, -1, labels)
    ref = rr.gap_loss(scores, used, rr.ClassCounts(C).update(used))
    assert_allclose(loss.item(), 0.1 * ref.loss, rtol=1e-12)
    assert_allclose(st.grad.numpy(), 0.1 * ref.grad, rtol=1e-12, atol=1e-18)
    assert mod.class_counts == rr.ClassCounts(C).update(used)


@pytest.mark.parametrize("cls", [rt.RankSortLoss, rt.APLoss,
                                 lambda **kw: rt.GAPLoss(3, **kw)])
def test_use_sigmoid(cls):
    assert cls(use_sigmoid=True).use_sigmoid is True
    with pytest.raises(ValueError, match="use_sigmoid"):
        cls(use_sigmoid=False)
    with pytest.raises(ValueError, match="reduction"):
        cls(reduction="sum")


def test_lgr_is_softmax():
    assert rt.LGRCrossEntropyLoss().use_sigmoid is False
    with pytest.raises(ValueError, match="use_sigmoid"):
        rt.LGRCrossEntropyLoss(use_sigmoid=True)


def test_gap_lam_is_a_deprecated_name_of_loss_weight():
    with pytest.warns(FutureWarning, match="loss_weight"):
        mod = rt.GAPLoss(3, lam=0.1)
    assert mod.loss_weight == 0.1
    with pytest.raises(ValueError, match="lam"), pytest.warns(FutureWarning):
        rt.GAPLoss(3, lam=0.1, loss_weight=0.5)


# ------------------------------------------------------------------ bad input

def test_bad_mmdet_input_names_the_argument():
    x, labels, scores, weight = _gfl_batch(5, n=50)
    xt, y, q = torch.tensor(x), torch.tensor(labels), torch.tensor(scores)
    rs = rt.RankSortLoss()
    with pytest.raises(ValueError, match=r"target\[1\] \(scores\) must have shape \(50,\)"):
        rs(xt, (y, q[:-1]))
    with pytest.raises(ValueError, match=r"target\[0\] \(labels\) must have shape \(50,\)"):
        rs(xt, (y[:-1], q))
    with pytest.raises(ValueError, match=r"target of the mmdetection call .* \(labels, scores\)"):
        rs(xt, (y,))
    with pytest.raises(ValueError, match=r"pred must be 2-D"):
        rs(xt.reshape(-1), (y, q))
    for bad in (-1, 6):
        yb = y.clone()
        yb[3] = bad
        with pytest.raises(ValueError, match=r"labels .* must be in \[0, 5\].* entry 3 is"):
            rs(xt, (yb, q))
        with pytest.raises(ValueError, match=r"labels .* must be in \[0, 5\]"):
            rt.APLoss()(xt, yb)
    with pytest.raises(ValueError, match=r"target\[0\] \(labels\) must be an integer"):
        rs(xt, (y.float(), q))
    qb = q.clone()
    qb[2] = 1.5
    with pytest.raises(ValueError, match=r"scores .* must be in \[0, 1\].* entry 2"):
        rs(xt, (y, qb))
    for avg in (0.0, -1.0, float("nan"), float("inf"), torch.tensor(0.0), torch.tensor(-2.0)):
        with pytest.raises(ValueError, match="avg_factor"):
            rs(xt, (y, q), avg_factor=avg)
        with pytest.raises(ValueError, match="avg_factor"):
            rt.APLoss()(xt, y, avg_factor=avg)
        with pytest.raises(ValueError, match="avg_factor"):
            rt.GAPLoss(5)(xt, y, avg_factor=avg)
    with pytest.raises(ValueError, match="avg_factor"):
        rs(xt, (y, q), avg_factor=torch.ones(2))
    with pytest.raises(ValueError, match="avg_factor"):
        rs(xt, (y, q), avg_factor=True)
    with pytest.raises(ValueError, match=r"weight must have shape \(50, 5\) or \(50,\)"):
        rs(xt, (y, q), weight=torch.ones(49))
    with pytest.raises(ValueError, match="weight must hold 0 .* or 1"):
        rs(xt, (y, q), weight=torch.full((50,), 2.0))
    with pytest.raises(ValueError, match="reduction_override"):
        rs(xt, (y, q), reduction_override="none")
    with pytest.raises(ValueError, match="reduction_override"):
        rt.GAPLoss(5)(xt, y, reduction_override="sum")


def test_rejected_gap_call_changes_no_count():
    mod = rt.GAPLoss(5)
    x, labels, _, _ = _gfl_batch(6, n=50)
    y = torch.tensor(labels)
    y[0] = 7
    with pytest.raises(ValueError, match="labels"):
        mod(torch.tensor(x), y)
    with pytest.raises(ValueError, match="avg_factor"):
        mod(torch.tensor(x), torch.tensor(labels), avg_factor=-1.0)
    assert mod.counts.sum().item() == 0


# ------------------------------------------------------------------ registration

needs_mmengine = pytest.mark.skipif(importlib.util.find_spec("mmengine") is None,
                                    reason="mmengine is not installed (pip install mmengine)")


@needs_mmengine
def test_register_in_an_mmengine_registry():
    from mmengine.registry import Registry

    models = Registry("model", scope="rankref_test")
    names = rt.register_mmdet(models)
    assert set(names) == {"RankRefRankSortLoss", "RankRefAPLoss", "RankRefGAPLoss",
                          "RankRefRoIRankSortLoss", "RankRefBalancedL1Loss",
                          "RankRefLGRCrossEntropyLoss"}
    assert rt.register_mmdet(models) == names  # again: harmless
    loss = models.build(dict(type="RankRefRankSortLoss", use_sigmoid=True, loss_weight=1.0))
    assert isinstance(loss, rt.RankSortLoss)
    gap = models.build(dict(type="RankRefGAPLoss", num_classes=3, loss_weight=0.1))
    assert gap.loss_weight == 0.1
    with pytest.raises(ValueError, match="use_sigmoid"):
        models.build(dict(type="RankRefAPLoss", use_sigmoid=False))
    # the built module takes the mmdet call
    x, labels, scores, _ = _gfl_batch(7, C=3)
    out = loss(torch.tensor(x), (torch.tensor(labels), torch.tensor(scores)), avg_factor=4.0)
    assert out.shape == ()
    plain = Registry("model2", scope="rankref_test")
    rt.register_mmdet(plain, prefix="")
    assert plain.get("RankSortLoss") is MMDetRankSortLoss
    assert plain.get("BalancedL1Loss") is rt.BalancedL1Loss


@needs_mmengine
def test_register_refuses_a_taken_name():
    from mmengine.registry import Registry

    models = Registry("model3", scope="rankref_test")

    @models.register_module(name="BalancedL1Loss")
    class Other(torch.nn.Module):
        pass

    with pytest.raises(ValueError, match="BalancedL1Loss is already registered"):
        rt.register_mmdet(models, prefix="")
    assert "RankSortLoss" not in models.module_dict  # a refused call registers nothing
    with pytest.raises(ValueError, match="prefix"):
        rt.register_mmdet(models, prefix="not a name")
    with pytest.raises(TypeError, match="registry"):
        rt.register_mmdet(object())


def test_register_without_mmdet_says_what_to_do():
    try:
        import mmdet.registry  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="mmengine Registry"):
            rt.register_mmdet()
    else:
        names = rt.register_mmdet()
        assert "RankRefRankSortLoss" in names


# ------------------------------------------------------------------ the mmdetection forms

def test_mmdet_forms_compute_the_same_loss():
    x, labels, scores, weight = _gfl_batch(8)
    xt, y, q, w = (torch.tensor(x), torch.tensor(labels), torch.tensor(scores),
                   torch.tensor(weight))
    assert MMDetRankSortLoss()(xt, (y, q), w).item() == rt.RankSortLoss()(xt, (y, q), w).item()
    assert MMDetAPLoss()(xt, y, w).item() == rt.APLoss()(xt, y, w).item()
    assert (MMDetGAPLoss(5)(xt, y, w).item() == rt.GAPLoss(5)(xt, y, w).item())
    r, s = MMDetRankSortLoss()(xt, torch.tensor(_rs_targets(labels, scores, None, 5)))
    assert r.shape == s.shape == ()  # the rankref call is unchanged


def test_rank_sort_labels_only_names_the_heads_that_compute_qualities():
    x, labels, _, _ = _gfl_batch(9, n=40)
    for cls in (MMDetRankSortLoss, MMDetRoIRankSortLoss):
        with pytest.raises(ValueError, match=r"needs the target \(labels, scores\).*labels only "
                                             r"\(shape \(40,\)\).*RankRefRSATSSHead.*"
                                             r"RankRefRSShared2FCBBoxHead.*RankRefAPLoss"):
            cls()(torch.tensor(x), torch.tensor(labels))


def _split_levels(x, labels, scores, weight, cut):
    return [(torch.tensor(x[a:b]), torch.tensor(labels[a:b]), torch.tensor(scores[a:b]),
             torch.tensor(weight[a:b])) for a, b in zip((0,) + cut, cut + (len(labels),))]


@pytest.mark.parametrize("cls", [MMDetRankSortLoss, MMDetAPLoss])
def test_part_of_the_positives_warns_once(monkeypatch, cls):
    import warnings

    monkeypatch.setattr(_registry, "_warned_per_level", False)
    x, labels, scores, weight = _gfl_batch(10, n=300, pos=0.1)
    weight[:] = 1
    P = int((labels < 5).sum())
    levels = _split_levels(x, labels, scores, weight, (200, 280))
    loss = cls()

    def call(xl, yl, ql, wl, avg):
        return loss(xl, (yl, ql), weight=wl, avg_factor=avg)

    with warnings.catch_warnings():  # the whole batch: no warning
        warnings.simplefilter("error")
        call(torch.tensor(x), torch.tensor(labels), torch.tensor(scores), torch.tensor(weight),
             float(P))
        call(*levels[0][:2], levels[0][2], levels[0][3], None)  # no avg_factor: nothing known
        # a batch without positives: mmdetection clamps avg_factor to 1
        call(*levels[0][:2], torch.zeros(200), levels[0][3], None)
        bg = torch.full((50,), 5)
        call(torch.randn(50, 5), bg, torch.zeros(50), torch.ones(50), 1.0)
    with pytest.warns(RuntimeWarning, match=r"sees \d+ positive\(s\) but avg_factor=%d" % P):
        call(*levels[0], torch.tensor(float(P)))
    with warnings.catch_warnings():  # once only
        warnings.simplefilter("error")
        for lv in levels:
            call(*lv, float(P))


def test_a_level_without_positives_warns(monkeypatch):
    monkeypatch.setattr(_registry, "_warned_per_level", False)
    with pytest.warns(RuntimeWarning, match="once per FPN level"):
        MMDetRankSortLoss()(torch.randn(20, 3), (torch.full((20,), 3), torch.zeros(20)),
                            avg_factor=4.0)


def test_ignored_positives_are_not_counted(monkeypatch):
    monkeypatch.setattr(_registry, "_warned_per_level", False)
    y = torch.tensor([0, 1, 3, 3])
    w = torch.tensor([1.0, 0.0, 1.0, 1.0])
    with pytest.warns(RuntimeWarning, match="sees 1 positive"):
        MMDetAPLoss()(torch.randn(4, 3), y, weight=w, avg_factor=2.0)
    monkeypatch.setattr(_registry, "_warned_per_level", False)
    w2 = torch.ones(4, 3)
    w2[1, 1] = 0  # per entry: the positive entry of row 1 is ignored
    with pytest.warns(RuntimeWarning, match="sees 1 positive"):
        MMDetAPLoss()(torch.randn(4, 3), y, weight=w2, avg_factor=2.0)


def test_bbox_head_hooks():
    gap = MMDetGAPLoss(3)
    assert gap.custom_cls_channels and gap.custom_activation and gap.custom_accuracy
    assert gap.get_cls_channels(3) == 3
    with pytest.raises(ValueError, match="num_classes=3 but its bbox head has num_classes=4"):
        gap.get_cls_channels(4)
    logits = torch.tensor([[2.0, -1.0, 0.0], [0.0, 0.5, 3.0], [1.0, 0.0, 0.0]])
    act = gap.get_activation(logits)
    assert act.shape == (3, 4)
    assert torch.equal(act[:, :3], logits.sigmoid()) and not act[:, 3].any()
    acc = gap.get_accuracy(logits, torch.tensor([0, 1, 3]))  # RoI 2 is background
    assert acc["acc_fg"].item() == 50.0
    assert gap.get_accuracy(logits, torch.full((3,), 3))["acc_fg"].item() == 0.0
    roi = MMDetRoIRankSortLoss()
    assert roi.get_cls_channels(7) == 7 and roi.custom_cls_channels
    # the dense-head losses have no hooks (a dense head expects C columns from get_activation)
    assert not hasattr(MMDetRankSortLoss(), "custom_cls_channels")
    assert not hasattr(MMDetAPLoss(), "custom_cls_channels")


def test_import_rankref_torch_does_not_import_mmdet():
    import subprocess
    import sys
    import tempfile

    code = ("import sys, rankref.torch as rt; rt.register_mmdet; "
            "print(any(m.split('.')[0] in ('mmdet', 'mmcv') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tempfile.gettempdir())
    assert out.stdout.strip() == "False"
