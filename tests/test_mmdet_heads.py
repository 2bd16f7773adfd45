"""rankref in real mmdetection 3.x: every config of ``configs/`` built through ``MODELS.build``,
its head loss and logits' gradient against rankref's dense oracle, a few ``train_step``
iterations, and the errors and warnings of a head that calls a ranking loss wrongly.

The detectors are the configs as written, shrunk (ResNet-18 without pretrained weights, 32
channels, 3 classes; see ``_mmdet_helpers.tiny``) and trained on tiny synthetic images.  With
mmcv-lite (no compiled operators) a stand-in for ``mmcv._ext`` lets mmdetection import; its NMS
is plain torch and two-stage detectors get a plain-torch RoIAlign.  Skipped where mmdetection is
not installed (``pip install ".[mmdet]"``).
"""
import importlib.util
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

torch = pytest.importorskip("torch")
if importlib.util.find_spec("mmdet") is None or importlib.util.find_spec("mmengine") is None:
    pytest.skip("mmdetection 3.x is not installed (pip install \".[mmdet]\": mmdet 3.3.0, "
                "mmengine 0.10.7, mmcv-lite 2.1.0)", allow_module_level=True)

import rankref as rr  # noqa: E402
import rankref.torch as rt  # noqa: E402

import _mmdet_helpers as H  # noqa: E402

rmd = H.import_mmdet()

DENSE = ["rs_atss", "rs_retinanet", "rs_fcos", "rs_gfl", "ap_retinanet"]
TWO_STAGE = ["rs_faster_rcnn", "gap_faster_rcnn"]
HEAD_TYPES = {
    "rs_atss": rmd.RSATSSHead, "rs_retinanet": rmd.RSRetinaHead, "rs_fcos": rmd.RSFCOSHead,
    "rs_gfl": rmd.RSGFLHead, "ap_retinanet": rmd.APRetinaHead,
}


@pytest.fixture(autouse=True)
def _fresh_warning_flag(monkeypatch):
    from rankref.torch import _registry

    monkeypatch.setattr(_registry, "_warned_per_level", False)


class Capture:
    """Wraps a loss module's forward: records every call and keeps the logits' gradient."""

    def __init__(self, module):
        self.module, self.calls = module, []
        self.forward = module.forward
        module.forward = self

    def __call__(self, pred, target, weight=None, avg_factor=None, reduction_override=None):
        if pred.requires_grad:
            pred.retain_grad()
        out = self.forward(pred, target, weight=weight, avg_factor=avg_factor,
                           reduction_override=reduction_override)
        self.calls.append(dict(pred=pred, target=target, weight=weight, avg_factor=avg_factor,
                               out=out, counts_before=None))
        return out


def _head(model):
    return model.roi_head.bbox_head if hasattr(model, "roi_head") else model.bbox_head


def _num_priors(model, data):
    """The number of anchors (points) of all FPN levels and images of the batch."""
    head = model.bbox_head
    feats = model.extract_feat(data["inputs"])
    n = data["inputs"].shape[0]
    per_image = sum(f.shape[-2] * f.shape[-1] for f in feats) * head.num_base_priors
    return n * per_image


def _rs_targets(labels, scores, weight, C):
    """The [N, C] RS targets of the mmdetection call, written out by hand."""
    t = np.zeros((labels.shape[0], C))
    fg = (labels >= 0) & (labels < C)
    t[np.flatnonzero(fg), labels[fg]] = scores[fg]
    if weight is not None:
        t[weight == 0] = -1
    return t


def _loss_and_capture(name, seed=0):
    model = H.build_model(name, seed=seed)
    head = _head(model)
    cap = Capture(head.loss_cls)
    data = model.data_preprocessor(H.batch(seed=seed), True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the heads call the loss rightly
        losses = model.loss(data["inputs"], data["data_samples"])
    total, log = model.parse_losses(losses)
    total.backward()
    return model, head, cap, data, log


@pytest.mark.parametrize("name", DENSE + TWO_STAGE)
def test_every_config_builds_through_the_registry(name):
    from mmdet.registry import MODELS

    model = H.build_model(name)  # MODELS.build of the shrunk config
    assert all(k in MODELS.module_dict for k in rmd.register())
    head = _head(model)
    if name in HEAD_TYPES:
        assert type(head) is HEAD_TYPES[name]
    if name == "rs_faster_rcnn":
        assert type(head) is rmd.RSShared2FCBBoxHead
        assert type(model.rpn_head) is rmd.RSRPNHead
    if name in TWO_STAGE:  # C sigmoid outputs: no background column
        assert head.fc_cls.out_features == H.NUM_CLASSES
    if name in ("rs_atss", "rs_fcos"):  # the RS heads have no centerness branch
        assert not any("centerness" in k for k, _ in model.named_parameters())
    loss_types = {"ap_retinanet": rt.APLoss, "gap_faster_rcnn": rt.GAPLoss}
    assert isinstance(head.loss_cls, loss_types.get(name, rt.RankSortLoss))


@pytest.mark.parametrize("name", DENSE + ["rs_faster_rcnn"])
def test_head_loss_and_logits_gradient_match_the_dense_oracle(name):
    model, head, cap, data, log = _loss_and_capture(name)
    assert len(cap.calls) == 1, "the ranking loss must be called once per batch"
    call = cap.calls[0]
    x = call["pred"].detach().double().numpy()
    C = x.shape[1]
    assert C == H.NUM_CLASSES
    if name in DENSE:  # one call on the anchors of every level and image
        assert x.shape[0] == _num_priors(model, data)
    target = call["target"]
    labels = (target[0] if isinstance(target, tuple) else target).numpy()
    weight = None if call["weight"] is None else call["weight"].numpy()
    fg = (labels >= 0) & (labels < C) & (weight != 0 if weight is not None else True)
    assert fg.sum() > 0
    avg = call["avg_factor"]
    loss_fn = head.loss_cls
    if isinstance(loss_fn, rt.RankSortLoss):
        scores = target[1].numpy()
        assert np.all((scores >= 0) & (scores <= 1))
        assert np.all(scores[~fg] == 0)  # a positive whose box misses has quality 0
        t = _rs_targets(labels, scores, weight, C)
        ref = rr.rank_sort_loss(x, t, delta=loss_fn.delta, method="dense")
        P = (t > 0).sum()
        norm = 1.0 if avg is None else P / float(avg)
        value = loss_fn.loss_weight * (ref.ranking_loss + ref.sorting_loss) * norm
    else:
        t = _rs_targets(labels, np.ones(labels.shape), weight, C)
        ref = rr.ap_loss(x, t, delta=loss_fn.delta, interpolate=loss_fn.interpolate,
                         method="dense")
        norm = 1.0 if avg is None else (t > 0).sum() / float(avg)
        value = loss_fn.loss_weight * ref.loss * norm
    assert_allclose(float(call["out"].detach()), value, rtol=1e-5)
    assert_allclose(float(log["loss_cls"]), value, rtol=1e-5)
    grad = call["pred"].grad.double().numpy()
    scale = np.abs(ref.grad).max()
    assert_allclose(grad, loss_fn.loss_weight * norm * ref.grad, rtol=1e-4, atol=1e-6 * scale)


def test_rs_atss_qualities_are_the_iou_of_the_predicted_boxes():
    """Recomputed here from the head's outputs and mmdetection's own ATSS targets."""
    from mmdet.structures.bbox import bbox_overlaps

    model, head, cap, data, _ = _loss_and_capture("rs_atss", seed=1)
    feats = model.extract_feat(data["inputs"])
    cls_scores, bbox_preds = head(feats)
    metas = [s.metainfo for s in data["data_samples"]]
    gts = [s.gt_instances for s in data["data_samples"]]
    anchors, valid = head.get_anchors([c.shape[-2:] for c in cls_scores], metas,
                                      device="cpu")
    anchors, labels, _, bbox_targets, _, _ = head.get_targets(anchors, valid, gts, metas)
    labels = torch.cat([y.reshape(-1) for y in labels])
    pos = ((labels >= 0) & (labels < H.NUM_CLASSES)).nonzero().reshape(-1)
    deltas = torch.cat([b.permute(0, 2, 3, 1).reshape(-1, 4) for b in bbox_preds])
    boxes = head.bbox_coder.decode(torch.cat([a.reshape(-1, 4) for a in anchors])[pos],
                                   deltas[pos])
    iou = bbox_overlaps(boxes, torch.cat([t.reshape(-1, 4) for t in bbox_targets])[pos],
                        is_aligned=True)
    got_labels, got_scores = cap.calls[0]["target"]
    assert torch.equal(got_labels, labels)
    assert_allclose(got_scores[pos].numpy(), iou.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_gap_in_a_stock_bbox_head_matches_the_oracle():
    model = H.build_model("gap_faster_rcnn")
    head = model.roi_head.bbox_head
    assert type(head).__name__ == "Shared2FCBBoxHead"
    cap = Capture(head.loss_cls)
    data = model.data_preprocessor(H.batch(), True)
    losses = model.loss(data["inputs"], data["data_samples"])
    model.parse_losses(losses)[0].backward()
    assert len(cap.calls) == 1
    call = cap.calls[0]
    s = call["pred"].detach().double().numpy()
    y = call["target"].numpy()
    y = np.where(call["weight"].numpy() == 0, -1, y)
    ref = rr.gap_loss(s, y, rr.ClassCounts(H.NUM_CLASSES).update(y), method="dense")
    assert_allclose(float(call["out"].detach()), 0.1 * ref.loss, rtol=1e-5)
    assert_allclose(call["pred"].grad.double().numpy(), 0.1 * ref.grad, rtol=1e-4,
                    atol=1e-6 * np.abs(ref.grad).max())
    assert "acc_fg" in losses
    # at test time the RoIs are scored by a sigmoid: C scores and a background column of 0
    act = head.loss_cls.get_activation(call["pred"].detach())
    assert act.shape == (s.shape[0], H.NUM_CLASSES + 1)
    assert torch.equal(act[:, :-1], call["pred"].detach().sigmoid()) and not act[:, -1].any()


@pytest.mark.parametrize("name", DENSE + TWO_STAGE)
def test_train_step_lowers_the_loss(name):
    from mmengine.optim import OptimWrapper

    model = H.build_model(name, seed=2)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    data = H.batch(seed=3)
    model.train()
    history = [model.train_step(data, optim) for _ in range(5)]
    key = "loss_cls"
    first, last = float(history[0][key]), float(history[-1][key])
    assert np.isfinite([float(h["loss"]) for h in history]).all()
    assert last < first, [float(h[key]) for h in history]


@pytest.mark.parametrize("name", ["rs_atss", "rs_fcos", "rs_faster_rcnn", "gap_faster_rcnn"])
def test_predict_gives_sigmoid_scores_of_c_classes(name):
    model = H.build_model(name, seed=4)
    model.eval()
    # untrained, every score is near the prior 0.01, below the default score_thr=0.05
    test_cfg = model.roi_head.test_cfg if name in TWO_STAGE else model.bbox_head.test_cfg
    test_cfg.score_thr = 0.0
    data = model.data_preprocessor(H.batch(n=2, seed=5), False)
    with torch.no_grad():
        out = model.predict(data["inputs"], data["data_samples"])
    for sample in out:
        pred = sample.pred_instances
        assert len(pred.scores) > 0 and pred.bboxes.shape == (len(pred.scores), 4)
        assert bool(((pred.scores > 0) & (pred.scores < 1)).all())
        assert bool(((pred.labels >= 0) & (pred.labels < H.NUM_CLASSES)).all())


# ------------------------------------------------------------------ where a user goes wrong

def _stock(name, **head):
    """A stock mmdetection head from a config of ours, with ``head`` changes."""
    return H.build_model(name, **head)


def test_rank_sort_with_a_labels_only_head_names_the_head_to_use():
    model = _stock("rs_atss", type="ATSSHead", loss_centerness=dict(
        type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0))
    data = model.data_preprocessor(H.batch(), True)
    with pytest.raises(ValueError, match=r"needs the target \(labels, scores\).*"
                                         r"RankRefRSATSSHead"):
        model.loss(data["inputs"], data["data_samples"])


def test_rank_sort_in_a_stock_bbox_head_names_the_rs_bbox_head():
    model = _stock("rs_faster_rcnn", type="Shared2FCBBoxHead")
    data = model.data_preprocessor(H.batch(), True)
    with pytest.raises(ValueError, match=r"RankRefRSShared2FCBBoxHead"):
        model.loss(data["inputs"], data["data_samples"])


def test_rs_bbox_head_refuses_a_loss_without_the_sigmoid_hooks():
    with pytest.raises(ValueError, match="RankRefRoIRankSortLoss"):
        _stock("rs_faster_rcnn", loss_cls=dict(_delete_=True, type="RankRefRankSortLoss"))


def test_gap_num_classes_must_match_the_head():
    with pytest.raises(ValueError, match="num_classes=5 but its bbox head has num_classes=3"):
        _stock("gap_faster_rcnn", loss_cls=dict(type="RankRefGAPLoss", num_classes=5))


@pytest.mark.parametrize("head,loss", [
    ("GFLHead", dict(_delete_=True, type="RankRefRankSortLoss")),
    ("RetinaHead", dict(_delete_=True, type="RankRefAPLoss")),
])
def test_per_level_use_warns_once(head, loss):
    name = "rs_gfl" if head == "GFLHead" else "ap_retinanet"
    model = _stock(name, type=head, loss_cls=loss, box_loss_balance=H.REMOVE)
    data = model.data_preprocessor(H.batch(n=2, seed=7), True)
    with pytest.warns(RuntimeWarning, match="once per FPN level"):
        model.loss(data["inputs"], data["data_samples"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.loss(data["inputs"], data["data_samples"])  # once only


def test_gather_without_a_process_group_does_not_warn():
    model = H.build_model("rs_gfl", loss_cls=dict(gather=True))
    assert model.bbox_head.loss_cls.gather is True
    data = model.data_preprocessor(H.batch(), True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model.loss(data["inputs"], data["data_samples"])


def test_box_loss_balance_by_value_and_fixed():
    model = H.build_model("rs_gfl", box_loss_balance="value")
    data = model.data_preprocessor(H.batch(), True)
    _, log = model.parse_losses(model.loss(data["inputs"], data["data_samples"]))
    assert_allclose(float(log["loss_bbox"] + log["loss_dfl"]), float(log["loss_cls"]), rtol=1e-5)
    with pytest.raises(ValueError, match="box_loss_balance"):
        H.build_model("rs_atss", box_loss_balance="sum")


def test_reduction_override_other_than_mean_is_refused():
    model = H.build_model("rs_atss")
    x = torch.randn(10, H.NUM_CLASSES)
    target = (torch.full((10,), H.NUM_CLASSES), torch.zeros(10))
    for override in ("none", "sum"):
        with pytest.raises(ValueError, match="reduction_override"):
            model.bbox_head.loss_cls(x, target, reduction_override=override)


def test_mixins_on_other_heads():
    """The docs' examples: RankSortQualities on RetinaHead, RankAllLevels on ATSSHead (AP);
    RankSortQualities on a head with a centerness branch is refused."""
    from mmdet.models.dense_heads import ATSSHead, RetinaHead
    from mmdet.registry import MODELS

    @MODELS.register_module(name="RankRefTestRSRetinaHead", force=True)
    class MyRSRetinaHead(rmd.RankSortQualities, RetinaHead):
        pass

    @MODELS.register_module(name="RankRefTestAPATSSHead", force=True)
    class MyAPATSSHead(rmd.RankAllLevels, ATSSHead):
        pass

    @MODELS.register_module(name="RankRefTestRSATSSWithCenterness", force=True)
    class WithCenterness(rmd.RankSortQualities, ATSSHead):
        pass

    model = H.build_model("rs_retinanet", type="RankRefTestRSRetinaHead")
    data = model.data_preprocessor(H.batch(), True)
    assert set(model.loss(data["inputs"], data["data_samples"])) == {"loss_cls", "loss_bbox"}
    model = H.build_model("rs_atss", type="RankRefTestAPATSSHead",
                          loss_cls=dict(_delete_=True, type="RankRefAPLoss"),
                          box_loss_balance=H.REMOVE,
                          loss_centerness=dict(type="CrossEntropyLoss", use_sigmoid=True))
    cap = Capture(model.bbox_head.loss_cls)
    losses = model.loss(data["inputs"], data["data_samples"])
    assert len(cap.calls) == 1 and "loss_centerness" in losses
    model = H.build_model("rs_atss", type="RankRefTestRSATSSWithCenterness",
                          loss_centerness=dict(type="CrossEntropyLoss", use_sigmoid=True))
    with pytest.raises(ValueError, match="centerness branch"):
        model.loss(data["inputs"], data["data_samples"])
