"""Small detectors and synthetic images for the mmdetection tests and the training benchmark.

Every config of ``configs/`` is built as written, then shrunk (ResNet-18 without pretrained
weights, 32-channel FPN and heads, 3 classes) so that a CPU trains it on tiny images in
seconds.  Nothing here changes how a head computes its losses.
"""
import copy
import os

import numpy as np

from _mmcv_ext_standin import install as install_mmcv_ext_standin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")
CONFIG_FILES = {
    "rs_atss": "rs_atss_r50_fpn_1x_coco.py",
    "rs_retinanet": "rs_retinanet_r50_fpn_1x_coco.py",
    "rs_fcos": "rs_fcos_r50_fpn_gn-head_1x_coco.py",
    "rs_gfl": "rs_gfl_r50_fpn_1x_coco.py",
    "ap_retinanet": "ap_retinanet_r50_fpn_1x_coco.py",
    "rs_faster_rcnn": "rs_faster-rcnn_r50_fpn_1x_coco.py",
    "gap_faster_rcnn": "gap_faster-rcnn_r50_fpn_1x_coco.py",
}
NUM_CLASSES = 3
WIDTH = 32


def import_mmdet():
    """``rankref.torch.mmdet`` with the ``mmcv._ext`` stand-in where mmcv has no compiled
    operators; returns the module."""
    install_mmcv_ext_standin()
    import rankref.torch.mmdet as rmd

    return rmd


def tiny(cfg):
    """Shrink a detector config in place (see the module docstring); returns it."""
    from _mmcv_ext_standin import TorchRoIAlign

    model = cfg.model
    model.backbone = dict(type="ResNet", depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
                          frozen_stages=-1, norm_cfg=dict(type="BN", requires_grad=True),
                          norm_eval=False, style="pytorch", init_cfg=None)
    model.neck.in_channels = [64, 128, 256, 512]
    model.neck.out_channels = WIDTH
    model.data_preprocessor.mean = [123.675, 116.28, 103.53]
    model.data_preprocessor.std = [58.395, 57.12, 57.375]
    model.data_preprocessor.bgr_to_rgb = True
    for key in ("bbox_head", "rpn_head"):
        head = model.get(key)
        if head is not None:
            head.in_channels = WIDTH
            head.feat_channels = WIDTH
            if "stacked_convs" in head:
                head.stacked_convs = 1
            if head.get("norm_cfg", {}).get("type") == "GN":
                head.norm_cfg.num_groups = 8  # 4 channels a group: a 1x1 map of one image works
            if key == "bbox_head":
                head.num_classes = NUM_CLASSES
    roi = model.get("roi_head")
    if roi is not None:
        model.train_cfg.rpn_proposal.nms_pre = 200
        model.train_cfg.rpn_proposal.max_per_img = 100
        model.test_cfg.rpn.nms_pre = 200
        model.test_cfg.rpn.max_per_img = 100
        roi.bbox_roi_extractor.out_channels = WIDTH
        roi.bbox_roi_extractor.roi_layer = dict(type=TorchRoIAlign, output_size=7,
                                                sampling_ratio=2)
        roi.bbox_head.in_channels = WIDTH
        roi.bbox_head.fc_out_channels = 64
        roi.bbox_head.num_classes = NUM_CLASSES
        if roi.bbox_head.loss_cls.get("num_classes") is not None:
            roi.bbox_head.loss_cls.num_classes = NUM_CLASSES
    return cfg


_LOADED = {}
REMOVE = object()  # a head change that removes a key


def load_config(name):
    """The config of ``configs/`` (parsed once, a copy each call)."""
    from mmengine.config import Config

    if name not in _LOADED:
        _LOADED[name] = Config.fromfile(os.path.join(CONFIGS, CONFIG_FILES[name]))
    return copy.deepcopy(_LOADED[name])


def build_model(name, seed=0, **head_changes):
    """The shrunk model of config ``name`` (``head_changes`` go into its main head)."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules()
    cfg = tiny(load_config(name))
    key = "roi_head" if "roi_head" in cfg.model else "bbox_head"
    if head_changes:
        target = cfg.model.roi_head.bbox_head if key == "roi_head" else cfg.model.bbox_head
        for k, v in head_changes.items():
            if v is REMOVE:
                target.pop(k, None)
            elif isinstance(v, dict) and v.get("_delete_"):
                target[k] = {kk: vv for kk, vv in v.items() if kk != "_delete_"}
            elif isinstance(v, dict) and isinstance(target.get(k), dict):
                target[k].update(copy.deepcopy(v))
            else:
                target[k] = copy.deepcopy(v)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    quiet()
    model.init_weights()
    return model


def quiet():
    """mmengine's current logger at WARNING (initialisation logs every parameter at INFO)."""
    import logging

    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.WARNING)


def synthetic_images(n, size=96, seed=0, max_objects=3):
    """``(images uint8 [n, 3, size, size], boxes, labels)``: filled rectangles of a colour per
    class on a noisy background."""
    rng = np.random.default_rng(seed)
    colours = np.array([[220, 40, 40], [40, 200, 40], [40, 60, 230]], dtype=np.float64)
    images, boxes, labels = [], [], []
    for _ in range(n):
        img = rng.normal(110, 20, size=(size, size, 3))
        k = int(rng.integers(1, max_objects + 1))
        b, y = [], []
        for _ in range(k):
            w, h = rng.integers(size // 6, size // 2, size=2)
            x0, y0 = rng.integers(0, size - w), rng.integers(0, size - h)
            c = int(rng.integers(0, NUM_CLASSES))
            img[y0:y0 + h, x0:x0 + w] = colours[c] + rng.normal(0, 10, size=(h, w, 3))
            b.append([x0, y0, x0 + w, y0 + h])
            y.append(c)
        images.append(np.clip(img, 0, 255).astype(np.uint8))
        boxes.append(np.array(b, dtype=np.float32))
        labels.append(np.array(y, dtype=np.int64))
    return images, boxes, labels


def batch(n=2, size=96, seed=0):
    """A batch in the form ``model.train_step``/``data_preprocessor`` take."""
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    images, boxes, labels = synthetic_images(n, size, seed)
    inputs, samples = [], []
    for img, b, y in zip(images, boxes, labels):
        inputs.append(torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1).contiguous())
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        scale_factor=(1.0, 1.0), img_id=len(samples)))
        s.gt_instances = InstanceData(bboxes=torch.from_numpy(b), labels=torch.from_numpy(y))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)
