# GAP loss (ROG, Zhang et al., ICCV 2023) in mmdetection's stock Shared2FCBBoxHead: the one
# line below.  RankRefGAPLoss tells the head to build C sigmoid outputs (no background column)
# and to score RoIs with a sigmoid at test time; 0.1 is the official weight.
_base_ = "mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"
custom_imports = dict(imports=["rankref.torch.mmdet"], allow_failed_imports=False)

model = dict(
    roi_head=dict(
        bbox_head=dict(
            loss_cls=dict(_delete_=True, type="RankRefGAPLoss", num_classes=80,
                          loss_weight=0.1))))
