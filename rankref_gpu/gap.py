"""GAP loss (ROG) and ClassCounts on any namespace."""
import numpy as np

import rankref
from rankref._engine import scale_for_delta
from rankref.gap import GAPResult, _check_gap_inputs
from rankref._validation import as_labels

from . import _pairs
from ._backend import _library, namespace
from ._engine import BucketEngine
from ._mirror import LOSS_VALUES, mirror
from ._pairs import step
from .losses import sorted_positives
from ._validation import EPS, grad_dtype, raise_nonfinite

__all__ = ["ClassCounts", "gap_loss"]


class ClassCounts(rankref.ClassCounts):
    __doc__ = rankref.ClassCounts.__doc__ + (
        "\n    rankref_gpu mirror: the counts stay on the host (C floats); ``update`` accepts "
        "NumPy, CuPy or torch labels\n    and copies only the C per-class counts to the host.\n")

    def update(self, labels):
        xp = namespace(labels)
        if xp.name == "numpy":
            return super().update(labels)
        y = xp.asarray(labels)
        y = as_labels(y.reshape(-1), xp.size(y), self.num_classes, xp=xp,
                      rows=("labels", (xp.size(y),)))
        fg = y[(y >= 0) & (y < self.num_classes)]
        return self._add_histogram(xp.to_host(xp.count(fg, self.num_classes)))


def _host(a):
    """Counts or weights given as a CuPy array or torch tensor: their C values on the host."""
    return namespace(a).to_host(a) if _library(a) is not None else a


@mirror(rankref.gap_loss, LOSS_VALUES + " ``weights`` (omega, C values) is computed on "
        "the host from ``counts`` and sent to the device.")
def gap_loss(scores, labels, counts, delta=0.5, gamma=1.0, method="bucketed",
             exclude_foreground=True, weights=None, *, compute_grad=True):
    xp = namespace(scores, labels)
    s, y, w_host, d = _check_gap_inputs(xp, scores, labels, _host(counts), delta, gamma, method,
                                        _host(weights), exclude_foreground, compute_grad)
    n, C = s.shape
    w = xp.asarray(w_host)
    x = xp.ascontiguousarray(s, dtype=grad_dtype(xp, s.dtype)).reshape(-1)
    gdt = x.dtype
    fg_rows = xp.flatnonzero((y >= 0) & (y < C))
    if fg_rows.shape[0] == 0:
        raise_nonfinite(xp, x, "scores")
        return GAPResult(xp.scalar(0.0), xp.scalar(0.0),
                         xp.zeros((n, C), dtype=gdt) if compute_grad else None, w)
    # positives sorted by class (stable), then by logit (stable), as rankref orders them
    cls_all = y[fg_rows]
    order = xp.argsort(cls_all)
    pos = fg_rows[order] * C + cls_all[order]
    cls = cls_all[order]
    raise_nonfinite(xp, x, "scores", first=pos)  # rankref checks the positives first
    present, _, size = xp.unique_sorted(cls)
    k = present.shape[0]
    grp = xp.searchsorted(present, cls)  # rank of the class among the classes present
    A = w[cls] / (size[grp] * k)
    t = xp.zeros((n, C), dtype=np.int8)
    t[y < 0] = -1
    t = t.reshape(-1)
    t[pos] = 1
    if method == "dense":  # every negative against every positive (P launches, no P x N array)
        sigma = scale_for_delta(d)  # H is invariant; x + delta stays finite
        xpos = xp.astype(x[pos], np.float64) * sigma
        fp = xp.zeros(pos.shape[0])
        negs = xp.flatnonzero(t == 0)
        xn = xp.astype(x[negs], np.float64) * sigma
        d = d * sigma
        with np.errstate(over="ignore"):  # +-inf differences: H = 1 or 0
            for i in range(pos.shape[0]):
                fp[i] = xp.sum(step(xp, xn, xpos[i], d))
        if not exclude_foreground:
            fp = fp + _pairs.group_sums_dense(xp, xpos, grp, d, same=False)
        rank = _pairs.group_sums_dense(xp, xpos, grp, d, same=True) + fp
    else:
        pos, by_x, xq, d, sigma = sorted_positives(xp, x, pos, d)
        cls, grp, A = cls[by_x], grp[by_x], A[by_x]
        engine = BucketEngine(xp, x, t, xq, d, sigma)
        fp = engine.fp()
        if not exclude_foreground:
            fp = fp + _pairs.other_class_sums(xp, xq, grp, k, d)
        rank = _pairs.class_rank(xp, xq, grp, d) + fp
    lval = fp / rank
    per_class = xp.segment_sum(grp, lval, k) / size
    loss, ranking_error = xp.scalar(xp.sum(A * lval)), xp.scalar(xp.mean(per_class))
    if not compute_grad:
        return GAPResult(loss, ranking_error, None, w)
    grad = xp.zeros(n * C, dtype=gdt)
    gate = fp > EPS
    c = xp.where(gate, A / rank, 0.0)
    if method == "dense":
        acc = xp.zeros(negs.shape[0])
        with np.errstate(over="ignore"):
            for i in range(pos.shape[0]):
                acc += step(xp, xn, xpos[i], d) * c[i]
        grad[negs] = xp.astype(acc, gdt)
    else:
        engine.scatter(c, grad)
    pos_grad = xp.where(gate, -A * lval, 0.0)
    if not exclude_foreground and method == "dense":
        pos_grad = pos_grad + _pairs.other_class_scatter_dense(xp, xpos, grp, c, d)
    elif not exclude_foreground:
        pos_grad = pos_grad + _pairs.other_class_scatter(xp, xq, grp, k, c, d)
    grad[pos] = xp.astype(pos_grad, gdt)
    return GAPResult(loss, ranking_error, grad.reshape(n, C), w)
