"""Random and adversarial ranking problems for the oracle tests (shared by several files)."""
import numpy as np
from hypothesis import strategies as st

DELTAS = (0.0, 0.25, 0.5, 1.0, 2.0)


@st.composite
def ranking_problems(draw, max_n=5000, iou=True):
    """(logits float64, targets, delta) covering the adversarial cases of the issue:
    ties between positives and negatives, IoU ties, a single positive, all negatives below
    min(pos) - delta, float16-rounded logits, spreads of +-50, ignored entries."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, max_n))
    num_pos = draw(st.sampled_from(["one", "few", "many", "all", "random"]))
    spread = draw(st.sampled_from([0.3, 1.0, 5.0, 50.0]))
    ties = draw(st.sampled_from(["none", "float16", "grid", "copy"]))
    layout = draw(st.sampled_from(["mixed", "negatives_below", "negatives_above"]))
    iou_levels = draw(st.sampled_from([0, 1, 3]))  # 0: continuous IoU
    ignore = draw(st.sampled_from([0.0, 0.1]))
    delta = draw(st.sampled_from(DELTAS))
    rng = np.random.default_rng(seed)
    p = {"one": 1, "few": min(n, 3), "many": max(1, n // 10), "all": n,
         "random": int(rng.integers(0, n + 1))}[num_pos]
    x = rng.uniform(-spread, spread, n)
    t = np.zeros(n)
    pos = rng.choice(n, size=p, replace=False)
    if iou:
        if iou_levels == 0:
            t[pos] = rng.uniform(0.05, 1.0, p)
        else:
            t[pos] = rng.choice(np.linspace(0.4, 1.0, iou_levels), p)
    else:
        t[pos] = 1.0
    neg = np.setdiff1d(np.arange(n), pos)
    if layout == "negatives_below" and p:
        x[neg] = x[pos].min() - delta - rng.uniform(0.0, spread, neg.size) - 1e-3
    elif layout == "negatives_above" and p:
        x[neg] = x[pos].max() + rng.uniform(0.0, spread, neg.size)
    if ties == "float16":
        x = x.astype(np.float16).astype(np.float64)
    elif ties == "grid":
        x = np.round(x * 4) / 4  # many exact ties, and x_i +- delta land on other logits
    elif ties == "copy" and p and neg.size:
        k = min(neg.size, p)
        x[neg[:k]] = x[pos[:k]]  # negatives exactly tied with positives
    if ignore:
        ign = rng.random(n) < ignore
        t[ign] = -1.0
    return x, t, delta
