"""The picture of the landing page: the RS updates of a small batch (3 positives, 5 negatives).

Drawn by matplotlib's plot directive when the docs are built (``.. plot:: rs_updates.py`` in
docs/index.rst, ``plot_basedir = "figures"`` in docs/conf.py); the batch is the one of the
landing page's code and of the worked example (docs/worked_example.rst).
"""
import matplotlib.pyplot as plt
import numpy as np

import rankref

logits = np.array([2.1, 1.8, 1.2, 0.9, 0.6, 0.3, -0.4, -1.5])
targets = np.array([0.0, 0.5, 0.9, 0.0, 0.0, 0.7, 0.0, 0.0])  # IoU > 0: positive; 0: negative
delta = 0.5
res = rankref.rank_sort_loss(logits, targets, delta=delta)
pos = targets > 0

fig, (line, bars) = plt.subplots(2, 1, figsize=(10, 5.2), height_ratios=(1.15, 1))

# The score line: every entry at its logit, the thresholds x_i - delta and x_i + delta of every
# positive (between them its relaxed step is a ramp), and the step each update asks for
# (-gradient) as an arrow: positives are pushed up the ranking, negatives down.
scale = 2.0  # arrow length per unit of update, in logit units
for k in np.flatnonzero(pos):
    for edge in (logits[k] - delta, logits[k] + delta):
        line.axvline(edge, ymin=0.1, ymax=0.9, color="C2", lw=0.8, ls=":", zorder=0)
line.axhline(0, color="0.6", lw=1, zorder=0)
line.scatter(logits[~pos], np.zeros((~pos).sum()), s=90, color="0.35", zorder=3,
             label="negative (target 0)")
line.scatter(logits[pos], np.zeros(pos.sum()), s=160, marker="^", color="C2", zorder=3,
             edgecolor="k", label="positive (target: its IoU)")
for k, (x, g_rank, g_sort) in enumerate(zip(logits, res.ranking_grad, res.sorting_grad)):
    # positives: ranking arrow above the line, sorting arrow above it; negatives: below
    arrows = ((0.3, g_rank, "C0"), (0.55, g_sort, "C1")) if pos[k] else ((-0.3, g_rank, "C0"),)
    for y, g, colour in arrows:
        if abs(g) > 0:
            line.annotate("", xy=(x - scale * g, y), xytext=(x, y),
                          arrowprops=dict(arrowstyle="-|>", color=colour, lw=2,
                                          shrinkA=0, shrinkB=0))
    if pos[k]:
        line.annotate(f"IoU {targets[k]:.1f}", (x, 0), xytext=(0, -12),
                      textcoords="offset points", ha="center", va="top", fontsize=9)
line.plot([], [], color="C2", lw=0.8, ls=":", label="thresholds $x_i \\pm \\delta$")
line.plot([], [], color="C0", lw=2, label="ranking update")
line.plot([], [], color="C1", lw=2, label="sorting update")
line.set(xlim=(-2.0, 2.6), ylim=(-0.55, 0.75), yticks=[],
         xlabel="logit  (arrows: the step each update asks for, $-$gradient; $\\delta = 0.5$)")
line.set_title("The Rank & Sort updates of a batch of 8 logits: where each logit is pushed",
               fontsize=11)
line.legend(loc="upper left", fontsize=8, ncol=1, frameon=False, bbox_to_anchor=(1.0, 1.0))
for side in ("left", "right", "top"):
    line.spines[side].set_visible(False)

# The same updates as numbers, entry by entry in ranking order (highest logit first).
order = np.argsort(-logits, kind="stable")
names = [f"{'P' if pos[k] else 'N'} {logits[k]:.1f}" for k in order]
at = np.arange(order.size)
bars.bar(at - 0.2, -res.ranking_grad[order], 0.4, color="C0", label="ranking")
bars.bar(at + 0.2, -res.sorting_grad[order], 0.4, color="C1", label="sorting")
bars.axhline(0, color="k", lw=0.6)
bars.set_xticks(at, names)
bars.set(ylabel="-gradient", xlabel="entry (P positive, N negative) and its logit")
bars.set_title(f"ranking loss {res.ranking_loss:.4f}, sorting loss {res.sorting_loss:.4f}: "
               "every update is exact, and they sum to zero", fontsize=10)
bars.legend(loc="upper left", fontsize=8, frameon=False, bbox_to_anchor=(1.0, 1.0))
fig.tight_layout()
