"""A test-only stand-in for mmcv's compiled operators (``mmcv._ext``), for mmcv-lite.

mmcv-lite 2.1.0 is mmcv without compiled operators; ``import mmdet.models`` imports
``mmcv.ops``, which loads ``mmcv._ext``.  The stand-in lets mmdetection import: every operator
is a function that raises when called, except ``nms``, written here in plain torch (greedy, as
mmcv's CPU kernel), which two-stage detectors call while training (the RPN's proposals) and
every detector at test time.  RoIAlign is not provided: the tests give two-stage detectors the
plain-torch :class:`TorchRoIAlign` as ``roi_layer`` type.

``install()`` does nothing when the real ``mmcv._ext`` imports.
"""
import importlib.machinery
import importlib.util
import sys
import types

_OPS = None


class _Missing:
    """An operator of the stand-in: calling it raises."""

    def __init__(self, name):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(
            f"mmcv._ext.{self.name} is a test stand-in (mmcv-lite has no compiled operators); "
            f"install the full mmcv 2.1.0 to run it.")


def nms(bboxes, scores, iou_threshold, offset=0):
    """Indices of the boxes greedy NMS keeps, by decreasing score (mmcv's ``nms`` contract)."""
    import torch

    order = torch.sort(scores, descending=True, stable=True).indices
    boxes = bboxes[order].double()
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1 + offset) * (y2 - y1 + offset)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1) + offset).clamp(min=0)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1) + offset).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas - inter)
        suppressed |= iou > iou_threshold
    return order[torch.tensor(keep, dtype=torch.int64)]


def install():
    """Put the stand-in in ``sys.modules['mmcv._ext']`` unless the real one imports; returns
    True when the stand-in is used."""
    if "mmcv._ext" in sys.modules:
        return getattr(sys.modules["mmcv._ext"], "RANKREF_STANDIN", False)
    try:
        if importlib.util.find_spec("mmcv") is None:
            return False
        importlib.import_module("mmcv._ext")
        return False
    except ImportError:
        pass
    module = types.ModuleType("mmcv._ext")
    module.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", None)  # pkgutil.find_loader
    module.RANKREF_STANDIN = True
    module.nms = nms
    module.__getattr__ = lambda name: (_Missing(name) if not name.startswith("__")
                                       else (_ for _ in ()).throw(AttributeError(name)))
    sys.modules["mmcv._ext"] = module
    return True


def _torch_roi_align():
    import torch
    import torch.nn.functional as F

    class TorchRoIAlign(torch.nn.Module):
        """RoIAlign (``aligned=True``, average of ``sampling_ratio`` x ``sampling_ratio``
        bilinear samples per bin, 2 when 0) in plain torch, for tests without mmcv's ops."""

        def __init__(self, output_size, spatial_scale=1.0, sampling_ratio=0, pool_mode="avg",
                     aligned=True):
            super().__init__()
            self.output_size = ((output_size, output_size) if isinstance(output_size, int)
                                else tuple(output_size))
            self.spatial_scale = float(spatial_scale)
            self.sampling_ratio = int(sampling_ratio) if sampling_ratio > 0 else 2
            self.aligned = aligned

        def forward(self, features, rois):
            oh, ow = self.output_size
            s = self.sampling_ratio
            if rois.numel() == 0:
                return features.new_zeros((0, features.shape[1], oh, ow))
            H, W = features.shape[-2:]
            shift = 0.5 if self.aligned else 0.0
            box = rois[:, 1:] * self.spatial_scale - shift
            steps_y = (torch.arange(oh * s, dtype=features.dtype, device=features.device)
                       + 0.5) / (oh * s)
            steps_x = (torch.arange(ow * s, dtype=features.dtype, device=features.device)
                       + 0.5) / (ow * s)
            ys = box[:, 1:2] + steps_y[None] * (box[:, 3:4] - box[:, 1:2])
            xs = box[:, 0:1] + steps_x[None] * (box[:, 2:3] - box[:, 0:1])
            gy = (ys + 0.5) / H * 2 - 1
            gx = (xs + 0.5) / W * 2 - 1
            grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), -1)
            out = features.new_zeros((rois.shape[0], features.shape[1], oh * s, ow * s))
            image = rois[:, 0].long()
            for b in image.unique().tolist():  # one grid_sample per image
                k = (image == b).nonzero().reshape(-1)
                g = grid[k].reshape(1, -1, ow * s, 2)
                sampled = F.grid_sample(features[b:b + 1], g, mode="bilinear",
                                        padding_mode="zeros", align_corners=False)
                out[k] = sampled.reshape(features.shape[1], len(k), oh * s, ow * s
                                         ).transpose(0, 1)
            sampled = out
            return F.avg_pool2d(sampled, s)

    return TorchRoIAlign


def __getattr__(name):
    if name == "TorchRoIAlign":  # built on first use: the module itself does not import torch
        globals()["TorchRoIAlign"] = _torch_roi_align()
        return globals()["TorchRoIAlign"]
    raise AttributeError(name)
