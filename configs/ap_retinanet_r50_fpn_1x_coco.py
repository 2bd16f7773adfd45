# AP-RetinaNet (Chen et al., CVPR 2019): RetinaNet with AP Loss ranked over all FPN levels in
# one call; RetinaNet's box loss.
_base_ = "mmdet::retinanet/retinanet_r50_fpn_1x_coco.py"
custom_imports = dict(imports=["rankref.torch.mmdet"], allow_failed_imports=False)

model = dict(
    bbox_head=dict(
        type="RankRefAPRetinaHead",
        loss_cls=dict(_delete_=True, type="RankRefAPLoss", use_sigmoid=True, delta=1.0,
                      loss_weight=1.0)))
