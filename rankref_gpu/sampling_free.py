"""Sampling-Free helpers: scalars, so the rankref functions are reused (foreground_prior
accepts NumPy, CuPy or torch label batches, copied to the host: its results are Python ints)."""
import rankref
from rankref.sampling_free import (ForegroundPrior, check_label_batches, guided_scale,
                                   optimal_bias)

from ._backend import _library, to_host
from ._mirror import mirror

__all__ = ["optimal_bias", "foreground_prior", "guided_scale", "ForegroundPrior"]


@mirror(rankref.foreground_prior, "Each label batch is copied to the host.")
def foreground_prior(label_batches):
    # device arrays are copied to the host; anything else goes to rankref's own reading
    return rankref.foreground_prior(to_host(b) if _library(b) is not None else b
                                    for b in check_label_batches(label_batches))
