"""The autograd bridge: device dispatch and the ``rankref::*`` custom operators.

Every loss of :mod:`rankref.torch` is one ``torch.library`` custom operator whose
implementation hands the tensors to an exact backend and returns the loss together with its
error-driven gradient; ``register_autograd`` attaches that gradient, and a fake implementation
gives the output shapes, so ``torch.compile(..., fullgraph=True)`` traces the losses as single
graph nodes (no NumPy call is traced).

Backends (``RANKREF_TORCH_BACKEND``, read at every call):

``auto`` (default)
    CPU tensors go to :mod:`rankref` (NumPy views of the tensors, no copy); tensors on any
    other device (CUDA, ...) go to :mod:`rankref_gpu` on the tensors themselves.
``cpu``
    everything goes to :mod:`rankref` (tensors on other devices are copied to the host and the
    results copied back).
``gpu``
    everything goes to :mod:`rankref_gpu` on the tensors, CPU tensors included: the code path
    of CUDA tensors, testable without a GPU.

Dtypes: float16 and bfloat16 logits are widened to float32 (exactly) before the backend sees
them; losses are float32 (float64 for float64 logits), gradients are computed in float32/float64
and cast to the logits' dtype by the backward.  Inside ``torch.autocast`` nothing is downcast.
"""
import os
from typing import Optional

import numpy as np
import torch
from torch import Tensor

import rankref as _rr

from . import _checks, _distributed

__all__ = []

ENV = "RANKREF_TORCH_BACKEND"
BACKENDS = ("auto", "cpu", "gpu")


# ------------------------------------------------------------------------------ dispatch

def backend_choice():
    """The value of ``RANKREF_TORCH_BACKEND`` (``auto`` when unset)."""
    value = os.environ.get(ENV, "auto")
    choice = value.strip().lower() or "auto"
    if choice not in BACKENDS:
        raise ValueError(f"{ENV} must be 'auto', 'cpu' or 'gpu', got {value!r}.")
    return choice


class _HostBackend:
    """rankref (NumPy) on host views of the tensors."""

    name = "rankref"
    module = _rr

    @staticmethod
    def array(t):
        return t.detach().cpu().numpy()


class _TensorBackend:
    """rankref_gpu on the tensors themselves (any device)."""

    name = "rankref_gpu"

    @property
    def module(self):
        import rankref_gpu

        return rankref_gpu

    @staticmethod
    def array(t):
        return t.detach()


HOST = _HostBackend()
TENSOR = _TensorBackend()


def backend(device):
    """The backend that computes for tensors on ``device``."""
    choice = backend_choice()
    if choice == "cpu" or (choice == "auto" and device.type == "cpu"):
        return HOST
    return TENSOR


def as_tensor(value, device, dtype=None):
    """A backend result (NumPy array, tensor, Python or NumPy scalar) as a tensor."""
    if isinstance(value, torch.Tensor):
        out = value
    elif isinstance(value, np.ndarray):
        out = torch.from_numpy(np.ascontiguousarray(value)).reshape(value.shape)  # 0-d stays
    else:
        out = torch.tensor(float(value), dtype=torch.float64)
    return out.to(device=device, dtype=dtype)


def compute_dtype(dtype):
    """The dtype the backends compute logits and gradients in."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _logits(x):
    return x.detach().to(compute_dtype(x.dtype))


def _targets(t):
    """Targets in a dtype every backend takes and that holds -1 (bool/uint8/int16 widened)."""
    t = t.detach()
    if t.dtype == torch.bool:
        return t.to(torch.int8)
    if t.dtype in (torch.uint8, torch.int16):
        return t.to(torch.int64)
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.to(torch.float32)
    return t


def _no_autocast(device):
    return torch.autocast(device_type=device.type, enabled=False)


def _empty(like, dtype):
    return torch.empty((0,), dtype=dtype, device=like.device)


def _first(mask):
    """Flat index of the first True entry of ``mask``, or -1."""
    idx = torch.nonzero(mask.reshape(-1))
    return int(idx[0, 0]) if idx.numel() else -1


# ------------------------------------------------------------------------------ value checks

def _check_weight_values(weight, name="weight"):
    mask = ~((weight == 0) | (weight == 1))
    if not bool(mask.any()):  # one flag read; the entry is located only on error
        return
    bad = _first(mask)
    if bad >= 0:
        raise ValueError(
            f"{name} must hold 0 (ignored) or 1 (used) for a ranking loss, which has no "
            f"per-anchor weighting; flat entry {bad} is {float(weight.reshape(-1)[bad])!r}. "
            f"(mmdetection: keep train_cfg.pos_weight=-1, which gives weight 1.)"
        )


def _apply_weight(t, weight):
    """Targets with the entries (or rows) of zero weight marked -1 (ignored)."""
    if weight is None:
        return t
    _check_weight_values(weight)
    mask = weight == 0
    if mask.shape != t.shape:  # one weight per row of a [N, C] target
        mask = mask.reshape(-1, 1).expand_as(t)
    return torch.where(mask, torch.full((), -1, dtype=t.dtype, device=t.device), t)


def _ranking_error(x, t, binary):
    """The first problem of a rank_sort/ap input, as rankref words it, or None (for the checks
    each rank makes before gathering)."""
    tf = t.reshape(-1)
    if binary:
        bad = _first((tf != 0) & (tf != 1) & (tf != -1))
    elif tf.is_floating_point():
        bad = _first(~(tf <= 1) | (tf == -float("inf")))
    else:
        bad = _first(tf > 1)
    if bad >= 0:
        val = float(tf[bad])
        if binary:
            return (f"targets for ap_loss must be -1 (ignored), 0 (negative) or 1 (positive), "
                    f"but flat entry {bad} is {val!r}")
        return (f"targets must be -1 (ignored), 0 (negative) or in (0, 1] (positive, e.g. the "
                f"IoU), but flat entry {bad} is {val!r}")
    bad = _first(~torch.isfinite(x.reshape(-1)))
    if bad >= 0:
        return f"logits must be finite, but flat entry {bad} is {float(x.reshape(-1)[bad])!r}"
    return None


def _gap_error(s, y, C):
    bad = _first((y < -1) | (y > C))
    if bad >= 0:
        return (f"labels must be in [-1, {C}] ([0, {C}) foreground, {C} background, -1 "
                f"ignored), but entry {bad} is {int(y[bad])}")
    bad = _first(~torch.isfinite(s.reshape(-1)))
    if bad >= 0:
        return f"scores must be finite, but flat entry {bad} is {float(s.reshape(-1)[bad])!r}"
    return None


# ------------------------------------------------------------------------------ gathering

def _gather_flat(x, t, gather, what, binary):
    """Flat logits and targets of every rank (``gather=True``), or this rank's own."""
    if not gather:
        return x, t, None, 1
    if not _distributed.active():  # one process: its batch is the whole batch
        return x, t, None, 1
    xf, tf = x.reshape(-1), t.reshape(-1)
    err = _ranking_error(xf, tf, binary)
    sizes, dtypes = _distributed.agree(err, x.device, xf.shape[0], -1, (xf.dtype, tf.dtype))
    return _distributed.gather_pair(xf, tf, sizes, dtypes)


def _local_grad(grad, part, world, shape):
    """This rank's part of a gradient computed on the gathered batch, times the world size
    (DDP averages the ranks' gradients, which then equals the one-process gradient)."""
    if part is not None:  # the gathered batch is flat (RS, AP) or has one row per RoI (GAP)
        grad = grad[part] * world
    return grad.reshape(shape)


def _avg(avg_factor, avg_number):
    """The avg_factor given as a tensor (its value checked here) or as a checked number."""
    if avg_factor is not None:
        _checks.avg_factor_value(avg_factor)
        return avg_factor
    return avg_number


def _check_scaled(losses, gdt, scale):
    """Refuse an avg_factor so small that the normalised loss is beyond the loss dtype's
    range (one host read; only when avg_factor is given)."""
    top = torch.finfo(gdt).max
    bad = torch.stack([~torch.isfinite(v) | (v.abs() > top) for v in losses])
    if not bool(bad.any()):  # one read for all the losses
        return
    for v in losses:
        if not bool(torch.isfinite(v)) or float(v.abs()) > top:
            raise ValueError(
                f"avg_factor is too small: the loss normalised by it ({float(v)!r}, |P| / "
                f"avg_factor = {float(scale)!r}) is beyond {gdt}'s range. Pass the number of "
                f"positives (or another normaliser >= 1)."
            )


def _normaliser(t, avg):
    """``|P| / avg_factor`` (a 0-d float64 tensor), or None when avg_factor is None."""
    if avg is None:
        return None
    return (t > 0).sum().to(torch.float64) / avg


# ------------------------------------------------------------------------------ operators

@torch.library.custom_op("rankref::rank_sort_loss", mutates_args=())
def rank_sort_op(logits: Tensor, targets: Tensor, weight: Optional[Tensor],
                 avg_factor: Optional[Tensor], avg_number: Optional[float], delta: float,
                 method: str, gather: bool,
                 compute_grad: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(ranking_loss, sorting_loss, ranking_grad, sorting_grad)``; the gradients are empty
    when ``compute_grad`` is False.  ``avg_factor`` (a tensor) or ``avg_number`` replaces the
    number of positives as the normaliser."""
    dev = logits.device
    with _no_autocast(dev):
        avg = _avg(avg_factor, avg_number)
        x, t = _logits(logits), _apply_weight(_targets(targets), weight)
        x, t, part, world = _gather_flat(x, t, gather, "RankSortLoss", False)
        be = backend(dev)
        res = be.module.rank_sort_loss(be.array(x), be.array(t), delta, method,
                                       compute_grad=compute_grad)
        scale = _normaliser(t, avg)
        losses = [as_tensor(res.ranking_loss, dev, torch.float64),
                  as_tensor(res.sorting_loss, dev, torch.float64)]
        gdt = compute_dtype(logits.dtype)
        if compute_grad:
            grads = [_local_grad(as_tensor(g, dev, gdt), part, world, logits.shape)
                     for g in (res.ranking_grad, res.sorting_grad)]
        else:
            grads = [_empty(logits, gdt), _empty(logits, gdt)]
        if scale is not None:
            losses = [v * scale for v in losses]
            _check_scaled(losses, gdt, scale)
            grads = [(g.to(torch.float64) * scale).to(gdt) for g in grads]
        return losses[0].to(gdt), losses[1].to(gdt), grads[0], grads[1]


@rank_sort_op.register_fake
def _(logits, targets, weight, avg_factor, avg_number, delta, method, gather, compute_grad):
    gdt = compute_dtype(logits.dtype)
    shape = logits.shape if compute_grad else (0,)
    return (logits.new_empty((), dtype=gdt), logits.new_empty((), dtype=gdt),
            logits.new_empty(shape, dtype=gdt), logits.new_empty(shape, dtype=gdt))


def _rank_sort_setup(ctx, inputs, output):
    ctx.save_for_backward(output[2], output[3])
    ctx.in_dtype = inputs[0].dtype


def _rank_sort_backward(ctx, g_ranking, g_sorting, _g_rg, _g_sg):
    rg, sg = ctx.saved_tensors
    grad = rg * g_ranking.to(rg.dtype) + sg * g_sorting.to(sg.dtype)
    return (grad.to(ctx.in_dtype),) + (None,) * 8


rank_sort_op.register_autograd(_rank_sort_backward, setup_context=_rank_sort_setup)


@torch.library.custom_op("rankref::ap_loss", mutates_args=())
def ap_op(logits: Tensor, targets: Tensor, weight: Optional[Tensor],
          avg_factor: Optional[Tensor], avg_number: Optional[float], delta: float,
          interpolate: bool, method: str, gather: bool,
          compute_grad: bool) -> tuple[Tensor, Tensor]:
    """``(loss, grad)``; the gradient is empty when ``compute_grad`` is False."""
    dev = logits.device
    with _no_autocast(dev):
        avg = _avg(avg_factor, avg_number)
        x, t = _logits(logits), _apply_weight(_targets(targets), weight)
        x, t, part, world = _gather_flat(x, t, gather, "APLoss", True)
        be = backend(dev)
        res = be.module.ap_loss(be.array(x), be.array(t), delta, interpolate, method,
                                compute_grad=compute_grad)
        gdt = compute_dtype(logits.dtype)
        loss = as_tensor(res.loss, dev, torch.float64)
        if compute_grad:
            grad = _local_grad(as_tensor(res.grad, dev, gdt), part, world, logits.shape)
        else:
            grad = _empty(logits, gdt)
        scale = _normaliser(t, avg)
        if scale is not None:
            loss = loss * scale
            _check_scaled([loss], gdt, scale)
            grad = (grad.to(torch.float64) * scale).to(gdt)
        return loss.to(gdt), grad


@ap_op.register_fake
def _(logits, targets, weight, avg_factor, avg_number, delta, interpolate, method, gather,
      compute_grad):
    gdt = compute_dtype(logits.dtype)
    return (logits.new_empty((), dtype=gdt),
            logits.new_empty(logits.shape if compute_grad else (0,), dtype=gdt))


def _single_setup(ctx, inputs, output):
    ctx.save_for_backward(output[1])
    ctx.in_dtype = inputs[0].dtype
    ctx.num_inputs = len(inputs)


def _single_backward(ctx, g_loss, _g_grad):
    (grad,) = ctx.saved_tensors
    return ((grad * g_loss.to(grad.dtype)).to(ctx.in_dtype),) + (None,) * (ctx.num_inputs - 1)


ap_op.register_autograd(_single_backward, setup_context=_single_setup)


@torch.library.custom_op("rankref::gap_loss", mutates_args=())
def gap_op(scores: Tensor, labels: Tensor, weight: Optional[Tensor], counts: Optional[Tensor],
           omega: Optional[Tensor], delta: float, gamma: float, method: str,
           exclude_foreground: bool, update_counts: bool, sync_counts: bool, gather: bool,
           compute_grad: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(loss, ranking_error, grad, new_counts)``.

    With ``update_counts`` the batch's foreground histogram (all-reduced when ``sync_counts``
    and a process group is active) is added to ``counts`` first; ``new_counts`` is returned for
    the caller to store, so a call that raises changes nothing.  ``omega`` overrides the class
    weights (then ``counts`` may be None)."""
    dev = scores.device
    with _no_autocast(dev):
        n, C = scores.shape
        s = _logits(scores)
        y = labels.detach().to(torch.int64)
        if weight is not None:
            _check_weight_values(weight)
            y = torch.where(weight.reshape(-1) == 0, torch.full_like(y, -1), y)
        sync = update_counts and sync_counts and _distributed.active()
        gathering = gather and _distributed.active()
        if sync or gathering:
            sizes, dtypes = _distributed.agree(_gap_error(s, y, C), dev, n, C, (s.dtype,))
        if counts is None:
            new_counts = torch.empty((0,), dtype=torch.int64, device=dev)
        elif update_counts:
            # labels outside [-1, C] are refused below, by the backend; bounded bins here
            # (index_add_, not bincount: no read of the labels' maximum on the host)
            idx = torch.where((y >= 0) & (y < C), y, C)
            hist = torch.zeros(C + 1, dtype=torch.int64, device=dev).index_add_(
                0, idx, torch.ones_like(idx))[:C]
            hist = hist.to(counts.dtype)
            if sync:
                _distributed.all_reduce_sum(hist)
            new_counts = counts + hist
        else:
            new_counts = counts.clone()
        part, world = None, 1
        if gathering:
            s, y, part, world = _distributed.gather_pair(s, y, sizes, (dtypes[0], torch.int64))
        be = backend(dev)
        if omega is not None:
            count_arg, weights = None, be.array(omega.to(torch.float64))
        else:
            count_arg, weights = be.array(new_counts.to(torch.float64)), None
        res = be.module.gap_loss(be.array(s), be.array(y), count_arg, delta, gamma, method,
                                 exclude_foreground, weights, compute_grad=compute_grad)
        gdt = compute_dtype(scores.dtype)
        if compute_grad:
            grad = _local_grad(as_tensor(res.grad, dev, gdt), part, world, scores.shape)
        else:
            grad = _empty(scores, gdt)
        return (as_tensor(res.loss, dev, gdt), as_tensor(res.ranking_error, dev, gdt), grad,
                new_counts)


@gap_op.register_fake
def _(scores, labels, weight, counts, omega, delta, gamma, method, exclude_foreground,
      update_counts, sync_counts, gather, compute_grad):
    gdt = compute_dtype(scores.dtype)
    new_counts = (torch.empty_like(counts) if counts is not None
                  else scores.new_empty((0,), dtype=torch.int64))
    return (scores.new_empty((), dtype=gdt), scores.new_empty((), dtype=gdt),
            scores.new_empty(scores.shape if compute_grad else (0,), dtype=gdt), new_counts)


def _gap_setup(ctx, inputs, output):
    ctx.save_for_backward(output[2])
    ctx.in_dtype = inputs[0].dtype


def _gap_backward(ctx, g_loss, _g_err, _g_grad, _g_counts):
    (grad,) = ctx.saved_tensors
    return ((grad * g_loss.to(grad.dtype)).to(ctx.in_dtype),) + (None,) * 12


gap_op.register_autograd(_gap_backward, setup_context=_gap_setup)


@torch.library.custom_op("rankref::class_targets", mutates_args=())
def class_targets_op(labels: Tensor, scores: Optional[Tensor], num_classes: int) -> Tensor:
    """mmdetection's ``labels`` (``[0, C]``, C background) and optional ``scores`` (the IoU
    quality) as ``[N, C]`` targets: the label's column holds the score (1 without scores)."""
    C = num_classes
    y = labels.detach().reshape(-1).to(torch.int64)
    bad = _first((y < 0) | (y > C))
    if bad >= 0:
        raise ValueError(
            f"labels of the mmdet call (the target, or target[0] of a pair) must be in [0, {C}] "
            f"([0, {C}) foreground, {C} background), but entry {bad} is {int(y[bad])}."
        )
    if scores is None:
        vals = torch.ones(y.shape, dtype=torch.int8, device=labels.device)
    else:
        vals = scores.detach().reshape(-1)
        if vals.dtype in (torch.float16, torch.bfloat16):
            vals = vals.to(torch.float32)
        bad = _first(~((vals >= 0) & (vals <= 1)))
        if bad >= 0:
            raise ValueError(
                f"scores (target[1] of the mmdet call, the IoU quality) must be in [0, 1], but "
                f"entry {bad} is {float(vals[bad])!r}."
            )
    # column C collects the background rows and is dropped (no boolean indexing: no sync)
    out = torch.zeros((y.shape[0], C + 1), dtype=vals.dtype, device=labels.device)
    out.scatter_(1, y.reshape(-1, 1), vals.reshape(-1, 1))
    return out[:, :C].contiguous()


@class_targets_op.register_fake
def _(labels, scores, num_classes):
    if scores is None:
        dtype = torch.int8
    else:
        dtype = torch.float32 if scores.dtype in (torch.float16, torch.bfloat16) else scores.dtype
    return labels.new_empty((labels.shape[0], num_classes), dtype=dtype)


def _fitting(loss, grad, what):
    """``(loss, grad)``, refused where their float64 values overflowed float32 (the exact values
    exist but float32 cannot hold them)."""
    if loss.dtype == torch.float32:
        for t, name in ((loss, "loss"), (grad, "gradient")):
            bad = _first(~torch.isfinite(t))
            if bad >= 0:
                raise ValueError(
                    f"{what}: the {name} at flat entry {bad} is beyond float32's range "
                    f"(3.4e38); pass float64 tensors (or smaller values) for this input."
                )
    return loss, grad


@torch.library.custom_op("rankref::balanced_l1_loss", mutates_args=())
def balanced_l1_op(pred: Tensor, target: Tensor, alpha: float, gamma: float,
                   beta: float) -> tuple[Tensor, Tensor]:
    """Elementwise ``(loss, grad)`` of the balanced L1 loss."""
    dev = pred.device
    with _no_autocast(dev):
        be = backend(dev)
        loss, grad = be.module.balanced_l1_loss(be.array(_logits(pred)),
                                                be.array(_logits(target)), alpha, gamma, beta)
        gdt = compute_dtype(pred.dtype)
        return _fitting(as_tensor(loss, dev, gdt), as_tensor(grad, dev, gdt),
                        what="balanced_l1_loss of pred and target")


@balanced_l1_op.register_fake
def _(pred, target, alpha, gamma, beta):
    gdt = compute_dtype(pred.dtype)
    return pred.new_empty(pred.shape, dtype=gdt), pred.new_empty(pred.shape, dtype=gdt)


def _elementwise_backward(ctx, g_loss, _g_grad):
    (grad,) = ctx.saved_tensors
    g = g_loss.to(grad.dtype)
    if grad.dim() == g.dim() + 1:  # per-row loss, [n, K] gradient
        g = g.unsqueeze(-1)
    return ((grad * g).to(ctx.in_dtype),) + (None,) * (ctx.num_inputs - 1)


balanced_l1_op.register_autograd(_elementwise_backward, setup_context=_single_setup)


@torch.library.custom_op("rankref::lgr_cross_entropy", mutates_args=())
def lgr_op(logits: Tensor, labels: Tensor, alpha: float, gamma: float) -> tuple[Tensor, Tensor]:
    """Per-row ``(loss [n], grad [n, K])`` of the LGR softmax cross-entropy."""
    dev = logits.device
    with _no_autocast(dev):
        be = backend(dev)
        loss, grad = be.module.lgr_cross_entropy(be.array(_logits(logits)),
                                                 be.array(labels.detach().to(torch.int64)),
                                                 alpha, gamma)
        gdt = compute_dtype(logits.dtype)
        return _fitting(as_tensor(loss, dev, gdt), as_tensor(grad, dev, gdt),
                        what="lgr_cross_entropy of logits")


@lgr_op.register_fake
def _(logits, labels, alpha, gamma):
    gdt = compute_dtype(logits.dtype)
    return (logits.new_empty(logits.shape[:1], dtype=gdt),
            logits.new_empty(logits.shape, dtype=gdt))


lgr_op.register_autograd(_elementwise_backward, setup_context=_single_setup)
