r"""The GAP loss of ROG (Zhang et al., ICCV 2023) and its online class statistics.

Generalised average precision (Eqs. 5-11 of the ROG paper, official conventions of its code):
positives of class m are the entries ``(r, m)`` of the rows labelled m; every class is ranked
against the *shared* negatives ``Nhat``, the entries that are a positive of no class, in one global
ranking over the whole ``[n, C]`` score matrix.
"""
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from . import _kernels, _pairs
from ._engine import BucketEngine, rescaled, stable_argsort
from ._validation import (
    EPS,
    as_labels,
    check_delta,
    check_flag,
    check_float64_exact,
    check_int,
    check_method,
    check_nonnegative,
    is_integer,
    nonfinite_error,
    raise_nonfinite,
    show,
    to_array,
)
from ._dense import _far_apart_ok, _scaled
from ._dense import step as _step

__all__ = ["ClassCounts", "GAPResult", "gap_loss"]


MAX_CLASSES = 2**24
"""Largest ``num_classes`` of a :class:`ClassCounts` (its counts take 8 bytes per class)."""
MAX_COUNT = 2**53
"""Largest count :meth:`ClassCounts.update` reaches: float64 counts one by one up to 2**53."""


class ClassCounts:
    r"""Online per-class counts of sampled labels, the statistic behind ROG's weights.

    ``|P(m)|`` of Eq. 9 is accumulated batch by batch from the labels of the sampled RoIs.
    Background (``== num_classes``) and ignored (``-1``) labels are not counted.

    Parameters
    ----------
    num_classes : int in [1, 2**24]
        Number of foreground classes C (the counts take 8 bytes per class).

    Attributes
    ----------
    num_classes : int
        The number of foreground classes C.
    counts : ndarray of float64, shape ``(C,)``
        The number of sampled labels of each class so far.

    Notes
    -----
    The official ROG code keeps these counts per GPU.
    :meth:`~rankref.ClassCounts.merge` (or ``+``) sums counts
    across workers, and ``rankref.torch.GAPLoss`` all-reduces them, so every worker can hold the
    global statistic.  The counts are float64: :meth:`update` refuses to raise a count above
    2**53 (beyond it float64 cannot count one by one), and a merge whose sum is beyond the float
    range is refused.  A call that raises leaves the counts unchanged.  See the docs page
    "Numeric ranges and edge cases".

    Examples
    --------
    >>> import numpy as np
    >>> import rankref
    >>> counts = rankref.ClassCounts(num_classes=3)
    >>> counts.update([0, 0, 1, 3, -1])  # 3 is the background, -1 ignored: neither counts
    ClassCounts(num_classes=3, total=3)
    >>> print(counts.counts)
    [2. 1. 0.]
    >>> print(np.round(counts.weights(gamma=1.0), 4))  # class 2, never seen, weighs most
    [0.6 1.2 1.2]
    >>> counts + counts  # e.g. the counts of two workers
    ClassCounts(num_classes=3, total=6)
    """

    def __init__(self, num_classes):
        self.num_classes = check_int(num_classes, "num_classes", 1, MAX_CLASSES)
        self.counts = np.zeros(self.num_classes, dtype=np.float64)

    def update(self, labels):
        """Add a batch of sampled labels (int array, values in [-1, num_classes]); returns self.

        Labels in ``[0, num_classes)`` are counted; the background (``num_classes``) and ignored
        labels (-1) are not.  Raises ValueError (counts unchanged) for labels outside
        ``[-1, num_classes]`` and when a count would exceed 2**53.
        """
        arr = to_array(labels, "labels")
        y = as_labels(arr.reshape(-1), arr.size, self.num_classes, rows=("labels", (arr.size,)))
        fg = y[(y >= 0) & (y < self.num_classes)]
        return self._add_histogram(np.bincount(fg, minlength=self.num_classes))

    def _add_histogram(self, hist):
        """Add a batch's per-class histogram (C host integers), refusing a count above 2**53
        before anything changes (shared with rankref_gpu's update)."""
        over = hist > MAX_COUNT - self.counts  # exact for integral counts up to 2**53
        if over.any():
            k = int(np.flatnonzero(over)[0])
            raise ValueError(
                f"labels would raise the count of class {k} above 2**53 ({self.counts[k]!r} + "
                f"{int(hist[k])}), where float64 counts can no longer grow one by one; reset() "
                f"the counts or rescale them (load_state_dict) first."
            )
        self.counts[...] = self.counts + hist
        return self

    def weights(self, gamma=1.0):
        r"""ROG's class weights omega, one per class, from the counts.

        The official form of Eq. 9 of the paper:

        .. math::

            \omega_m = C\,\frac{(1/n_m)^\gamma}{\sum_{k<C}(1/n_k)^\gamma + 10^{-9}},
            \qquad n = \max(\text{counts}, 1).

        Classes never seen count as seen once, so they get the largest weight.

        Parameters
        ----------
        gamma : float >= 0, default 1.0
            Strength of the global statistic: 0 gives every class the weight ``C / (C + 1e-9)``.

        Returns
        -------
        ndarray of float64, shape ``(num_classes,)``
        """
        g = check_nonnegative(gamma, "gamma")
        with np.errstate(under="ignore"):
            inv = (1.0 / np.maximum(self.counts, 1.0)) ** g
            return self.num_classes * inv / (inv.sum() + 1e-9)

    def merge(self, other):
        """A new ClassCounts holding the sum of both (e.g. two workers' counts).

        Raises TypeError unless ``other`` is a ClassCounts, ValueError for another number of
        classes or when a sum is beyond the float range.
        """
        if not isinstance(other, ClassCounts):
            raise TypeError(f"other must be a ClassCounts to merge, got {type(other).__name__}.")
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"other is a ClassCounts of {other.num_classes} classes but this one has "
                f"{self.num_classes}; only counts of the same classes can be merged."
            )
        with np.errstate(over="ignore"):
            total = self.counts + np.asarray(other.counts, dtype=np.float64)
        if not np.isfinite(total).all():
            k = int(np.flatnonzero(~np.isfinite(total))[0])
            raise ValueError(
                f"the counts of class {k} ({self.counts[k]!r} + other's {other.counts[k]!r}) "
                f"sum beyond float64's range; merge rescaled counts instead."
            )
        out = type(self)(self.num_classes)
        out.counts = total
        return out

    def __add__(self, other):
        if not isinstance(other, ClassCounts):
            return NotImplemented
        return self.merge(other)

    def state_dict(self):
        """``{"num_classes": C, "counts": a copy of the counts}``."""
        return {"num_classes": self.num_classes, "counts": self.counts.copy()}

    def load_state_dict(self, state):
        """Restore the counts saved by :meth:`state_dict`; returns self.

        ``state`` must be a mapping with exactly the keys ``num_classes`` (this object's number
        of classes, an int) and ``counts`` (a real array of shape ``(num_classes,)``, finite
        and >= 0, rounded to float64).  Anything else raises (TypeError for a wrong type,
        ValueError otherwise) and leaves the counts unchanged.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping (the dict returned by state_dict()), got "
                            f"{type(state).__name__}.")
        keys = {"num_classes", "counts"}
        missing = sorted(keys - set(state))
        if missing:
            raise ValueError(f"state must hold the keys 'num_classes' and 'counts' (the dict "
                             f"returned by state_dict()); it lacks {missing}.")
        extra = sorted(map(str, set(state) - keys))
        if extra:
            raise ValueError(f"state must hold only the keys 'num_classes' and 'counts', but "
                             f"it also has {extra}.")
        nc = state["num_classes"]
        if not is_integer(nc):
            raise TypeError(f"state's num_classes must be an int, got {type(nc).__name__} "
                            f"{show(nc)}.")
        arr = to_array(state["counts"], "counts")
        if int(nc) != self.num_classes or arr.shape != (self.num_classes,):
            raise ValueError(
                f"state holds counts for num_classes={show(nc)} (counts of shape {arr.shape}); "
                f"this ClassCounts has {self.num_classes}."
            )
        counts = _nonnegative_vector(arr, "counts", self.num_classes, "state's counts")
        self.counts = counts.copy()
        return self

    def reset(self):
        """Set every count to 0; returns self."""
        self.counts[:] = 0.0
        return self

    def __eq__(self, other):
        return (isinstance(other, ClassCounts) and other.num_classes == self.num_classes
                and np.array_equal(other.counts, self.counts))

    def __repr__(self):
        return f"ClassCounts(num_classes={self.num_classes}, total={self.counts.sum():.0f})"


def _nonnegative_vector(arr, name, C, what=None):
    """A real array of shape ``(C,)``, finite and >= 0, as float64.  Counts and weights are
    statistics that omega depends on smoothly, so they are rounded to float64 like scalars
    (a value beyond float64's range is refused as not finite)."""
    what = what or name
    kind = arr.dtype.kind
    if kind not in "fiu":
        raise ValueError(f"{name} must be a real numeric array of shape ({C},), got dtype "
                         f"{arr.dtype}.")
    if arr.shape != (C,):
        raise ValueError(f"{name} must have shape ({C},), one value per class; got "
                         f"{arr.shape}.")
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        v = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(v) | (v < 0))
    if bad.size:
        raise ValueError(f"{what} must be finite and >= 0, but entry {int(bad[0])} is "
                         f"{v[bad[0]]!r}.")
    return v


class GAPResult(NamedTuple):
    """The result of :func:`gap_loss`: the weighted loss, the logged error, the update and omega.

    A named tuple: ``loss, ranking_error, grad, weights = res`` or read the fields by name.

    Attributes
    ----------
    loss : float
        The weighted objective of Eq. 8, ``L_gap``, consistent with ``grad``.
    ranking_error : float
        The unweighted mean, over the foreground classes present, of the mean ``FP / R`` of
        their positives: the value the official code returns and logs.
    grad : ndarray or None
        The error-driven update of Eq. 11, shape ``[n, C]`` (float32 for float16/float32
        scores, float64 otherwise); 0 on ignored rows.  None when ``compute_grad=False``.
    weights : ndarray of float64, shape ``(C,)``
        The class weights omega used (from the counts, or the ``weights`` argument).

    Examples
    --------
    >>> import numpy as np
    >>> import rankref
    >>> scores = np.array([[1.0, -1.0], [1.2, 0.0]])  # [n, C]: two RoIs, two classes
    >>> res = rankref.gap_loss(scores, np.array([0, 2]), None, weights=np.ones(2))
    >>> print(round(res.loss, 6), round(res.ranking_error, 6), res.weights)
    0.583333 0.583333 [1. 1.]
    >>> print(np.round(res.grad, 6))
    [[-0.583333  0.      ]
     [ 0.583333  0.      ]]
    """

    loss: float
    ranking_error: float
    grad: np.ndarray
    weights: np.ndarray


F32_MAX = float(np.finfo(np.float32).max)


def _resolve_weights(counts, weights, gamma, C):
    """omega (float64 ``[C]``): ``weights`` when given, else from ``counts``.  ``counts`` is
    validated even when ``weights`` is given (it must then be None, a ClassCounts or a valid
    array)."""
    if isinstance(counts, ClassCounts):
        if counts.num_classes != C:
            raise ValueError(
                f"counts is a ClassCounts of {counts.num_classes} classes but scores has {C} "
                f"columns; use ClassCounts({C})."
            )
        cc = counts
    elif counts is None:
        if weights is None:
            raise ValueError("counts is required (a ClassCounts or an array of length C) "
                             "unless weights are given.")
        cc = None
    else:
        if isinstance(counts, (str, bytes, dict)):
            raise ValueError(f"counts must be a ClassCounts or a numeric array of shape ({C},), "
                             f"got {type(counts).__name__}.")
        arr = to_array(counts, "counts")
        cc = ClassCounts(C)
        cc.counts = _nonnegative_vector(arr, "counts", C)
    if weights is not None:
        if isinstance(weights, (str, bytes, dict)):
            raise ValueError(f"weights must be a numeric array of shape ({C},), got "
                             f"{type(weights).__name__}.")
        return _nonnegative_vector(to_array(weights, "weights"), "weights", C).copy()
    return cc.weights(gamma)


def _check_gap_inputs(xp, scores, labels, counts, delta, gamma, method, weights,
                      exclude_foreground=True, compute_grad=True):
    """Validate the arguments of gap_loss (any array module); returns (scores, labels as int64,
    omega on the host, delta)."""
    check_method(method, ("bucketed", "dense"), "gap_loss")
    check_flag(exclude_foreground, "exclude_foreground")
    check_flag(compute_grad, "compute_grad")
    d = check_delta(delta)
    g = check_nonnegative(gamma, "gamma")
    s = to_array(scores, "scores", xp)
    kind = s.dtype.kind if isinstance(s.dtype, np.dtype) else xp.dtype_kind(s.dtype)
    if kind not in "fiu":
        raise ValueError(f"scores must be a real numeric array, got dtype {s.dtype}.")
    if s.ndim != 2:
        raise ValueError(
            f"scores must be 2-D [n, C] (one row per RoI, one column per foreground class, no "
            f"background column); got shape {tuple(s.shape)}."
        )
    n, C = s.shape
    if C < 1:
        raise ValueError("scores must have at least one class column.")
    check_float64_exact(s, "scores", xp)
    y = as_labels(labels, n, C, xp=xp, rows=("scores", (n, C)))
    w = _resolve_weights(counts, weights, g, C)
    if kind == "f" and s.dtype.itemsize <= 4 and w.size and float(w.max()) > F32_MAX:
        raise ValueError(
            f"weights must be at most {F32_MAX:.8g} (float32's maximum) for {s.dtype} scores: "
            f"the gradient is float32 and reaches up to max(weights); got "
            f"{float(w.max())!r}. Pass float64 scores or smaller weights."
        )
    return s, y, w, d


def gap_loss(scores, labels, counts, delta=0.5, gamma=1.0, method="bucketed",
             exclude_foreground=True, weights=None, *, compute_grad=True):
    r"""The generalised average precision (GAP) loss of ROG, ranking every class in one pass.

    ROG: Zhang et al., ICCV 2023, Eqs. 5-11.  For a positive i of class m (entry ``(r, m)`` of
    a row labelled m), with ``H = H_delta``:

    .. math::

        R(i) = \sum_{k\in P(m)} H(x_k - x_i) + \mathrm{FP}(i),\quad
        \mathrm{FP}(i) = \sum_{j\in \hat N} H(x_j - x_i),\quad l_i = \mathrm{FP}(i)/R(i),

        L_{gap} = \frac{1}{|\hat C|}\sum_{m\in\hat C}\frac{\omega_m}{|P(m)|}\sum_{i\in P(m)} l_i,

    where ``Nhat`` holds the entries that are a positive of no class and ``Chat`` the foreground
    classes present.  With ``A_i = omega_m / (|P(m)| |Chat|)``, if ``FP(i) > 1e-10`` positive i
    receives ``-A_i l_i`` and negative j receives ``sum_i A_i H(x_j - x_i) / R(i)`` (Eq. 11).

    Parameters
    ----------
    scores : array_like ``[n, C]``
        Raw logits, no background column.
    labels : int array ``[n]``
        ``[0, C)`` foreground, ``C`` background, ``-1`` ignored (the whole row).
    counts : ClassCounts or array ``[C]``
        Online counts of sampled labels, the current batch included (call
        ``counts.update(labels)`` first).  May be None when ``weights`` is given.
    delta : float >= 0, default 0.5
        Half-width of the ramp of the relaxed step (:func:`heaviside`); 0 is the exact step.
    gamma : float >= 0, default 1.0
        Strength of the global statistic in omega (Eq. 9).
    method : {"bucketed", "dense"}, default "bucketed"
        * ``"bucketed"`` bins ``Nhat`` once for all classes and sends every class's
          coefficients through one scatter, exact for every delta: O(nC + P log P) for P
          positives in all (:ref:`design-pairs`).
        * ``"dense"`` is the per-class O(P_m n C) oracle.
    exclude_foreground : bool, default True
        False is the ablation of Table 4 (Excl. FG off): the negatives of class m are all entries
        not in P(m), so other classes' positives count as its negatives (and receive gradient).
    weights : None or array ``[C]``
        Override omega: all ones is the "no omega" ablation, a fixed prior the "pre-defined
        distribution" one.
    compute_grad : bool, default True
        False computes the values only; ``grad`` is then None.

    Returns
    -------
    GAPResult
        ``(loss, ranking_error, grad, weights)``.

    Notes
    -----
    Conventions of the official ROG GAPLoss: the self term counts ``H(0)``; eps gating at
    ``FP > 1e-10``; normalisation ``omega_m / (|P(m)| |Chat|)``.  The weight lambda of Eq. 10 is
    left to the caller (the official head uses 0.1).  Differences: with no foreground in the
    batch the official head skips the call, while rankref returns a zero loss and gradient; the
    counts may be synchronised across workers (see :class:`ClassCounts`).  The official code has
    no ignore label: it reads a row labelled ``-1`` as a positive of class ``C - 1``; rankref
    ignores such rows.

    Examples
    --------
    Four RoIs, three foreground classes (label 3 is the background):

    >>> import numpy as np
    >>> import rankref
    >>> scores = np.array([[2.0, -1.0, 0.5],
    ...                    [0.3, 0.1, 1.2],
    ...                    [0.8, -0.5, 0.0],
    ...                    [1.1, 0.4, -0.2]])
    >>> labels = np.array([0, 2, 3, 0])
    >>> counts = rankref.ClassCounts(num_classes=3).update(labels)  # this batch included
    >>> res = rankref.gap_loss(scores, labels, counts, delta=0.5)
    >>> print(round(res.loss, 6), round(res.ranking_error, 6))
    0.117647 0.112745
    >>> print(np.round(res.weights, 4))
    [0.6 1.2 1.2]
    >>> print(np.round(res.grad, 4))
    [[ 0.      0.      0.    ]
     [ 0.      0.     -0.1   ]
     [ 0.1176  0.      0.    ]
     [-0.0176  0.      0.    ]]
    """
    s, y, w, d = _check_gap_inputs(np, scores, labels, counts, delta, gamma, method, weights,
                                   exclude_foreground, compute_grad)
    n, C = s.shape
    gdt = np.float32 if s.dtype in (np.float16, np.float32) else np.float64
    x = np.ascontiguousarray(s, dtype=np.float32 if gdt == np.float32 else np.float64).reshape(-1)

    fg_rows = np.flatnonzero((y >= 0) & (y < C))
    grad = np.zeros(n * C, dtype=gdt) if compute_grad else None
    if fg_rows.size == 0:
        raise_nonfinite(x, "scores")
        return GAPResult(0.0, 0.0, grad.reshape(n, C) if compute_grad else None, w)

    # positives sorted by class (stable), for the dense oracle's class loop
    cls_all = y[fg_rows]
    order = np.argsort(cls_all, kind="stable")
    pos = fg_rows[order] * C + cls_all[order]
    cls = cls_all[order]
    present, size = np.unique(cls, return_counts=True)
    grp = np.searchsorted(present, cls)
    xp = x[pos].astype(np.float64)
    bad = _kernels.first_nonfinite(xp)
    if bad >= 0:
        nonfinite_error(x, int(pos[bad]), "scores")
    A = w[cls] / (size[grp] * present.size)

    if method == "dense":
        raise_nonfinite(x, "scores")
        loss, l, gd = _gap_dense(x, y, n, C, pos, cls, present, w, d, exclude_foreground)
        if compute_grad:
            grad[:] = gd
    else:
        # shared negatives: 0, positives 1, ignored rows -1
        t = np.zeros((n, C), dtype=np.int8)
        t[y < 0] = -1
        t.reshape(-1)[pos] = 1
        t = t.reshape(-1)
        by_x = stable_argsort(xp)  # the engine takes the positives by logit
        pos, cls, grp, A = pos[by_x], cls[by_x], grp[by_x], A[by_x]
        x, xp, d = rescaled(x, pos, d)
        engine = BucketEngine(x, t, xp, d, name="scores")
        fp = engine.fp()
        groups = _pairs.groups_of(cls)
        if not exclude_foreground:
            fp = fp + _pairs.other_class_sums(xp, cls, d, groups)
        rank = _pairs.class_rank(xp, cls, d, groups) + fp
        l = fp / rank
        loss = float((A * l).sum())
        if compute_grad:
            gate = fp > EPS
            c = np.where(gate, A / rank, 0.0)
            engine.scatter(c, grad)
            pos_grad = np.where(gate, -A * l, 0.0)
            if not exclude_foreground:
                pos_grad = pos_grad + _pairs.other_class_scatter(xp, cls, c, d, groups)
            grad[pos] = pos_grad
    per_class = np.bincount(grp, weights=l) / size
    return GAPResult(loss, float(per_class.mean()), grad.reshape(n, C) if compute_grad else None,
                     w)


@_far_apart_ok
def _gap_dense(x, y, n, C, pos, cls, present, w, delta, exclude_foreground):
    """The per-class O(P_m n C) oracle, literally Eqs. 6-11 with the official conventions."""
    x, delta = _scaled(x.astype(np.float64), delta)  # H is invariant; x + delta stays finite
    valid = np.repeat(y >= 0, C)  # entries of non-ignored rows
    is_pos = np.zeros(n * C, dtype=bool)
    is_pos[pos] = True
    grad = np.zeros(n * C)
    l_all = np.zeros(pos.size)
    loss = 0.0
    for m in present:
        members = pos[cls == m]
        in_m = np.zeros(n * C, dtype=bool)
        in_m[members] = True
        neg = valid & ~in_m if not exclude_foreground else valid & ~is_pos
        neg_idx = np.flatnonzero(neg)
        A = w[m] / (members.size * present.size)
        for k in np.flatnonzero(cls == m):
            i = pos[k]
            hp = _step(x[members], x[i], delta)
            hn = _step(x[neg_idx], x[i], delta)
            fp = hn.sum()
            rank = hp.sum() + fp
            l = fp / rank
            loss += A * l
            l_all[k] = l
            if fp > EPS:
                grad[i] -= A * l
                grad[neg_idx] += hn * (A / rank)
    return loss, l_all, grad
