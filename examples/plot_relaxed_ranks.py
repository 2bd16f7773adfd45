r"""
Relaxed ranks: rank of the positives, false positives and the self term
=======================================================================

With the step :math:`H = H_\delta` of the previous example, ``rankref.relaxed_ranks`` gives for
each positive :math:`i`

.. math::

   \mathrm{rank}^+(i) = \sum_{k\in P} H(x_k - x_i), \quad
   \mathrm{FP}(i) = \sum_{j\in N} H(x_j - x_i), \quad
   \mathrm{rank}(i) = \mathrm{rank}^+(i) + \mathrm{FP}(i):

the positives and the negatives ranked above :math:`i`.  The sum over the positives includes
:math:`k = i`, the **self term** :math:`H(0)`: 1/2 for :math:`\delta > 0`, 1 at
:math:`\delta = 0`.  RS loss's ranking error of a positive is :math:`\mathrm{FP}(i) /
\mathrm{rank}(i)`.

Below: three positives (triangles) and eight negatives (dots), one negative tied with the lowest
positive, at :math:`\delta = 0.5`.
"""
import matplotlib.pyplot as plt
import numpy as np

import rankref

x = np.array([2.3, 1.6, 1.0, 1.3, 0.7, 0.5, 0.3, 0.1, -0.2, -0.6, -0.6])
t = np.array([0.0, 0.0, 0.8, 0.0, 0.0, 0.0, 0.6, 0.0, 0.0, 0.9, 0.0])  # IoU > 0: positive
delta = 0.5
r = rankref.relaxed_ranks(x, t, delta)
pos, neg = r.pos_index, np.flatnonzero(t == 0)
self_term = rankref.heaviside(0.0, delta)

print(f"{'positive':>8}{'entry':>7}{'logit':>7}{'rank+':>8}{'of which H(0)':>15}{'FP':>7}"
      f"{'rank':>7}{'FP/rank':>9}")
for k, i in enumerate(pos):
    print(f"{'P' + str(k):>8}{i:>7}{x[i]:7.1f}{r.rank_pos[k]:8.2f}{self_term:15.1f}{r.fp[k]:7.2f}"
          f"{r.rank[k]:7.2f}{r.fp[k] / r.rank[k]:9.3f}")

# The same sums written out with rankref.heaviside: the self term is the k = i entry.
np.testing.assert_allclose(r.rank_pos, [rankref.heaviside(x[pos] - x[i], delta).sum()
                                        for i in pos])
np.testing.assert_allclose(r.fp, [rankref.heaviside(x[neg] - x[i], delta).sum() for i in pos])

###############################################################################
# Left: what every entry adds to the ranks of the middle positive P1 (:math:`x = 0.3`).  Entries
# more than :math:`\delta` above it count 1, entries more than :math:`\delta` below count 0, and
# entries on the ramp count in between; P1 itself adds :math:`H(0) = 1/2`.  Right: each
# positive's rank split into its self term, the other positives above it and its false
# positives.

focus = 1
i = pos[focus]
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=(1.4, 1))
u = np.linspace(x.min() - 0.3, x.max() + 0.3, 600)
ax0.plot(u, rankref.heaviside(u - x[i], delta), color="0.6", lw=1, label="H(x - x_P1)")
ax0.axvspan(x[i] - delta, x[i] + delta, color="C0", alpha=0.08, label="ramp x_P1 +- delta")
h = rankref.heaviside(x - x[i], delta)
is_pos = t > 0
ax0.scatter(x[~is_pos], h[~is_pos], color="C3", s=40, label="negatives: add to FP", zorder=3)
ax0.scatter(x[is_pos], h[is_pos], color="C0", marker="^", s=90, zorder=3,
            label="positives: add to rank+")
ax0.scatter([x[i]], [h[i]], facecolor="none", edgecolor="k", s=260, lw=1.5, zorder=4,
            label="self term H(0)")
for j in np.flatnonzero(h > 0):
    ax0.annotate(f"{h[j]:.1f}", (x[j], h[j]), textcoords="offset points", xytext=(0, 8),
                 ha="center", fontsize=8)
for k, j in enumerate(pos):
    ax0.annotate(f"P{k}", (x[j], h[j]), textcoords="offset points", xytext=(0, -16),
                 ha="center", fontsize=9)
ax0.set(xlabel="logit x_j", ylabel="H(x_j - x_P1): what entry j adds", ylim=(-0.15, 1.2),
        title=f"the ranks of P1: rank+ = {r.rank_pos[focus]:.1f}, FP = {r.fp[focus]:.1f}")
ax0.legend(loc="upper left", fontsize=7)

labels = [f"P{k} (x = {x[j]:.1f})" for k, j in enumerate(pos)]
others = r.rank_pos - self_term
ax1.barh(labels, np.full(pos.size, self_term), color="C0", hatch="//", edgecolor="w",
         label="self term H(0)")
ax1.barh(labels, others, left=self_term, color="C0", label="other positives above")
ax1.barh(labels, r.fp, left=r.rank_pos, color="C3", label="false positives FP")
for k in range(pos.size):
    ax1.text(r.rank[k] + 0.1, k, f"rank {r.rank[k]:.1f}", va="center", fontsize=8)
ax1.invert_yaxis()
ax1.set(xlabel="relaxed rank (delta = 0.5)", xlim=(0, r.rank.max() + 1.6),
        title="rank = rank+ + FP")
ax1.legend(loc="upper right", fontsize=7)
fig.tight_layout()
plt.show()

###############################################################################
# At :math:`\delta = 0` the step is exact: the self term counts 1, and the negative tied with P2
# counts as a false positive above it.

r0 = rankref.relaxed_ranks(x, t, 0.0)
print("delta = 0:   rank+ =", r0.rank_pos, "  FP =", r0.fp, "  rank =", r0.rank)

###############################################################################
# How FP moves as one positive slides past eight negatives: a staircase at :math:`\delta = 0`
# (one step per negative), piecewise linear above, which is what gives the losses their gradient.

negatives = np.array([-2.0, -1.3, -1.1, -0.2, 0.8, 0.9, 1.0, 2.1])
probe = np.linspace(-3, 3, 601)  # positions of the positive
# FP counts negatives only, so the 601 positions can all be positives of one call.
logits = np.concatenate([probe, negatives])
targets = np.concatenate([np.ones(probe.size), np.zeros(negatives.size)])
fig, ax = plt.subplots(figsize=(7, 3.8))
for d in (0.0, 0.1, 0.3, 1.0):
    ax.plot(probe, rankref.relaxed_ranks(logits, targets, d).fp, label=f"delta = {d}")
ax.plot(negatives, np.full(negatives.size, -0.3), "|", color="C3", ms=10, label="the negatives")
ax.set(xlabel="logit of the positive", ylabel="FP(i)",
       title="relaxed false positives above one positive (8 negatives)")
ax.legend()
fig.tight_layout()
plt.show()
