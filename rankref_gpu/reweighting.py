"""Balanced L1, LGR and bucketed class re-weighting on any namespace."""

import rankref
from rankref._validation import as_labels, to_array
from rankref.reweighting import _balanced_l1, _lgr_cross_entropy, _lgr_weights, _real_array

from ._backend import _library, namespace
from ._mirror import mirror

__all__ = ["balanced_l1_loss", "lgr_weights", "lgr_cross_entropy", "bucketed_class_weights",
           "class_reweighted_targets"]


@mirror(rankref.balanced_l1_loss)
def balanced_l1_loss(pred, target, alpha=0.5, gamma=1.5, beta=1.0):
    return _balanced_l1(namespace(pred, target), pred, target, alpha, gamma, beta)


@mirror(rankref.lgr_weights)
def lgr_weights(base, alpha=0.5, gamma=1.5):
    return _lgr_weights(namespace(base), base, alpha, gamma)


@mirror(rankref.lgr_cross_entropy)
def lgr_cross_entropy(logits, labels, alpha=0.5, gamma=1.0):
    return _lgr_cross_entropy(namespace(logits, labels), logits, labels, alpha, gamma)


@mirror(rankref.bucketed_class_weights, "The C weights are computed on the host and returned "
        "in the input's library and device.")
def bucketed_class_weights(frequencies, num_buckets=10, a=0.5, t=0.025):
    xp = namespace(frequencies)
    # a device array is copied to the host; anything else goes to rankref's own validation
    host = xp.to_host(frequencies) if _library(frequencies) is not None else frequencies
    return xp.asarray(rankref.bucketed_class_weights(host, num_buckets, a, t))


@mirror(rankref.class_reweighted_targets)
def class_reweighted_targets(labels, class_weights):
    xp = namespace(labels, class_weights)
    if xp.name == "numpy":
        return rankref.class_reweighted_targets(labels, class_weights)
    # rankref's steps, on the device
    w = _real_array(class_weights, "class_weights", xp)
    if w.ndim != 1:
        raise ValueError(f"class_weights must be 1-D [C], got shape {tuple(w.shape)}.")
    C = w.shape[0]
    arr = to_array(labels, "labels", xp)
    y = as_labels(arr, arr.shape[0] if arr.ndim >= 1 else 0, C, xp=xp,
                  classes_of="the length of class_weights")  # any 1-D length
    out = xp.empty((y.shape[0], C + 1))
    out[:, :C] = w
    out[:, C] = 1.0
    fg = xp.flatnonzero((y >= 0) & (y < C))
    out[fg, y[fg]] = 1.0
    out[y < 0] = 0.0
    return out


