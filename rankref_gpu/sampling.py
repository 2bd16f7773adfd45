"""The balanced samplers for NumPy or CuPy inputs.

The draws are rankref's own, made on the host from a ``numpy.random.Generator`` (identical
indices to :mod:`rankref` for the same generator state), or from a ``cupy.random.Generator``,
which is asked for one 63-bit seed of a host generator (reproducible for a given CuPy state, but
not equal to rankref's draws).  Indices are returned in the input's array module.
"""
import numpy as np

import rankref

from ._backend import array_module, to_host
from ._mirror import mirror

__all__ = ["iou_balanced_neg_sample", "iou_balanced_neg_probabilities",
           "instance_balanced_pos_sample", "class_balanced_pos_sample"]


def _host_rng(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if type(rng).__module__.split(".")[0] == "cupy" and hasattr(rng, "integers"):
        return np.random.default_rng(int(to_host(rng.integers(0, 2**62, size=1))[0]))
    raise ValueError(
        f"rng must be a numpy.random.Generator or a cupy.random.Generator, got "
        f"{type(rng).__name__}."
    )


@mirror(rankref.iou_balanced_neg_sample)
def iou_balanced_neg_sample(max_overlaps, num_expected, *, num_bins=3, floor_thr=-1.0,
                            floor_fraction=0.0, max_iou=None, rng):
    xp = array_module(max_overlaps)
    idx = rankref.iou_balanced_neg_sample(
        to_host(max_overlaps), num_expected, num_bins=num_bins, floor_thr=floor_thr,
        floor_fraction=floor_fraction, max_iou=max_iou, rng=_host_rng(rng))
    return xp.asarray(idx)


@mirror(rankref.iou_balanced_neg_probabilities)
def iou_balanced_neg_probabilities(max_overlaps, num_expected, *, num_bins=3, floor_thr=-1.0,
                                   floor_fraction=0.0, max_iou=None):
    xp = array_module(max_overlaps)
    return xp.asarray(rankref.iou_balanced_neg_probabilities(
        to_host(max_overlaps), num_expected, num_bins=num_bins, floor_thr=floor_thr,
        floor_fraction=floor_fraction, max_iou=max_iou))


@mirror(rankref.instance_balanced_pos_sample)
def instance_balanced_pos_sample(assigned_gt_inds, num_expected, *, rng):
    xp = array_module(assigned_gt_inds)
    return xp.asarray(rankref.instance_balanced_pos_sample(
        to_host(assigned_gt_inds), num_expected, rng=_host_rng(rng)))


@mirror(rankref.class_balanced_pos_sample)
def class_balanced_pos_sample(labels, assigned_gt_inds, num_expected, *, rng):
    xp = array_module(labels, assigned_gt_inds)
    return xp.asarray(rankref.class_balanced_pos_sample(
        to_host(labels), to_host(assigned_gt_inds), num_expected, rng=_host_rng(rng)))
