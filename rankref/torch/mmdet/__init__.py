"""rankref's ranking losses and the heads of the RS/AP papers in mmdetection 3.x.

``import rankref.torch.mmdet`` (or ``custom_imports=dict(imports=["rankref.torch.mmdet"])`` in
a config) needs mmdetection 3.x; ``import rankref.torch`` never does.  It registers on
mmdetection's own ``MODELS`` registry:

losses (:func:`rankref.torch.register_mmdet`)
    ``RankRefRankSortLoss``, ``RankRefAPLoss``, ``RankRefGAPLoss`` (with the ``BBoxHead``
    hooks of C sigmoid outputs), ``RankRefRoIRankSortLoss`` (Rank & Sort with those hooks),
    ``RankRefBalancedL1Loss``, ``RankRefLGRCrossEntropyLoss``;
dense heads, ranking the anchors of all FPN levels and images in one call
    ``RankRefRSATSSHead``, ``RankRefRSRetinaHead``, ``RankRefRSFCOSHead``,
    ``RankRefRSRPNHead`` (IoU qualities computed as the official RS heads do:
    :class:`RankSortQualities`), ``RankRefRSGFLHead`` and ``RankRefAPRetinaHead``
    (:class:`RankAllLevels`);
RoI head
    ``RankRefRSShared2FCBBoxHead`` (RS Faster R-CNN).

The mixins :class:`RankSortQualities` and :class:`RankAllLevels` turn other dense heads into
ranking heads.  Tested with mmdetection 3.3.0, mmengine 0.10.7 and mmcv 2.1.0 (mmcv-lite 2.1.0
for training; see the training page of the docs).
"""
import importlib

try:
    importlib.import_module("mmdet.models")
except ImportError as exc:
    if getattr(exc, "name", None) == "mmcv._ext":
        raise ImportError(
            "rankref.torch.mmdet: mmdet.models needs mmcv's compiled operators (mmcv._ext), "
            "which mmcv-lite does not ship: install the full mmcv 2.1.0 (pip install mmcv==2.1.0"
            f", built from source on CPU) ({exc})") from exc
    raise ImportError(
        "rankref.torch.mmdet needs mmdetection 3.x: pip install \"rankref[mmdet]\" (mmdet "
        f"3.3.0, mmengine 0.10.7, mmcv 2.1.0) ({exc})") from exc

from mmdet.registry import MODELS  # noqa: E402

from .._registry import register_classes, register_mmdet  # noqa: E402
from ._dense import (HEADS, APRetinaHead, RankAllLevels, RankSortQualities,  # noqa: E402
                     RSATSSHead, RSFCOSHead, RSGFLHead, RSRetinaHead, RSRPNHead)
from ._roi import RSShared2FCBBoxHead  # noqa: E402

__all__ = ["RankAllLevels", "RankSortQualities", "RSATSSHead", "RSRetinaHead", "RSFCOSHead",
           "RSRPNHead", "RSGFLHead", "APRetinaHead", "RSShared2FCBBoxHead", "register"]


def register(registry=None):
    """Register the losses and heads of this module in ``registry`` (default: mmdetection's
    ``MODELS``; done at import).  Returns ``{name: class}``."""
    registry = MODELS if registry is None else registry
    names = register_mmdet(registry)
    heads = {"RankRef" + cls.__name__: cls for cls in HEADS + (RSShared2FCBBoxHead,)}
    names.update(register_classes(registry, heads, "rankref.torch.mmdet.register"))
    return names


register()
