# GFL with Rank & Sort in place of QualityFocalLoss, ranked over all FPN levels in one call.
# GFL computes the IoU qualities and its score-weighted GIoU and DFL losses; they keep GFL's
# weights (2.0 and 0.25) unless box_loss_balance="value".
_base_ = "mmdet::gfl/gfl_r50_fpn_1x_coco.py"
custom_imports = dict(imports=["rankref.torch.mmdet"], allow_failed_imports=False)

model = dict(
    bbox_head=dict(
        type="RankRefRSGFLHead",
        box_loss_balance=None,
        loss_cls=dict(_delete_=True, type="RankRefRankSortLoss", use_sigmoid=True,
                      delta=0.5, loss_weight=1.0)))
