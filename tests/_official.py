"""Literal float32 NumPy transcriptions of the official loops, as independent references.

RankSort: the per-positive loop of kemaloksuz/RankSortLoss (relevant negatives cut at
min(fg) - delta, float32 arithmetic, argsort order, eps gating, normalisation by |P|).
BucketedRankSort: the published procedure (the user guide's BRS section) as a plain loop over a sorted
list (negatives tied with a positive placed above it), bucket means as prototypes.
"""
import numpy as np


def _h(u, delta):
    if delta > 0:
        return np.clip(u / np.float32(2 * delta) + np.float32(0.5), 0, 1).astype(np.float32)
    return (u >= 0).astype(np.float32)


def official_rank_sort(logits, targets, delta=0.5, eps=1e-10):
    logits = np.asarray(logits, np.float32).ravel()
    targets = np.asarray(targets, np.float32).ravel()
    grads = np.zeros(logits.shape, np.float32)
    fg = targets > 0.0
    fg_logits, fg_targets = logits[fg], targets[fg]
    fg_num = len(fg_logits)
    threshold = fg_logits.min() - np.float32(delta)
    rel_bg = (targets == 0) & (logits >= threshold)
    bg_logits = logits[rel_bg]
    bg_grad = np.zeros(len(bg_logits), np.float32)
    sorting_error = np.zeros(fg_num, np.float32)
    ranking_error = np.zeros(fg_num, np.float32)
    fg_grad = np.zeros(fg_num, np.float32)
    for ii in np.argsort(fg_logits):
        fg_rel = _h(fg_logits - fg_logits[ii], delta)
        bg_rel = _h(bg_logits - fg_logits[ii], delta)
        rank_pos = fg_rel.sum(dtype=np.float32)
        fp_num = bg_rel.sum(dtype=np.float32)
        rank = rank_pos + fp_num
        ranking_error[ii] = fp_num / rank
        current = (fg_rel * (1 - fg_targets)).sum(dtype=np.float32) / rank_pos
        iou_rel = fg_targets >= fg_targets[ii]
        target_order = iou_rel * fg_rel
        target = (target_order * (1 - fg_targets)).sum(dtype=np.float32) / target_order.sum(
            dtype=np.float32)
        sorting_error[ii] = current - target
        if fp_num > eps:
            fg_grad[ii] -= ranking_error[ii]
            bg_grad += bg_rel * (ranking_error[ii] / fp_num)
        missorted = (~iou_rel) * fg_rel
        denom = missorted.sum(dtype=np.float32)
        if denom > eps:
            fg_grad[ii] -= sorting_error[ii]
            fg_grad += missorted * (sorting_error[ii] / denom)
    grads[fg] = fg_grad / fg_num
    grads[rel_bg] = bg_grad / fg_num
    return float(ranking_error.mean()), float(sorting_error.mean()), grads


def literal_brs(logits, targets, delta=0.5):
    """BRS as described: sort descending (negatives tied with a positive first), runs of
    negatives between positives are buckets, compared through their mean.  float64."""
    x = np.asarray(logits, np.float64).ravel()
    t = np.asarray(targets, np.float64).ravel()
    pos = np.flatnonzero(t > 0)
    xp, tp = x[pos], t[pos]
    Z = len(pos)
    cut = xp.min() - delta
    entries = [(x[j], 0 if t[j] == 0 else 1, j) for j in range(len(x))
               if t[j] > 0 or (t[j] == 0 and x[j] >= cut)]
    # descending score; at equal score the negative (key 0) comes first, i.e. above
    entries.sort(key=lambda e: (-e[0], e[1]))
    buckets, current = [], []
    for value, is_pos, j in entries:
        if is_pos:
            if current:
                buckets.append(current)
            current = []
        else:
            current.append(j)
    if current:
        buckets.append(current)
    means = np.array([x[b].mean() for b in buckets])
    sizes = np.array([len(b) for b in buckets], np.float64)
    h = (lambda u: np.clip(u / (2 * delta) + 0.5, 0, 1)) if delta > 0 else (
        lambda u: (u >= 0).astype(np.float64))
    grad = np.zeros_like(x)
    bucket_grad = np.zeros(len(buckets))
    fg_grad = np.zeros(Z)
    re = np.zeros(Z)
    se = np.zeros(Z)
    for i in range(Z):
        fp = (sizes * h(means - xp[i])).sum() if len(buckets) else 0.0
        hp = h(xp - xp[i])
        rank_pos = hp.sum()
        rank = rank_pos + fp
        re[i] = fp / rank
        fg_grad[i] -= re[i] / Z
        if len(buckets):
            bucket_grad += h(means - xp[i]) * (re[i] / (fp if fp != 0 else 1.0)) / Z
        cur = (hp * (1 - tp)).sum() / rank_pos
        above = (tp >= tp[i]) * hp
        se[i] = cur - (above * (1 - tp)).sum() / above.sum()
        mis = (tp < tp[i]) * hp
        D = mis.sum()
        fg_grad[i] -= se[i] / Z
        fg_grad += mis * (se[i] / (D if D != 0 else 1.0)) / Z
    for b, members in enumerate(buckets):
        grad[members] = bucket_grad[b]
    grad[pos] = fg_grad
    return re.mean(), se.mean(), grad
