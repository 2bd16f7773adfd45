"""The balanced samplers for NumPy arrays, CuPy arrays or torch tensors.

Sampling is a few set operations on the host: the inputs are copied to the host, the draws
are rankref's own, and the indices come back as int64 in the input's library and device.
``rng`` may be a ``numpy.random.Generator``, a ``torch.Generator`` or a
``cupy.random.Generator``, exactly as in :mod:`rankref` (the last two are asked for one 63-bit
seed of a host generator): both packages give identical indices for the same generator
state.
"""
import numpy as np

import rankref
from rankref.sampling import _check_rng

from ._backend import _library, namespace
from ._mirror import mirror

__all__ = ["iou_balanced_neg_sample", "iou_balanced_neg_probabilities",
           "instance_balanced_pos_sample", "class_balanced_pos_sample"]

_NOTE = "Sampling runs on the host; the indices are returned in the input's library and device."


def _host_rng(rng):
    """rankref's rule (:func:`rankref.sampling._check_rng`): a NumPy generator is used as it is,
    a torch or CuPy generator seeds one with a 63-bit draw."""
    return _check_rng(rng)


def _host(a):
    return namespace(a).to_host(a) if _library(a) is not None else a


@mirror(rankref.iou_balanced_neg_sample, _NOTE)
def iou_balanced_neg_sample(max_overlaps, num_expected, *, num_bins=3, floor_thr=-1.0,
                            floor_fraction=0.0, max_iou=None, rng):
    xp = namespace(max_overlaps)
    idx = rankref.iou_balanced_neg_sample(
        _host(max_overlaps), num_expected, num_bins=num_bins, floor_thr=floor_thr,
        floor_fraction=floor_fraction, max_iou=max_iou, rng=_host_rng(rng))
    return xp.asarray(idx)


@mirror(rankref.iou_balanced_neg_probabilities, _NOTE.replace("indices", "probabilities"))
def iou_balanced_neg_probabilities(max_overlaps, num_expected, *, num_bins=3, floor_thr=-1.0,
                                   floor_fraction=0.0, max_iou=None):
    xp = namespace(max_overlaps)
    return xp.asarray(rankref.iou_balanced_neg_probabilities(
        _host(max_overlaps), num_expected, num_bins=num_bins, floor_thr=floor_thr,
        floor_fraction=floor_fraction, max_iou=max_iou))


@mirror(rankref.instance_balanced_pos_sample, _NOTE)
def instance_balanced_pos_sample(assigned_gt_inds, num_expected, *, rng):
    xp = namespace(assigned_gt_inds)
    return xp.asarray(rankref.instance_balanced_pos_sample(
        _host(assigned_gt_inds), num_expected, rng=_host_rng(rng)))


@mirror(rankref.class_balanced_pos_sample, _NOTE)
def class_balanced_pos_sample(labels, assigned_gt_inds, num_expected, *, rng):
    xp = namespace(labels, assigned_gt_inds)
    return xp.asarray(rankref.class_balanced_pos_sample(
        _host(labels), _host(assigned_gt_inds), num_expected, rng=_host_rng(rng)))
