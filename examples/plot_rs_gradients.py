"""
RS loss gradients on a toy ranking: who pushes whom
===================================================

RS loss sends error-driven updates: every positive ``i`` with false positives above it pushes
itself up (negative gradient) and pushes down each negative ``j`` in proportion to
``H(x_j - x_i) RE_i / FP_i``; its sorting error pushes down the positives of *lower* IoU ranked
above it.  The matrix below shows each pair's contribution; the bars are the totals that
``rankref.rank_sort_loss`` returns.
"""
import matplotlib.pyplot as plt
import numpy as np

import rankref

x = np.array([2.2, 1.9, 1.5, 1.2, 1.0, 0.7, 0.5, 0.2, -0.3, -0.8])
t = np.array([0.0, 0.6, 0.0, 0.9, 0.0, 0.0, 0.8, 0.0, 0.5, 0.0])
delta = 0.5
res = rankref.rank_sort_loss(x, t, delta)
pos = np.flatnonzero(t > 0)
neg = np.flatnonzero(t == 0)
ranks = rankref.relaxed_ranks(x, t, delta)
Z = pos.size

# pairwise contributions: row = the positive whose error is spread, column = the entry pushed
contrib = np.zeros((pos.size, x.size))
for r, i in enumerate(pos):
    re = ranks.fp[r] / ranks.rank[r]
    if ranks.fp[r] > 1e-10:
        contrib[r, neg] = rankref.heaviside(x[neg] - x[i], delta) * re / ranks.fp[r] / Z
        contrib[r, i] -= re / Z

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
lim = np.abs(contrib).max()
im = ax0.imshow(contrib, cmap="coolwarm", vmin=-lim, vmax=lim, aspect="auto")
ax0.set(xticks=range(x.size), yticks=range(pos.size),
        xticklabels=[f"{'P' if v > 0 else 'N'}{k}" for k, v in enumerate(t)],
        yticklabels=[f"P{i} (IoU {t[i]})" for i in pos],
        xlabel="entry that receives the update (P: positive, N: negative)",
        ylabel="positive whose error is spread",
        title="ranking updates, positive by positive")
fig.colorbar(im, ax=ax0, fraction=0.04, label="update (gradient) from row to column")
width = 0.4
ax1.bar(np.arange(x.size) - width / 2, res.ranking_grad, width, label="ranking")
ax1.bar(np.arange(x.size) + width / 2, res.sorting_grad, width, label="sorting")
ax1.axhline(0, color="k", lw=0.5)
ax1.set(xticks=range(x.size), xticklabels=[f"{'P' if v > 0 else 'N'}{k}" for k, v in
                                           enumerate(t)],
        xlabel="entry", ylabel="update (gradient)",
        title=f"total updates (ranking loss {res.ranking_loss:.3f}, sorting "
              f"{res.sorting_loss:.3f})")
ax1.legend()
fig.tight_layout()
plt.show()

# the matrix rows add up to the ranking gradient, and the updates sum to zero
np.testing.assert_allclose(contrib.sum(0), res.ranking_grad, atol=1e-12)
print("sum of ranking updates:", res.ranking_grad.sum(), " sorting:", res.sorting_grad.sum())
