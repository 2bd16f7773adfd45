# FCOS (center sampling, boxes normalised by the stride, GIoU) with Rank & Sort over all FPN
# levels with IoU qualities, a score-weighted GIoU loss balanced by value, and no centerness
# branch (as RS-ATSS).
_base_ = "mmdet::fcos/fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco.py"
custom_imports = dict(imports=["rankref.torch.mmdet"], allow_failed_imports=False)

model = dict(
    bbox_head=dict(
        type="RankRefRSFCOSHead",
        loss_cls=dict(_delete_=True, type="RankRefRankSortLoss", use_sigmoid=True,
                      delta=0.5, loss_weight=1.0),
        loss_bbox=dict(_delete_=True, type="GIoULoss", loss_weight=1.0)))
