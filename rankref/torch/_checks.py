"""Argument checks of rankref.torch: types, devices, dtypes and scalar ranges.

Everything here looks at Python values, shapes, dtypes and devices only (no tensor values), so it
runs before any computation and is traced by ``torch.compile`` without a graph break.  Checks of
tensor *values* run inside the custom ops (see :mod:`rankref.torch._bridge`).
"""
import math

import numpy as np
import torch

from rankref._validation import check_delta  # noqa: F401  (re-exported)
from rankref._validation import check_flag, check_method, check_real, is_integer  # noqa: F401

__all__ = []

FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
INTEGERS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
TARGET_DTYPES = (torch.bool,) + INTEGERS + FLOATS


def _dtype_names(dtypes):
    return ", ".join(str(d).replace("torch.", "") for d in dtypes)


def tensor(value, name):
    """``value`` as a tensor with values (TypeError otherwise; ValueError on the meta device)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}.")
    if value.device.type == "meta":
        raise ValueError(
            f"{name} is on the meta device, which holds shapes but no values; a ranking loss "
            f"needs the values. Move it to a real device first (e.g. {name}.to('cpu'))."
        )
    return value


def floating(value, name):
    """A floating-point tensor (the logits; gradients need a floating dtype)."""
    t = tensor(value, name)
    if t.dtype not in FLOATS:
        raise ValueError(
            f"{name} must be a floating-point tensor ({_dtype_names(FLOATS)}), got dtype "
            f"{t.dtype}. Convert it with {name}.float()."
        )
    return t


def targets(value, name):
    """A real tensor of targets (bool, 8- to 64-bit signed integers, uint8 or floats)."""
    t = tensor(value, name)
    if t.dtype not in TARGET_DTYPES:
        raise ValueError(
            f"{name} must be a real tensor of dtype {_dtype_names(TARGET_DTYPES)}, got dtype "
            f"{t.dtype}. Convert it with {name}.to(torch.float32) (or torch.int64)."
        )
    return t


def labels(value, name):
    """An integer tensor of class indices."""
    t = tensor(value, name)
    if t.dtype not in INTEGERS:
        raise ValueError(
            f"{name} must be an integer tensor of class indices ({_dtype_names(INTEGERS)}), got "
            f"dtype {t.dtype}. Convert it with {name}.long()."
        )
    return t


def same_device(reference, ref_name, value, name):
    if value.device != reference.device:
        raise ValueError(
            f"{name} is on {value.device} but {ref_name} is on {reference.device}; put both on "
            f"the same device."
        )


FLOAT32_MAX = float(np.finfo(np.float32).max)  # IEEE binary32; no torch call (docs mock it)


def real(value, name, *, low=0.0, low_open=False, high=None, what=None):
    """A finite real Python or NumPy number ``>= low`` (``> low`` when ``low_open``, ``<= high``
    when given), as a float: rankref's rule (no bool; integers and long doubles beyond float64's
    range refused, not rounded to inf or 0)."""
    return check_real(value, name, what, low=low, low_open=low_open, high=high)


def loss_weight(value, name="loss_weight"):
    """A loss weight: finite, >= 0 and at most float32's maximum (the losses are float32 for
    float16/bfloat16/float32 inputs, and a larger weight would turn them into inf or NaN)."""
    return check_real(value, name, f"a finite number in [0, {FLOAT32_MAX:.8g}] (float32's "
                                   f"maximum: losses are float32 for float32 inputs)",
                      low=0.0, high=FLOAT32_MAX)


def flag(value, name):
    """True or False (bool or numpy.bool_); anything else raises rankref's ArgumentTypeError,
    which is both a TypeError and a ValueError."""
    return check_flag(value, name)


def integer(value, name, low, high):
    """An integer in ``[low, high]`` (bool refused)."""
    if not is_integer(value) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}.")
    return int(value)


def use_sigmoid(value, cls):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"use_sigmoid must be True, got {value!r}.")
    if not value:
        raise ValueError(
            f"use_sigmoid=False is not supported by {cls}: ranking losses score every class "
            f"independently (sigmoid-style, C outputs and no background column). Set "
            f"use_sigmoid=True in the config."
        )
    return True


def reduction(value, allowed, cls, name="reduction"):
    if not isinstance(value, str) or value not in allowed:
        extra = ""
        if value in ("none", "sum") and "none" not in allowed:
            extra = (f" {cls} is a ranking loss: one normalised value for the whole batch, "
                     f"not a sum of per-element terms.")
        raise ValueError(
            f"{name} must be one of {', '.join(repr(a) for a in allowed)} for {cls}, got "
            f"{value!r}.{extra}"
        )
    return value


def avg_factor(value, like):
    """``(tensor, number)``: ``avg_factor`` as a 0-d float64 tensor on ``like``'s device (a
    tensor was given; its value is checked where it is used) or as a checked Python float
    (finite, > 0); ``(None, None)`` when it is None."""
    if value is None:
        return None, None
    if isinstance(value, torch.Tensor):
        tensor(value, "avg_factor")
        if value.numel() != 1:
            raise ValueError(
                f"avg_factor must be one number (a Python float or a one-element tensor), got a "
                f"tensor of shape {tuple(value.shape)}."
            )
        if value.dtype not in FLOATS + INTEGERS:
            raise ValueError(f"avg_factor must be a real number, got dtype {value.dtype}.")
        return value.detach().reshape(()).to(device=like.device, dtype=torch.float64), None
    return None, real(value, "avg_factor", low=0.0, low_open=True)


def avg_factor_value(avg):
    """Check the value of an ``avg_factor`` tensor (one host sync)."""
    v = float(avg)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"avg_factor must be a finite number > 0, got {v!r}.")
