"""
IoU-balanced sampling: which IoUs get sampled
=============================================

Libra R-CNN samples negatives uniformly *within IoU bins* instead of uniformly overall, so the
rare hard negatives (IoU close to the positive threshold) are picked far more often (its Fig. 3).
``rankref.iou_balanced_neg_probabilities`` gives each candidate's exact inclusion probability;
the histogram of 200 seeded draws matches it.
"""
import matplotlib.pyplot as plt
import numpy as np

import rankref

rng = np.random.default_rng(0)
iou = np.clip(rng.exponential(0.06, 20000), 0, 0.499)  # most negatives barely overlap a box
E = 512
bins = np.linspace(0, 0.5, 26)

balanced = np.concatenate([iou[rankref.iou_balanced_neg_sample(iou, E, rng=rng, max_iou=0.5)]
                           for _ in range(200)])
random = np.concatenate([iou[rng.choice(iou.size, E, replace=False)] for _ in range(200)])
p = rankref.iou_balanced_neg_probabilities(iou, E, max_iou=0.5)
expected, _ = np.histogram(iou, bins, weights=p * 200)

fig, ax = plt.subplots(figsize=(7, 4))
ax.hist(random, bins, alpha=0.5, label="random sampling")
ax.hist(balanced, bins, alpha=0.5, label="IoU-balanced sampling (3 bins)")
ax.step(bins[:-1], expected, where="post", color="k", label="exact expectation")
ax.set(yscale="log", xlabel="IoU with the closest ground truth", ylabel="samples (200 draws)",
       title=f"{E} negatives out of {iou.size}")
ax.legend()
fig.tight_layout()
plt.show()
