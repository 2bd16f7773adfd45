"""
The relaxed Heaviside step and the ranks it gives
==================================================

Ranking losses compare a positive's logit ``x_i`` with every other logit through the step
``H_delta(x_j - x_i)``.  ``delta = 0`` is the exact step (an entry tied with the positive counts as
above it); a larger ``delta`` spreads every comparison over a ramp of width ``2 delta``, so the
relaxed number of false positives ``FP(i)`` becomes a piecewise-linear function of the scores.
"""
import matplotlib.pyplot as plt
import numpy as np

import rankref

u = np.linspace(-2, 2, 801)
rng = np.random.default_rng(0)
negatives = rng.normal(0.0, 1.0, 400)
probe = np.linspace(-3, 3, 121)  # logit of a single positive

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
for delta in (0.0, 0.25, 0.5, 1.0):
    ax0.plot(u, rankref.heaviside(u, delta), label=f"delta = {delta}")
    fp = []
    for x in probe:
        logits = np.concatenate([[x], negatives])
        targets = np.concatenate([[1.0], np.zeros(negatives.size)])
        fp.append(rankref.relaxed_ranks(logits, targets, delta).fp[0])
    ax1.plot(probe, fp, label=f"delta = {delta}")
ax0.set(xlabel="x_j - x_i", ylabel="H_delta", title="relaxed step")
ax1.set(xlabel="logit of the positive", ylabel="FP(i)", title="relaxed false positives above i")
ax0.legend()
ax1.legend()
fig.tight_layout()
plt.show()
