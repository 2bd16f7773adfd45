"""An official-style stand-in of the BRS repository's ``BucketedRankSort``, for the tests of
``rankref crosscheck``.

``BucketedRankSort.forward(ctx, logits, targets, delta_RS=0.5) -> (ranking, sorting)``, the whole
update on the ranking output, 1-D float32 input only (anything else raises), a zero loss and
update with no positive.  Bucketed Rank & Sort: the positives and the negatives above
``min(fg) - delta`` are sorted by descending logit, each run of consecutive negatives is a bucket
compared with the positives through its mean, with the official guards ``FP = 0 -> 1`` and
``D = 0 -> 1``.  The official code sorts the positives followed by the negatives with
``torch.sort``, which does not promise stability; this stand-in sorts them stably, so a negative
tied with a positive lands *below* it (rankref places it above).

The bucket terms are computed densely (every positive against every bucket mean, through
``rankref.heaviside``); the sorting term, identical to RS, comes from rankref's dense oracle.

``BucketedRankSortOnePercentOff`` scales the positives' update by 1.01, a mistake crosscheck must
catch.
"""
import numpy as np
import torch

import rankref


def _bucketed_rank_sort(x, t, delta):
    """(ranking loss, sorting loss, update) in float64, tied negatives placed below."""
    x64 = x.astype(np.float64)
    pos = np.flatnonzero(t > 0)
    neg = np.flatnonzero(t == 0)
    Z = pos.size
    xp = x64[pos]
    relevant = neg[x64[neg] >= xp.min() - delta]
    ids = np.concatenate([pos, relevant])
    ids = ids[np.argsort(-x64[ids], kind="stable")]  # positives first among equal logits
    is_neg = t[ids] == 0
    run = np.cumsum(~is_neg)[is_neg]  # negatives between the same two positives share a run
    members = ids[is_neg]
    _, bucket = np.unique(run, return_inverse=True)
    sizes = np.bincount(bucket).astype(np.float64)
    means = np.bincount(bucket, weights=x64[members]) / np.maximum(sizes, 1.0)
    h_bucket = rankref.heaviside(means[None, :] - xp[:, None], delta)  # [positive, bucket]
    fp = h_bucket @ sizes
    rank_pos = rankref.heaviside(xp[None, :] - xp[:, None], delta).sum(axis=1)
    ranking_error = fp / (rank_pos + fp)
    c = ranking_error / np.where(fp == 0, 1.0, fp) / Z  # guard FP = 0 -> 1, no eps gating
    sort = rankref.rank_sort_loss(x64, t, delta, method="dense")
    grad = np.array(sort.sorting_grad, dtype=np.float64)
    grad[members] = (c @ h_bucket)[bucket]
    grad[pos] += -ranking_error / Z
    return float(ranking_error.mean()), sort.sorting_loss, grad


def _forward(ctx, logits, targets, delta, positive_scale):
    if logits.dim() != 1 or logits.dtype != torch.float32 or targets.dim() != 1:
        raise RuntimeError(f"BucketedRankSort indexes 1-D float32 logits; got "
                           f"{tuple(logits.shape)} {logits.dtype}")
    grad = torch.zeros(targets.shape)
    if not bool((targets > 0).any()):
        ctx.save_for_backward(grad)
        return logits.sum() * 0.0, logits.sum() * 0.0
    x = logits.detach().cpu().numpy()
    t = targets.detach().cpu().numpy()
    ranking, sorting, g = _bucketed_rank_sort(x, t, delta)
    grad = torch.from_numpy(g.astype(np.float32))
    grad[targets > 0] *= positive_scale
    ctx.save_for_backward(grad)
    return torch.tensor(ranking, dtype=torch.float32), torch.tensor(sorting, dtype=torch.float32)


def _backward(ctx, out_grad1, out_grad2):
    (g1,) = ctx.saved_tensors
    return g1 * out_grad1, None, None, None


class BucketedRankSort(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, delta_RS=0.5):
        return _forward(ctx, logits, targets, delta_RS, 1.0)

    backward = staticmethod(_backward)


class BucketedRankSortOnePercentOff(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, delta_RS=0.5):
        return _forward(ctx, logits, targets, delta_RS, 1.01)

    backward = staticmethod(_backward)
