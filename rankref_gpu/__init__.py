# ruff: noqa: F401  (a re-export module; __all__ is rankref.__all__)
"""rankref_gpu: rankref's public API on NumPy arrays, CuPy arrays and torch tensors.

The same function names, signatures, defaults, return types and errors as :mod:`rankref`,
built from array primitives only (sort of the 2P thresholds, ``searchsorted``, per-bucket
sums, ``cumsum``, gathers, ``where``) through a small namespace layer
(``rankref_gpu._backend``).

**What runs where.**  Each call runs on the library and device of its array inputs: the first
torch tensor or CuPy array among them decides, other inputs (lists, NumPy arrays) are copied to
it.

==================  ===================  ===============================================
inputs              computes on          results
==================  ===================  ===============================================
NumPy arrays/lists  CPU (NumPy)          NumPy arrays; loss values Python floats
CuPy arrays         their GPU (CuPy)     CuPy arrays on that GPU; loss values 0-d arrays
torch tensors       their device         tensors on that device; loss values 0-d tensors
==================  ===================  ===============================================

NumPy input is the CPU test path of the very code that runs on the GPU: its results equal
rankref's to round-off.  Torch tensors may be on the CPU or on CUDA, of any dtype rankref
accepts (float16, bfloat16, float32, float64, integers), contiguous or not, with or without
``requires_grad`` (inputs are detached; nothing is recorded for autograd).  The device must
support float64 (CPU and CUDA do; Apple's MPS does not).

**Dtypes.**  Sums are accumulated in float64.  Gradients have rankref's dtype: float32 for
float16, bfloat16 and float32 logits, float64 for float64 and integer logits.  Loss values are
float64 (0-d on devices), relaxed ranks, edges, sums and means float64, indices and counts
int64.

**Host round trips.**  None of N-sized data: loss values stay on the device until the caller
asks for ``float(value)``.  A call makes O(1) device syncs, independent of N and P, for the
sizes that depend on the data: one for the validity checks (two flags), one for the number of
positives, one for the number of IoU groups where RS's pair terms run on the segment tree
(above ``rankref_gpu._pairs.DENSE_MAX_P_*`` positives), and a few for BRS runs or GAP classes.
On error the offending entry is located, as rankref does.  The samplers,
``bucketed_class_weights`` (C values), ``foreground_prior`` (Python ints) and GAP's omega (C
values) run on the host.

**Exactness.**  As rankref: exact for every finite delta >= 0 and every finite input (the
thresholds ``x_i +- delta`` as exact reals, window sums with local references that add only
non-negative terms, a power-of-two rescaling for delta above 2**960, division by delta for a
tiny delta), and the positive-positive terms without P x P temporaries (a static segment tree
with a divide and conquer over the IoU or class groups, or dense chunks below a size).

**Reproducibility.**  Integer results (indices, counts, bucket ids) are exact everywhere.
Float results are bitwise reproducible, run to run and whatever the number of threads, on NumPy
and on torch CPU.  The positive-positive terms (segment tree or dense chunks) and the window
sums use no atomics: sorts of integer keys, ``searchsorted``, gathers, elementwise arithmetic
and sums in a fixed order, so they are bitwise reproducible on CUDA and CuPy as well.  The
per-bucket sums of the binning pass (and the BRS run sums, GAP's per-class errors,
``make_buckets`` sums) use atomic additions on CUDA (``index_add_``), reproducible to
round-off, so the loss values and gradients that depend on them are too; with
``torch.use_deterministic_algorithms(True)`` torch switches them to its sorted deterministic
accumulation (and rankref_gpu replaces a float ``cumsum``, which torch refuses there, by a
fixed-order scan), so results are bitwise reproducible.  CuPy has no such mode: its
per-bucket sums are reproducible to round-off.

``import rankref_gpu`` imports neither CuPy nor torch.  Documented differences from rankref: the
loss values of device inputs are 0-d arrays, not floats; ``ClassCounts.update`` accepts device
labels; the samplers also accept a ``cupy.random.Generator`` or a ``torch.Generator``.
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
