"""rankref's losses and samplers on tensors: each loss returns its value with the error-driven
gradient attached (the POT pattern), through the custom operators of
:mod:`rankref.torch._bridge`.

Under ``torch.no_grad()``, ``torch.inference_mode()``, or when the logits do not require grad,
only the values are computed (``compute_grad=False`` of the backends: no gradient arrays and
no scatter pass).
"""
import numpy as np
import torch

import rankref as _rr
from rankref._validation import to_array

from . import _bridge, _checks

__all__ = [
    "rank_sort_loss",
    "ap_loss",
    "gap_loss",
    "balanced_l1_loss",
    "lgr_cross_entropy",
    "iou_balanced_neg_sample",
    "instance_balanced_pos_sample",
]


def _needs_grad(t):
    return torch.is_grad_enabled() and t.requires_grad


def _check_weight_shape(weight, targets, logits_name="logits"):
    """A 0/1 weight: one per entry of ``targets``, or one per row of a 2-D ``targets``."""
    if weight is None:
        return None
    w = _checks.tensor(weight, "weight")
    _checks.same_device(targets, "targets", w, "weight")
    if w.dtype not in _checks.TARGET_DTYPES:
        raise ValueError(f"weight must be a real tensor, got dtype {w.dtype}.")
    rows = (targets.shape[0],) if targets.dim() == 2 else None
    if w.shape != targets.shape and w.shape != rows:
        allowed = f"{tuple(targets.shape)}" + (f" or {rows}" if rows else "")
        raise ValueError(
            f"weight must have shape {allowed} (one per entry, or one per anchor of an "
            f"[anchors, classes] {logits_name}), got {tuple(w.shape)}."
        )
    return w.detach()


def _ranking_args(logits, targets, delta, method, gather, allowed, func):
    x = _checks.floating(logits, "logits")
    t = _checks.targets(targets, "targets")
    _checks.same_device(x, "logits", t, "targets")
    if t.shape != x.shape:
        raise ValueError(
            f"targets has shape {tuple(t.shape)} but logits has shape {tuple(x.shape)}; pass "
            f"exactly one target per logit."
        )
    return (x, t, _checks.check_delta(delta), _checks.check_method(method, allowed, func),
            _checks.flag(gather, "gather"))


def rank_sort_loss(logits, targets, delta=0.5, method="bucketed", gather=False, *,
                   weight=None, avg_factor=None):
    r"""Rank & Sort loss on tensors: returns ``(ranking_loss, sorting_loss)``.

    See :func:`rankref.rank_sort_loss` for the maths.  **Each output carries its own gradient**,
    so ``w_r * ranking + w_s * sorting`` backpropagates ``w_r * ranking_grad + w_s *
    sorting_grad``.  The official ``RankSort`` puts ``ranking_grad + sorting_grad`` on the
    ranking output (and none on the sorting one); the two agree whenever ``w_r == w_s``.
    The gradients are the error-driven updates of the paper, not derivatives of the values, so
    ``torch.autograd.gradcheck`` does not apply.

    Parameters
    ----------
    logits : floating tensor, any shape
        Ranked as one flat vector (an ``[anchors, classes]`` matrix included).  float16,
        bfloat16, float32 or float64.
    targets : tensor, same shape
        -1 (or any value < 0) ignored, 0 negative, IoU in (0, 1] positive.  Float, integer or
        bool dtype.
    delta : float >= 0, default 0.5
        Half-width of the relaxed step.
    method : {"bucketed", "dense", "brs"}
        As in :func:`rankref.rank_sort_loss`.
    gather : bool, default False
        Rank the logits of every process of the default process group together (see
        :class:`RankSortLoss`).
    weight : tensor, optional
        0 (ignored) or 1 (used), one per entry of ``targets`` or one per row of a 2-D
        ``targets``.
    avg_factor : float or one-element tensor > 0, optional
        Replaces ``|P|``, the number of positives, as the normaliser of both losses and their
        gradients (mmdetection's ``avg_factor``, the ``loss_normalizer`` of later RS ports).

    Returns
    -------
    (ranking_loss, sorting_loss) : 0-d tensors
        float32 (float64 for float64 logits), on the logits' device.

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> logits = torch.tensor([2.0, 1.0, 0.0], requires_grad=True)
    >>> ranking, sorting = rt.rank_sort_loss(logits, torch.tensor([0.9, 0.0, 0.5]), delta=0.0)
    >>> round(ranking.item(), 6)
    0.166667
    >>> (ranking + sorting).backward()
    """
    x, t, d, m, g = _ranking_args(logits, targets, delta, method, gather,
                                  ("bucketed", "dense", "brs"), "rank_sort_loss")
    w = _check_weight_shape(weight, t)
    avg_t, avg_n = _checks.avg_factor(avg_factor, x)
    r, s, _, _ = _bridge.rank_sort_op(x, t, w, avg_t, avg_n, d, m, g, _needs_grad(x))
    return r, s


def ap_loss(logits, targets, delta=1.0, interpolate=True, method="bucketed", gather=False, *,
            weight=None, avg_factor=None):
    r"""AP Loss on tensors (see :func:`rankref.ap_loss`): a 0-d tensor with its gradient.

    Parameters
    ----------
    logits : floating tensor, any shape (ranked as one flat vector)
    targets : tensor, same shape, values in {-1 (ignored), 0, 1}
    delta : float >= 0, default 1.0
    interpolate : bool, default True
    method : {"bucketed", "dense"}
    gather : bool, default False
        Rank the logits of every process together (see :class:`APLoss`).
    weight : tensor, optional
        0 (ignored) or 1, one per entry or one per row of a 2-D ``targets``.
    avg_factor : float or one-element tensor > 0, optional
        Replaces ``|P|`` as the normaliser.

    Returns
    -------
    loss : 0-d tensor
        float32 (float64 for float64 logits), on the logits' device; its backward is the
        error-driven update of :func:`rankref.ap_loss`.

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> logits = torch.tensor([2.0, 1.0, 0.0, -1.0], requires_grad=True)
    >>> loss = rt.ap_loss(logits, torch.tensor([1, 0, 1, 0]), delta=1.0)
    >>> round(loss.item(), 6)
    0.166667
    >>> loss.backward()
    >>> logits.grad  # the negative above a positive is pushed down, that positive up
    tensor([-0.0000,  0.1667, -0.1667,  0.0000])
    """
    x, t, d, m, g = _ranking_args(logits, targets, delta, method, gather, ("bucketed", "dense"),
                                  "ap_loss")
    interpolate = _checks.flag(interpolate, "interpolate")
    w = _check_weight_shape(weight, t)
    avg_t, avg_n = _checks.avg_factor(avg_factor, x)
    loss, _ = _bridge.ap_op(x, t, w, avg_t, avg_n, d, interpolate, m, g, _needs_grad(x))
    return loss


def _gap_scores_labels(scores, labels, weight):
    s = _checks.floating(scores, "scores")
    y = _checks.labels(labels, "labels")
    _checks.same_device(s, "scores", y, "labels")
    if s.dim() != 2 or s.shape[1] < 1:
        raise ValueError(
            f"scores must be 2-D [n, C] (one row per RoI, one column per foreground class, no "
            f"background column); got shape {tuple(s.shape)}."
        )
    if y.shape != s.shape[:1]:
        raise ValueError(
            f"labels must have shape ({s.shape[0]},), one label per row of scores; got "
            f"{tuple(y.shape)}."
        )
    w = None
    if weight is not None:
        w = _checks.tensor(weight, "weight")
        _checks.same_device(s, "scores", w, "weight")
        if w.dtype not in _checks.TARGET_DTYPES:
            raise ValueError(f"weight must be a real tensor, got dtype {w.dtype}.")
        if w.shape != s.shape[:1]:
            raise ValueError(
                f"weight must have shape ({s.shape[0]},), one per row of scores (0 ignores the "
                f"row), got {tuple(w.shape)}."
            )
        w = w.detach()
    return s, y, w


def _counts_tensor(counts, C, device, name="counts"):
    """``counts`` (ClassCounts, array or tensor of length C) as a float64 tensor."""
    if isinstance(counts, _rr.ClassCounts):
        if counts.num_classes != C:
            raise ValueError(
                f"{name} is a ClassCounts of {counts.num_classes} classes but scores has {C} "
                f"columns; use ClassCounts({C})."
            )
        arr = counts.counts
    elif isinstance(counts, torch.Tensor):
        _checks.tensor(counts, "counts")
        if counts.dtype not in _checks.FLOATS + _checks.INTEGERS:
            raise ValueError(f"{name} must be a real tensor, got dtype {counts.dtype}.")
        arr = counts.detach()
    else:
        if isinstance(counts, (str, bytes, dict)):
            raise ValueError(f"{name} must be a ClassCounts, a tensor or a numeric array of "
                             f"shape ({C},), got {type(counts).__name__}.")
        arr = _rr.gap._nonnegative_vector(to_array(counts, name), name, C)
    if tuple(arr.shape) != (C,):
        raise ValueError(f"{name} must have shape ({C},), one value per class; got "
                         f"{tuple(arr.shape)}.")
    return torch.as_tensor(arr).to(device=device, dtype=torch.float64)


def gap_loss(scores, labels, counts, delta=0.5, gamma=1.0, method="bucketed",
             exclude_foreground=True, weights=None, gather=False):
    r"""GAP loss of ROG on tensors: the weighted loss of Eq. 8, with the update of Eq. 11.

    The value and the update are those of :func:`rankref.gap_loss` (a 0-d tensor whose backward
    is the error-driven update); :class:`GAPLoss` keeps the class counts for you.

    Parameters
    ----------
    scores : floating tensor ``[n, C]``
        Raw logits, no background column.
    labels : integer tensor ``[n]``
        ``[0, C)`` foreground, ``C`` background, ``-1`` ignored.
    counts : ClassCounts, array or tensor ``[C]``
        Online class counts, the current batch included (``counts.update(labels)`` first); may
        be None when ``weights`` is given.  :class:`GAPLoss` keeps them for you.
    delta, gamma, method, exclude_foreground
        As in :func:`rankref.gap_loss`.
    weights : array or tensor ``[C]``, optional
        Override omega.
    gather : bool, default False
        Rank the RoIs of every process together.

    Returns
    -------
    loss : 0-d tensor

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> scores = torch.tensor([[1.0, -1.0], [1.2, 0.0]], requires_grad=True)  # [n, C]
    >>> loss = rt.gap_loss(scores, torch.tensor([0, 2]), None, weights=torch.ones(2))
    >>> round(loss.item(), 6)  # the background RoI outranks the positive of class 0
    0.583333
    >>> loss.backward()
    >>> scores.grad
    tensor([[-0.5833,  0.0000],
            [ 0.5833,  0.0000]])
    """
    s, y, _ = _gap_scores_labels(scores, labels, None)
    C = s.shape[1]
    d = _checks.check_delta(delta)
    gm = _checks.real(gamma, "gamma")
    m = _checks.check_method(method, ("bucketed", "dense"), "gap_loss")
    excl = _checks.flag(exclude_foreground, "exclude_foreground")
    g = _checks.flag(gather, "gather")
    omega = None
    if weights is not None:
        if counts is not None:  # checked even though weights replace it
            _counts_tensor(counts, C, s.device)
        omega = _counts_tensor(weights, C, s.device, "weights")
        cnt = None
    elif counts is None:
        raise ValueError("counts is required (a ClassCounts, an array or a tensor of length C) "
                         "unless weights are given.")
    else:
        cnt = _counts_tensor(counts, C, s.device)
    loss, _, _, _ = _bridge.gap_op(s, y, None, cnt, omega, d, gm, m, excl, False, False, g,
                                   _needs_grad(s))
    return loss


def balanced_l1_loss(pred, target, alpha=0.5, gamma=1.5, beta=1.0):
    """Elementwise balanced L1 loss (see :func:`rankref.balanced_l1_loss`) with its gradient.

    Parameters
    ----------
    pred, target : floating tensors of the same shape
    alpha, gamma, beta : float > 0

    Returns
    -------
    loss : tensor of ``pred``'s shape, float32 (float64 for float64 ``pred``)

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> pred = torch.tensor([0.0, 0.5, 2.0], requires_grad=True)
    >>> loss = rt.balanced_l1_loss(pred, torch.zeros(3))
    >>> loss.detach()
    tensor([0.0000, 0.4006, 2.5786])
    >>> loss.sum().backward()
    >>> pred.grad  # the gradient of inliers is promoted; gamma = 1.5 beyond beta
    tensor([0.0000, 1.1777, 1.5000])
    """
    p = _checks.floating(pred, "pred")
    t = _checks.floating(target, "target")
    _checks.same_device(p, "pred", t, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred has shape {tuple(p.shape)} but target has shape "
                         f"{tuple(t.shape)}.")
    a, gm, b = (_checks.real(v, n, low_open=True) for v, n in
                ((alpha, "alpha"), (gamma, "gamma"), (beta, "beta")))
    loss, _ = _bridge.balanced_l1_op(p, t, a, gm, b)
    return loss


def lgr_cross_entropy(logits, labels, alpha=0.5, gamma=1.0):
    """Per-row LGR softmax cross-entropy (see :func:`rankref.lgr_cross_entropy`).

    Parameters
    ----------
    logits : floating tensor ``[n, K]``
        Softmax logits (K = C + 1 with the background column).
    labels : integer tensor ``[n]``
        Values in ``[0, K)``, -1 ignored.
    alpha, gamma : float > 0

    Returns
    -------
    loss : tensor ``[n]``

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # K = 3 columns
    >>> rt.lgr_cross_entropy(logits, torch.tensor([0, 2]))
    tensor([0.3763, 1.7694])
    """
    z = _checks.floating(logits, "logits")
    y = _checks.labels(labels, "labels")
    _checks.same_device(z, "logits", y, "labels")
    if z.dim() != 2 or z.shape[1] < 1:
        raise ValueError(f"logits must be 2-D [n, K], got shape {tuple(z.shape)}.")
    if y.shape != z.shape[:1]:
        raise ValueError(f"labels must have shape ({z.shape[0]},), one per row of logits; got "
                         f"{tuple(y.shape)}.")
    a = _checks.real(alpha, "alpha", low_open=True)
    gm = _checks.real(gamma, "gamma", low_open=True)
    loss, _ = _bridge.lgr_op(z, y, a, gm)
    return loss


def _numpy_rng(rng):
    """A numpy Generator from a numpy Generator or a torch.Generator (seeded from one draw of
    it, so the torch generator advances deterministically)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=rng, device=rng.device).item())
        return np.random.default_rng(seed)
    raise TypeError(
        f"rng must be a torch.Generator or a numpy.random.Generator, got {type(rng).__name__}."
    )


def iou_balanced_neg_sample(max_overlaps, num_expected, *, num_bins=3, floor_thr=-1.0,
                            floor_fraction=0.0, max_iou=None, rng):
    """:func:`rankref.iou_balanced_neg_sample` on a tensor.

    Parameters
    ----------
    max_overlaps : real tensor ``[n]``
        Each candidate's largest IoU with a ground truth.
    num_expected, num_bins, floor_thr, floor_fraction, max_iou
        As in :func:`rankref.iou_balanced_neg_sample`.
    rng : torch.Generator or numpy.random.Generator

    Returns
    -------
    indices : int64 tensor on the input's device
        The draws are made on the host (a sampler picks a few indices); this function is not
        traced by ``torch.compile``.

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> max_iou = torch.tensor([0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.0])
    >>> rt.iou_balanced_neg_sample(max_iou, 4, rng=torch.Generator().manual_seed(0))
    tensor([2, 3, 4, 5])
    """
    iou = _checks.tensor(max_overlaps, "max_overlaps")
    if iou.dtype not in _checks.FLOATS + _checks.INTEGERS:
        raise ValueError(f"max_overlaps must be a real tensor, got dtype {iou.dtype}.")
    be = _bridge.backend(iou.device)
    idx = be.module.iou_balanced_neg_sample(
        be.array(iou.to(torch.float64)), num_expected, num_bins=num_bins, floor_thr=floor_thr,
        floor_fraction=floor_fraction, max_iou=max_iou, rng=_numpy_rng(rng))
    return _bridge.as_tensor(idx, iou.device, torch.int64)


def instance_balanced_pos_sample(assigned_gt_inds, num_expected, *, rng):
    """:func:`rankref.instance_balanced_pos_sample` on a tensor.

    Parameters
    ----------
    assigned_gt_inds : integer tensor ``[n]``
        0 negative, k > 0 positive of ground truth k.
    num_expected : int >= 0
    rng : torch.Generator or numpy.random.Generator

    Returns
    -------
    indices : int64 tensor on the input's device

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> gt = torch.tensor([1, 1, 1, 1, 2, 0, 0])  # four positives of gt 1, one of gt 2
    >>> rt.instance_balanced_pos_sample(gt, 3, rng=torch.Generator().manual_seed(0))
    tensor([1, 2, 3])
    """
    g = _checks.labels(assigned_gt_inds, "assigned_gt_inds")
    be = _bridge.backend(g.device)
    idx = be.module.instance_balanced_pos_sample(be.array(g.to(torch.int64)), num_expected,
                                                 rng=_numpy_rng(rng))
    return _bridge.as_tensor(idx, g.device, torch.int64)
