"""rankref: exact CPU reference algorithms for ranking-based detection losses.

AP Loss, Rank & Sort (RS) Loss, its bucketed form (BRS) and ROG's GAP loss, computed exactly
for every smoothing width delta by one bucket engine in O(N + P log P), with a dense NumPy
oracle beside every fast path; the imbalance tools of the same papers.  NumPy in, NumPy out.
The "Design" page of the documentation describes the engine; every public function has an
example in its docstring.

>>> import rankref
>>> res = rankref.rank_sort_loss([2.0, 1.0, 0.0], [0.0, 0.9, 0.0], delta=0.5)
>>> print(round(res.ranking_loss, 6), res.grad)
0.666667 [ 0.66666667 -0.66666667  0.        ]
"""
from ._kernels import openmp_enabled  # noqa: F401  (public helper, used by demo and bench)
from .buckets import Buckets, make_buckets
from .gap import ClassCounts, GAPResult, gap_loss
from .losses import APLossResult, RankSortResult, ap_loss, rank_sort_loss
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
from .ranking import RelaxedRanks, average_precision, heaviside, relaxed_ranks, sort_scores

__version__ = "0.1.0"

__all__ = [
    "heaviside",
    "sort_scores",
    "relaxed_ranks",
    "make_buckets",
    "average_precision",
    "rank_sort_loss",
    "ap_loss",
    "gap_loss",
    "ClassCounts",
    "iou_balanced_neg_sample",
    "iou_balanced_neg_probabilities",
    "instance_balanced_pos_sample",
    "class_balanced_pos_sample",
    "bucketed_class_weights",
    "class_reweighted_targets",
    "balanced_l1_loss",
    "lgr_weights",
    "lgr_cross_entropy",
    "optimal_bias",
    "foreground_prior",
    "guided_scale",
    "RelaxedRanks",
    "Buckets",
    "RankSortResult",
    "APLossResult",
    "GAPResult",
    "ForegroundPrior",
]


# Sub-modules imported on first use: ``import rankref`` stays light and never needs torch.
#   rankref.torch       the PyTorch losses and modules (needs torch)
#   rankref.crosscheck  auditing another implementation (``rankref crosscheck``)
#   rankref.explain     every quantity of a loss on a small input (``rankref explain``)
_LAZY_SUBMODULES = ("torch", "crosscheck", "explain")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"rankref.{name}")
    raise AttributeError(f"module 'rankref' has no attribute {name!r}")
