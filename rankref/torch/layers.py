"""Network modules of the imbalance papers: Libra R-CNN's balanced feature pyramid, and
Sampling-Free's guided loss scaling and prior bias initialisation.  Plain PyTorch (autograd
derivatives, no rankref backend)."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks

__all__ = ["GuidedLossScaling", "BalancedFeaturePyramid", "init_prior_bias_"]


_INIT_LOW = 1.1e-19  # init**2 >= float32's smallest normal number
_INIT_HIGH = 1.8e19  # init**2 <= float32's largest number


class GuidedLossScaling(nn.Module):
    r"""Sampling-Free guided loss scaling (Eq. 23): the classification loss is scaled to the
    localisation loss, with a learnable ratio.

    .. math:: L = L_{loc} + g\,\delta\,L_{cls} - \log\delta, \qquad g = L_{loc}/L_{cls}
              \text{ (detached)},

    with ``delta = p**2`` and a learnable ``p`` initialised to 1 (``delta^0 = 1``), the form of
    the official 2021 code.  Alternative forms: the paper learns ``delta > 0`` directly; a log
    parametrisation ``delta = exp(s)`` turns the regulariser into ``-s``.  All share the
    stationary point ``g delta L_cls = 1``.  When ``L_cls`` is 0, ``g = 1``.

    ``forward(loc_loss, cls_loss)`` returns the scalar ``L``; add ``p`` (``module.p``) to the
    optimiser (it is a parameter of the module).

    .. rubric:: Shape

    * ``loc_loss``, ``cls_loss``: one-element tensors, usually 0-d (shape ``()``).
    * Output: one element, the broadcast shape of the two losses (``()`` for 0-d losses).
    * The parameter ``p``: 0-d (shape ``()``).

    Parameters
    ----------
    init : float > 0, default 1.0
        Initial value of ``p`` (so ``delta = init**2`` at the start).

    Notes
    -----
    Plain PyTorch (autograd derivatives): runs on the device of its inputs.

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> scale = rt.GuidedLossScaling()
    >>> total = scale(torch.tensor(0.8), torch.tensor(20.0))  # g = 0.04, delta = 1
    >>> total                                                  # 0.8 + 0.04 * 20 - log 1
    tensor(1.6000, grad_fn=<SubBackward0>)
    """

    def __init__(self, init=1.0):
        super().__init__()
        # delta = init**2 must be a normal float32 number (p is a float32 parameter)
        v = _checks.real(init, "init", what="a number in [1.1e-19, 1.8e19] (so that init**2 "
                                            "is a normal float32 number)",
                         low=_INIT_LOW, high=_INIT_HIGH)
        self.p = nn.Parameter(torch.tensor(v))

    @property
    def delta(self):
        """The current scale ``p**2``."""
        return self.p ** 2

    def forward(self, loc_loss, cls_loss):
        """``loc_loss + g * delta * cls_loss - log(delta)`` for two scalar losses.

        Raises ValueError when a loss is not finite or negative, or when ``g = loc_loss /
        cls_loss`` is beyond the range of the losses' dtype (the gradient of ``cls_loss`` would
        be inf); these value checks read the two losses on the host (skipped under
        ``torch.compile``).
        """
        for t, name in ((loc_loss, "loc_loss"), (cls_loss, "cls_loss")):
            _checks.floating(t, name)
            if t.numel() != 1:
                raise ValueError(f"{name} must be a scalar loss, got shape {tuple(t.shape)}.")
        _checks.same_device(loc_loss, "loc_loss", cls_loss, "cls_loss")
        # g in float64: g cls = loc exactly even where g is beyond (or below) the losses' range
        cls_d = cls_loss.detach().to(torch.float64)
        g = torch.where(cls_d == 0, torch.ones_like(cls_d),
                        loc_loss.detach().to(torch.float64) / cls_d)
        if not torch.compiler.is_compiling():
            loc_v, cls_v = float(loc_loss.detach()), float(cls_d)
            for v, name in ((loc_v, "loc_loss"), (cls_v, "cls_loss")):
                if not (math.isfinite(v) and v >= 0):
                    raise ValueError(f"{name} must be a finite loss >= 0, got {v!r}.")
            if not bool(torch.isfinite(g).all()):
                raise ValueError(
                    f"loc_loss / cls_loss = {loc_v!r} / {cls_v!r} is beyond float64's range: "
                    f"the scaled classification loss would get an infinite gradient. Skip the "
                    f"scaling for this batch."
                )
        dt = torch.promote_types(loc_loss.dtype, cls_loss.dtype)
        term = (g * cls_loss.reshape(g.shape).to(torch.float64)).to(dt).reshape(cls_loss.shape)
        delta = self.p ** 2
        out = loc_loss + delta * term - torch.log(delta)
        if not torch.compiler.is_compiling() and not bool(torch.isfinite(out).all()):
            raise ValueError(
                f"the scaled loss loc_loss + g delta cls_loss - log(delta) is beyond the range "
                f"of {out.dtype} (loc_loss={float(loc_loss.detach())!r}, "
                f"cls_loss={float(cls_d)!r}, delta={float(delta.detach())!r}); compute the "
                f"losses in a wider dtype."
            )
        return out

    def extra_repr(self):
        return f"delta={float(self.delta.detach()):g}"


def init_prior_bias_(conv_or_linear, prior):
    r"""Initialise a classifier's bias, in place, so that it predicts ``prior`` at the start.

    The bias becomes ``-log((1 - prior) / prior)`` (Sampling-Free Eq. 19; the focal-loss prior
    initialisation); the module is returned.

    Parameters
    ----------
    conv_or_linear : nn.Module with a ``bias`` parameter
        The classification layer (Conv or Linear with ``bias=True``).
    prior : float in (0, 1)
        The foreground probability at initialisation.  Get the optimal value from data with
        :func:`rankref.foreground_prior` (``N^f / (N C)``), or the bias directly with
        :func:`rankref.optimal_bias`.

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> cls = rt.init_prior_bias_(torch.nn.Conv2d(8, 9, 3, padding=1), 0.01)
    >>> round(cls.bias[0].item(), 4)  # -log(99)
    -4.5951
    """
    bias = getattr(conv_or_linear, "bias", None)
    if not isinstance(bias, torch.Tensor):
        raise ValueError("init_prior_bias_ needs a module with a bias (Conv or Linear, "
                         "bias=True).")
    p = _checks.real(prior, "prior", what="a number in (0, 1)", low=0.0, low_open=True)
    if not p < 1.0:
        raise ValueError(f"prior must be a number in (0, 1), got {prior!r}.")
    with torch.no_grad():
        bias.fill_(math.log(p) - math.log1p(-p))  # -log((1 - p) / p), finite for every p
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
    """Balanced feature pyramid (Libra R-CNN, section 3.2).

    Rescale every level to the size of ``refine_level`` (max-pooling the finer ones,
    nearest-upsampling the coarser ones), average them (Eq. 3), refine the average, rescale it
    back and add it to each input (strengthen).

    ``forward(inputs)`` takes a sequence of ``num_levels`` maps ``[N, in_channels, H_l, W_l]``
    (finest first) and returns a tuple of the same shapes.

    .. rubric:: Shape

    * ``inputs``: a list or tuple of ``num_levels`` tensors ``(N, in_channels, H_l, W_l)``, finest
      level first.
    * Output: a tuple of ``num_levels`` tensors, each of the shape of its input level.

    Parameters
    ----------
    in_channels : int >= 1
        Channels of every level.
    num_levels : int >= 1
        Number of pyramid levels.
    refine_level : int in [0, num_levels), default 2
        The level whose size the levels are gathered at.
    refine_type : {"non_local", "conv", None}, default "non_local"
        ``"non_local"``: the embedded-Gaussian block of Eq. 4; ``"conv"``: a 3x3 convolution
        and ReLU; None: no refinement and no parameters.

    Notes
    -----
    Plain PyTorch (autograd derivatives): runs on the device of its inputs.

    Examples
    --------
    >>> import torch, rankref.torch as rt
    >>> bfp = rt.BalancedFeaturePyramid(8, 3, refine_level=1)
    >>> outs = bfp([torch.randn(1, 8, 32 // 2**i, 32 // 2**i) for i in range(3)])
    >>> [tuple(o.shape) for o in outs]  # each level keeps its shape
    [(1, 8, 32, 32), (1, 8, 16, 16), (1, 8, 8, 8)]
    """

    def __init__(self, in_channels, num_levels, refine_level=2, refine_type="non_local"):
        super().__init__()
        # the refinement holds up to 3 in_channels**2 weights: at most 2**16 channels
        self.in_channels = _checks.integer(in_channels, "in_channels", 1, 2**16)
        self.num_levels = _checks.integer(num_levels, "num_levels", 1, 2**16)
        if not _checks.is_integer(refine_level) or not 0 <= refine_level < num_levels:
            raise ValueError(f"refine_level must be an integer in [0, {num_levels}), got "
                             f"{refine_level!r}.")
        if not (refine_type is None or (isinstance(refine_type, str)
                                        and refine_type in ("non_local", "conv"))):
            raise ValueError(
                f"refine_type must be 'non_local', 'conv' or None, got {refine_type!r}.")
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
        """The strengthened levels (a tuple of the inputs' shapes).

        ``inputs`` must be a list or tuple of ``num_levels`` floating tensors
        ``[N, in_channels, H_l, W_l]`` with ``H_l, W_l >= 1``, one batch size, dtype and device
        (the module's parameters' dtype when it has any); a ValueError names the first that
        is not.
        """
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f"inputs must be a list or tuple of {self.num_levels} levels, got "
                            f"{type(inputs).__name__}.")
        if len(inputs) != self.num_levels:
            raise ValueError(f"inputs must hold {self.num_levels} levels, got {len(inputs)}.")
        param = next(self.parameters(), None)
        for i, x in enumerate(inputs):
            _checks.floating(x, f"inputs[{i}]")
            if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] < 1 \
                    or x.shape[3] < 1 or x.shape[0] != inputs[0].shape[0]:
                raise ValueError(f"inputs[{i}] must be [N, {self.in_channels}, H, W] with "
                                 f"H, W >= 1 and the batch size N of inputs[0], got shape "
                                 f"{tuple(x.shape)}.")
            if x.dtype != inputs[0].dtype or x.device != inputs[0].device:
                raise ValueError(f"inputs[{i}] is {x.dtype} on {x.device} but inputs[0] is "
                                 f"{inputs[0].dtype} on {inputs[0].device}; every level must "
                                 f"have the same dtype and device.")
            if param is not None and (x.dtype != param.dtype or x.device != param.device):
                raise ValueError(f"inputs[{i}] is {x.dtype} on {x.device} but the module's "
                                 f"parameters are {param.dtype} on {param.device}; move the "
                                 f"module (module.to(inputs[0])) or the inputs.")
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

    def extra_repr(self):
        return (f"in_channels={self.in_channels}, num_levels={self.num_levels}, "
                f"refine_level={self.refine_level}, refine_type={self.refine_type!r}")
