"""Official-style stand-ins of the RS repository's ``RankSort`` and ``APLoss`` autograd Functions
(kemaloksuz/RankSortLoss), for the tests of ``rankref crosscheck``.

rankref's own vectorised code (every positive against every relevant entry at once), written to
behave as the official code does; the mutation suite of the tests edits this source:

* ``RankSort.forward(ctx, logits, targets, delta_RS=0.50, eps=1e-10) -> (ranking, sorting)``:
  positives are ``targets > 0`` (their IoU), the relevant negatives those at or above
  ``min(fg) - delta``; the ranking and sorting updates are gated at ``eps`` and normalised by
  the number of positives; the backward puts the whole update on the ranking output and none on
  the sorting output.  With no positive it raises at its relevance cut (``torch.min`` of an
  empty tensor), as the official code does.
* ``APLoss.forward(ctx, logits, targets, delta=1.) -> loss``: positives are ``targets == 1``, the
  self term counts 1, the precision is interpolated by a running maximum over the positives in
  ascending logit order; it raises with no positive at its relevance cut; at ``delta = 0`` its
  ramp ``clamp(u / (2 delta) + 0.5)`` is ``0/0 = NaN`` on an exact tie.
"""
import torch


def _ramp(u, delta):
    if delta > 0:
        return torch.clamp(u / (2 * delta) + 0.5, min=0, max=1)
    return (u >= 0).double()


def _rank_sort(logits, targets, delta, eps):
    fg = targets > 0.0
    fg_logits = logits[fg].double()
    threshold = torch.min(fg_logits) - delta  # the relevance cut: raises with no positive
    bg = (targets == 0) & (logits >= threshold)
    xp, xn, tp = fg_logits, logits[bg].double(), targets[fg].double()
    Z = xp.numel()
    h_pos = _ramp(xp[None, :] - xp[:, None], delta)  # [i, k] = H(x_k - x_i), self included
    h_neg = _ramp(xn[None, :] - xp[:, None], delta)  # [i, j] = H(x_j - x_i)
    rank_pos = h_pos.sum(1)
    fp = h_neg.sum(1)
    ranking_error = fp / (rank_pos + fp)
    current = (h_pos * (1 - tp)[None, :]).sum(1) / rank_pos
    target_order = (tp[None, :] >= tp[:, None]) * h_pos
    target = (target_order * (1 - tp)[None, :]).sum(1) / target_order.sum(1)
    sorting_error = current - target
    ranking_gate = fp > eps
    pos_grad = -torch.where(ranking_gate, ranking_error, torch.zeros_like(fp))
    share = torch.where(ranking_gate, ranking_error / fp, torch.zeros_like(fp))
    neg_grad = (h_neg * share[:, None]).sum(0)
    missorted = (tp[None, :] < tp[:, None]) * h_pos
    denom = missorted.sum(1)
    sorting_gate = denom > eps
    pos_grad = pos_grad - torch.where(sorting_gate, sorting_error, torch.zeros_like(fp))
    spread = torch.where(sorting_gate, sorting_error / denom, torch.zeros_like(fp))
    pos_grad = pos_grad + (missorted * spread[:, None]).sum(0)
    grads = torch.zeros(logits.shape, dtype=torch.float64)
    grads[fg] = pos_grad / Z
    grads[bg] = neg_grad / Z
    return ranking_error.mean(), sorting_error.mean(), grads


class RankSort(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, delta_RS=0.50, eps=1e-10):
        ranking, sorting, grads = _rank_sort(logits.detach(), targets, delta_RS, eps)
        ctx.save_for_backward(grads.float())
        return ranking.float(), sorting.float()

    @staticmethod
    def backward(ctx, out_grad1, out_grad2):
        (g1,) = ctx.saved_tensors
        return g1 * out_grad1, None, None, None  # the sorting output gets no gradient


def _interpolated_ap(logits, targets, delta):
    fg = targets == 1
    fg_logits = logits[fg].double()
    threshold = torch.min(fg_logits) - delta  # the relevance cut: raises with no positive
    bg = (targets == 0) & (logits >= threshold)
    xp, xn = fg_logits, logits[bg].double()
    Z = xp.numel()
    h_pos = torch.clamp((xp[None, :] - xp[:, None]) / (2 * delta) + 0.5, min=0, max=1)
    h_pos.fill_diagonal_(0)  # the self term counts 1, not H(0)
    h_neg = torch.clamp((xn[None, :] - xp[:, None]) / (2 * delta) + 0.5, min=0, max=1)
    rank_pos = 1 + h_pos.sum(1)
    rank = rank_pos + h_neg.sum(1)
    current = rank_pos / rank
    order = torch.argsort(xp, stable=True)  # interpolation: ascending logits, a running max
    best = torch.zeros(Z, dtype=torch.float64)
    weight = torch.ones(Z, dtype=torch.float64)
    running = torch.zeros((), dtype=torch.float64)
    for i in order.tolist():
        if running <= current[i]:
            running = current[i]
        else:
            weight[i] = (1 - running) / (1 - current[i])
        best[i] = running
    grads = torch.zeros(logits.shape, dtype=torch.float64)
    grads[fg] = -(1 - best)
    grads[bg] = (h_neg / rank[:, None] * weight[:, None]).sum(0)
    grads /= Z
    return 1 - best.mean(), grads


class APLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, delta=1.):
        loss, grads = _interpolated_ap(logits.detach(), targets, delta)
        ctx.save_for_backward(grads.float())
        return loss.float()

    @staticmethod
    def backward(ctx, out_grad1):
        (g1,) = ctx.saved_tensors
        return g1 * out_grad1, None, None
