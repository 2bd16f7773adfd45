"""Sampling-Free (Chen et al., IEEE TIP 2021, section IV): optimal bias initialisation and
guided loss scaling.  The learnable scale of Eq. 23 lives in ``rankref.torch``."""
import math
from collections.abc import Iterable
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from ._validation import (ArgumentTypeError, as_fraction, check_int, host_array, is_real, show,
                          to_array)

__all__ = ["optimal_bias", "foreground_prior", "ForegroundPrior", "guided_scale"]


def _count(value, name):
    """A count >= 0 as an exact Fraction (Python/NumPy ints and floats, Fractions; not bool)."""
    if not is_real(value):
        raise ValueError(f"{name} must be a count >= 0 (an int or a float), got "
                         f"{type(value).__name__} {show(value)}.")
    try:
        q = as_fraction(value)
    except (ValueError, OverflowError, TypeError):  # NaN, inf
        raise ValueError(f"{name} must be a finite count >= 0, got {show(value)}.") from None
    if q < 0:
        raise ValueError(f"{name} must be a count >= 0, got {show(value)}.")
    return q


def _log_ratio(r):
    """``ln r`` of a positive rational, to float64 accuracy (r may be far outside the float
    range, or close to 1)."""
    if Fraction(1, 2) < r < 2:
        return math.log1p(float(r - 1))
    e = r.numerator.bit_length() - r.denominator.bit_length()
    m = float(r / Fraction(2) ** e) if e >= 0 else float(r * Fraction(2) ** -e)  # in (1/2, 2)
    return math.log(m) + e * _LN2


_LN2 = math.log(2.0)


def optimal_bias(num_foreground, num_total, num_classes=1):
    r"""Optimal initial bias of a sigmoid classifier from the foreground prior (Sampling-Free).

    Sampling-Free (Chen et al.), Eq. 19:

    .. math:: b = -\log\frac{1 - \pi}{\pi}, \qquad \pi = \frac{N^f}{N \cdot C},

    i.e. ``-log(N C / N^f - 1)``: the prior is pooled over the data set (``N^f`` foreground
    samples among ``N``) and divided by the number of classes C, as the official code does for a
    C-way sigmoid head.  For one class this is Eq. 19, ``-log(N / N^f - 1)``; the paper reports
    ``N / N^f ~ 1e5`` for anchors.

    Parameters
    ----------
    num_foreground : count >= 0 (int of any size or finite float)
        ``N^f``, the foreground samples (e.g. from :func:`foreground_prior`).
    num_total : count >= 0
        ``N``, all samples (ignored ones excluded).
    num_classes : int >= 1, default 1
        C, the classes of the sigmoid head.

    The result is computed from the exact ratio of the counts, so it is finite and accurate for
    every valid input.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Unless ``0 < N^f / C < N`` (the prior must lie strictly inside (0, 1)).

    Examples
    --------
    >>> import rankref
    >>> print(round(rankref.optimal_bias(1, 100_000), 4))  # one foreground anchor in 1e5
    -11.5129
    >>> print(round(rankref.optimal_bias(150, 20_000, num_classes=80), 4))
    -9.2748
    """
    nf = _count(num_foreground, "num_foreground")
    n = _count(num_total, "num_total")
    C = check_int(num_classes, "num_classes", 1)
    if nf <= 0 or n <= 0 or nf >= n * C:
        raise ValueError(
            f"need 0 < num_foreground < num_total * num_classes for a prior in (0, 1); got "
            f"num_foreground={show(num_foreground)}, num_total={show(num_total)}, "
            f"num_classes={show(num_classes)}."
        )
    # b = ln(pi / (1 - pi)) = ln(N^f / (N C - N^f)), from the exact ratio
    return _log_ratio(nf / (n * C - nf))


def check_label_batches(label_batches):
    """``label_batches`` if it is an iterable of label arrays (not a string, a number or None);
    an ArgumentTypeError (a TypeError and a ValueError) naming it otherwise."""
    if isinstance(label_batches, (str, bytes)) or not isinstance(label_batches, Iterable):
        raise ArgumentTypeError(
            f"label_batches must be an iterable of label arrays (e.g. a list or a generator "
            f"of arrays), got {type(label_batches).__name__}.")
    return label_batches


class ForegroundPrior(NamedTuple):
    """The result of :func:`foreground_prior`: the foreground and total sample counts.

    A named tuple, so ``optimal_bias(*prior, num_classes=C)`` passes both counts.

    Attributes
    ----------
    num_foreground : int
        ``N^f``: the samples labelled >= 1.
    num_total : int
        ``N``: the samples labelled >= 0 (ignored samples, -1, excluded).

    Examples
    --------
    >>> import numpy as np
    >>> import rankref
    >>> prior = rankref.foreground_prior([np.array([0, 0, 3, -1]), np.array([1, 0, 0, 0])])
    >>> prior
    ForegroundPrior(num_foreground=2, num_total=7)
    >>> print(round(rankref.optimal_bias(*prior, num_classes=4), 4))
    -2.5649
    """

    num_foreground: int
    num_total: int


def foreground_prior(label_batches):
    """Count the foreground and all samples over batches of labels, for :func:`~rankref.optimal_bias`.

    Accumulates ``N^f`` and ``N`` over an iterable of anchor label arrays:
    ``optimal_bias(*foreground_prior(batches), num_classes=C)``.  Labels ``>= 1`` are
    foreground, ``0`` background, ``-1`` ignored (not counted).

    Parameters
    ----------
    label_batches : iterable of integer arrays
        The anchor labels of each batch, values >= -1 (any shape).

    Returns
    -------
    ForegroundPrior
        ``(num_foreground, num_total)``.

    Examples
    --------
    >>> import numpy as np
    >>> import rankref
    >>> rankref.foreground_prior([np.array([0, 0, 3, -1]), np.array([1, 0, 0, 0])])
    ForegroundPrior(num_foreground=2, num_total=7)
    """
    label_batches = check_label_batches(label_batches)
    nf = 0
    n = 0
    for k, labels in enumerate(label_batches):
        y = to_array(labels, f"label batch {k}")
        if y.dtype.kind not in "iu":
            raise ValueError(f"label batch {k} must be an integer array, got dtype {y.dtype}.")
        if y.size and y.min() < -1:
            raise ValueError(f"label batch {k} holds {y.min()}; labels must be >= -1.")
        nf += int((y >= 1).sum())
        n += int((y >= 0).sum())
    return ForegroundPrior(nf, n)


def guided_scale(loc_loss, cls_loss):
    r"""The guided term of Sampling-Free's loss scaling, ``g = L_loc / L_cls``.

    Sampling-Free (Chen et al.), Eq. 21.
    It is used detached, ``L = L_loc + g L_cls`` (Eq. 22), so the classification loss is
    rescaled to the localisation loss of the same batch.  When ``cls_loss`` is 0 the
    classification loss contributes nothing whatever its scale, and the neutral ``g = 1`` is
    returned (the plain ratio would be inf or NaN).

    Parameters
    ----------
    loc_loss, cls_loss : finite numbers >= 0 (Python or NumPy scalars, or one-element arrays:
        NumPy, a CPU torch tensor with or without requires_grad, DLPack or ``__array__``)

    Returns
    -------
    float

    Examples
    --------
    >>> import rankref
    >>> rankref.guided_scale(0.8, 2.0)
    0.4
    >>> rankref.guided_scale(0.8, 0.0)  # no classification loss: the neutral 1
    1.0
    """
    values = []
    for name, v in (("loc_loss", loc_loss), ("cls_loss", cls_loss)):
        if not is_real(v) and not isinstance(v, np.ndarray):
            # a one-element array of another framework (a CPU tensor, DLPack or __array__)
            arr = host_array(v, name)
            if arr is None and (hasattr(v, "__array__") or hasattr(v, "__array_interface__")):
                arr = to_array(v, name)
            v = v if arr is None else arr
        if is_real(v) or isinstance(v, np.ndarray):
            arr = np.asarray(v) if isinstance(v, np.ndarray) else None
            if arr is not None and (arr.size != 1 or arr.dtype.kind not in "fiu"):
                raise ValueError(f"{name} must be a real scalar, got {show(v)}.")
            x = arr.reshape(-1)[0] if arr is not None else v
            try:
                q = as_fraction(x)
            except (ValueError, OverflowError, TypeError):  # NaN, inf
                raise ValueError(f"{name} must be finite and >= 0, got {show(v)}.") from None
            if q < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {show(v)}.")
            values.append(q)
        else:
            raise ValueError(f"{name} must be a real scalar, got {type(v).__name__} {show(v)}.")
    loc, cls = values
    if cls == 0:
        return 1.0
    try:
        return float(loc / cls)  # correctly rounded from the exact ratio
    except OverflowError:
        raise ValueError(
            f"loc_loss / cls_loss = {show(loc_loss)} / {show(cls_loss)} is beyond float64's "
            f"range; cls_loss is too small for the guided scale (use a larger cls_loss or "
            f"skip the scaling for this batch)."
        ) from None
