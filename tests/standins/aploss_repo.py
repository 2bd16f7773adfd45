"""An official-style stand-in of the AP-Loss repository's plain function ``AP_loss``, for the
tests of ``rankref crosscheck``.

``AP_loss(logits, targets) -> (grad, loss)``: delta is fixed at 1.0 inside, the update is
returned directly (the repository's autograd wrapper saves it for its backward), and the loss is
a 1-element tensor.  Positives are ``targets == 1``; with no positive it returns a zero update and
a zero loss.  Values and update come from rankref's dense oracle (``method="dense"``), whose AP
conventions are those of this code: self term 1, running maximum over ascending logits, no eps
gating.

``AP_loss_one_percent_off`` scales the positives' update by 1.01, a mistake crosscheck must catch.
"""
import numpy as np
import torch

import rankref


def _ap_loss(logits, targets, positive_scale):
    delta = 1.0
    grad = torch.zeros(logits.shape)
    metric = torch.zeros(1)
    if torch.max(targets) <= 0:
        return grad, metric
    res = rankref.ap_loss(logits.detach().cpu().numpy(), targets.detach().cpu().numpy(), delta,
                          True, method="dense")
    grad = torch.from_numpy(np.asarray(res.grad, dtype=np.float32))
    grad[targets == 1] *= positive_scale
    return grad, torch.tensor([res.loss], dtype=torch.float32)


def AP_loss(logits, targets):
    return _ap_loss(logits, targets, 1.0)


def AP_loss_one_percent_off(logits, targets):
    return _ap_loss(logits, targets, 1.01)
