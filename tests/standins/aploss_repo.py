"""An official-style stand-in of the AP-Loss repository's plain function ``AP_loss``
(cccorn/AP-loss), for the tests of ``rankref crosscheck``.  rankref's own vectorised code,
written to behave as the official function does; the mutation suite of the tests edits this
source.

``AP_loss(logits, targets) -> (grad, loss)``: delta is fixed at 1.0 inside, the update is
returned directly (the repository's autograd wrapper saves it for its backward), and the loss is
a 1-element tensor.  Positives are ``targets == 1``; the relevant negatives those at or above
``min(fg) - 1``; the self term is ``H(0) + 0.5 = 1``; the precision is interpolated by a running
maximum over the positives in ascending logit order.  With no positive it returns a zero update
and a zero loss.
"""
import torch


def AP_loss(logits, targets):
    delta = 1.0
    grad = torch.zeros(logits.shape)
    if torch.max(targets) <= 0:
        return grad, torch.zeros(1)
    x = logits.detach().double()
    fg = targets == 1
    xp = x[fg]
    threshold = torch.min(xp) - delta
    bg = (targets == 0) & (x >= threshold)
    xn = x[bg]
    h_pos = torch.clamp((xp[None, :] - xp[:, None]) / (2 * delta) + 0.5, min=0, max=1)
    h_neg = torch.clamp((xn[None, :] - xp[:, None]) / (2 * delta) + 0.5, min=0, max=1)
    rank_pos = h_pos.sum(1) + 0.5  # the self term: H(0) = 0.5, plus 0.5
    rank = rank_pos + h_neg.sum(1)
    current = rank_pos / rank
    Z = xp.numel()
    best = torch.zeros(Z, dtype=torch.float64)
    weight = torch.ones(Z, dtype=torch.float64)
    running = torch.zeros((), dtype=torch.float64)
    for i in torch.argsort(xp, stable=True).tolist():  # ascending logits, a running maximum
        if running <= current[i]:
            running = current[i]
        else:
            weight[i] = (1 - running) / (1 - current[i])
        best[i] = running
    out = torch.zeros(logits.shape, dtype=torch.float64)
    out[bg] = (h_neg / rank[:, None] * weight[:, None]).sum(0)
    out[fg] = -(1 - best)
    out /= max(Z, 1)
    metric = best.sum(0, keepdim=True) / max(Z, 1)
    return out.float(), (1 - metric).float()
