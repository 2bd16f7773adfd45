"""Balanced L1, LGR and bucketed class re-weighting on any array module."""
import rankref
from rankref.reweighting import _balanced_l1, _lgr_cross_entropy, _lgr_weights

from ._backend import array_module, to_host
from ._mirror import mirror

__all__ = ["balanced_l1_loss", "lgr_weights", "lgr_cross_entropy", "bucketed_class_weights",
           "class_reweighted_targets"]


@mirror(rankref.balanced_l1_loss)
def balanced_l1_loss(pred, target, alpha=0.5, gamma=1.5, beta=1.0):
    return _balanced_l1(array_module(pred, target), pred, target, alpha, gamma, beta)


@mirror(rankref.lgr_weights)
def lgr_weights(base, alpha=0.5, gamma=1.5):
    return _lgr_weights(array_module(base), base, alpha, gamma)


@mirror(rankref.lgr_cross_entropy)
def lgr_cross_entropy(logits, labels, alpha=0.5, gamma=1.0):
    return _lgr_cross_entropy(array_module(logits, labels), logits, labels, alpha, gamma)


@mirror(rankref.bucketed_class_weights)
def bucketed_class_weights(frequencies, num_buckets=10, a=0.5, t=0.025):
    xp = array_module(frequencies)
    return xp.asarray(rankref.bucketed_class_weights(to_host(frequencies), num_buckets, a, t))


@mirror(rankref.class_reweighted_targets)
def class_reweighted_targets(labels, class_weights):
    xp = array_module(labels, class_weights)
    return xp.asarray(rankref.class_reweighted_targets(to_host(labels), to_host(class_weights)))
