"""An official-style stand-in of ROG's ``GAPLoss`` autograd Function (EricZsy/ROG), for the
tests of ``rankref crosscheck``.  rankref's own code, written to behave as the official code
does; the mutation suite of the tests edits this source.

``GAPLoss.forward(ctx, logits, labels, num_samples, num_classes=1203, gamma=1.0, lam=1.0,
delta_RS=0.50, eps=1e-10)``, called by the head as ``GAPLoss.apply(scores.reshape(-1), labels,
counts.clamp(min=1), C, gamma, lam)``:

* positives of class m are the entries ``(r, m)`` of the rows labelled m; the negatives, shared
  by every class, are the entries that are a positive of no class; each class is ranked against
  those at or above ``min(its positives) - delta``;
* it returns the *unweighted* mean over the classes present of the mean ``FP/R`` of their
  positives; its backward returns ``lam`` times the weighted update (weights
  ``w = (1 / num_samples) ** gamma``, normalised to sum to C), gated at ``eps``;
* the backward returns six gradients, so delta cannot be passed: it stays 0.5;
* there is no ignore label: a row labelled -1 holds a positive of class C-1 (the one-hot
  column ``-1``), ranked as a class of its own, ``-1``, with the weight of class C-1.
"""
import torch


def _ramp(u, delta):
    if delta > 0:
        return torch.clamp(u / (2 * delta) + 0.5, min=0, max=1)
    return (u >= 0).double()


def _gap(logits, labels, num_samples, C, gamma, lam, delta, eps):
    rows = labels.numel()
    scores = logits.detach().double().reshape(rows, C)
    columns = torch.remainder(labels, C)  # -1 -> C - 1, as a one-hot column -1
    is_positive = torch.zeros(rows, C, dtype=torch.bool)
    fg_rows = torch.nonzero(labels < C).flatten()
    is_positive[fg_rows, columns[fg_rows]] = True
    negatives = ~is_positive
    w = (1 / num_samples.double()) ** gamma
    w = w / (w.sum() + 1e-9) * C
    classes = [int(m) for m in torch.unique(labels) if int(m) != C]
    grads = torch.zeros(rows, C, dtype=torch.float64)
    total = torch.zeros((), dtype=torch.float64)
    for m in classes:
        members = torch.nonzero(labels == m).flatten()
        xp = scores[members, m % C]
        threshold = torch.min(xp) - delta
        relevant = negatives & (scores >= threshold)
        xn = scores[relevant]
        h_pos = _ramp(xp[None, :] - xp[:, None], delta)
        h_neg = _ramp(xn[None, :] - xp[:, None], delta)
        rank_pos = h_pos.sum(1)
        fp = h_neg.sum(1)
        rank = rank_pos + fp
        total = total + (fp / rank).mean() / len(classes)
        gate = fp > eps
        pos_grad = torch.where(gate, -(1 - rank_pos / rank), torch.zeros_like(fp))
        neg_grad = (h_neg / rank[:, None] * gate[:, None]).sum(0)
        scale = w[m] / (xp.numel() * len(classes)) * lam
        grads[members, m % C] += pos_grad * scale
        grads[relevant] += neg_grad * scale
    return total, grads.reshape(-1)


class GAPLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, labels, num_samples, num_classes=1203, gamma=1.0, lam=1.0,
                delta_RS=0.50, eps=1e-10):
        total, grads = _gap(logits, labels, num_samples, int(num_classes), gamma, lam,
                            delta_RS, eps)
        ctx.save_for_backward(grads.float())
        return total.float()

    @staticmethod
    def backward(ctx, out_grad1):
        (g1,) = ctx.saved_tensors
        return g1 * out_grad1, None, None, None, None, None
