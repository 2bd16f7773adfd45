"""Balanced sampling of Libra R-CNN (Pang et al., IJCV journal version, section 3.1).

Every function draws from a passed generator (``rng=``): the same generator state gives the
same indices.  Each uniform draw is taken without replacement from a group listed in increasing
index order, so results are reproducible across runs and backends.

``rng`` may be a ``numpy.random.Generator`` (drawn from directly), a ``torch.Generator`` or a
``cupy.random.Generator``; the last two are asked for one 63-bit seed of a host NumPy
generator (reproducible for a given state, but not equal to the draws of a NumPy generator).
:mod:`rankref_gpu`'s samplers take the same three, with the same rule, so both packages give
the same indices for the same generator state.
"""
import sys

import numpy as np

from ._validation import check_float64_exact, check_int, check_real, show, to_array

INT64_MAX = 2**63 - 1

__all__ = [
    "iou_balanced_neg_sample",
    "iou_balanced_neg_probabilities",
    "instance_balanced_pos_sample",
    "class_balanced_pos_sample",
]


# ------------------------------------------------------------------------------ validation

def _check_rng(rng):
    """The host ``numpy.random.Generator`` to draw from: ``rng`` itself, or one seeded by a
    63-bit integer drawn from a ``torch.Generator`` or ``cupy.random.Generator`` (detected
    through ``sys.modules``: rankref never imports torch or cupy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(rng, torch.Generator):
        seed = torch.randint(0, 2**62, (1,), generator=rng, device=rng.device)
        return np.random.default_rng(int(seed.item()))
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(rng, getattr(cupy.random, "Generator", ())):
        return np.random.default_rng(int(rng.integers(0, 2**62, size=1).get()[0]))
    raise ValueError(
        f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), a "
        f"torch.Generator or a cupy.random.Generator, got {type(rng).__name__}."
    )


def _check_count(value, name, minimum=0):
    return check_int(value, name, minimum)


def _check_ious(max_overlaps):
    iou = to_array(max_overlaps, "max_overlaps")
    if iou.dtype.kind not in "fiu":
        raise ValueError(f"max_overlaps must be a real numeric array, got dtype {iou.dtype}.")
    if iou.ndim != 1:
        raise ValueError(f"max_overlaps must be 1-D (one IoU per candidate), got shape {iou.shape}.")
    check_float64_exact(iou, "max_overlaps")
    iou = iou.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(iou) | (iou < -1.0) | (iou > 1.0))
    if bad.size:
        raise ValueError(
            f"max_overlaps must be finite IoUs in [-1, 1], but entry {bad[0]} is {iou[bad[0]]!r}."
        )
    return iou


def _check_gt_inds(assigned_gt_inds, name="assigned_gt_inds"):
    g = to_array(assigned_gt_inds, name)
    if g.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must be an integer array (0 negative, k > 0 positive of gt k), got dtype "
            f"{g.dtype}."
        )
    if g.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {g.shape}.")
    if g.dtype.kind == "u" and g.dtype.itemsize == 8 and g.size and g.max() > INT64_MAX:
        b = int(np.flatnonzero(g > INT64_MAX)[0])
        raise ValueError(f"{name} must fit in int64 (at most 2**63 - 1), but entry {b} is "
                         f"{int(g[b])}.")
    return g.astype(np.int64)


def _check_iou_args(max_overlaps, num_expected, num_bins, floor_thr, floor_fraction, max_iou):
    """Validated ``(iou, E, num_bins, floor_thr, floor_fraction, max_iou)``."""
    iou = _check_ious(max_overlaps)
    E = check_int(num_expected, "num_expected", 0)
    K = check_int(num_bins, "num_bins", 1)
    ft = check_real(floor_thr, "floor_thr", "-1 (no floor set) or a number in [0, 1)")
    if not (ft == -1.0 or 0.0 <= ft < 1.0):
        raise ValueError(f"floor_thr must be -1 (no floor set) or in [0, 1), got {show(floor_thr)}.")
    ff = check_real(floor_fraction, "floor_fraction", "a number in [0, 1]", low=0.0, high=1.0)
    top = None if max_iou is None else check_real(max_iou, "max_iou", "None or a finite number")
    return iou, E, K, ft, ff, top


def _choose(rng, pool, k):
    """k members of ``pool`` uniformly without replacement (all of it when k >= len(pool))."""
    if k >= pool.size:
        return pool
    if k <= 0:
        return pool[:0]
    return rng.choice(pool, size=k, replace=False)


# ------------------------------------------------------------------------------ IoU-balanced

def _bins(v, members, lo, w, K):
    """The non-empty bins ``[lo + k w, lo + (k+1) w)``, ``k < K``, in increasing k: the members
    (index arrays, increasing) of each.  Each bound is computed exactly as the per-bin loop of
    mmdetection does (``lo + k * w`` in float64), from each member's bin found by a binary
    search: O(n log K) whatever ``K`` (no loop over empty bins)."""
    if not w > 0:  # every bin [start, end) is empty
        return []
    k = np.arange(K, dtype=np.float64)  # K <= E < n here: no larger than the input
    starts = lo + k * w
    last_end = lo + float(K) * w
    b = np.searchsorted(starts, v, side="right") - 1  # the last bin starting at or below v
    inside = (b >= 0) & ((b < K - 1) | (v < last_end))
    b, members = b[inside], members[inside]
    order = np.argsort(b, kind="stable")
    b, members = b[order], members[order]
    _, first, count = np.unique(b, return_index=True, return_counts=True)
    return [members[f:f + c] for f, c in zip(first, count)]


def _iou_plan(iou, E, num_bins, floor_thr, floor_fraction, max_iou):
    """The deterministic part of the IoU-balanced procedure: groups and quotas (for n > E)."""
    idx = np.arange(iou.size)
    if floor_thr > 0:
        floor = idx[(iou >= 0) & (iou < floor_thr)]
        iou_set = idx[iou >= floor_thr]
        lo = floor_thr
    elif floor_thr == 0:
        floor = idx[iou == 0]
        iou_set = idx[iou > 0]
        lo = 0.0
    else:
        floor = idx[:0]
        iou_set = idx
        lo = 0.0
    e_iou = int(E * (1 - floor_fraction))
    plan = {"floor": floor, "iou_set": iou_set, "e_iou": e_iou, "bins": None, "q": 0}
    if iou_set.size > e_iou and num_bins >= 2:
        q = e_iou // num_bins  # int(e_iou / num_bins): e_iou < n is exact in float64
        if q > 0:  # with q == 0 no bin takes anything and the uniform fill decides alone
            top = float(iou.max()) if max_iou is None else max_iou
            plan["bins"] = _bins(iou[iou_set], iou_set, lo, (top - lo) / num_bins, num_bins)
            plan["q"] = q
    return plan


def iou_balanced_neg_sample(max_overlaps, num_expected, *, num_bins=3, floor_thr=-1.0,
                            floor_fraction=0.0, max_iou=None, rng):
    r"""IoU-balanced negative sampling of Libra R-CNN, as mmdetection's ``IoUBalancedNegSampler``.

    The procedure of Eq. 2 of the paper (Pang et al.).  With ``E = num_expected``:

    1. If there are at most E candidates, return them all.
    2. Split the candidates into a floor set and an IoU set: ``floor_thr > 0``: floor =
       ``0 <= iou < floor_thr``, IoU set = ``iou >= floor_thr``; ``floor_thr == 0``: floor =
       ``iou == 0``, IoU set = ``iou > 0``; ``floor_thr == -1``: no floor set, the IoU set is every
       candidate and the bins start at 0.  Candidates in neither set are reachable only by step 5.
    3. ``E_iou = int(E (1 - floor_fraction))``.  If the IoU set has at most ``E_iou`` members take
       them all; else with ``num_bins >= 2`` split ``[lo, max_iou)`` into ``num_bins`` equal bins
       ``[lo + k w, lo + (k+1) w)`` (``lo = max(floor_thr, 0)``), take ``min(q, |bin|)``
       uniformly from each, ``q = int(E_iou / num_bins)``, then fill up to ``E_iou`` uniformly from
       the IoU-set members not yet taken; with ``num_bins == 1`` take ``E_iou`` uniformly.
    4. Take ``E - (number taken in step 3)`` uniformly from the floor set (all of it if smaller).
    5. If fewer than E were taken, fill uniformly from all candidates not yet taken.

    The selection probability of a candidate in bin k is ``E / (K M_k)`` when the bins are full
    (Eq. 2); :func:`iou_balanced_neg_probabilities` gives it exactly in every case.

    Parameters
    ----------
    max_overlaps : 1-D array of IoUs in [-1, 1]
        The max IoU of each negative candidate with the ground truths.
    num_expected : int >= 0
    num_bins : int >= 1, default 3
    floor_thr : -1 or float in [0, 1), default -1
    floor_fraction : float in [0, 1], default 0
    max_iou : float, optional
        Upper end of the bins.  Defaults to the largest candidate IoU.  mmdetection uses the
        maximum over *all* boxes, which is 1 because the gt boxes are prepended to the proposals:
        pass ``max_iou=1.0`` for the official behaviour.
    rng : numpy.random.Generator, torch.Generator or cupy.random.Generator
        The source of the draws (a torch or CuPy generator seeds a NumPy generator with one
        63-bit draw; see the module docstring).

    Returns
    -------
    ndarray of int64
        Sorted indices into ``max_overlaps``.

    Notes
    -----
    Quirk of the official sampler object: it stores ``floor_thr = -1`` and overwrites it with 0
    on its first call, so from the second call on it behaves as ``floor_thr=0`` (floor set =
    zero IoU).  rankref is stateless: pass ``floor_thr=0`` to reproduce those later calls.

    Examples
    --------
    Nine candidates in three IoU bins of 5, 3 and 1 members; six are drawn, two per bin where
    the bin has them, then one more from the rest:

    >>> import numpy as np
    >>> import rankref
    >>> iou = np.array([0.0, 0.05, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.45])
    >>> idx = rankref.iou_balanced_neg_sample(iou, 6, max_iou=0.5, rng=np.random.default_rng(0))
    >>> print(idx.size, 8 in idx)  # the only high-IoU candidate is always taken
    6 True
    """
    rng = _check_rng(rng)
    iou, E, K, ft, ff, top = _check_iou_args(max_overlaps, num_expected, num_bins, floor_thr,
                                             floor_fraction, max_iou)
    n = iou.size
    if n <= E:
        return np.arange(n, dtype=np.int64)
    plan = _iou_plan(iou, E, K, ft, ff, top)
    taken = np.zeros(n, dtype=bool)
    iou_set, e_iou = plan["iou_set"], plan["e_iou"]
    if iou_set.size <= e_iou:
        taken[iou_set] = True
    elif plan["bins"] is not None:
        for members in plan["bins"]:
            taken[_choose(rng, members, plan["q"])] = True
        rest = iou_set[~taken[iou_set]]
        taken[_choose(rng, rest, e_iou - (iou_set.size - rest.size))] = True
    else:
        taken[_choose(rng, iou_set, e_iou)] = True
    n3 = int(taken.sum())
    taken[_choose(rng, plan["floor"], E - n3)] = True
    n4 = int(taken.sum())
    if n4 < E:
        rest = np.flatnonzero(~taken)
        taken[_choose(rng, rest, E - n4)] = True
    return np.flatnonzero(taken).astype(np.int64)


def iou_balanced_neg_probabilities(max_overlaps, num_expected, *, num_bins=3, floor_thr=-1.0,
                                   floor_fraction=0.0, max_iou=None):
    r"""Exact inclusion probability of every candidate under :func:`iou_balanced_neg_sample`.

    Every step draws uniformly without replacement from a group whose size is fixed by the
    counts alone, so each step contributes a closed form: a member of a group of size ``M`` from
    which ``k`` are drawn is taken with probability ``k/M``, and a later fill of ``f`` from the
    ``R`` members still untaken adds ``(1 - p) f / R``.  For full bins the first step is Eq. 2
    of the paper, ``p_k = (N/K) / M_k``.

    Parameters are those of :func:`iou_balanced_neg_sample` (no ``rng``).

    Returns
    -------
    ndarray of float64, one probability per candidate; they sum to ``min(E, n)``.

    Examples
    --------
    The candidates of the :func:`iou_balanced_neg_sample` example.  A member of the first bin is
    taken by its bin's draw (two of five) or else by the fill (one of the four left):
    ``2/5 + 3/5 * 1/4 = 0.55``:

    >>> import numpy as np
    >>> import rankref
    >>> iou = np.array([0.0, 0.05, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.45])
    >>> p = rankref.iou_balanced_neg_probabilities(iou, 6, max_iou=0.5)
    >>> print(np.round(p, 4))
    [0.55 0.55 0.55 0.55 0.55 0.75 0.75 0.75 1.  ]
    >>> print(round(p.sum(), 12))
    6.0
    """
    iou, E, K, ft, ff, top = _check_iou_args(max_overlaps, num_expected, num_bins, floor_thr,
                                             floor_fraction, max_iou)
    n = iou.size
    p = np.zeros(n)
    if n <= E:
        p[:] = 1.0
        return p
    plan = _iou_plan(iou, E, K, ft, ff, top)
    iou_set, e_iou = plan["iou_set"], plan["e_iou"]
    if iou_set.size <= e_iou:
        p[iou_set] = 1.0
        n3 = iou_set.size
    elif plan["bins"] is not None:
        q = plan["q"]
        in_bins = 0
        for members in plan["bins"]:
            if members.size:
                p[members] = min(q, members.size) / members.size
                in_bins += min(q, members.size)
        remaining = iou_set.size - in_bins
        fill = min(e_iou - in_bins, remaining)
        if remaining > 0:
            p[iou_set] += (1.0 - p[iou_set]) * (fill / remaining)
        n3 = in_bins + fill
    else:
        p[iou_set] = e_iou / iou_set.size
        n3 = e_iou
    floor = plan["floor"]
    n4 = n3 + min(floor.size, E - n3)
    if floor.size:
        p[floor] = min(floor.size, E - n3) / floor.size
    if n4 < E:
        pool = n - n4
        p += (1.0 - p) * ((E - n4) / pool)
    return p


# ------------------------------------------------------------------------------ positives

def _balanced_over_groups(groups, E, quota, rng, pick):
    """Take ``pick(group, quota)`` from each group, then trim the union to E or fill it up to E
    uniformly from the members not yet taken.  ``groups`` are index arrays, in a fixed order."""
    everyone = np.sort(np.concatenate(groups))
    taken = np.concatenate([pick(g, quota) for g in groups])
    if taken.size > E:
        taken = _choose(rng, np.sort(taken), E)
    elif taken.size < E:
        rest = np.setdiff1d(everyone, taken, assume_unique=True)
        taken = np.concatenate([taken, _choose(rng, rest, E - taken.size)])
    return np.sort(taken).astype(np.int64)


def _instance_balanced(pos, gt, E, rng):
    """Instance-balanced sampling of the positives ``pos`` (indices) with gt ids ``gt``."""
    if pos.size <= E:
        return np.sort(pos).astype(np.int64)
    ids = np.unique(gt)
    groups = [pos[gt == g] for g in ids]
    quota = int(round(E / ids.size) + 1)
    return _balanced_over_groups(groups, E, quota, rng, lambda g, k: _choose(rng, g, k))


def instance_balanced_pos_sample(assigned_gt_inds, num_expected, *, rng):
    r"""Instance-balanced positive sampling of Libra R-CNN: an equal number of positives per gt.

    Libra R-CNN (Pang et al.), section 3.1.

    Positives are the entries with ``assigned_gt_inds > 0`` (0 is a negative, -1 ignored).  If
    there are at most ``E = num_expected`` of them, all are returned.  Otherwise, with G the
    number of distinct gts, up to ``int(round(E / G) + 1)`` are taken uniformly per gt (Python's
    ``round``, half to even; gts in increasing id order); if that is more than E, E are taken
    uniformly from the union, and if fewer, the rest is filled uniformly from the positives not
    yet taken.

    Parameters
    ----------
    assigned_gt_inds : int array (0 negative, k > 0 positive of gt k, -1 ignored)
    num_expected : int >= 0
    rng : numpy.random.Generator, torch.Generator or cupy.random.Generator
        The source of the draws (a torch or CuPy generator seeds a NumPy generator with one
        63-bit draw; see the module docstring).

    Returns
    -------
    ndarray of int64: sorted indices into ``assigned_gt_inds``, exactly ``min(E, #positives)``.

    Notes
    -----
    mmdetection's ``InstanceBalancedPosSampler`` fills from *all* positives (its set difference
    of tensors removes nothing), so it can repeat an index and return fewer than E after
    ``unique()``.  rankref fills from the positives not yet taken and never repeats one.

    Examples
    --------
    Six positives of gt 1, two of gt 2 and one of gt 3; six are drawn, at most three per gt:

    >>> import numpy as np
    >>> import rankref
    >>> gt = np.array([1, 1, 1, 1, 1, 1, 2, 2, 0, 3, -1, 0])
    >>> idx = rankref.instance_balanced_pos_sample(gt, 6, rng=np.random.default_rng(0))
    >>> print(np.bincount(gt[idx], minlength=4))  # taken per gt id
    [0 3 2 1]
    """
    rng = _check_rng(rng)
    g = _check_gt_inds(assigned_gt_inds)
    E = _check_count(num_expected, "num_expected")
    pos = np.flatnonzero(g > 0)
    return _instance_balanced(pos, g[pos], E, rng)


def class_balanced_pos_sample(labels, assigned_gt_inds, num_expected, *, rng):
    r"""Class-balanced positive sampling of Libra R-CNN: an equal quota per class, then per gt.

    Libra R-CNN (Pang et al.), section 3.1, last paragraph: an equal quota per class first, then
    instance-balanced sampling within each class.

    With K the number of classes among the positives (``assigned_gt_inds > 0``) and
    ``E = num_expected``: if there are at most E positives all are returned; otherwise each class
    (in increasing label order) receives the quota ``int(round(E / K) + 1)`` (the per-gt rule of
    :func:`instance_balanced_pos_sample`, applied to classes) and is sampled instance-balanced
    with that quota; the union is then trimmed to E uniformly, or filled up to E uniformly from
    the positives not yet taken.

    Parameters
    ----------
    labels : int array, same length as ``assigned_gt_inds``
        Class of each entry (only the positives' labels are used).
    assigned_gt_inds : int array (0 negative, k > 0 positive of gt k, -1 ignored)
    num_expected : int >= 0
    rng : numpy.random.Generator, torch.Generator or cupy.random.Generator
        The source of the draws (a torch or CuPy generator seeds a NumPy generator with one
        63-bit draw; see the module docstring).

    Returns
    -------
    ndarray of int64: sorted indices, exactly ``min(E, #positives)``.

    Examples
    --------
    Seven positives of class 5 and two of class 7; five are drawn, three per class at most:

    >>> import numpy as np
    >>> import rankref
    >>> gt = np.array([1, 1, 1, 1, 1, 1, 2, 2, 0, 3, -1, 0])
    >>> labels = np.array([5, 5, 5, 5, 5, 5, 7, 7, 0, 5, 0, 0])
    >>> idx = rankref.class_balanced_pos_sample(labels, gt, 5, rng=np.random.default_rng(0))
    >>> classes, taken = np.unique(labels[idx], return_counts=True)
    >>> print(classes, taken)
    [5 7] [3 2]
    """
    rng = _check_rng(rng)
    g = _check_gt_inds(assigned_gt_inds)
    y = _check_gt_inds(labels, name="labels")
    if y.shape != g.shape:
        raise ValueError(
            f"labels has shape {y.shape} but assigned_gt_inds has shape {g.shape}; pass one "
            f"label per entry."
        )
    E = _check_count(num_expected, "num_expected")
    pos = np.flatnonzero(g > 0)
    if pos.size <= E:
        return pos.astype(np.int64)
    classes = np.unique(y[pos])
    groups = [pos[y[pos] == c] for c in classes]
    quota = int(round(E / classes.size) + 1)
    return _balanced_over_groups(
        groups, E, quota, rng, lambda grp, k: _instance_balanced(grp, g[grp], k, rng)
    )
