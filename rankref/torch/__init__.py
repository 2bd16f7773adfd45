"""PyTorch adapters: every rankref loss as a drop-in autograd loss, on CPU or GPU tensors.

The pattern is POT's: the loss and its (error-driven) gradient are computed exactly by a
backend, and a ``torch.library`` custom operator attaches the gradient.  Outputs live on the
input's device.

Where it runs (``RANKREF_TORCH_BACKEND``, read at every call):

* ``auto`` (default): CPU tensors are computed by :mod:`rankref` (NumPy views, no copy);
  tensors on a GPU (or any other device) by :mod:`rankref_gpu` on the tensors themselves.
* ``cpu``: everything by :mod:`rankref` (other devices' tensors are copied to the host).
* ``gpu``: everything by :mod:`rankref_gpu` on the tensors, CPU tensors included (the GPU
  code path, testable without a GPU).

Layout: :mod:`rankref.torch.functional` (the losses and samplers on tensors),
:mod:`rankref.torch.losses` (the loss modules, with mmdetection's call conventions),
:mod:`rankref.torch.layers` (network modules), ``_bridge`` (device dispatch and the custom
operators), ``_distributed`` (gathering across processes).

``import rankref`` never imports torch; ``import rankref.torch`` (or the first access to
``rankref.torch``) does.

Dtypes: float16, bfloat16, float32 and float64 logits are accepted; the computation runs in
float32/float64 (accumulating in float64), losses are float32 (float64 for float64 logits), and
the gradient comes back in the logits' dtype.  Inside ``torch.autocast`` nothing is downcast.
float16 gradients underflow without loss scaling: use ``torch.amp.GradScaler``.
"""
from ._registry import register_mmdet
from .functional import (
    ap_loss,
    balanced_l1_loss,
    gap_loss,
    instance_balanced_pos_sample,
    iou_balanced_neg_sample,
    lgr_cross_entropy,
    rank_sort_loss,
)
from .layers import BalancedFeaturePyramid, GuidedLossScaling, init_prior_bias_
from .losses import APLoss, BalancedL1Loss, GAPLoss, LGRCrossEntropyLoss, RankSortLoss

__all__ = [
    "rank_sort_loss",
    "ap_loss",
    "gap_loss",
    "balanced_l1_loss",
    "lgr_cross_entropy",
    "iou_balanced_neg_sample",
    "instance_balanced_pos_sample",
    "RankSortLoss",
    "APLoss",
    "GAPLoss",
    "BalancedL1Loss",
    "LGRCrossEntropyLoss",
    "GuidedLossScaling",
    "BalancedFeaturePyramid",
    "init_prior_bias_",
    "register_mmdet",
]
