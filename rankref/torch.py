"""PyTorch adapters: every rankref loss as a drop-in autograd loss, on CPU or CUDA.

The pattern is POT's: the loss and its (error-driven) gradient are computed exactly by
:mod:`rankref` (CPU tensors) or :mod:`rankref_gpu` (CUDA tensors, when CuPy is installed), and a
``torch.autograd.Function`` attaches the gradient.  Outputs live on the input's device.

``import rankref`` never imports torch; ``import rankref.torch`` (or the first access to
``rankref.torch``) does.

Dtypes: float16, bfloat16, float32 and float64 inputs are accepted; the computation runs in
float32/float64 (accumulating in float64), losses are float32 (float64 for float64 input), and
the gradient comes back in the input's dtype.  Inside ``torch.autocast`` nothing is downcast: the
losses run in float32.
"""
import math
import warnings

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

import rankref as _rr

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
]

_WARNED_NO_CUPY = False


# ---------------------------------------------------------------------------- dispatch

def _gpu_backend():
    """rankref_gpu and cupy when both are usable, else None."""
    try:
        import cupy  # noqa: F401

        import rankref_gpu
    except ImportError:
        return None
    return rankref_gpu if hasattr(rankref_gpu, "rank_sort_loss") else None


def _backend(tensor):
    """(module, to_array, from_array) for a tensor's device."""
    global _WARNED_NO_CUPY
    if tensor.device.type == "cuda":
        gpu = _gpu_backend()
        if gpu is not None:
            import cupy

            return gpu, lambda t: cupy.from_dlpack(_compute_dtype(t).detach().contiguous()), \
                lambda a, like: torch.from_dlpack(a).to(like.device)
        if not _WARNED_NO_CUPY:
            warnings.warn(
                "rankref.torch: CUDA tensors are computed on the CPU because CuPy (with "
                "rankref_gpu) is not available; install it with pip install 'rankref[gpu]'.",
                RuntimeWarning, stacklevel=3,
            )
            _WARNED_NO_CUPY = True
    return _rr, lambda t: _compute_dtype(t).detach().cpu().numpy(), \
        lambda a, like: torch.from_numpy(np.ascontiguousarray(a)).to(like.device)


def _compute_dtype(t):
    """bfloat16 has no NumPy/CuPy dtype: widen it to float32 (exact)."""
    return t.float() if t.dtype == torch.bfloat16 else t


def _loss_dtype(t):
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _scalar(value, like):
    return torch.tensor(float(value), dtype=_loss_dtype(like), device=like.device)


def _no_autocast(device):
    return torch.autocast(device_type=device.type, enabled=False)


# ---------------------------------------------------------------------------- gathering

def _dist_ready():
    return dist.is_available() and dist.is_initialized()


def _all_gather_rows(t):
    """Concatenate a tensor over the ranks along dim 0 (sizes may differ).

    Returns (full, offset, world): ``full[offset:offset + len(t)]`` is this rank's part.
    """
    world = dist.get_world_size()
    rank = dist.get_rank()
    n = torch.tensor([t.shape[0]], dtype=torch.int64, device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes = [int(s.item()) for s in sizes]
    biggest = max(sizes)
    padded = torch.zeros((biggest,) + tuple(t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous())
    full = torch.cat([p[:s] for p, s in zip(parts, sizes)])
    return full, sum(sizes[:rank]), world


def _gathered(x, y, gather, rows_of):
    """(x_all, y_all, local slice, gradient scale) for global ranking over the process group."""
    if not gather or not _dist_ready() or dist.get_world_size() == 1:
        return x, y, None, 1.0
    xs = rows_of(x)
    ys = rows_of(y)
    x_all, offset, world = _all_gather_rows(xs.detach())
    y_all, _, _ = _all_gather_rows(ys)
    return x_all, y_all, slice(offset, offset + xs.shape[0]), float(world)


def _flat_rows(t):
    return t.reshape(-1)


def _first_dim_rows(t):
    return t


# ---------------------------------------------------------------------------- functions

class _RankSortFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, delta, method, gather):
        with _no_autocast(logits.device):
            x, t, part, scale = _gathered(logits, targets, gather, _flat_rows)
            mod, to_arr, from_arr = _backend(logits)
            res = mod.rank_sort_loss(to_arr(x), to_arr(t), delta, method)
            rg = from_arr(res.ranking_grad, logits).reshape(-1)
            sg = from_arr(res.sorting_grad, logits).reshape(-1)
            if part is not None:
                rg, sg = rg[part] * scale, sg[part] * scale
            ctx.save_for_backward(rg.reshape(logits.shape), sg.reshape(logits.shape))
            ctx.in_dtype = logits.dtype
            return _scalar(res.ranking_loss, logits), _scalar(res.sorting_loss, logits)

    @staticmethod
    def backward(ctx, g_rank, g_sort):
        rg, sg = ctx.saved_tensors
        grad = rg * g_rank.to(rg.dtype) + sg * g_sort.to(sg.dtype)
        return grad.to(ctx.in_dtype), None, None, None, None


class _PrecomputedGrad(torch.autograd.Function):
    """A loss (scalar, elementwise or per row) whose gradient was computed with it: backward
    scales the saved gradient by the incoming one (broadcast over a row for per-row losses)."""

    @staticmethod
    def forward(ctx, inp, loss, grad):
        ctx.save_for_backward(grad)
        ctx.in_dtype = inp.dtype
        return loss

    @staticmethod
    def backward(ctx, g):
        (grad,) = ctx.saved_tensors
        g = g.to(grad.dtype)
        if g.dim() and grad.dim() == g.dim() + 1:  # per-row loss, [n, K] gradient
            g = g.unsqueeze(-1)
        return (grad * g).to(ctx.in_dtype), None, None


def _check_tensor(t, name):
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}.")
    return t


def rank_sort_loss(logits, targets, delta=0.5, method="bucketed", gather=False):
    """RS loss on tensors: returns ``(ranking_loss, sorting_loss)``.

    See :func:`rankref.rank_sort_loss` for the maths.  **Each output carries its own gradient**,
    so ``w_r * ranking + w_s * sorting`` backpropagates ``w_r * ranking_grad + w_s *
    sorting_grad``.  The official ``RankSort`` puts ``ranking_grad + sorting_grad`` on the ranking
    output (and none on the sorting one); the two agree whenever ``w_r == w_s``.

    ``gather=True`` ranks the logits of every process of the default group together (see
    :class:`RankSortLoss`).
    """
    _check_tensor(logits, "logits")
    _check_tensor(targets, "targets")
    return _RankSortFunction.apply(logits, targets, delta, method, bool(gather))


def ap_loss(logits, targets, delta=1.0, interpolate=True, method="bucketed"):
    """AP Loss on tensors (see :func:`rankref.ap_loss`): a scalar tensor with its gradient."""
    _check_tensor(logits, "logits")
    _check_tensor(targets, "targets")
    with _no_autocast(logits.device):
        mod, to_arr, from_arr = _backend(logits)
        res = mod.ap_loss(to_arr(logits), to_arr(targets), delta, interpolate, method)
        grad = from_arr(res.grad, logits).reshape(logits.shape)
        return _PrecomputedGrad.apply(logits, _scalar(res.loss, logits), grad)


def _gap_compute(scores, labels, counts, delta, gamma, method, exclude_foreground, weights,
                 gather=False):
    with _no_autocast(scores.device):
        s, y, part, scale = _gathered(scores, labels, gather, _first_dim_rows)
        mod, to_arr, from_arr = _backend(scores)
        if isinstance(counts, torch.Tensor):
            counts = counts.detach().cpu().numpy()
        if isinstance(weights, torch.Tensor):
            weights = weights.detach().cpu().numpy()
        res = mod.gap_loss(to_arr(s), to_arr(y), counts, delta, gamma, method,
                           exclude_foreground, weights)
        grad = from_arr(res.grad, scores)
        if part is not None:
            grad = grad[part] * scale
        return _PrecomputedGrad.apply(scores, _scalar(res.loss, scores), grad), res


def gap_loss(scores, labels, counts, delta=0.5, gamma=1.0, method="bucketed",
             exclude_foreground=True, weights=None):
    """GAP loss of ROG on tensors (see :func:`rankref.gap_loss`): the weighted loss of Eq. 8 as a
    scalar tensor with the gradient of Eq. 11.  ``counts`` is a :class:`rankref.ClassCounts`, an
    array or a tensor of length C (the current batch included)."""
    _check_tensor(scores, "scores")
    _check_tensor(labels, "labels")
    loss, _ = _gap_compute(scores, labels, counts, delta, gamma, method, exclude_foreground,
                           weights)
    return loss


def balanced_l1_loss(pred, target, alpha=0.5, gamma=1.5, beta=1.0):
    """Elementwise balanced L1 loss (see :func:`rankref.balanced_l1_loss`) with its gradient."""
    _check_tensor(pred, "pred")
    _check_tensor(target, "target")
    with _no_autocast(pred.device):
        mod, to_arr, from_arr = _backend(pred)
        loss, grad = mod.balanced_l1_loss(to_arr(pred), to_arr(target), alpha, gamma, beta)
        dt = _loss_dtype(pred)
        return _PrecomputedGrad.apply(pred, from_arr(loss, pred).to(dt),
                                          from_arr(grad, pred).to(dt))


def lgr_cross_entropy(logits, labels, alpha=0.5, gamma=1.0):
    """Per-row LGR softmax cross-entropy (see :func:`rankref.lgr_cross_entropy`)."""
    _check_tensor(logits, "logits")
    _check_tensor(labels, "labels")
    with _no_autocast(logits.device):
        mod, to_arr, from_arr = _backend(logits)
        loss, grad = mod.lgr_cross_entropy(to_arr(logits), to_arr(labels), alpha, gamma)
        dt = _loss_dtype(logits)
        return _PrecomputedGrad.apply(logits, from_arr(loss, logits).to(dt),
                                          from_arr(grad, logits).to(dt))


def _numpy_rng(rng):
    """A numpy Generator from a numpy Generator or a torch.Generator (seeded from one draw of
    it, so the torch generator advances deterministically)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=rng, device=rng.device).item())
        return np.random.default_rng(seed)
    raise ValueError(
        f"rng must be a torch.Generator or a numpy.random.Generator, got {type(rng).__name__}."
    )


def iou_balanced_neg_sample(max_overlaps, num_expected, *, num_bins=3, floor_thr=-1.0,
                            floor_fraction=0.0, max_iou=None, rng):
    """:func:`rankref.iou_balanced_neg_sample` on a tensor; returns an int64 index tensor on the
    input's device.  ``rng``: a ``torch.Generator`` or a ``numpy.random.Generator``."""
    _check_tensor(max_overlaps, "max_overlaps")
    idx = _rr.iou_balanced_neg_sample(
        max_overlaps.detach().float().cpu().numpy(), num_expected, num_bins=num_bins,
        floor_thr=floor_thr, floor_fraction=floor_fraction, max_iou=max_iou,
        rng=_numpy_rng(rng))
    return torch.from_numpy(idx).to(max_overlaps.device)


def instance_balanced_pos_sample(assigned_gt_inds, num_expected, *, rng):
    """:func:`rankref.instance_balanced_pos_sample` on a tensor; returns an int64 index tensor
    on the input's device."""
    _check_tensor(assigned_gt_inds, "assigned_gt_inds")
    idx = _rr.instance_balanced_pos_sample(assigned_gt_inds.detach().cpu().numpy(),
                                           num_expected, rng=_numpy_rng(rng))
    return torch.from_numpy(idx).to(assigned_gt_inds.device)


# ---------------------------------------------------------------------------- modules

def _reduce(loss, reduction, weight=None):
    if weight is not None:
        loss = loss * weight
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(reduction):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}.")
    return reduction


class RankSortLoss(nn.Module):
    """Rank & Sort loss as a module: ``forward(logits, targets)`` returns the pair
    ``(ranking, sorting)``, each scaled by ``loss_weight`` and carrying its own gradient.

    With ``gather=True`` the logits and targets of every process in the default group are
    all-gathered and ranked as one batch: the loss is that of the concatenated batch on every
    rank, and each rank receives the gradient of its own entries multiplied by the world size,
    so that DDP's gradient averaging yields the single-process gradient.  This makes training
    independent of the number of GPUs (the official RS loss ranks per GPU).
    """

    def __init__(self, delta=0.5, method="bucketed", loss_weight=1.0, gather=False):
        super().__init__()
        self.delta = _rr._validation.check_delta(delta)
        self.method = _rr._validation.check_method(method, ("bucketed", "dense", "brs"),
                                                   "RankSortLoss")
        self.loss_weight = float(loss_weight)
        self.gather = bool(gather)

    def forward(self, logits, targets):
        r, s = rank_sort_loss(logits, targets, self.delta, self.method, self.gather)
        return self.loss_weight * r, self.loss_weight * s


class APLoss(nn.Module):
    """AP Loss as a module: ``forward(logits, targets)`` returns ``loss_weight * loss``."""

    def __init__(self, delta=1.0, interpolate=True, method="bucketed", loss_weight=1.0):
        super().__init__()
        self.delta = _rr._validation.check_delta(delta)
        self.interpolate = bool(interpolate)
        self.method = _rr._validation.check_method(method, ("bucketed", "dense"), "APLoss")
        self.loss_weight = float(loss_weight)

    def forward(self, logits, targets):
        return self.loss_weight * ap_loss(logits, targets, self.delta, self.interpolate,
                                          self.method)


class BalancedL1Loss(nn.Module):
    """Balanced L1 loss (Libra R-CNN), mmdetection-style: ``forward(pred, target, weight=None)``."""

    def __init__(self, alpha=0.5, gamma=1.5, beta=1.0, reduction="mean", loss_weight=1.0):
        super().__init__()
        self.alpha, self.gamma, self.beta = float(alpha), float(gamma), float(beta)
        self.reduction = _check_reduction(reduction)
        self.loss_weight = float(loss_weight)

    def forward(self, pred, target, weight=None):
        loss = balanced_l1_loss(pred, target, self.alpha, self.gamma, self.beta)
        return self.loss_weight * _reduce(loss, self.reduction, weight)


class LGRCrossEntropyLoss(nn.Module):
    """Softmax cross-entropy with logarithmic gradient re-weighting (Libra R-CNN, Eq. 19):
    ``forward(logits, labels, weight=None)``."""

    def __init__(self, alpha=0.5, gamma=1.0, reduction="mean", loss_weight=1.0):
        super().__init__()
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.reduction = _check_reduction(reduction)
        self.loss_weight = float(loss_weight)

    def forward(self, logits, labels, weight=None):
        loss = lgr_cross_entropy(logits, labels, self.alpha, self.gamma)
        return self.loss_weight * _reduce(loss, self.reduction, weight)


class GAPLoss(nn.Module):
    """GAP loss of ROG with its online class statistics.

    The counts live in the float64 buffer ``counts`` (saved in ``state_dict``).  Each call first
    adds the batch's foreground label histogram, then computes ``lam * gap_loss`` with the
    updated counts.  ``last_ranking_error`` holds the unweighted value the official code logs.

    ``sync_counts=True`` (default) all-reduces each batch's histogram when torch.distributed is
    initialised, so every rank holds the same global counts; the official code keeps them per
    GPU.  ``gather=True`` ranks all processes' RoIs together, as :class:`RankSortLoss` does.
    ``lam`` is lambda of Eq. 10 (the official head uses 0.1).
    """

    def __init__(self, num_classes, gamma=1.0, delta=0.5, lam=1.0, sync_counts=True,
                 gather=False, method="bucketed", exclude_foreground=True):
        super().__init__()
        _rr.ClassCounts(num_classes)  # validates num_classes
        self.num_classes = int(num_classes)
        self.gamma = _rr._validation.check_nonnegative(gamma, "gamma")
        self.delta = _rr._validation.check_delta(delta)
        self.lam = float(lam)
        self.sync_counts = bool(sync_counts)
        self.gather = bool(gather)
        self.method = _rr._validation.check_method(method, ("bucketed", "dense"), "GAPLoss")
        self.exclude_foreground = bool(exclude_foreground)
        self.register_buffer("counts", torch.zeros(self.num_classes, dtype=torch.float64))
        self.last_ranking_error = None

    @property
    def class_counts(self):
        """The counts as a :class:`rankref.ClassCounts` (a copy)."""
        cc = _rr.ClassCounts(self.num_classes)
        cc.counts = self.counts.detach().cpu().numpy().copy()
        return cc

    def update_counts(self, labels):
        y = labels.detach().reshape(-1).to(torch.int64)
        if y.numel() and (int(y.min()) < -1 or int(y.max()) > self.num_classes):
            raise ValueError(
                f"labels must be in [-1, {self.num_classes}], got values in "
                f"[{int(y.min())}, {int(y.max())}]."
            )
        fg = y[(y >= 0) & (y < self.num_classes)]
        hist = torch.bincount(fg, minlength=self.num_classes).to(torch.float64)
        if self.sync_counts and _dist_ready():
            dist.all_reduce(hist)  # on the labels' device, as the backend needs
        self.counts += hist.to(self.counts.device)

    def forward(self, scores, labels):
        self.update_counts(labels)
        loss, res = _gap_compute(scores, labels, self.counts, self.delta, self.gamma,
                                 self.method, self.exclude_foreground, None, self.gather)
        self.last_ranking_error = res.ranking_error
        return self.lam * loss


class GuidedLossScaling(nn.Module):
    r"""Sampling-Free guided loss scaling with a learnable ratio (Eq. 23):

    .. math:: L = L_{loc} + g\,\delta\,L_{cls} - \log\delta, \qquad g = L_{loc}/L_{cls}
              \text{ (detached)},

    with ``delta = p**2`` and a learnable ``p`` initialised to 1 (``delta^0 = 1``), the form of the
    official 2021 code.  Alternative forms: the paper learns ``delta > 0`` directly; a log
    parametrisation ``delta = exp(s)`` turns the regulariser into ``-s``.  All share the
    stationary point ``g delta L_cls = 1``.  When ``L_cls`` is 0, ``g = 1``.
    """

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.ones(()))

    @property
    def delta(self):
        return self.p ** 2

    def forward(self, loc_loss, cls_loss):
        cls_d = cls_loss.detach()
        g = torch.where(cls_d == 0, torch.ones_like(cls_d), loc_loss.detach() / cls_d)
        delta = self.p ** 2
        return loc_loss + g * delta * cls_loss - torch.log(delta)


def init_prior_bias_(conv_or_linear, prior):
    r"""Initialise a classifier's bias to ``-log((1 - prior) / prior)`` (Sampling-Free Eq. 19;
    the focal-loss prior init), in place; returns the module.  Get the optimal ``prior`` from
    data with :func:`rankref.foreground_prior` (``N^f / (N C)``), or its bias directly with
    :func:`rankref.optimal_bias`."""
    bias = getattr(conv_or_linear, "bias", None)
    if bias is None:
        raise ValueError("init_prior_bias_ needs a module with a bias (Conv or Linear, bias=True).")
    p = float(prior)
    if not 0.0 < p < 1.0:
        raise ValueError(f"prior must be in (0, 1), got {prior!r}.")
    with torch.no_grad():
        bias.fill_(-math.log((1.0 - p) / p))
    return conv_or_linear


class _NonLocal2d(nn.Module):
    """Embedded-Gaussian non-local block, Eq. 4 of Libra R-CNN:
    ``f'_i = sum_j softmax_j(theta(f_i)^T phi(f_j)) g(f_j) + f_i`` with 1x1 convolutions.
    (mmcv's ``NonLocal2d`` adds a zero-initialised output convolution; Eq. 4 has none.)"""

    def __init__(self, channels):
        super().__init__()
        self.theta = nn.Conv2d(channels, channels, 1)
        self.phi = nn.Conv2d(channels, channels, 1)
        self.g = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        theta = self.theta(x).reshape(n, c, h * w).transpose(1, 2)
        phi = self.phi(x).reshape(n, c, h * w)
        attn = torch.softmax(theta @ phi, dim=-1)
        y = attn @ self.g(x).reshape(n, c, h * w).transpose(1, 2)
        return y.transpose(1, 2).reshape(n, c, h, w) + x


class BalancedFeaturePyramid(nn.Module):
    """Balanced feature pyramid (Libra R-CNN, section 3.2): rescale every level to the size of
    ``refine_level`` (max-pooling the finer ones, nearest-upsampling the coarser ones), average
    (Eq. 3), refine (``"non_local"``: Eq. 4, ``"conv"``: 3x3 convolution + ReLU, ``None``: no
    refinement and no parameters), rescale back and add to each input (strengthen).

    ``forward(inputs)`` takes a sequence of ``num_levels`` maps ``[N, in_channels, H_l, W_l]``
    (finest first) and returns a tuple of the same shapes.
    """

    def __init__(self, in_channels, num_levels, refine_level=2, refine_type="non_local"):
        super().__init__()
        if not 0 <= refine_level < num_levels:
            raise ValueError(f"refine_level must be in [0, {num_levels}), got {refine_level}.")
        if refine_type not in ("non_local", "conv", None):
            raise ValueError(
                f"refine_type must be 'non_local', 'conv' or None, got {refine_type!r}.")
        self.in_channels = int(in_channels)
        self.num_levels = int(num_levels)
        self.refine_level = int(refine_level)
        self.refine_type = refine_type
        if refine_type == "conv":
            self.refine = nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1),
                                        nn.ReLU(inplace=True))
        elif refine_type == "non_local":
            self.refine = _NonLocal2d(in_channels)
        else:
            self.refine = None

    def forward(self, inputs):
        if len(inputs) != self.num_levels:
            raise ValueError(f"expected {self.num_levels} levels, got {len(inputs)}.")
        size = inputs[self.refine_level].shape[2:]
        feats = []
        for i, x in enumerate(inputs):
            if i < self.refine_level:
                feats.append(F.adaptive_max_pool2d(x, output_size=size))
            else:
                feats.append(F.interpolate(x, size=size, mode="nearest"))
        bsf = sum(feats) / len(feats)
        if self.refine is not None:
            bsf = self.refine(bsf)
        outs = []
        for i, x in enumerate(inputs):
            if i < self.refine_level:
                residual = F.interpolate(bsf, size=x.shape[2:], mode="nearest")
            else:
                residual = F.adaptive_max_pool2d(bsf, output_size=x.shape[2:])
            outs.append(residual + x)
        return tuple(outs)
