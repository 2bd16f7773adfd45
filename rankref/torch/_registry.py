"""The loss modules in mmdetection's form, and their registration in an mmengine registry.

The classes registered here are subclasses of :mod:`rankref.torch.losses`' modules that know
how mmdetection heads call a classification loss; they need torch only (not mmdetection):

* ``MMDetRankSortLoss`` refuses a labels-only target with a message that says which head
  computes the ``(labels, scores)`` target RS needs;
* ``MMDetRankSortLoss`` and ``MMDetAPLoss`` warn once when a call sees only part of
  the positives that ``avg_factor`` counts (a head calling the loss once per FPN level);
* ``MMDetGAPLoss`` and ``MMDetRoIRankSortLoss`` carry the hooks through which a loss
  shapes mmdetection's ``BBoxHead`` (as ``SeesawLoss`` does): C sigmoid outputs instead of C + 1
  softmax outputs, sigmoid scores at test time, and their own accuracy.
"""
import warnings

import torch

from . import _distributed
from .losses import APLoss, BalancedL1Loss, GAPLoss, LGRCrossEntropyLoss, RankSortLoss

__all__ = ["register_mmdet", "MMDetRankSortLoss", "MMDetAPLoss", "MMDetGAPLoss",
           "MMDetRoIRankSortLoss"]

_HEADS_WITH_QUALITIES = (
    "RankRefRSATSSHead, RankRefRSRetinaHead, RankRefRSFCOSHead, RankRefRSRPNHead, "
    "RankRefRSGFLHead (dense heads) or RankRefRSShared2FCBBoxHead (RoI head)")

_warned_per_level = False


def _positives(pred, labels, weight):
    """The number of foreground rows (label in [0, C)) of a call that are not ignored."""
    C = pred.shape[1]
    y = labels.detach().reshape(-1).to(torch.int64)
    fg = (y >= 0) & (y < C)
    if weight is not None:
        w = weight.detach()
        if w.dim() == 2 and w.shape == pred.shape:
            w = w.gather(1, y.clamp(0, C - 1)[:, None])[:, 0]
        if w.shape == fg.shape:
            fg = fg & (w != 0)
    return int(fg.sum())


def _warn_per_level(loss, pred, labels, weight, avg_factor):
    """Warn once when ``avg_factor`` counts more positives than the call sees.

    mmdetection's dense heads pass the number of positives of the whole batch as ``avg_factor``
    (clamped to at least 1) to every per-level call.  Under DDP it is the mean over the GPUs,
    which one GPU's whole batch may not reach, so nothing is checked there.
    """
    global _warned_per_level
    if (_warned_per_level or avg_factor is None or not isinstance(pred, torch.Tensor)
            or pred.dim() != 2 or torch.compiler.is_compiling() or _distributed.active()):
        return
    try:
        avg = float(avg_factor)
    except (TypeError, ValueError, RuntimeError):
        return  # the loss itself refuses a bad avg_factor
    positives = _positives(pred, labels, weight)
    if positives < avg * (1 - 1e-6) and (positives > 0 or avg > 1):
        _warned_per_level = True
        warnings.warn(
            f"{type(loss).__name__}: this call sees {positives} positive(s) but avg_factor="
            f"{avg:g} counts more: the head calls its classification loss on part of its batch "
            f"(mmdetection's dense heads call it once per FPN level), so each level is ranked "
            f"separately and the negatives of levels without positives get no gradient. Rank "
            f"all levels in one call: use rankref.torch.mmdet's heads ({_HEADS_WITH_QUALITIES}, "
            f"RankRefAPRetinaHead) or its RankAllLevels mixin. This warning is shown once.",
            RuntimeWarning, stacklevel=3)


class _SigmoidBBoxHeadHooks:
    """The hooks of mmdetection's ``BBoxHead`` for a loss of C sigmoid outputs.

    ``BBoxHead`` reads ``custom_cls_channels``/``custom_activation``/``custom_accuracy`` from its
    ``loss_cls`` (``SeesawLoss`` introduced them): with them it builds ``get_cls_channels(C)``
    outputs instead of C + 1, scores RoIs with ``get_activation`` instead of a softmax, and logs
    ``get_accuracy`` instead of its softmax accuracy.  Only for RoI (bbox) heads: a dense head
    reads ``custom_cls_channels`` too and expects C columns from ``get_activation``.
    """

    custom_cls_channels = True
    custom_activation = True
    custom_accuracy = True

    def get_cls_channels(self, num_classes):
        """C outputs (no background column); ``num_classes`` is the head's C."""
        own = getattr(self, "num_classes", None)
        if own is not None and own != num_classes:
            raise ValueError(
                f"{type(self).__name__} has num_classes={own} but its bbox head has "
                f"num_classes={num_classes}; give both the number of foreground classes C.")
        return num_classes

    def get_activation(self, cls_score):
        """``[n, C + 1]`` scores: the sigmoid of the C logits and a background column of 0
        (mmdetection's RoI post-processing drops the last column)."""
        scores = cls_score.sigmoid()
        return torch.cat([scores, scores.new_zeros(scores.shape[:-1] + (1,))], dim=-1)

    def get_accuracy(self, cls_score, labels):
        """``{"acc_fg": ...}``: the percentage of foreground RoIs whose highest-scoring class is
        their label (a ranking loss's scores are not calibrated, so no background threshold is
        applied); 0 without foreground RoIs."""
        C = cls_score.shape[-1]
        y = labels.reshape(-1)
        fg = (y >= 0) & (y < C)
        if not bool(fg.any()):
            return {"acc_fg": cls_score.new_zeros(())}
        hit = cls_score.detach()[fg].argmax(-1) == y[fg]
        return {"acc_fg": hit.to(cls_score.dtype).mean() * 100}


class MMDetRankSortLoss(RankSortLoss):
    """:class:`~rankref.torch.RankSortLoss` as mmdetection configs build it
    (``type="RankRefRankSortLoss"``): the same loss, plus two checks of the mmdetection call.

    * A labels-only target (what ``ATSSHead``, ``RetinaHead``, ``FCOSHead`` and ``BBoxHead``
      pass) raises a ValueError naming the heads that compute the ``(labels, scores)`` target:
      RS sorts the positives by a quality only the head can compute (the IoU of each positive's
      predicted box with its ground truth).
    * A call that sees fewer positives than ``avg_factor`` counts (a head calling its loss once
      per FPN level) warns once: each level would be ranked separately.

    Examples
    --------
    >>> import torch
    >>> from rankref.torch._registry import MMDetRankSortLoss
    >>> loss = MMDetRankSortLoss()
    >>> try:
    ...     loss(torch.zeros(3, 2), torch.tensor([0, 2, 2]))     # labels only
    ... except ValueError as e:
    ...     print(str(e)[:53])
    RankRefRankSortLoss needs the target (labels, scores)
    """

    def forward(self, pred, target, weight=None, avg_factor=None, reduction_override=None):
        if (isinstance(target, torch.Tensor) and isinstance(pred, torch.Tensor)
                and pred.dim() == 2 and target.dim() == 1 and not target.is_floating_point()):
            raise ValueError(
                f"RankRefRankSortLoss needs the target (labels, scores) of GFL-style heads, but "
                f"this head passed labels only (shape {tuple(target.shape)}), as ATSSHead, "
                f"RetinaHead, FCOSHead and BBoxHead do. RS sorts the positives by their quality, "
                f"the IoU of each positive's predicted box with its ground truth, which only the "
                f"head can compute: use a head of rankref.torch.mmdet that computes it "
                f"({_HEADS_WITH_QUALITIES}), its RankSortQualities mixin for another "
                f"head, or RankRefAPLoss, which needs the labels only.")
        if isinstance(target, (tuple, list)) and len(target) == 2:
            _warn_per_level(self, pred, target[0], weight, avg_factor)
        return super().forward(pred, target, weight, avg_factor, reduction_override)


class MMDetAPLoss(APLoss):
    """:class:`~rankref.torch.APLoss` as mmdetection configs build it (``type="RankRefAPLoss"``):
    the same loss; a call that sees fewer positives than ``avg_factor`` counts (a head calling
    its loss once per FPN level) warns once."""

    def forward(self, pred, target, weight=None, avg_factor=None, reduction_override=None):
        labels = target[0] if isinstance(target, (tuple, list)) and len(target) else target
        if isinstance(labels, torch.Tensor) and labels.dim() == 1:
            _warn_per_level(self, pred, labels, weight, avg_factor)
        return super().forward(pred, target, weight, avg_factor, reduction_override)


class MMDetGAPLoss(_SigmoidBBoxHeadHooks, GAPLoss):
    """:class:`~rankref.torch.GAPLoss` as mmdetection configs build it (``type="RankRefGAPLoss"``),
    with the ``BBoxHead`` hooks: a stock ``Shared2FCBBoxHead`` then builds C sigmoid outputs
    (no background column), scores RoIs with a sigmoid at test time and logs ``acc_fg``.  Only
    ``loss_cls`` changes in the config:
    ``loss_cls=dict(type="RankRefGAPLoss", num_classes=C, loss_weight=0.1)``.

    Examples
    --------
    >>> import torch
    >>> from rankref.torch._registry import MMDetGAPLoss
    >>> loss = MMDetGAPLoss(num_classes=3)
    >>> loss.get_cls_channels(3)
    3
    >>> loss.get_activation(torch.zeros(2, 3))
    tensor([[0.5000, 0.5000, 0.5000, 0.0000],
            [0.5000, 0.5000, 0.5000, 0.0000]])
    """


class MMDetRoIRankSortLoss(_SigmoidBBoxHeadHooks, MMDetRankSortLoss):
    """``MMDetRankSortLoss`` with the ``BBoxHead`` hooks of ``MMDetGAPLoss``, for the
    RS RoI head ``RankRefRSShared2FCBBoxHead`` (``type="RankRefRoIRankSortLoss"``): C sigmoid
    outputs, sigmoid scores at test time.  In a stock ``BBoxHead`` (labels only) it raises the
    error of ``MMDetRankSortLoss``."""


LOSSES = {
    "RankSortLoss": MMDetRankSortLoss,
    "APLoss": MMDetAPLoss,
    "GAPLoss": MMDetGAPLoss,
    "RoIRankSortLoss": MMDetRoIRankSortLoss,
    "BalancedL1Loss": BalancedL1Loss,
    "LGRCrossEntropyLoss": LGRCrossEntropyLoss,
}


def register_mmdet(registry=None, prefix="RankRef"):
    """Register rankref's loss modules in mmdetection's ``MODELS`` registry (or ``registry``).

    The names are ``prefix`` + ``RankSortLoss``, ``APLoss``, ``GAPLoss``, ``RoIRankSortLoss``,
    ``BalancedL1Loss`` and ``LGRCrossEntropyLoss`` (``RankRefRankSortLoss``, ... by default; the
    prefix keeps them apart from mmdetection's own ``BalancedL1Loss``).  The ranking losses are
    registered as their mmdetection forms (``MMDetRankSortLoss``, ``MMDetAPLoss``,
    ``MMDetGAPLoss``, ``MMDetRoIRankSortLoss``: subclasses with the checks and hooks
    of the mmdetection call).  Calling it again is harmless.  Then a config selects a loss by
    name, e.g. ``loss_cls=dict(type="RankRefRankSortLoss", use_sigmoid=True, loss_weight=1.0)``.
    ``import rankref.torch.mmdet`` calls it and registers the heads as well.

    Parameters
    ----------
    registry : mmengine Registry, optional
        Default: ``mmdet.registry.MODELS`` (mmdetection 3.x must then be installed).
    prefix : str, default "RankRef"

    Returns
    -------
    dict
        The registered names and classes.

    Raises
    ------
    ValueError
        When a name is already taken by another class in ``registry`` (choose another
        ``prefix``).

    Examples
    --------
    With mmengine installed (``pip install ".[test]"`` has it; the doctest is skipped without):

    >>> import pytest; _ = pytest.importorskip("mmengine")
    >>> from mmengine.registry import Registry
    >>> import rankref.torch as rt
    >>> MODELS = Registry("model", scope="demo")
    >>> sorted(rt.register_mmdet(MODELS))  # doctest: +NORMALIZE_WHITESPACE
    ['RankRefAPLoss', 'RankRefBalancedL1Loss', 'RankRefGAPLoss', 'RankRefLGRCrossEntropyLoss',
     'RankRefRankSortLoss', 'RankRefRoIRankSortLoss']
    >>> MODELS.build(dict(type="RankRefRankSortLoss", loss_weight=1.0))
    MMDetRankSortLoss(delta=0.5, method='bucketed', loss_weight=1.0, gather=False)
    """
    if not isinstance(prefix, str) or not (prefix == "" or prefix.isidentifier()):
        raise ValueError(f"prefix must be a string usable in a class name, got {prefix!r}.")
    if registry is None:
        try:
            from mmdet.registry import MODELS as registry
        except ImportError as exc:
            raise ImportError(
                "register_mmdet() without a registry needs mmdetection 3.x (mmdet.registry."
                f"MODELS); pass an mmengine Registry instead ({exc})."
            ) from exc
    for attr in ("get", "register_module"):
        if not callable(getattr(registry, attr, None)):
            raise TypeError(f"registry must be an mmengine Registry, got "
                            f"{type(registry).__name__}.")
    return register_classes(registry, {prefix + name: cls for name, cls in LOSSES.items()},
                            "register_mmdet")


def register_classes(registry, classes, caller):
    """Register ``{name: class}`` in ``registry``; a name taken by another class raises (before
    anything is registered)."""
    table = getattr(registry, "module_dict", {})
    for name, cls in classes.items():
        current = table.get(name)
        if current is not None and current is not cls:
            raise ValueError(
                f"{name} is already registered in {registry!r} as {current!r}; pass another "
                f"prefix to {caller}."
            )
    for name, cls in classes.items():
        if table.get(name) is None:
            registry.register_module(name=name, module=cls)
    return dict(classes)
