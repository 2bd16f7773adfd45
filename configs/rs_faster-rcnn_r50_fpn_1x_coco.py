# RS Faster R-CNN (Oksuz et al., ICCV 2021): Rank & Sort in the RPN (weight 0.2, every anchor:
# PseudoSampler) and in the RoI head (C sigmoid outputs, every RoI: no sampling), IoU
# qualities, score-weighted GIoU losses on decoded boxes balanced by value; the lr of the
# official config.
_base_ = "mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"
custom_imports = dict(imports=["rankref.torch.mmdet"], allow_failed_imports=False)

model = dict(
    rpn_head=dict(
        type="RankRefRSRPNHead",
        reg_decoded_bbox=True,
        bbox_coder=dict(target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(_delete_=True, type="RankRefRankSortLoss", use_sigmoid=True,
                      delta=0.5, loss_weight=0.2),
        loss_bbox=dict(_delete_=True, type="GIoULoss", loss_weight=1.0)),
    roi_head=dict(
        bbox_head=dict(
            type="RankRefRSShared2FCBBoxHead",
            reg_decoded_bbox=True,
            bbox_coder=dict(target_stds=[0.1, 0.1, 0.2, 0.2]),
            loss_cls=dict(_delete_=True, type="RankRefRoIRankSortLoss", use_sigmoid=True,
                          delta=0.5, loss_weight=1.0),
            loss_bbox=dict(_delete_=True, type="GIoULoss", loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(sampler=dict(_delete_=True, type="PseudoSampler")),
        rcnn=dict(sampler=dict(num=int(1e10)))))
optim_wrapper = dict(optimizer=dict(lr=0.012))
