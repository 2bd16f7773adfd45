"""GAP loss (ROG) and ClassCounts on any array module."""
import numpy as np

import rankref
from rankref.gap import GAPResult, _check_gap_inputs

from ._backend import array_module, to_host
from ._engine import BucketEngine
from ._mirror import mirror
from ._pairs import group_sums, other_class_scatter
from ._validation import EPS, raise_nonfinite

__all__ = ["ClassCounts", "gap_loss"]


class ClassCounts(rankref.ClassCounts):
    __doc__ = rankref.ClassCounts.__doc__ + (
        "\n    rankref_gpu mirror: the counts stay on the host (C values); ``update`` accepts NumPy "
        "or CuPy labels.\n")

    def update(self, labels):
        return super().update(to_host(labels))


@mirror(rankref.gap_loss)
def gap_loss(scores, labels, counts, delta=0.5, gamma=1.0, method="bucketed",
             exclude_foreground=True, weights=None, *, compute_grad=True):
    xp = array_module(scores, labels)
    s, y, w_host, d = _check_gap_inputs(xp, scores, labels, counts, delta, gamma, method,
                                        to_host(weights) if weights is not None else None)
    n, C = s.shape
    w = xp.asarray(w_host)
    gdt = np.float32 if s.dtype in (np.float16, np.float32) else np.float64
    x = xp.ascontiguousarray(s, dtype=gdt).reshape(-1)
    raise_nonfinite(xp, x, "scores")
    grad = xp.zeros(n * C, dtype=gdt)
    fg_rows = xp.flatnonzero((y >= 0) & (y < C))
    if fg_rows.size == 0:
        return GAPResult(0.0, 0.0, grad.reshape(n, C) if compute_grad else None, w)
    cls_all = y[fg_rows]
    order = xp.argsort(cls_all, kind="stable")
    pos = fg_rows[order] * C + cls_all[order]
    cls = cls_all[order]
    present, first, size = (xp.asarray(a) for a in np.unique(to_host(cls), return_index=True,
                                                           return_counts=True))
    grp = xp.searchsorted(present, cls)
    xpos = x[pos].astype(np.float64)
    A = w[cls] / (size[grp] * present.size)
    t = xp.zeros((n, C), dtype=np.int8)
    t[y < 0] = -1
    t.reshape(-1)[pos] = 1
    t = t.reshape(-1)
    if method == "dense":
        # per class, every negative: the same sums as the bucket engine, densely (chunked)
        from ._pairs import heaviside

        fp = xp.zeros(pos.size)
        negs = xp.flatnonzero(t == 0)
        xn = x[negs].astype(np.float64)
        for i0 in range(pos.size):
            fp[i0] = heaviside(xp, xn - xpos[i0], d).sum()
    else:
        engine = BucketEngine(xp, x, t, xpos, d, name="scores")
        fp = engine.fp()
    if not exclude_foreground:
        fp = fp + group_sums(xp, xpos, grp, d, same=False)
    rank = group_sums(xp, xpos, grp, d, same=True) + fp
    lval = fp / rank
    per_class = xp.bincount(grp, weights=lval, minlength=present.size) / size
    if not compute_grad:
        return GAPResult(float((A * lval).sum()), float(per_class.mean()), None, w)
    gate = fp > EPS
    c = xp.where(gate, A / rank, 0.0)
    if method == "dense":
        acc = xp.zeros(negs.size)
        for i0 in range(pos.size):
            acc += heaviside(xp, xn - xpos[i0], d) * c[i0]
        grad[negs] = acc.astype(gdt)
    else:
        engine.scatter(c, grad)
    pos_grad = xp.where(gate, -A * lval, 0.0)
    if not exclude_foreground:
        pos_grad = pos_grad + other_class_scatter(xp, xpos, grp, c, d)
    grad[pos] = pos_grad.astype(gdt)
    return GAPResult(float((A * lval).sum()), float(per_class.mean()), grad.reshape(n, C), w)
