"""
Bucketing explained: BRS runs against exact threshold buckets
=============================================================

Both bucketed losses avoid comparing every positive with every negative.

* The published BRS (Yavuz et al., ECCV 2024) groups the negatives *between consecutive
  positives* into runs and compares the positives with each run's **mean**.
* rankref cuts the score line at the **thresholds** ``x_i - delta`` and ``x_i + delta``. Inside
  one of its buckets the relaxed step ``H(x_j - x_i)`` is 0, 1 or affine in ``x_j`` for every
  positive, so the count and the sum of the members give FP and the gradients exactly.

A BRS run can straddle a threshold: then ``H(mean - x_i)`` is not the mean of the ``H(x_j - x_i)``
and BRS is approximate.  At ``delta = 0`` the step is constant inside every run, and BRS is exact.
"""
import matplotlib.pyplot as plt
import numpy as np

import rankref

rng = np.random.default_rng(3)
x = np.concatenate([rng.normal(0.0, 1.0, 40), [0.3, 0.9, 1.6]])
t = np.concatenate([np.zeros(40), [0.7, 0.9, 0.6]])
delta = 0.5
exact = rankref.make_buckets(x, t, delta, "exact")
brs = rankref.make_buckets(x, t, delta, "brs")

fig, axes = plt.subplots(2, 1, figsize=(10, 4.5), sharex=True)
for ax, b, title in ((axes[0], brs, "BRS: runs of negatives between positives (cut at "
                      "min(x_P) - delta)"),
                     (axes[1], exact, "rankref: thresholds x_i +- delta (exact for every "
                      "delta)")):
    neg = t == 0
    ax.scatter(x[neg], np.zeros(neg.sum()), c=b.bucket[neg] % 10, cmap="tab10", s=30)
    ax.scatter(x[~neg], np.zeros((~neg).sum()), marker="^", s=90, color="k", label="positives")
    for e in b.edges:
        ax.axvline(e, color="0.5", lw=0.8, ls="--")
    full = b.counts[1:] > 0
    ax.scatter(b.means[1:][full], np.full(full.sum(), -0.4), marker="|", s=200, color="C3",
               label="bucket means")
    ax.set(yticks=[], ylim=(-1, 1), title=title)
    ax.legend(loc="upper left", fontsize=8)
axes[1].set_xlabel("logit (colour: bucket)")
fig.tight_layout()

###############################################################################
# How far is BRS from the exact loss?  The largest gradient error over 100 random rankings
# (N = 2000, 50 positives), for several delta: zero at delta = 0, growing with delta.

deltas = [0.0, 0.25, 0.5, 1.0]
errors = {d: [] for d in deltas}
for seed in range(100):
    r = np.random.default_rng(seed)
    xs = r.normal(0, 1, 2000)
    ts = np.zeros(2000)
    ts[:50] = r.uniform(0.3, 1.0, 50)
    for d in deltas:
        a = rankref.rank_sort_loss(xs, ts, d, "brs").grad
        b = rankref.rank_sort_loss(xs, ts, d, "bucketed").grad
        errors[d].append(np.abs(a - b).max() / np.abs(b).max())

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.boxplot([np.maximum(errors[d], 1e-18) for d in deltas])
ax.set_xticks(range(1, len(deltas) + 1), [str(d) for d in deltas])
ax.set(yscale="log", xlabel="delta", ylabel="max |BRS - exact| / max |exact|",
       title="relative gradient error of BRS (100 random rankings)")
fig.tight_layout()
plt.show()
