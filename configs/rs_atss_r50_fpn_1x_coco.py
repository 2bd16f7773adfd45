# RS-ATSS (Oksuz et al., ICCV 2021) on mmdetection 3.x: ATSS's assigner and towers, Rank & Sort
# over all FPN levels with IoU qualities, a score-weighted GIoU loss balanced by value, no
# centerness branch; the anchors (3 scales per octave) and lr of the official config.
_base_ = "mmdet::atss/atss_r50_fpn_1x_coco.py"
custom_imports = dict(imports=["rankref.torch.mmdet"], allow_failed_imports=False)

model = dict(
    bbox_head=dict(
        type="RankRefRSATSSHead",
        anchor_generator=dict(octave_base_scale=4, scales_per_octave=3),
        loss_cls=dict(_delete_=True, type="RankRefRankSortLoss", use_sigmoid=True,
                      delta=0.5, loss_weight=1.0),
        # its loss_weight cancels out with box_loss_balance="value" (the default)
        loss_bbox=dict(_delete_=True, type="GIoULoss", loss_weight=1.0)))
optim_wrapper = dict(optimizer=dict(lr=0.008))
