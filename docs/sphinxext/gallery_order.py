"""The order of the example gallery (``within_subsection_order`` of sphinx-gallery).

A module of its own, so that Sphinx can pickle the configuration that names it.
"""
import os

# Teaching order: each example uses what the ones before it showed.  A file that is not listed
# comes after the listed ones, in name order.
GALLERY_ORDER = [
    "plot_relaxed_heaviside.py",       # the relaxed step
    "plot_relaxed_ranks.py",           # ranks, FP and the self term
    "plot_bucketing.py",               # buckets
    "plot_rs_gradients.py",            # RS gradients
    "plot_training_a_detector.py",     # training a detector
    "plot_toy_detector.py",
    "plot_long_tail_gap.py",           # GAP
    "plot_iou_balanced_sampling.py",   # sampling
    "plot_bucketed_class_weights.py",  # re-weighting
]


def teaching_order(filename):
    """Sort key of an example file name: its place in GALLERY_ORDER, then its name."""
    name = os.path.basename(filename)
    return (GALLERY_ORDER.index(name) if name in GALLERY_ORDER else len(GALLERY_ORDER), name)
