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
from ._validation import EPS, _nonfinite_flag, grad_dtype, raise_nonfinite_found

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
    # one device sync: the number of foreground rows, of classes present and the finiteness
    # flag, read together; the sizes of the gathers below are then known on the host
    is_fg = (y >= 0) & (y < C)
    hist = xp.count(xp.where(is_fg, y, C), C + 1)[:C]  # foreground rows per class
    n_fg, k, any_x = xp.read_ints(xp.sum(hist), xp.sum(hist > 0), _nonfinite_flag(xp, x))
    if n_fg == 0:
        if any_x:
            raise_nonfinite_found(xp, x, ~xp.isfinite(x), "scores")
        return GAPResult(xp.scalar(0.0), xp.scalar(0.0),
                         xp.zeros((n, C), dtype=gdt) if compute_grad else None, w)
    fg_rows = xp.flatnonzero_sized(is_fg, n_fg)
    # positives sorted by class (stable), then by logit (stable), as rankref orders them
    cls_all = y[fg_rows]
    order = xp.argsort(cls_all)
    pos = fg_rows[order] * C + cls_all[order]
    cls = cls_all[order]
    if any_x:  # rankref checks the positives first
        raise_nonfinite_found(xp, x, ~xp.isfinite(x), "scores", first=pos)
    present = xp.flatnonzero_sized(hist > 0, k)
    size = hist[present]
    grp = xp.searchsorted(present, cls)  # rank of the class among the classes present
    A = w[cls] / (size[grp] * k)
    # -1 on the ignored rows (a broadcast product: no boolean indexing, no sync)
    t = -(xp.reshape(xp.astype(y < 0, np.int8), (n, 1)) * xp.ones((1, C), dtype=np.int8))
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
        engine = BucketEngine(xp, x, t, xq, d, sigma, pos=pos)
        fp = engine.fp()
        if not exclude_foreground:
            fp = fp + _pairs.other_class_sums(xp, xq, grp, k, d)
        rank = _pairs.class_rank(xp, xq, grp, d) + fp
    lval = fp / rank
    per_class = xp.segment_sum(grp, lval, k) / size
    loss, ranking_error = xp.scalar(xp.sum(A * lval)), xp.scalar(xp.mean(per_class))
    if not compute_grad:
        return GAPResult(loss, ranking_error, None, w)
    gate = fp > EPS
    c = xp.where(gate, A / rank, 0.0)
    pos_grad = xp.where(gate, -A * lval, 0.0)
    if method != "dense":  # the negatives and the positives in one write
        if not exclude_foreground:
            pos_grad = pos_grad + _pairs.other_class_scatter(xp, xq, grp, k, c, d)
        grad = engine.gradient(c, gdt, at_pos=pos_grad)
        return GAPResult(loss, ranking_error, grad.reshape(n, C), w)
    grad = xp.zeros(n * C, dtype=gdt)
    acc = xp.zeros(negs.shape[0])
    with np.errstate(over="ignore"):
        for i in range(pos.shape[0]):
            acc += step(xp, xn, xpos[i], d) * c[i]
    grad[negs] = xp.astype(acc, gdt)
    if not exclude_foreground:
        pos_grad = pos_grad + _pairs.other_class_scatter_dense(xp, xpos, grp, c, d)
    grad[pos] = xp.astype(pos_grad, gdt)
    return GAPResult(loss, ranking_error, grad.reshape(n, C), w)
