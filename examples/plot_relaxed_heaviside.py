r"""
The relaxed Heaviside step
==========================

Ranking losses compare a positive's logit :math:`x_i` with every other logit :math:`x_j` through
the step :math:`H_\delta(x_j - x_i)`: 1 when :math:`x_j` is ranked above :math:`x_i`, 0 when it
is below.

* :math:`\delta = 0` is the exact step, and an entry *tied* with the positive counts as above
  it: :math:`H_0(0) = 1`.
* :math:`\delta > 0` spreads the comparison over a ramp of width :math:`2\delta`,
  :math:`H_\delta(u) = \mathrm{clip}(u / (2\delta) + 1/2, 0, 1)`, so a tie counts one half:
  :math:`H_\delta(0) = 1/2`.  AP Loss uses :math:`\delta = 1`, RS loss :math:`\delta = 0.5`.

``rankref.heaviside`` evaluates the step; every loss of rankref is built from it.
"""
import matplotlib.pyplot as plt
import numpy as np

import rankref

u = np.linspace(-2, 2, 801)

fig, ax = plt.subplots(figsize=(7, 4))
for delta in (0.0, 0.25, 0.5, 1.0):
    (line,) = ax.plot(u, rankref.heaviside(u, delta), label=f"delta = {delta}")
    ax.plot(0.0, rankref.heaviside(0.0, delta), "o", color=line.get_color())
ax.annotate("a tie at delta = 0:\nH(0) = 1", xy=(0, 1), xytext=(-1.9, 0.8),
            arrowprops=dict(arrowstyle="->"))
ax.annotate("a tie at delta > 0:\nH(0) = 1/2", xy=(0, 0.5), xytext=(-1.9, 0.4),
            arrowprops=dict(arrowstyle="->"))
ax.set(xlabel="x_j - x_i (how far entry j is above positive i)", ylabel="H_delta(x_j - x_i)",
       title="the relaxed step: 1 above, 0 below, a ramp of width 2 delta")
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()

###############################################################################
# A tie counts 1 at delta = 0 and 1/2 above; the ramp runs from -delta (0) to +delta (1).

for delta in (0.0, 0.5, 1.0):
    print(f"delta = {delta}:  H(0) = {rankref.heaviside(0.0, delta)}")
print("delta = 0.5: H(-0.5), H(-0.25), H(0.25), H(0.5) =",
      rankref.heaviside(np.array([-0.5, -0.25, 0.25, 0.5]), 0.5))
