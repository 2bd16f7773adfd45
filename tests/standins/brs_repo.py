"""Official-style stand-ins of the BRS repository's losses (blisgard/BucketedRankingBasedLosses),
for the tests of ``rankref crosscheck``.  rankref's own code, written to behave as that
repository's code does; the mutation suite of the tests edits this source.

* ``BucketedRankSort.forward(ctx, logits, targets, delta_RS=0.5) -> (ranking, sorting)``: 1-D
  float32 input only (anything else raises), a zero loss and update with no positive.  The
  positives and the negatives at or above ``min(fg) - delta`` are sorted by descending logit;
  each run of consecutive negatives is a bucket, compared with the positives through its mean;
  the denominators are guarded (``FP = 0 -> 1``, ``D = 0 -> 1``) instead of gated.  The
  official code sorts with ``torch.sort``, which does not promise stability; this stand-in
  sorts stably with the positives first, so a negative tied with a positive lands *below* it
  (rankref places it above).
* ``RankSort.forward(ctx, logits, targets, loss_weight=1, delta_RS=0.50, eps=1e-10)``: RS as in
  the RS repository, but its third parameter is ``loss_weight`` (unused), and the heads call
  ``apply(flat_preds, flat_labels, self.delta)``: delta lands in ``loss_weight`` and
  ``delta_RS`` stays 0.5.  With no positive it returns zeros (it does not raise).
* ``APLoss.forward(ctx, logits, targets, delta=1.) -> loss``: as the RS repository's, but with
  no positive it returns a zero loss and update (it does not raise).
"""
import torch

from ranksort_repo import _interpolated_ap, _rank_sort


def _ramp(u, delta):
    if delta > 0:
        return torch.clamp(u / (2 * delta) + 0.5, min=0, max=1)
    return (u >= 0).double()


def _bucketed_rank_sort(logits, targets, delta):
    x = logits.double()
    pos = torch.nonzero(targets > 0).flatten()
    neg = torch.nonzero(targets == 0).flatten()
    Z = pos.numel()
    xp, tp = x[pos], targets[pos].double()
    threshold = xp.min() - delta
    relevant = neg[x[neg] >= threshold]
    ids = torch.cat((pos, relevant))
    ids = ids[torch.argsort(-x[ids], stable=True)]  # positives first among equal logits
    is_neg = targets[ids] == 0
    run = torch.cumsum((~is_neg).long(), 0)[is_neg]  # negatives between two positives
    members = ids[is_neg]
    _, bucket = torch.unique(run, return_inverse=True)
    sizes = torch.bincount(bucket).double()
    means = torch.bincount(bucket, weights=x[members]) / sizes.clamp(min=1)
    valid = means >= threshold
    above_bucket = means[None, :] - xp[:, None]  # [i, bucket]
    if delta > 0:
        h_bucket = torch.clamp(above_bucket / (2 * delta) + 0.5, min=0, max=1)
    else:
        h_bucket = (above_bucket >= 0).double()
    h_bucket = h_bucket * valid[None, :]
    h_pos = _ramp(xp[None, :] - xp[:, None], delta)  # [i, k] = H(x_k - x_i)
    fp = h_bucket @ sizes
    rank_pos = h_pos.sum(1)
    ranking_error = fp / (rank_pos + fp)
    share = ranking_error / torch.where(fp == 0, torch.ones_like(fp), fp)  # guard FP = 0 -> 1
    current = (h_pos * (1 - tp)[None, :]).sum(1) / rank_pos
    target_order = (tp[None, :] >= tp[:, None]) * h_pos
    target = (target_order * (1 - tp)[None, :]).sum(1) / target_order.sum(1)
    sorting_error = current - target
    missorted = (tp[None, :] < tp[:, None]) * h_pos
    denom = missorted.sum(1)
    grads = torch.zeros(targets.shape, dtype=torch.float64)
    grads[members] = (share @ h_bucket)[bucket]
    pos_grad = -ranking_error - sorting_error * (denom != 0)
    spread = sorting_error / torch.where(denom == 0, torch.ones_like(denom), denom)
    pos_grad = pos_grad + (missorted * spread[:, None]).sum(0)
    grads[pos] = pos_grad
    return ranking_error.mean(), sorting_error.mean(), grads / Z


class BucketedRankSort(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, delta_RS=0.5):
        if logits.dim() != 1 or logits.dtype != torch.float32 or targets.dim() != 1:
            raise RuntimeError(f"BucketedRankSort indexes 1-D float32 logits; got "
                               f"{tuple(logits.shape)} {logits.dtype}")
        if not bool((targets > 0).any()):
            ctx.save_for_backward(torch.zeros(targets.shape))
            return logits.sum() * 0.0, logits.sum() * 0.0
        ranking, sorting, grads = _bucketed_rank_sort(logits.detach(), targets, delta_RS)
        ctx.save_for_backward(grads.float())
        return ranking.float(), sorting.float()

    @staticmethod
    def backward(ctx, out_grad1, out_grad2):
        (g1,) = ctx.saved_tensors
        return g1 * out_grad1, None, None, None


class RankSort(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, loss_weight=1, delta_RS=0.50, eps=1e-10):
        if not bool((targets > 0).any()):
            ctx.save_for_backward(torch.zeros(logits.shape))
            return torch.zeros(1), torch.zeros(1)
        ranking, sorting, grads = _rank_sort(logits.detach(), targets, delta_RS, eps)
        ctx.save_for_backward(grads.float())
        return ranking.float(), sorting.float()

    @staticmethod
    def backward(ctx, out_grad1, out_grad2):
        (g1,) = ctx.saved_tensors
        return g1 * out_grad1, None, None, None, None


class APLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, delta=1.):
        if not bool((targets == 1).any()):
            grads = torch.zeros(logits.shape)
            ctx.save_for_backward(grads)
            return grads.sum()
        loss, grads = _interpolated_ap(logits.detach(), targets, delta)
        ctx.save_for_backward(grads.float())
        return loss.float()

    @staticmethod
    def backward(ctx, out_grad1):
        (g1,) = ctx.saved_tensors
        return g1 * out_grad1, None, None
