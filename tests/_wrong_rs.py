"""Deliberately wrong RS losses for the crosscheck tests.

``rank_sort_self_one``: the self term counts 1 instead of H(0) (the AP-Loss convention leaking
into RS); ``broken``: raises; ``hangs_on_single_positive``: never returns on one case.
"""
import numpy as np


def rank_sort_self_one(logits, targets, delta):
    x = np.asarray(logits, np.float64).ravel()
    t = np.asarray(targets, np.float64).ravel()
    pos, neg = np.flatnonzero(t > 0), np.flatnonzero(t == 0)
    h = (lambda u: np.clip(u / (2 * delta) + 0.5, 0, 1)) if delta > 0 else (
        lambda u: (u >= 0).astype(float))
    Z = pos.size
    grad = np.zeros_like(x)
    re = np.zeros(Z)
    for k, i in enumerate(pos):
        hp = h(x[pos] - x[i])
        hp[k] = 1.0  # wrong: should be H(0)
        hn = h(x[neg] - x[i])
        fp = hn.sum()
        re[k] = fp / (hp.sum() + fp)
        if fp > 1e-10:
            grad[i] -= re[k] / Z
            grad[neg] += hn * re[k] / fp / Z
    return (re.mean() if Z else 0.0), 0.0, grad.reshape(np.shape(logits))


def broken(logits, targets, delta):
    raise RuntimeError("boom")


def hangs_on_single_positive(logits, targets, delta):
    """rankref's RS, except that it never returns on a case with exactly one positive."""
    import rankref

    if int((np.asarray(targets) > 0).sum()) == 1:
        while True:
            pass
    return rankref.rank_sort_loss(logits, targets, delta)
