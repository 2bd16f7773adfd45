"""
Bucketed class weights against class frequency
==============================================

Libra R-CNN's bucketed class re-weighting (Eqs. 21-23) takes the log-frequencies of the classes,
cuts their range into ``S`` equal buckets and passes the normalised bucket index through a steep
sigmoid.  Rare classes get weights near 0 for the gradients they receive as *non-related
negatives*, frequent ones weights near 1.
"""
import matplotlib.pyplot as plt
import numpy as np

import rankref

rng = np.random.default_rng(0)
freq = np.sort(np.maximum(1, rng.pareto(0.8, 1203) * 3).astype(int))  # an LVIS-like tail

fig, ax = plt.subplots(figsize=(7, 4))
for S, t in ((10, 0.025), (10, 0.1), (4, 0.025)):
    w = rankref.bucketed_class_weights(freq, num_buckets=S, a=0.5, t=t)
    ax.plot(freq, w, marker=".", ls="", label=f"S = {S}, t = {t}")
ax.set(xscale="log", xlabel="class frequency (training instances)", ylabel="weight w_i",
       title="bucketed class weights (a = 0.5)")
ax.legend()
fig.tight_layout()
plt.show()
