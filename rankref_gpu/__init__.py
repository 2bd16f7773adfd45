# ruff: noqa: F401  (a re-export module; __all__ is rankref.__all__)
"""rankref_gpu: rankref's public API on CuPy arrays, for GPU-scale N (the cupyx.scipy model).

The same function names, signatures, defaults, return types and errors as :mod:`rankref`.
Everything is built from array primitives that NumPy and CuPy share (sort of the 2P breakpoints,
``searchsorted``, ``bincount`` with weights, ``cumsum``, gathers, ``where``), and the array
module is picked from the inputs: CuPy arrays run on the GPU, NumPy arrays on the CPU, so the
whole GPU code path is exercised without a GPU and can be compared with rankref anywhere.
``import rankref_gpu`` does not need CuPy.

Documented differences from rankref: on CuPy, float sums made by ``bincount`` use atomic
additions, so losses and gradients are reproducible to round-off rather than bitwise (integer
outputs are exact); the samplers draw on the host (see :mod:`rankref_gpu.sampling`).
"""
import rankref
from rankref.buckets import Buckets
from rankref.gap import GAPResult
from rankref.losses import APLossResult, RankSortResult
from rankref.ranking import RelaxedRanks

from .buckets import make_buckets
from .gap import ClassCounts, gap_loss
from .losses import ap_loss, rank_sort_loss
from .ranking import average_precision, heaviside, relaxed_ranks, sort_scores
from .reweighting import (
    balanced_l1_loss,
    bucketed_class_weights,
    class_reweighted_targets,
    lgr_cross_entropy,
    lgr_weights,
)
from .sampling import (
    class_balanced_pos_sample,
    instance_balanced_pos_sample,
    iou_balanced_neg_probabilities,
    iou_balanced_neg_sample,
)
from .sampling_free import ForegroundPrior, foreground_prior, guided_scale, optimal_bias

__all__ = list(rankref.__all__)  # the same public API, by construction
