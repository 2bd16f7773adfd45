"""Synthetic detection batches for demos, benchmarks and tests (no downloads)."""
import numpy as np

__all__ = ["detection_batch", "long_tail_batch", "PRIOR_LOGIT"]

PRIOR_LOGIT = float(np.log(0.01 / 0.99))  # the focal-loss prior 0.01 used by one-stage heads


def detection_batch(num_anchors=4000, num_classes=80, num_positives=250, regime="early",
                    ignore_fraction=0.02, seed=0, dtype=np.float32):
    """A ``[num_anchors, num_classes]`` logit matrix with IoU targets, like a one-stage head's.

    Parameters
    ----------
    regime : {"early", "trained"}
        ``"early"``: every logit near the prior ``log(0.01/0.99)`` (all negatives relevant);
        ``"trained"``: negatives mostly far below the positives.
    ignore_fraction : float
        Fraction of anchors whose row is ignored (target -1).

    Returns
    -------
    logits : ndarray ``[num_anchors, num_classes]`` of ``dtype``
    targets : ndarray, same shape, float32: -1 ignored, 0 negative, IoU in [0.5, 1] positive
    """
    if regime not in ("early", "trained"):
        raise ValueError(f"regime must be 'early' or 'trained', got {regime!r}.")
    n = num_anchors * num_classes
    if not 0 <= num_positives <= n:
        raise ValueError(f"num_positives must be in [0, {n}], got {num_positives}.")
    rng = np.random.default_rng(seed)
    targets = np.zeros(n, dtype=np.float32)
    pos = rng.choice(n, size=num_positives, replace=False)
    iou = rng.uniform(0.5, 1.0, size=num_positives)
    targets[pos] = iou
    if regime == "early":
        logits = rng.normal(PRIOR_LOGIT, 0.3, size=n)
        logits[pos] += rng.normal(0.2, 0.3, size=num_positives)
    else:
        logits = rng.normal(-8.0, 1.5, size=n)
        logits[pos] = rng.normal(0.0, 1.5, size=num_positives) + 2.0 * (iou - 0.5)
    ignored_rows = rng.random(num_anchors) < ignore_fraction
    targets.reshape(num_anchors, num_classes)[ignored_rows] = -1.0
    return (logits.astype(dtype).reshape(num_anchors, num_classes),
            targets.reshape(num_anchors, num_classes))


def long_tail_batch(num_rois=2048, num_classes=1203, num_positives=300, num_present=100,
                    regime="early", seed=0, dtype=np.float32):
    """RoI scores ``[num_rois, num_classes]`` and labels with a long-tailed class mix, like an
    LVIS sampler's output: ``num_positives`` foreground rows over ``num_present`` classes drawn
    (each at least once when possible) with Zipf-like frequencies, the rest background (label ``num_classes``).

    Returns ``scores`` (``dtype``) and ``labels`` (int64).
    """
    if regime not in ("early", "trained"):
        raise ValueError(f"regime must be 'early' or 'trained', got {regime!r}.")
    if not 0 <= num_positives <= num_rois or not 1 <= num_present <= num_classes:
        raise ValueError("need 0 <= num_positives <= num_rois and 1 <= num_present <= num_classes.")
    rng = np.random.default_rng(seed)
    classes = rng.choice(num_classes, size=num_present, replace=False)
    freq = 1.0 / np.arange(1, num_present + 1) ** 1.2
    labels = np.full(num_rois, num_classes, dtype=np.int64)
    fg = rng.choice(num_rois, size=num_positives, replace=False)
    draw = rng.choice(num_present, size=num_positives, p=freq / freq.sum())
    k = min(num_present, num_positives)
    draw[:k] = np.arange(k)  # every requested class appears at least once
    labels[fg] = classes[draw]
    if regime == "early":
        scores = rng.normal(PRIOR_LOGIT, 0.3, size=(num_rois, num_classes))
        scores[fg, labels[fg]] += rng.normal(0.3, 0.3, size=num_positives)
    else:
        scores = rng.normal(-7.0, 1.5, size=(num_rois, num_classes))
        scores[fg, labels[fg]] = rng.normal(0.0, 1.5, size=num_positives)
    return scores.astype(dtype), labels
