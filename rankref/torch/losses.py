"""The loss modules of rankref.torch, with mmdetection 3.x call conventions.

Every module's ``forward`` takes ``(pred, target, weight=None, avg_factor=None,
reduction_override=None)``, as mmdetection's losses do; the ranking modules also keep the
rankref call ``loss(logits, targets)``.  Settings are checked when set (at construction and on
every later assignment), and a call checks all its inputs before anything is computed or stored.
"""
import warnings

import numpy as np
import torch
from torch import nn

import rankref as _rr

from . import _bridge, _checks, _distributed
from . import functional as F

__all__ = ["RankSortLoss", "APLoss", "GAPLoss", "BalancedL1Loss", "LGRCrossEntropyLoss"]


class _Setting:
    """A module setting validated on every assignment by ``check(value, name)``."""

    def __init__(self, check):
        self.check = check

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return obj.__dict__["_setting_" + self.name]

    def __set__(self, obj, value):
        obj.__dict__["_setting_" + self.name] = self.check(value, self.name)


def _delta(v, name):
    return _checks.check_delta(v, name)


def _weight(v, name):
    return _checks.loss_weight(v, name)


def _nonnegative(v, name):
    return _checks.real(v, name, low=0.0)


def _positive(v, name):
    return _checks.real(v, name, low=0.0, low_open=True)


def _method(cls, *allowed):
    return lambda v, name: _checks.check_method(v, allowed, cls)


def _config(module, names):
    return ", ".join(f"{n}={getattr(module, n)!r}" for n in names)


def _mmdet_pred(pred):
    x = _checks.floating(pred, "pred")
    if x.dim() != 2:
        raise ValueError(
            f"pred must be 2-D [anchors, classes] for the mmdetection call (flatten the levels "
            f"and images of the head first: cls_score.permute(0, 2, 3, 1).reshape(-1, C)); got "
            f"shape {tuple(x.shape)}."
        )
    return x


def _mmdet_labels(labels, x, name):
    y = _checks.labels(labels, name)
    _checks.same_device(x, "pred", y, name)
    if y.shape != x.shape[:1]:
        raise ValueError(
            f"{name} must have shape ({x.shape[0]},), one class index per row of pred "
            f"{tuple(x.shape)}; got {tuple(y.shape)}."
        )
    return y


def _mmdet_pair(pred, target, cls):
    """(pred, [N, C] RS targets) from the QualityFocalLoss-style target ``(labels, scores)``."""
    x = _mmdet_pred(pred)
    if len(target) != 2:
        raise ValueError(
            f"target of the mmdetection call of {cls} must be the pair (labels, scores) of "
            f"GFL-style heads (QualityFocalLoss convention), got a sequence of {len(target)}."
        )
    y = _mmdet_labels(target[0], x, "target[0] (labels)")
    q = _checks.floating(target[1], "target[1] (scores)")
    _checks.same_device(x, "pred", q, "target[1] (scores)")
    if q.shape != x.shape[:1]:
        raise ValueError(
            f"target[1] (scores) must have shape ({x.shape[0]},), one IoU quality per row of "
            f"pred {tuple(x.shape)}; got {tuple(q.shape)}."
        )
    return x, _bridge.class_targets_op(y, q, x.shape[1])


def _check_override(reduction_override, cls):
    if reduction_override is not None:
        _checks.reduction(reduction_override, ("mean",), cls, "reduction_override")


class RankSortLoss(nn.Module):
    r"""Rank & Sort loss (Oksuz, Cam, Akbas, Kalkan, ICCV 2021) as a module, exact for every
    delta.

    See :func:`rankref.rank_sort_loss` for the maths.  Two calls:

    * **rankref call** ``loss(logits, targets)``: ``targets`` has the logits' shape (-1
      ignored, 0 negative, the IoU in (0, 1] positive).  Returns the pair
      ``(loss_weight * ranking, loss_weight * sorting)``, **each output with its own
      gradient**.
    * **mmdetection call** ``loss(pred, (labels, scores), weight=None, avg_factor=None,
      reduction_override=None)``, the QualityFocalLoss convention of GFL-style heads: ``pred``
      is ``[anchors, classes]`` (the logits of *all* levels and images: a ranking loss ranks
      them together), ``labels`` ``[anchors]`` in ``[0, C]`` with C the background, ``scores``
      ``[anchors]`` the IoU of each anchor's predicted box with its ground truth.  Entry
      ``(i, labels[i])`` of a foreground anchor gets target ``scores[i]``, every other entry 0.
      Anchors with ``weight == 0`` are ignored; ``avg_factor``, when given, replaces ``|P|``
      as the normaliser of both terms (the ``loss_normalizer`` of later RS ports, for heads
      that all-reduce their positive count); ``reduction_override`` may be None or
      ``"mean"``.  Returns one scalar, ``loss_weight * (ranking + sorting)``.

    A foreground anchor whose quality is 0 (its predicted box does not overlap its ground
    truth) gets target 0, so it is ranked as a *negative* of its class: it is pushed below the
    positives and receives no sorting target.  This is what the official RS heads do (only
    IoU > 0 is positive), and what QualityFocalLoss does with a soft target of 0.

    .. rubric:: Shape

    rankref call ``loss(logits, targets, weight=None, avg_factor=None)``:

    * ``logits``: any shape, e.g. ``(N,)`` or ``(A, C)``, ranked as one flat vector.
    * ``targets``: the shape of ``logits``.
    * ``weight`` (optional): the shape of ``logits`` (one 0 or 1 per entry), or ``(A,)`` (one
      per row) for 2-D logits ``(A, C)``.
    * ``avg_factor`` (optional): a Python number or a one-element tensor (``()`` or ``(1,)``).
    * Output: the pair ``(ranking, sorting)`` of 0-d tensors (shape ``()``).

    mmdetection call ``loss(pred, (labels, scores), weight=None, avg_factor=None)``:

    * ``pred``: ``(A, C)``, A anchors (all levels and images together), C classes (no
      background column).
    * ``labels``: ``(A,)``, integers in ``[0, C]`` (C is the background).
    * ``scores``: ``(A,)``, the IoU quality of each anchor's box, in [0, 1].
    * ``weight`` (optional): ``(A,)`` (one per anchor) or ``(A, C)`` (one per entry), 0 or 1.
    * ``avg_factor`` (optional): a Python number or a one-element tensor.
    * Output: a 0-d tensor (shape ``()``).

    Parameters
    ----------
    delta : float >= 0, default 0.5
        Half-width of the relaxed step :math:`H_\delta`; 0 is the exact step.
    method : {"bucketed", "dense", "brs"}, default "bucketed"
        ``"bucketed"``: exact, O(N + P log P); ``"dense"``: the O(P N) oracle; ``"brs"``:
        the published Bucketed RS (exact at ``delta = 0`` only).
    loss_weight : float >= 0, default 1.0
        Multiplies both terms (and their gradients).
    gather : bool, default False
        Rank the logits of every process of the default process group together.  The loss is
        that of the concatenated batch on every rank, and each rank receives the gradient of its
        own entries times the world size, so DDP's gradient averaging gives the one-process
        gradient: training does not depend on the number of GPUs (the official loss ranks per
        GPU).  Batches may differ in size and target dtype across ranks.  Without an initialised
        process group of more than one process the call ranks this process's batch, the whole
        batch (no warning).  With ``avg_factor``, pass the
        global normaliser (e.g. the all-reduced *sum* of positives, not mmdetection's
        per-GPU mean).
    use_sigmoid : True
        mmdetection reads it to build a sigmoid head (C outputs, no background column).
        ``False`` raises a ValueError.
    reduction : "mean"
        Accepted for mmdetection configs; a ranking loss has no other reduction.

    Notes
    -----
    *Where it runs*: CPU tensors are computed by :mod:`rankref`, tensors on a GPU by
    :mod:`rankref_gpu` on the tensors themselves (``RANKREF_TORCH_BACKEND``, see
    :mod:`rankref.torch`).  Under ``torch.no_grad``/``inference_mode``, or when ``pred`` does
    not require grad, only the values are computed.  The loss is a ``torch.library`` custom
    operator: ``torch.compile(fullgraph=True)`` traces it without a graph break.

    *Gradient layout*: the official ``RankSort`` backward puts ``ranking_grad + sorting_grad``
    on the ranking output and nothing on the sorting one; here each output carries its own,
    which agrees whenever both are weighted equally (always, in the mmdetection call).  The
    gradients are error-driven updates, not derivatives: ``gradcheck`` does not apply.

    *float16*: the updates are about ``1/|P|`` times a ranking error, so many fall below
    float16's smallest subnormal (6e-8): use a ``torch.amp.GradScaler`` (loss scaling), which
    recovers the float32 gradients.

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> loss = rt.RankSortLoss(delta=0.5)
    >>> logits = torch.randn(100, 4, requires_grad=True)
    >>> labels = torch.full((100,), 4)                     # background
    >>> labels[:5] = torch.tensor([0, 1, 2, 3, 0])
    >>> scores = torch.zeros(100); scores[:5] = 0.8        # IoU of the positives
    >>> loss(logits, (labels, scores)).backward()          # mmdetection call
    >>> logits.grad.shape
    torch.Size([100, 4])
    >>> ranking, sorting = loss(logits, torch.zeros(100, 4))  # rankref call
    >>> ranking.item(), sorting.item()                     # no positive: both 0
    (0.0, 0.0)
    """

    delta = _Setting(_delta)
    method = _Setting(_method("RankSortLoss", "bucketed", "dense", "brs"))
    loss_weight = _Setting(_weight)
    gather = _Setting(_checks.flag)

    def __init__(self, delta=0.5, method="bucketed", loss_weight=1.0, gather=False,
                 use_sigmoid=True, reduction="mean"):
        super().__init__()
        self.delta = delta
        self.method = method
        self.loss_weight = loss_weight
        self.gather = gather
        self.use_sigmoid = _checks.use_sigmoid(use_sigmoid, "RankSortLoss")
        self.reduction = _checks.reduction(reduction, ("mean",), "RankSortLoss")

    def forward(self, pred, target, weight=None, avg_factor=None, reduction_override=None):
        """The rankref call ``(logits, targets) -> (ranking, sorting)`` or the mmdetection call
        ``(pred, (labels, scores), weight, avg_factor, reduction_override) -> loss``.

        Parameters
        ----------
        pred : floating tensor
            Logits; ``[anchors, classes]`` for the mmdetection call.
        target : tensor of pred's shape, or the pair ``(labels, scores)``
            RS targets (-1 ignored, 0 negative, IoU in (0, 1] positive), or mmdetection's
            labels ``[anchors]`` in ``[0, C]`` and IoU qualities ``[anchors]`` in [0, 1].
        weight : tensor, optional
            0 (ignored) or 1, one per anchor or one per entry.
        avg_factor : float or one-element tensor > 0, optional
            Replaces the number of positives as the normaliser.
        reduction_override : None or "mean"

        Returns
        -------
        ``(ranking, sorting)`` for a tensor ``target``; ``loss_weight * (ranking + sorting)``
        for a pair.
        """
        _check_override(reduction_override, "RankSortLoss")
        if isinstance(target, (tuple, list)):
            x, t = _mmdet_pair(pred, target, "RankSortLoss")
            r, s = F.rank_sort_loss(x, t, self.delta, self.method, self.gather, weight=weight,
                                    avg_factor=avg_factor)
            return self.loss_weight * (r + s)
        r, s = F.rank_sort_loss(pred, target, self.delta, self.method, self.gather,
                                weight=weight, avg_factor=avg_factor)
        return self.loss_weight * r, self.loss_weight * s

    def extra_repr(self):
        return _config(self, ("delta", "method", "loss_weight", "gather"))


class APLoss(nn.Module):
    r"""AP Loss (Chen et al., CVPR 2019) as a module; returns ``loss_weight * loss``.

    See :func:`rankref.ap_loss` for the maths.  Two calls, both returning a scalar:

    * **rankref call** ``loss(logits, targets)``: ``targets`` has the logits' shape, values -1
      (ignored), 0 or 1.
    * **mmdetection call** ``loss(pred, labels, weight=None, avg_factor=None,
      reduction_override=None)``: ``pred`` ``[anchors, classes]`` (all levels and images
      together), ``labels`` ``[anchors]`` class indices in ``[0, C]`` with C the background
      (RetinaNet-style heads); entry ``(i, labels[i])`` of a foreground anchor is the positive.
      The pair ``(labels, scores)`` of GFL-style heads is accepted too (the scores are not
      used: AP Loss has binary targets).  Anchors with ``weight == 0`` are ignored;
      ``avg_factor`` replaces ``|P|`` as the normaliser.

    .. rubric:: Shape

    rankref call ``loss(logits, targets, weight=None, avg_factor=None)``:

    * ``logits``: any shape, e.g. ``(N,)`` or ``(A, C)``, ranked as one flat vector.
    * ``targets``: the shape of ``logits``, values -1, 0 or 1.
    * ``weight`` (optional): the shape of ``logits`` (one 0 or 1 per entry), or ``(A,)`` (one
      per row) for 2-D logits ``(A, C)``.
    * ``avg_factor`` (optional): a Python number or a one-element tensor (``()`` or ``(1,)``).
    * Output: a 0-d tensor (shape ``()``).

    mmdetection call ``loss(pred, labels, weight=None, avg_factor=None)``:

    * ``pred``: ``(A, C)``, A anchors (all levels and images together), C classes (no
      background column).
    * ``labels``: ``(A,)``, integers in ``[0, C]`` (C is the background); or the pair
      ``(labels, scores)`` with ``scores`` ``(A,)`` (not used).
    * ``weight`` (optional): ``(A,)`` (one per anchor) or ``(A, C)`` (one per entry), 0 or 1.
    * ``avg_factor`` (optional): a Python number or a one-element tensor.
    * Output: a 0-d tensor (shape ``()``).

    Parameters
    ----------
    delta : float >= 0, default 1.0
        Half-width of the relaxed step (the official value is 1).
    interpolate : bool, default True
        Interpolated precision (a running maximum), as in the official code.
    method : {"bucketed", "dense"}, default "bucketed"
    loss_weight : float >= 0, default 1.0
    gather : bool, default False
        Rank the logits of every process together, as :class:`RankSortLoss` does.  Without it,
        DDP trains on per-GPU rankings, whose averaged gradients differ from the one-process
        gradient.
    use_sigmoid : True
        ``False`` raises a ValueError.
    reduction : "mean"

    Notes
    -----
    Runs in :mod:`rankref` for CPU tensors and :mod:`rankref_gpu` for GPU tensors (see
    :mod:`rankref.torch`); values only under ``no_grad``; a custom operator for
    ``torch.compile``.  The updates are error-driven (``gradcheck`` does not apply), and in
    float16 many underflow without loss scaling: use ``torch.amp.GradScaler``.

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> loss = rt.APLoss()
    >>> logits = torch.tensor([[2.0, 0.0], [0.5, 1.0], [-1.0, 0.3]], requires_grad=True)
    >>> value = loss(logits, torch.tensor([0, 1, 2]))  # mmdetection call: label 2 = background
    >>> round(value.item(), 6)
    0.083333
    >>> value.backward()
    >>> loss(logits, torch.tensor([[1, 0], [0, 1], [0, 0]]))  # rankref call, the same targets
    tensor(0.0833, grad_fn=<MulBackward0>)
    """

    delta = _Setting(_delta)
    interpolate = _Setting(_checks.flag)
    method = _Setting(_method("APLoss", "bucketed", "dense"))
    loss_weight = _Setting(_weight)
    gather = _Setting(_checks.flag)

    def __init__(self, delta=1.0, interpolate=True, method="bucketed", loss_weight=1.0,
                 gather=False, use_sigmoid=True, reduction="mean"):
        super().__init__()
        self.delta = delta
        self.interpolate = interpolate
        self.method = method
        self.loss_weight = loss_weight
        self.gather = gather
        self.use_sigmoid = _checks.use_sigmoid(use_sigmoid, "APLoss")
        self.reduction = _checks.reduction(reduction, ("mean",), "APLoss")

    def forward(self, pred, target, weight=None, avg_factor=None, reduction_override=None):
        """``loss_weight * AP loss`` of ``pred`` for binary targets or mmdetection labels.

        Parameters
        ----------
        pred : floating tensor
            Logits; ``[anchors, classes]`` for the mmdetection call.
        target : tensor or tuple
            Binary targets of pred's shape, labels ``[anchors]`` in ``[0, C]``, or the pair
            ``(labels, scores)``.
        weight : tensor, optional
            0 (ignored) or 1, one per anchor or per entry.
        avg_factor : float or one-element tensor > 0, optional
        reduction_override : None or "mean"

        Returns
        -------
        loss : 0-d tensor
        """
        _check_override(reduction_override, "APLoss")
        if isinstance(target, (tuple, list)):
            if len(target) not in (1, 2):
                raise ValueError(
                    f"target of APLoss must be labels or the pair (labels, scores), got a "
                    f"sequence of {len(target)}."
                )
            target = target[0]
            mmdet = True
        else:
            t = _checks.tensor(target, "target")
            mmdet = (isinstance(pred, torch.Tensor) and pred.dim() == 2 and t.dim() == 1)
        if mmdet:
            x = _mmdet_pred(pred)
            y = _mmdet_labels(target, x, "target (labels)")
            target, pred = _bridge.class_targets_op(y, None, x.shape[1]), x
        loss = F.ap_loss(pred, target, self.delta, self.interpolate, self.method, self.gather,
                         weight=weight, avg_factor=avg_factor)
        return self.loss_weight * loss

    def extra_repr(self):
        return _config(self, ("delta", "interpolate", "method", "loss_weight", "gather"))


def _elementwise_checks(weight, shape, reduction, avg_factor, cls):
    """Check ``weight`` (broadcasting to the loss ``shape``) and ``avg_factor`` before anything
    is computed; returns the checked weight tensor (or None)."""
    w = None
    if weight is not None:
        w = _checks.tensor(weight, "weight")
        if w.dtype not in _checks.FLOATS + _checks.INTEGERS + (torch.bool,):
            raise ValueError(f"weight must be a real tensor, got dtype {w.dtype}.")
        try:
            out = torch.broadcast_shapes(w.shape, shape)
        except RuntimeError:
            out = None
        if out != torch.Size(shape):
            raise ValueError(f"weight of shape {tuple(w.shape)} does not broadcast to the loss "
                             f"of shape {tuple(shape)}.")
        if w.is_floating_point() and not torch.compiler.is_compiling():
            bad = _bridge._first(~torch.isfinite(w.detach()))
            if bad >= 0:
                raise ValueError(f"weight must be finite, but flat entry {bad} is "
                                 f"{float(w.detach().reshape(-1)[bad])!r}.")
    if avg_factor is not None and reduction == "sum":
        raise ValueError(f"avg_factor cannot be used with reduction='sum' in {cls} (it divides "
                         f"the sum: use reduction='mean').")
    return w


def _early_avg_factor(avg_factor, like):
    """Check avg_factor (its value too, when it is a tensor) before anything is computed."""
    avg_t, _ = _checks.avg_factor(avg_factor, like)
    if avg_t is not None and not torch.compiler.is_compiling():
        _checks.avg_factor_value(avg_t)


def _elementwise_reduce(loss, weight, reduction, avg_factor, cls):
    """mmdetection's ``weight_reduce_loss``: weight, then mean, sum, or sum / avg_factor.
    The mean of an empty batch is 0 (as the ranking losses give), not NaN."""
    if weight is not None:
        loss = loss * weight.to(loss.dtype)
    if avg_factor is None:
        if reduction == "mean":
            return loss.mean() if loss.numel() else loss.sum()
        return loss.sum() if reduction == "sum" else loss
    avg_t, avg_n = _checks.avg_factor(avg_factor, loss)
    if avg_t is not None:
        if not torch.compiler.is_compiling():
            _checks.avg_factor_value(avg_t)
        avg_n = avg_t.to(loss.dtype)
    return loss.sum() / avg_n if reduction == "mean" else loss


def _finite_output(out, cls, inputs):
    """Refuse a weighted, reduced loss whose exact value is beyond its dtype's range (a sum of
    large losses, or large weights): it would be inf.  One host read (skipped when compiling)."""
    if out.numel() and not torch.compiler.is_compiling() and not bool(torch.isfinite(out).all()):
        raise ValueError(
            f"{cls}: the weighted, reduced loss is beyond {out.dtype}'s range (its exact value "
            f"overflows); scale {inputs}, weight or loss_weight down, or pass float64 tensors."
        )
    return out


class BalancedL1Loss(nn.Module):
    r"""Balanced L1 loss (Libra R-CNN, Eqs. 8-10) as a module, in mmdetection's form.

    ``forward(pred, target, weight=None, avg_factor=None, reduction_override=None)`` computes the
    elementwise loss of :func:`rankref.balanced_l1_loss` with its exact gradient, multiplies it
    by ``weight`` (broadcast), and reduces it as mmdetection's ``weight_reduce_loss`` does:
    ``"mean"`` (or ``sum / avg_factor`` when ``avg_factor`` is given), ``"sum"`` or ``"none"``.
    The result is multiplied by ``loss_weight``.

    .. rubric:: Shape

    * ``pred``: any shape, e.g. ``(n, 4)`` box regression deltas.
    * ``target``: the shape of ``pred``.
    * ``weight`` (optional): any shape that broadcasts to ``pred``'s, e.g. ``(n, 4)`` or
      ``(n, 1)``.
    * ``avg_factor`` (optional): a Python number or a one-element tensor (``()`` or ``(1,)``).
    * Output: the shape of ``pred`` for ``reduction="none"``, a 0-d tensor (shape ``()``) for
      ``"mean"`` and ``"sum"``.

    Parameters
    ----------
    alpha : float > 0, default 0.5
    gamma : float > 0, default 1.5
    beta : float > 0, default 1.0
    reduction : {"mean", "sum", "none"}, default "mean"
    loss_weight : float >= 0, default 1.0

    Notes
    -----
    mmdetection adds float32's eps to ``avg_factor``; here ``avg_factor`` must be > 0 and is
    used as given.  Runs in :mod:`rankref` (CPU) or :mod:`rankref_gpu` (GPU).

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> loss = rt.BalancedL1Loss(alpha=0.5, gamma=1.5, beta=1.0)
    >>> pred = torch.tensor([[0.0, 0.5], [2.0, 0.1]], requires_grad=True)
    >>> value = loss(pred, torch.zeros(2, 2))  # the mean of the four elementwise losses
    >>> round(value.item(), 4)
    0.7526
    >>> value.backward()
    """

    alpha = _Setting(_positive)
    gamma = _Setting(_positive)
    beta = _Setting(_positive)
    loss_weight = _Setting(_weight)

    def __init__(self, alpha=0.5, gamma=1.5, beta=1.0, reduction="mean", loss_weight=1.0):
        super().__init__()
        self.alpha, self.gamma, self.beta = alpha, gamma, beta
        self.reduction = _checks.reduction(reduction, ("mean", "sum", "none"), "BalancedL1Loss")
        self.loss_weight = loss_weight

    def forward(self, pred, target, weight=None, avg_factor=None, reduction_override=None):
        """Weighted, reduced balanced L1 loss of ``pred`` against ``target`` (same shape)."""
        red = self.reduction if reduction_override is None else _checks.reduction(
            reduction_override, ("mean", "sum", "none"), "BalancedL1Loss", "reduction_override")
        p = _checks.floating(pred, "pred")
        w = _elementwise_checks(weight, p.shape, red, avg_factor, "BalancedL1Loss")
        _early_avg_factor(avg_factor, p)
        loss = F.balanced_l1_loss(pred, target, self.alpha, self.gamma, self.beta)
        return _finite_output(self.loss_weight * _elementwise_reduce(
            loss, w, red, avg_factor, "BalancedL1Loss"), "BalancedL1Loss", "pred and target")

    def extra_repr(self):
        return _config(self, ("alpha", "gamma", "beta", "reduction", "loss_weight"))


class LGRCrossEntropyLoss(nn.Module):
    r"""Softmax cross-entropy with logarithmic gradient re-weighting (Libra R-CNN, Eq. 19), as a
    module in mmdetection's form.

    ``forward(cls_score, label, weight=None, avg_factor=None, reduction_override=None)``:
    ``cls_score`` ``[n, K]`` softmax logits (K = C + 1, the background column included, as
    mmdetection's softmax heads have), ``label`` ``[n]`` in ``[0, K)`` (-1 ignored).  The per-row
    loss of :func:`rankref.lgr_cross_entropy` is weighted and reduced as in mmdetection, then
    multiplied by ``loss_weight``.

    .. rubric:: Shape

    * ``cls_score``: ``(n, K)``, n RoIs, K = C + 1 softmax columns (the background included).
    * ``label``: ``(n,)``, integers in ``[0, K)`` (-1 ignored).
    * ``weight`` (optional): any shape that broadcasts to ``(n,)``, e.g. ``(n,)``.
    * ``avg_factor`` (optional): a Python number or a one-element tensor (``()`` or ``(1,)``).
    * Output: ``(n,)`` for ``reduction="none"``, a 0-d tensor (shape ``()``) for ``"mean"`` and
      ``"sum"``.

    Parameters
    ----------
    alpha : float > 0, default 0.5
    gamma : float > 0, default 1.0
    reduction : {"mean", "sum", "none"}, default "mean"
    loss_weight : float >= 0, default 1.0
    use_sigmoid : False
        A softmax loss: mmdetection then builds a head with C + 1 outputs.  ``True`` raises a
        ValueError.

    Notes
    -----
    Runs in :mod:`rankref` (CPU) or :mod:`rankref_gpu` (GPU); the gradient is the exact one of
    :func:`rankref.lgr_cross_entropy` (the LGR weight is detached).

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> loss = rt.LGRCrossEntropyLoss(alpha=0.5, gamma=1.0)
    >>> cls_score = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], requires_grad=True)
    >>> value = loss(cls_score, torch.tensor([0, 2]))  # label 2: the background column
    >>> round(value.item(), 4)
    1.0729
    >>> value.backward()
    """

    alpha = _Setting(_positive)
    gamma = _Setting(_positive)
    loss_weight = _Setting(_weight)

    def __init__(self, alpha=0.5, gamma=1.0, reduction="mean", loss_weight=1.0,
                 use_sigmoid=False):
        super().__init__()
        self.alpha, self.gamma = alpha, gamma
        self.reduction = _checks.reduction(reduction, ("mean", "sum", "none"),
                                           "LGRCrossEntropyLoss")
        self.loss_weight = loss_weight
        if use_sigmoid is not False:
            raise ValueError(
                f"use_sigmoid must be False for LGRCrossEntropyLoss (a softmax cross-entropy "
                f"over C + 1 columns), got {use_sigmoid!r}."
            )
        self.use_sigmoid = False

    def forward(self, cls_score, label, weight=None, avg_factor=None, reduction_override=None):
        """Weighted, reduced LGR cross-entropy of the rows of ``cls_score``."""
        red = self.reduction if reduction_override is None else _checks.reduction(
            reduction_override, ("mean", "sum", "none"), "LGRCrossEntropyLoss",
            "reduction_override")
        z = _checks.floating(cls_score, "cls_score")
        y = _checks.labels(label, "label")
        if z.dim() != 2 or z.shape[1] < 1:
            raise ValueError(f"cls_score must be 2-D [n, K] (K = C + 1 softmax columns, the "
                             f"background included), got shape {tuple(z.shape)}.")
        if y.shape != z.shape[:1]:
            raise ValueError(f"label must have shape ({z.shape[0]},), one class per row of "
                             f"cls_score; got {tuple(y.shape)}.")
        w = _elementwise_checks(weight, z.shape[:1], red, avg_factor, "LGRCrossEntropyLoss")
        _early_avg_factor(avg_factor, z)
        loss = F.lgr_cross_entropy(cls_score, label, self.alpha, self.gamma)
        return _finite_output(self.loss_weight * _elementwise_reduce(
            loss, w, red, avg_factor, "LGRCrossEntropyLoss"), "LGRCrossEntropyLoss",
            "cls_score")

    def extra_repr(self):
        return _config(self, ("alpha", "gamma", "reduction", "loss_weight"))


_MAX_CLASSES = _rr.gap.MAX_CLASSES  # as rankref.ClassCounts (8 bytes of counts per class)
_MAX_COUNT = 2**53  # counts stay exact in the float64 arithmetic of omega


class GAPLoss(nn.Module):
    r"""GAP loss of ROG (Zhang et al., ICCV 2023) with its online class statistics.

    ``forward(pred, target, weight=None, avg_factor=None, reduction_override=None)`` — the
    rankref call ``loss(scores, labels)`` and the mmdetection call of a bbox head are the same:
    ``pred`` ``[n, C]`` RoI logits (no background column, ``use_sigmoid=True``), ``target``
    ``[n]`` integer labels in ``[0, C)`` foreground, ``C`` background, ``-1`` ignored; rows with
    ``weight == 0`` are ignored.  Each call checks every input, then adds the batch's foreground
    histogram to ``counts`` and returns ``loss_weight * gap_loss`` computed with the updated
    counts (Eqs. 8-11; see :func:`rankref.gap_loss`).  A call that raises changes nothing.

    .. rubric:: Shape

    * ``pred``: ``(n, C)``, n RoIs, C foreground classes (no background column).
    * ``target``: ``(n,)``, integers in ``[-1, C]`` (C the background, -1 ignored).
    * ``weight`` (optional): ``(n,)``, one 0 or 1 per RoI.
    * ``avg_factor`` (optional, not used): a Python number or a one-element tensor.
    * Output: a 0-d tensor (shape ``()``).
    * The ``counts`` buffer: ``(C,)``.

    Parameters
    ----------
    num_classes : int >= 1
        Number of foreground classes C.
    gamma : float >= 0, default 1.0
        Strength of the global statistic in omega (Eq. 9).
    delta : float >= 0, default 0.5
    loss_weight : float >= 0, default 1.0
        lambda of Eq. 10.  **The official ROG head uses 0.1**
        (``loss_cls=dict(type="RankRefGAPLoss", num_classes=C, loss_weight=0.1)``).
    sync_counts : bool, default True
        All-reduce each batch's histogram when a process group is initialised, so every rank
        holds the same global counts (the official code keeps them per GPU).
    gather : bool, default False
        Rank the RoIs of every process together, as :class:`RankSortLoss` does.
    method : {"bucketed", "dense"}, default "bucketed"
    exclude_foreground : bool, default True
        False is the "Excl. FG" ablation (other classes' positives count as negatives).
    use_sigmoid : True
        ``False`` raises a ValueError.
    reduction : "mean"
    lam : float, optional
        Deprecated name of ``loss_weight``.

    Attributes
    ----------
    counts : int64 buffer ``[C]``
        The class counts, saved in ``state_dict``.  Integer, so ``.half()``,
        ``.to(torch.bfloat16)`` or ``.double()`` of the model leave them exact.
    last_ranking_error : 0-d tensor or None
        The unweighted ranking error of the last call (the value the official code logs).

    Notes
    -----
    ``avg_factor`` is accepted for the mmdetection call and checked, but not used: GAP
    normalises per class (Eq. 8), as the official head does.  Runs in :mod:`rankref` (CPU) or
    :mod:`rankref_gpu` (GPU); values only under ``no_grad`` (the counts are still updated);
    a custom operator for ``torch.compile``.  In float16, train with loss scaling
    (``torch.amp.GradScaler``): small updates underflow without it.

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> loss = rt.GAPLoss(num_classes=2)
    >>> scores = torch.tensor([[1.0, -1.0], [1.2, 0.0], [0.3, 0.8]], requires_grad=True)
    >>> value = loss(scores, torch.tensor([0, 2, 1]))  # label 2: the background
    >>> round(value.item(), 4)
    0.6131
    >>> loss.counts  # this batch's foreground histogram, kept across calls
    tensor([1, 1])
    >>> value.backward()
    """

    gamma = _Setting(_nonnegative)
    delta = _Setting(_delta)
    loss_weight = _Setting(_weight)
    sync_counts = _Setting(_checks.flag)
    gather = _Setting(_checks.flag)
    method = _Setting(_method("GAPLoss", "bucketed", "dense"))
    exclude_foreground = _Setting(_checks.flag)

    def __init__(self, num_classes, gamma=1.0, delta=0.5, loss_weight=1.0, sync_counts=True,
                 gather=False, method="bucketed", exclude_foreground=True, use_sigmoid=True,
                 reduction="mean", lam=None):
        super().__init__()
        self.num_classes = _checks.integer(num_classes, "num_classes", 1, _MAX_CLASSES)
        if lam is not None:
            warnings.warn("GAPLoss(lam=...) is deprecated: the weight is now named loss_weight "
                          "(mmdetection's name).", FutureWarning, stacklevel=2)
            lam = _weight(lam, "lam")
            loss_weight = _weight(loss_weight, "loss_weight")
            if loss_weight != 1.0 and loss_weight != lam:
                raise ValueError(f"lam={lam!r} and loss_weight={loss_weight!r} disagree; pass "
                                 f"loss_weight only.")
            loss_weight = lam
        self.gamma = gamma
        self.delta = delta
        self.loss_weight = loss_weight
        self.sync_counts = sync_counts
        self.gather = gather
        self.method = method
        self.exclude_foreground = exclude_foreground
        self.use_sigmoid = _checks.use_sigmoid(use_sigmoid, "GAPLoss")
        self.reduction = _checks.reduction(reduction, ("mean",), "GAPLoss")
        try:
            counts = torch.zeros(self.num_classes, dtype=torch.int64)
        except RuntimeError as exc:
            raise ValueError(f"num_classes={num_classes} is too large to allocate its counts: "
                             f"{exc}") from None
        self.register_buffer("counts", counts)
        self.last_ranking_error = None

    @property
    def class_counts(self):
        """The counts as a :class:`rankref.ClassCounts` (a copy)."""
        cc = _rr.ClassCounts(self.num_classes)
        cc.counts = self.counts.detach().cpu().numpy().astype(np.float64)
        return cc

    def update_counts(self, labels):
        """Add a batch of labels (``[-1, C]``) to the counts without computing the loss
        (all-reduced when ``sync_counts`` and a process group is initialised)."""
        y = _checks.labels(labels, "labels").detach().reshape(-1).to(torch.int64)
        C = self.num_classes
        bad = _bridge._first((y < -1) | (y > C))
        error = None if bad < 0 else (f"labels must be in [-1, {C}], but entry {bad} is "
                                      f"{int(y[bad])}")
        sync = self.sync_counts and _distributed.active()
        if sync:  # every rank raises if one does, before any rank sums
            _distributed.agree(error, y.device)
        elif error is not None:
            raise ValueError(error + ".")
        hist = torch.bincount(y[(y >= 0) & (y < C)], minlength=C)[:C]
        if sync:
            _distributed.all_reduce_sum(hist)
        self._store_counts(self.counts + hist.to(self.counts.device))
        return self

    def _store_counts(self, new):
        with torch.no_grad():
            self.counts.copy_(new)

    def reset_counts(self):
        """Set every count to 0."""
        with torch.no_grad():
            self.counts.zero_()
        return self

    def forward(self, pred, target, weight=None, avg_factor=None, reduction_override=None):
        """``loss_weight * GAP loss`` of the RoI scores ``pred`` ``[n, C]`` with labels
        ``target`` ``[n]``, after adding the batch to the counts.

        Parameters
        ----------
        pred : floating tensor ``[n, C]``
        target : integer tensor ``[n]``
            ``[0, C)`` foreground, ``C`` background, ``-1`` ignored.
        weight : tensor ``[n]``, optional
            0 (row ignored) or 1.
        avg_factor : float or one-element tensor > 0, optional
            Checked and not used (GAP normalises per class).
        reduction_override : None or "mean"

        Returns
        -------
        loss : 0-d tensor
        """
        _check_override(reduction_override, "GAPLoss")
        s, y, w = F._gap_scores_labels(pred, target, weight)
        if s.shape[1] != self.num_classes:
            raise ValueError(
                f"pred has {s.shape[1]} columns but this GAPLoss has num_classes="
                f"{self.num_classes}; pred must be [n, C] without a background column."
            )
        _checks.same_device(s, "pred", self.counts, "the counts buffer (move the module)")
        avg_t, _ = _checks.avg_factor(avg_factor, s)  # checked, not used
        if avg_t is not None and not torch.compiler.is_compiling():
            _checks.avg_factor_value(avg_t)
        loss, err, _, new_counts = _bridge.gap_op(
            s, y, w, self.counts, None, self.delta, self.gamma, self.method,
            self.exclude_foreground, True, self.sync_counts, self.gather, F._needs_grad(s))
        self._store_counts(new_counts)
        self.last_ranking_error = err.detach()
        return self.loss_weight * loss

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        key = prefix + "counts"
        if key in state_dict:
            state_dict[key] = self._checked_counts(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def _checked_counts(self, value):
        """Saved counts as int64: the right shape, finite, >= 0, integral, at most 2**53."""
        C = self.num_classes
        if not isinstance(value, torch.Tensor) or value.dtype not in (
                _checks.FLOATS + _checks.INTEGERS):
            raise ValueError(f"state_dict counts must be a real tensor of shape ({C},), got "
                             f"{type(value).__name__} {getattr(value, 'dtype', '')}.")
        if tuple(value.shape) != (C,):
            raise ValueError(f"state_dict counts has shape {tuple(value.shape)}, but this GAPLoss "
                             f"has num_classes={C}.")
        v = value.detach().cpu().to(torch.float64)
        if not bool(torch.isfinite(v).all()) or bool((v < 0).any()) or \
                bool((v != torch.round(v)).any()) or bool((v > _MAX_COUNT).any()):
            raise ValueError("state_dict counts must be whole numbers in [0, 2**53] (counts of "
                             "sampled labels).")
        return value.detach().to(torch.int64)

    def extra_repr(self):
        return (f"num_classes={self.num_classes}, "
                + _config(self, ("gamma", "delta", "loss_weight", "sync_counts", "gather",
                                 "method", "exclude_foreground")))
