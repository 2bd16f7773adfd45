"""
A toy detector head trained with RS loss vs binary cross-entropy
================================================================

A linear scorer over the features of 4,000 "anchors", 3% of which are positives with an IoU
target, trained with SGD: once with ``rankref.torch.RankSortLoss`` and once with
binary cross-entropy (the positives weighted 1, the prior bias of Sampling-Free's Eq. 19 at
initialisation).  AP is measured with ``rankref.average_precision`` every few steps.
"""
import matplotlib.pyplot as plt
import numpy as np
import torch

import rankref
import rankref.torch as rt

g = torch.Generator().manual_seed(0)
n, d = 4000, 16
feats = torch.randn(n, d, generator=g)
w_true = torch.randn(d, generator=g)
score = feats @ w_true + 0.8 * torch.randn(n, generator=g)  # not separable
pos = score > torch.quantile(score, 0.97)
iou = torch.zeros(n)
iou[pos] = 0.5 + 0.5 * torch.rand(int(pos.sum()), generator=g)
labels = pos.numpy().astype(np.int8)
prior = rankref.foreground_prior([labels])


def train(kind, steps=300, lr=0.5):
    torch.manual_seed(0)
    head = torch.nn.Linear(d, 1)
    rt.init_prior_bias_(head, prior.num_foreground / prior.num_total)
    opt = torch.optim.SGD(head.parameters(), lr=lr)
    rs = rt.RankSortLoss()
    curve = []
    for step in range(steps):
        logits = head(feats).squeeze(1)
        if kind == "RS loss":
            r, s = rs(logits, iou)
            loss = r + s
        else:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, pos.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            curve.append((step, rankref.average_precision(logits.detach().numpy(), labels)))
    return np.array(curve)


fig, ax = plt.subplots(figsize=(7, 4))
for kind in ("RS loss", "BCE"):
    c = train(kind)
    ax.plot(c[:, 0], c[:, 1], label=f"{kind} (final AP {c[-1, 1]:.3f})")
ax.set(xlabel="SGD step", ylabel="AP (rankref.average_precision)", ylim=(0, 1),
       title="toy detector head: AP during training")
ax.legend()
fig.tight_layout()
plt.show()
