"""Dense heads that rank the anchors of all FPN levels and images in one call."""
import torch
from torch import nn

from mmdet.models.dense_heads import ATSSHead, FCOSHead, GFLHead, RetinaHead, RPNHead
from mmdet.models.utils import images_to_levels
from mmdet.structures.bbox import bbox_overlaps, cat_boxes, get_box_tensor

from ..losses import RankSortLoss

__all__ = ["RankAllLevels", "RankSortQualities", "RSATSSHead", "RSRetinaHead", "RSFCOSHead",
           "RSRPNHead", "RSGFLHead", "APRetinaHead"]

BALANCES = ("value", None)


def _balance(value, name="box_loss_balance"):
    if value not in BALANCES:
        raise ValueError(
            f"{name} must be 'value' (the RS paper: the box loss is scaled to the value of the "
            f"ranking loss at every step) or None (the box losses keep the loss_weight of their "
            f"config), got {value!r}.")
    return value


def _positive_avg_factor(avg_factor):
    """mmdetection's avg_factor as the ranking losses take it: None when it is not > 0 (a batch
    without positives, where the loss is 0 anyway)."""
    if avg_factor is None:
        return None
    value = float(avg_factor)
    return value if value > 0 else None


def value_balanced(box_losses, rank_loss):
    """Scale the box losses (a list of scalars) so that their sum has the value of
    ``rank_loss``, as the RS paper balances the two tasks: ``box * (rank / box_total)`` with
    both values detached.  A box total of 0 is left as it is."""
    total = sum(b.detach() for b in box_losses)
    if not bool(total > 0):
        return box_losses
    scale = rank_loss.detach() / total
    return [b * scale for b in box_losses]


class _Recorder(nn.Module):
    """Stands in for ``loss_cls`` during a head's per-level loop and records each call."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, pred, target, weight=None, avg_factor=None, reduction_override=None):
        self.calls.append((pred, target, weight, avg_factor, reduction_override))
        return pred.sum() * 0


class RankAllLevels:
    """Mixin for an mmdetection dense head whose ``loss_cls`` target already holds what the
    ranking loss needs: the classification loss is called once, on the anchors of all levels
    and images, instead of once per level.

    The head's own ``loss_by_feat`` runs unchanged (targets, box losses, logging) with a recorder
    in place of ``loss_cls``; then ``loss_cls`` is called once on the concatenated per-level
    arguments (logits, targets, label weights).  This fits

    * GFL-style heads (``GFLHead``), which pass ``(labels, scores)`` with the scores the IoU of
      each positive's predicted box with its ground truth (detached): Rank & Sort needs those;
    * any dense head with AP Loss (``RetinaHead``, ``ATSSHead``, ...), which needs the labels
      only.

    A labels-only head with Rank & Sort needs :class:`RankSortQualities` instead (the ranking
    loss raises a ValueError that says so).

    ``avg_factor``: the head's per-level value (its number of positives, a per-GPU mean under
    DDP) is passed on; with ``gather=True`` the loss normalises by the positives of the gathered
    batch instead (None is passed).  A value <= 0 (no positives) is passed as None.

    ``box_loss_balance``: None (default) keeps the head's box losses as configured (GFL:
    GIoU ``loss_weight=2.0``, DFL ``0.25``); ``"value"`` scales the sum of all box-loss terms
    (``loss_bbox``, ``loss_dfl``, ...: every key but ``loss_cls``) to the value of the ranking
    loss at each step, keeping their ratio (the RS paper's balancing).
    """

    def __init__(self, *args, box_loss_balance=None, **kwargs):
        balance = _balance(box_loss_balance)
        super().__init__(*args, **kwargs)
        self.box_loss_balance = balance

    def loss_by_feat(self, *args, **kwargs):
        rank_loss, self.loss_cls = self.loss_cls, _Recorder()
        try:
            losses = super().loss_by_feat(*args, **kwargs)
            calls = self.loss_cls.calls
        finally:
            self.loss_cls = rank_loss
        if not calls:
            raise RuntimeError(f"{type(self).__name__}.loss_by_feat did not call loss_cls; "
                               f"RankAllLevels only fits heads that do.")
        pred = torch.cat([c[0] for c in calls])
        first = calls[0][1]
        if isinstance(first, (tuple, list)):  # (labels, scores) of GFL-style heads
            target = tuple(torch.cat([c[1][k].reshape(-1) for c in calls])
                           for k in range(len(first)))
        else:  # labels of RetinaNet-style heads
            target = torch.cat([c[1].reshape(-1) for c in calls])
        weights = [c[2] for c in calls]
        weight = None if any(w is None for w in weights) else torch.cat(
            [w.reshape(c[0].shape[0], -1).squeeze(1) for w, c in zip(weights, calls)])
        avg_factor = None if getattr(rank_loss, "gather", False) else \
            _positive_avg_factor(calls[0][3])
        loss_cls = rank_loss(pred, target, weight=weight, avg_factor=avg_factor)
        losses["loss_cls"] = loss_cls
        if self.box_loss_balance == "value":  # per-level lists summed, as mmengine logs them
            keys = [k for k in losses if "loss" in k and k != "loss_cls"]
            totals = [sum(losses[k]) if isinstance(losses[k], (list, tuple)) else losses[k]
                      for k in keys]
            losses.update(zip(keys, value_balanced(totals, loss_cls)))
        return losses


class RankSortQualities:
    """Mixin for an mmdetection dense head: Rank & Sort (or AP) on the anchors of all levels and
    images in one call, with the IoU qualities of the official RS heads, and a score-weighted,
    value-balanced box loss.

    For each batch, with the head's own target assignment:

    1. the logits ``[anchors, C]`` of all levels and images are concatenated;
    2. each positive anchor's quality is the IoU of its *predicted* box (decoded, detached) with
       its ground-truth box;
    3. ``loss_cls`` is called once: ``loss_cls(logits, (labels, qualities), weight=label_weights)``
       for Rank & Sort (normalised by the number of positives of the ranked batch), or
       ``loss_cls(logits, labels, weight=label_weights)`` for any other loss (AP Loss);
    4. the box loss of each positive is weighted by its classification score (the largest
       sigmoid of its logits, detached) and averaged with those weights:
       ``loss_bbox = sum(w_i * l_i) / sum(w_i)``; ``l_i`` is ``loss_bbox`` with
       ``reduction_override="none"`` on decoded boxes (``reg_decoded_bbox=True``, e.g. GIoU) or
       on the encoded deltas;
    5. ``box_loss_balance="value"`` (default, the RS paper) multiplies it by
       ``loss_cls.detach() / loss_bbox.detach()``: both tasks then have the same value and the
       box loss's own ``loss_weight`` has no effect; ``None`` keeps it as computed in 4.

    Returns ``{"loss_cls": ..., "loss_bbox": ...}``.  The head's outputs must be
    ``cls_scores, bbox_preds``: an auxiliary branch (centerness) would not be trained, so a head
    with one raises a ValueError; the RS heads below drop it.
    """

    loss_keys = ("loss_cls", "loss_bbox")

    def __init__(self, *args, box_loss_balance="value", **kwargs):
        balance = _balance(box_loss_balance)
        super().__init__(*args, **kwargs)
        self.box_loss_balance = balance

    # -- what the heads differ in: their targets, flattened over levels and images --------
    def flat_targets(self, cls_scores, bbox_preds, batch_gt_instances, batch_img_metas,
                     batch_gt_instances_ignore=None):
        """``(logits [M, C], bbox_pred [M, d], priors [M, k], labels [M], label_weights [M],
        bbox_targets [M, t])`` over all levels and images; ``bbox_targets`` are boxes when
        ``reg_decoded_bbox`` is set, else encoded deltas."""
        featmap_sizes = [featmap.size()[-2:] for featmap in cls_scores]
        device = cls_scores[0].device
        anchor_list, valid_flag_list = self.get_anchors(featmap_sizes, batch_img_metas,
                                                        device=device)
        targets = self.get_targets(anchor_list, valid_flag_list, batch_gt_instances,
                                   batch_img_metas,
                                   batch_gt_instances_ignore=batch_gt_instances_ignore)
        if targets is None:
            raise ValueError(f"{type(self).__name__}: the head's get_targets found no valid "
                             f"anchor in the batch.")
        if len(targets) == 6:  # ATSS: the anchors come back per level
            anchors, labels, label_weights, bbox_targets = targets[:4]
        else:  # AnchorHead: (labels, label_weights, bbox_targets, bbox_weights, avg_factor)
            labels, label_weights, bbox_targets = targets[:3]
            num_level_anchors = [a.size(0) for a in anchor_list[0]]
            anchors = images_to_levels([cat_boxes(a) for a in anchor_list], num_level_anchors)
        return (self._flat(cls_scores, self.cls_out_channels),
                self._flat(bbox_preds, self.bbox_coder.encode_size),
                torch.cat([get_box_tensor(a).reshape(-1, 4) for a in anchors]),
                torch.cat([y.reshape(-1) for y in labels]),
                torch.cat([w.reshape(-1) for w in label_weights]),
                torch.cat([get_box_tensor(t).reshape(-1, t.shape[-1]) for t in bbox_targets]))

    @staticmethod
    def _flat(maps, channels):
        """``[N, A * channels, H, W]`` per level -> ``[levels * N * H * W * A, channels]`` (level,
        then image, then position: the order of mmdetection's targets)."""
        return torch.cat([m.permute(0, 2, 3, 1).reshape(-1, channels) for m in maps])

    def decode_boxes(self, priors, deltas):
        return get_box_tensor(self.bbox_coder.decode(priors, deltas))

    # -- the common part ---------------------------------------------------------------------
    def _gt_arguments(self, args, kwargs):
        """``(batch_gt_instances, batch_img_metas, batch_gt_instances_ignore)`` from the
        arguments after ``cls_scores, bbox_preds``; other per-level outputs are refused."""
        if args and isinstance(args[0], (list, tuple)) and args[0] and \
                isinstance(args[0][0], torch.Tensor):
            raise ValueError(
                f"{type(self).__name__}: the head has per-level outputs besides cls_scores and "
                f"bbox_preds (e.g. a centerness branch), which RankSortQualities does not "
                f"train; remove the branch from the head's _init_layers and forward_single, as "
                f"RSATSSHead and RSFCOSHead do.")
        names = ("batch_gt_instances", "batch_img_metas", "batch_gt_instances_ignore")
        values = dict(zip(names, args), **kwargs)
        return (values["batch_gt_instances"], values["batch_img_metas"],
                values.get("batch_gt_instances_ignore"))

    def loss_by_feat(self, cls_scores, bbox_preds, *args, **kwargs):
        logits, bbox_pred, priors, labels, label_weights, bbox_targets = self.flat_targets(
            cls_scores, bbox_preds, *self._gt_arguments(args, kwargs))
        loss_cls, loss_bbox = self.rank_and_box_losses(
            logits, bbox_pred, priors, labels, label_weights, bbox_targets,
            decoded_targets=getattr(self, "reg_decoded_bbox", True))
        return dict(zip(self.loss_keys, (loss_cls, loss_bbox)))

    def rank_and_box_losses(self, logits, bbox_pred, priors, labels, label_weights,
                            bbox_targets, decoded_targets):
        """Steps 2-5 on flat tensors; returns ``(loss_cls, loss_bbox)``."""
        C = logits.shape[1]
        fg = (labels >= 0) & (labels < C) & (label_weights > 0)
        pos = fg.nonzero().reshape(-1)
        qualities = logits.new_zeros(labels.shape, dtype=torch.float32)
        if pos.numel():
            pos_pred = bbox_pred[pos]
            pos_target = bbox_targets[pos]
            pred_boxes = self.decode_boxes(priors[pos], pos_pred)
            gt_boxes = pos_target if decoded_targets else self.decode_boxes(priors[pos],
                                                                             pos_target)
            qualities[pos] = bbox_overlaps(pred_boxes.detach().float(), gt_boxes.float(),
                                           is_aligned=True).clamp(0.0, 1.0)
        target = (labels, qualities) if isinstance(self.loss_cls, RankSortLoss) else labels
        loss_cls = self.loss_cls(logits, target, weight=label_weights)
        if not pos.numel():
            return loss_cls, bbox_pred.sum() * 0
        if decoded_targets:
            per_box = self.loss_bbox(pred_boxes, gt_boxes, reduction_override="none")
        else:
            per_box = self.loss_bbox(pos_pred, pos_target, reduction_override="none")
        if per_box.dim() > 1:
            per_box = per_box.reshape(per_box.shape[0], -1).sum(1)
        w = logits.detach()[pos].sigmoid().max(1).values.to(per_box.dtype)
        loss_bbox = (w * per_box).sum() / w.sum().clamp(min=torch.finfo(w.dtype).tiny)
        if self.box_loss_balance == "value":
            loss_bbox = value_balanced([loss_bbox], loss_cls)[0]
        return loss_cls, loss_bbox


class RSATSSHead(RankSortQualities, ATSSHead):
    """RS-ATSS (Oksuz et al., ICCV 2021): ATSS's assignment and towers, Rank & Sort on all
    levels with IoU qualities, a score-weighted GIoU box loss balanced by value, and no
    centerness branch (the official RS-ATSS has none).  Registered as
    ``RankRefRSATSSHead``."""

    def _init_layers(self):
        super()._init_layers()
        del self.atss_centerness

    def forward_single(self, x, scale):
        cls_feat, reg_feat = x, x
        for conv in self.cls_convs:
            cls_feat = conv(cls_feat)
        for conv in self.reg_convs:
            reg_feat = conv(reg_feat)
        return self.atss_cls(cls_feat), scale(self.atss_reg(reg_feat)).float()


class RSRetinaHead(RankSortQualities, RetinaHead):
    """RetinaNet's head with Rank & Sort on all levels and IoU qualities, and the box loss of
    :class:`RankSortQualities` (use ``reg_decoded_bbox=True`` with an IoU-type box loss, as the
    RS heads do).  Registered as ``RankRefRSRetinaHead``."""


class RSRPNHead(RankSortQualities, RPNHead):
    """The RPN of RS Faster R-CNN: one class, Rank & Sort on all levels with IoU qualities
    (use ``sampler=dict(type="PseudoSampler")``: the loss ranks every anchor), returning
    ``loss_rpn_cls`` and ``loss_rpn_bbox``.  The official head weight 0.2 is
    ``loss_cls=dict(type="RankRefRankSortLoss", loss_weight=0.2)`` with the value balancing.
    Registered as ``RankRefRSRPNHead``."""

    loss_keys = ("loss_rpn_cls", "loss_rpn_bbox")


class RSFCOSHead(RankSortQualities, FCOSHead):
    """FCOS with Rank & Sort on all levels and IoU qualities, a score-weighted IoU-type box loss
    balanced by value, and no centerness branch (as RS-ATSS).  Registered as
    ``RankRefRSFCOSHead``."""

    def _init_layers(self):
        super()._init_layers()
        del self.conv_centerness

    def forward_single(self, x, scale, stride):
        cls_score, bbox_pred, _, _ = super(FCOSHead, self).forward_single(x)
        bbox_pred = scale(bbox_pred).float()
        if self.norm_on_bbox:
            bbox_pred = bbox_pred.clamp(min=0)
            if not self.training:
                bbox_pred = bbox_pred * stride
        else:
            bbox_pred = bbox_pred.exp()
        return cls_score, bbox_pred

    def flat_targets(self, cls_scores, bbox_preds, batch_gt_instances, batch_img_metas,
                     batch_gt_instances_ignore=None):
        featmap_sizes = [featmap.size()[-2:] for featmap in cls_scores]
        points = self.prior_generator.grid_priors(featmap_sizes, dtype=bbox_preds[0].dtype,
                                                  device=bbox_preds[0].device)
        labels, bbox_targets = self.get_targets(points, batch_gt_instances)
        num_imgs = cls_scores[0].size(0)
        labels = torch.cat(labels)
        return (self._flat(cls_scores, self.cls_out_channels), self._flat(bbox_preds, 4),
                torch.cat([p.repeat(num_imgs, 1) for p in points]), labels,
                torch.ones(labels.shape, device=labels.device), torch.cat(bbox_targets))

    def loss_by_feat(self, cls_scores, bbox_preds, *args, **kwargs):
        # FCOS targets are distances from the points (in strides when norm_on_bbox): decode
        # both sides; the IoU does not depend on that scale (both boxes share the point).
        logits, bbox_pred, points, labels, label_weights, bbox_targets = self.flat_targets(
            cls_scores, bbox_preds, *self._gt_arguments(args, kwargs))
        target_boxes = bbox_targets.clone()
        fg = (labels >= 0) & (labels < self.num_classes)
        if bool(fg.any()):
            target_boxes[fg] = self.decode_boxes(points[fg], bbox_targets[fg])
        loss_cls, loss_bbox = self.rank_and_box_losses(
            logits, bbox_pred, points, labels, label_weights, target_boxes,
            decoded_targets=True)
        return dict(zip(self.loss_keys, (loss_cls, loss_bbox)))


class RSGFLHead(RankAllLevels, GFLHead):
    """GFL with Rank & Sort in place of QualityFocalLoss: GFL computes the IoU qualities and the
    score-weighted GIoU and DFL box losses; :class:`RankAllLevels` ranks all levels in one call.
    Box losses keep GFL's weights unless ``box_loss_balance="value"``.  Registered as
    ``RankRefRSGFLHead``."""


class APRetinaHead(RankAllLevels, RetinaHead):
    """RetinaNet trained with AP Loss (Chen et al., CVPR 2019) ranked over all levels; the box
    loss is RetinaNet's.  Registered as ``RankRefAPRetinaHead``."""


HEADS = (RSATSSHead, RSRetinaHead, RSRPNHead, RSFCOSHead, RSGFLHead, APRetinaHead)
