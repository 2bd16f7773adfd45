# RetinaNet with Rank & Sort over all FPN levels (IoU qualities of the predicted boxes), a
# score-weighted GIoU loss on decoded boxes balanced by value, no sampler, no focal parameters.
_base_ = "mmdet::retinanet/retinanet_r50_fpn_1x_coco.py"
custom_imports = dict(imports=["rankref.torch.mmdet"], allow_failed_imports=False)

model = dict(
    bbox_head=dict(
        type="RankRefRSRetinaHead",
        reg_decoded_bbox=True,
        bbox_coder=dict(target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(_delete_=True, type="RankRefRankSortLoss", use_sigmoid=True,
                      delta=0.5, loss_weight=1.0),
        loss_bbox=dict(_delete_=True, type="GIoULoss", loss_weight=1.0)))
