"""The RoI (bbox) head of RS R-CNN."""
import torch

from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.structures.bbox import bbox_overlaps, get_box_tensor

from ..losses import RankSortLoss
from ._dense import _balance, value_balanced

__all__ = ["RSShared2FCBBoxHead"]


class RSShared2FCBBoxHead(Shared2FCBBoxHead):
    """The bbox head of RS Faster R-CNN (Oksuz et al., ICCV 2021): mmdetection's
    ``Shared2FCBBoxHead`` with C sigmoid outputs trained by Rank & Sort over the RoIs of the
    whole batch, with IoU qualities, and a score-weighted box loss balanced by value.

    ``loss_cls`` must carry the ``BBoxHead`` hooks of C sigmoid outputs:
    ``loss_cls=dict(type="RankRefRoIRankSortLoss")`` (at test time the RoIs are then scored by a
    sigmoid).  For each batch of sampled RoIs:

    1. each positive RoI's quality is the IoU of its predicted box (decoded, detached; the box of
       its class unless ``reg_class_agnostic``) with its ground-truth box;
    2. ``loss_cls(cls_score, (labels, qualities), weight=label_weights)`` once, normalised by the
       number of positives;
    3. the box loss of each positive RoI (``loss_bbox`` with ``reduction_override="none"``, on
       decoded boxes when ``reg_decoded_bbox=True``, e.g. GIoU as the official config) is
       weighted by its classification score (the largest sigmoid, detached) and averaged with
       those weights;
    4. ``box_loss_balance="value"`` (default) scales it to the value of ``loss_cls``; ``None``
       keeps it.

    The official configuration samples every RoI (``sampler=dict(num=1e10)`` or a
    ``PseudoSampler``): a ranking loss needs no sampling.  ``reduction_override`` (passed by
    PISA-style RoI heads) must be None or ``"mean"``.  Registered as
    ``RankRefRSShared2FCBBoxHead``.
    """

    def __init__(self, *args, box_loss_balance="value", **kwargs):
        balance = _balance(box_loss_balance)
        super().__init__(*args, **kwargs)
        if not (isinstance(self.loss_cls, RankSortLoss)
                and getattr(self.loss_cls, "custom_cls_channels", False)):
            raise ValueError(
                f"RankRefRSShared2FCBBoxHead needs loss_cls=dict(type='RankRefRoIRankSortLoss') "
                f"(Rank & Sort with C sigmoid outputs), got {type(self.loss_cls).__name__}.")
        self.box_loss_balance = balance

    def loss(self, cls_score, bbox_pred, rois, labels, label_weights, bbox_targets,
             bbox_weights, reduction_override=None):
        C = self.num_classes
        fg = (labels >= 0) & (labels < C) & (label_weights > 0)
        qualities = cls_score.new_zeros(labels.shape, dtype=torch.float32)
        losses = {}
        pos_pred = pos_target = None
        if bbox_pred is not None and bool(fg.any()):
            pos_rois = rois[fg, 1:]
            if self.reg_class_agnostic:
                pos_deltas = bbox_pred.view(bbox_pred.size(0), -1)[fg]
            else:
                pos_deltas = bbox_pred.view(bbox_pred.size(0), C, -1)[fg, labels[fg]]
            pred_boxes = get_box_tensor(self.bbox_coder.decode(pos_rois, pos_deltas))
            if self.reg_decoded_bbox:
                gt_boxes = get_box_tensor(bbox_targets[fg])
                pos_pred, pos_target = pred_boxes, gt_boxes
            else:
                gt_boxes = get_box_tensor(self.bbox_coder.decode(pos_rois, bbox_targets[fg]))
                pos_pred, pos_target = pos_deltas, bbox_targets[fg]
            qualities[fg] = bbox_overlaps(pred_boxes.detach().float(), gt_boxes.float(),
                                          is_aligned=True).clamp(0.0, 1.0)
        loss_cls = self.loss_cls(cls_score, (labels, qualities), weight=label_weights,
                                 reduction_override=reduction_override)
        losses["loss_cls"] = loss_cls
        losses.update(self.loss_cls.get_accuracy(cls_score, labels))
        if bbox_pred is None:
            return losses
        if pos_pred is None:
            losses["loss_bbox"] = bbox_pred.sum() * 0
            return losses
        per_box = self.loss_bbox(pos_pred, pos_target, reduction_override="none")
        if per_box.dim() > 1:
            per_box = per_box.reshape(per_box.shape[0], -1).sum(1)
        w = cls_score.detach()[fg].sigmoid().max(1).values.to(per_box.dtype)
        loss_bbox = (w * per_box).sum() / w.sum().clamp(min=torch.finfo(w.dtype).tiny)
        if self.box_loss_balance == "value":
            loss_bbox = value_balanced([loss_bbox], loss_cls)[0]
        losses["loss_bbox"] = loss_bbox
        return losses
