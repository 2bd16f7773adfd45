"""An official-style stand-in of ROG's ``GAPLoss`` autograd Function, for the tests of
``rankref crosscheck``.

``GAPLoss.forward(ctx, scores, labels, num_samples, num_classes, gamma, lam)``, called by the head
as ``GAPLoss.apply(scores.reshape(-1), labels, counts.clamp(min=1), C, gamma, lam)``:

* it returns the *unweighted* mean over the classes present of the mean ``FP/R`` of their
  positives (``rankref.gap_loss(...).ranking_error``);
* its backward returns ``lam`` times the weighted update of Eq. 11
  (``lam * rankref.gap_loss(...).grad``), one gradient per argument (six), so delta cannot be
  passed: it is fixed at 0.5;
* labels lie in ``[0, C]`` with ``C`` the background; there is no ignore label (-1 raises).

Values and update come from rankref's dense oracle (``method="dense"``).
``GAPLossOnePercentOff`` scales the positives' update by 1.01, a mistake crosscheck must catch.
"""
import numpy as np
import torch

import rankref


def _forward(ctx, scores, labels, num_samples, num_classes, gamma, lam, positive_scale):
    delta = 0.5
    C = int(num_classes)
    y = labels.detach().cpu().numpy().astype(np.int64)
    if y.size and (y.min() < 0 or y.max() > C):
        raise IndexError(f"labels must lie in [0, {C}] ({C} is the background), got "
                         f"{y.min()}..{y.max()}")
    s = scores.detach().cpu().numpy().reshape(y.size, C)
    res = rankref.gap_loss(s, y, num_samples.detach().cpu().numpy(), delta, float(gamma),
                           method="dense")
    grad = (lam * res.grad).astype(np.float32)
    fg = np.flatnonzero(y < C)
    grad[fg, y[fg]] *= positive_scale
    ctx.save_for_backward(torch.from_numpy(grad.reshape(-1)))
    return torch.tensor(res.ranking_error, dtype=torch.float32)


def _backward(ctx, out_grad):
    (g,) = ctx.saved_tensors
    return g * out_grad, None, None, None, None, None


class GAPLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, labels, num_samples, num_classes, gamma, lam):
        return _forward(ctx, scores, labels, num_samples, num_classes, gamma, lam, 1.0)

    backward = staticmethod(_backward)


class GAPLossOnePercentOff(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, labels, num_samples, num_classes, gamma, lam):
        return _forward(ctx, scores, labels, num_samples, num_classes, gamma, lam, 1.01)

    backward = staticmethod(_backward)
