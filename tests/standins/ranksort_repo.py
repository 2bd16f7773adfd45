"""Official-style stand-ins of the RS repository's ``RankSort`` and ``APLoss`` autograd Functions,
for the tests of ``rankref crosscheck``.

Each has the official signature, return layout and failure modes, and takes its values and
update from rankref's dense oracle (``method="dense"``):

* ``RankSort.forward(ctx, logits, targets, delta_RS=0.50, eps=1e-10) -> (ranking, sorting)``:
  the backward puts the whole update (ranking + sorting) on the ranking output and none on the
  sorting output; with no positive it raises (``torch.min`` of an empty tensor, where the
  official code cuts the relevant negatives at ``min(fg) - delta``).
* ``APLoss.forward(ctx, logits, targets, delta=1.) -> loss``: positives are ``targets == 1``;
  raises with no positive; at ``delta = 0`` the official ``clamp(u / (2 delta) + 0.5)`` is
  ``0/0 = NaN`` on an exact tie, which reaches every relevant negative's update.

``RankSortOnePercentOff`` and ``APLossOnePercentOff`` are the same with the positives' update
scaled by 1.01, a mistake crosscheck must catch.
"""
import numpy as np
import torch

import rankref


def _numpy(t):
    return t.detach().cpu().numpy()


def _rank_sort_forward(ctx, logits, targets, delta, positive_scale):
    fg = targets > 0.0
    torch.min(logits[fg])  # the official relevance cut: raises with no positive
    res = rankref.rank_sort_loss(_numpy(logits), _numpy(targets), delta, method="dense")
    grad = torch.from_numpy(np.asarray(res.grad, dtype=np.float32))  # float32, as official
    grad[fg] *= positive_scale
    ctx.save_for_backward(grad)
    return (torch.tensor(res.ranking_loss, dtype=torch.float32),
            torch.tensor(res.sorting_loss, dtype=torch.float32))


def _rank_sort_backward(ctx, out_grad1, out_grad2):
    (g1,) = ctx.saved_tensors
    return g1 * out_grad1, None, None, None  # the sorting output gets no gradient


class RankSort(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, delta_RS=0.50, eps=1e-10):
        return _rank_sort_forward(ctx, logits, targets, delta_RS, 1.0)

    backward = staticmethod(_rank_sort_backward)


class RankSortOnePercentOff(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, delta_RS=0.50, eps=1e-10):
        return _rank_sort_forward(ctx, logits, targets, delta_RS, 1.01)

    backward = staticmethod(_rank_sort_backward)


def _ap_forward(ctx, logits, targets, delta, positive_scale):
    fg = targets == 1
    fg_logits = logits[fg]
    threshold = torch.min(fg_logits) - delta  # raises with no positive
    res = rankref.ap_loss(_numpy(logits), _numpy(targets), delta, True, method="dense")
    grad = torch.from_numpy(np.asarray(res.grad, dtype=np.float32))
    if delta == 0:
        relevant_bg = (targets == 0) & (logits >= threshold)
        tie = (torch.unique(fg_logits).numel() < fg_logits.numel()
               or bool(torch.isin(logits[relevant_bg], fg_logits).any()))
        if tie:  # 0/0 in the official clamp: the NaN reaches every relevant negative
            grad[relevant_bg] = float("nan")
    grad[fg] *= positive_scale
    ctx.save_for_backward(grad)
    return torch.tensor(res.loss, dtype=torch.float32)


def _ap_backward(ctx, out_grad1):
    (g1,) = ctx.saved_tensors
    return g1 * out_grad1, None, None


class APLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, delta=1.0):
        return _ap_forward(ctx, logits, targets, delta, 1.0)

    backward = staticmethod(_ap_backward)


class APLossOnePercentOff(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, delta=1.0):
        return _ap_forward(ctx, logits, targets, delta, 1.01)

    backward = staticmethod(_ap_backward)
