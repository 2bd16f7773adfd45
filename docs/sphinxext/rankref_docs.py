"""rankref's own Sphinx extension (docs/sphinxext, listed in conf.py).

* Every API page gets a "Read more in the User Guide" line after its summary, with the paper
  the object implements (on the references page): :data:`USER_GUIDE` and :data:`PAPERS`.
* The summaries of the API tables are whole sentences: autosummary cuts a summary at the first
  period followed by a space, which is wrong after "Eq." and "Eqs." (a docstring that cites
  "Eqs. 8-10" kept only "... (Libra R-CNN, Eqs.").
* Pages that another part of the project may not have written yet (``OPTIONAL_PAGES``) stay out
  of the landing page's table of contents while their file is missing, instead of breaking the
  build.
"""
import os

from sphinx.ext import autosummary

# topic -> (label of the user guide section, its title); "/page" is a whole page of the docs
_UG = {
    "notation": ("ug-notation", "Notation: the relaxed step and the ranks"),
    "rs": ("ug-rank-sort", "Rank & Sort loss"),
    "ap": ("ug-ap-loss", "AP Loss"),
    "brs": ("ug-brs", "Bucketed RS"),
    "gap": ("ug-gap", "GAP loss"),
    "sampling": ("ug-sampling", "Sampling"),
    "libra": ("ug-libra", "Re-weighting (Libra R-CNN)"),
    "sf": ("ug-sampling-free", "Sampling-Free"),
    "torch": ("ug-detector", "Using rankref in a detector"),
    "audit": ("ug-auditing", "Auditing an implementation"),
    "explain": ("/worked_example", "the worked example"),
}
# object name (last component; the same in rankref, rankref_gpu and rankref.torch) -> topic
USER_GUIDE = {
    "heaviside": "notation", "relaxed_ranks": "notation", "RelaxedRanks": "notation",
    "sort_scores": "notation",
    "rank_sort_loss": "rs", "RankSortResult": "rs", "RankSortLoss": "rs",
    "ap_loss": "ap", "APLossResult": "ap", "APLoss": "ap", "average_precision": "ap",
    "make_buckets": "brs", "Buckets": "brs",
    "gap_loss": "gap", "GAPResult": "gap", "GAPLoss": "gap", "ClassCounts": "gap",
    "iou_balanced_neg_sample": "sampling", "iou_balanced_neg_probabilities": "sampling",
    "instance_balanced_pos_sample": "sampling", "class_balanced_pos_sample": "sampling",
    "bucketed_class_weights": "libra", "class_reweighted_targets": "libra",
    "balanced_l1_loss": "libra", "BalancedL1Loss": "libra", "lgr_weights": "libra",
    "lgr_cross_entropy": "libra", "LGRCrossEntropyLoss": "libra",
    "BalancedFeaturePyramid": "libra",
    "optimal_bias": "sf", "foreground_prior": "sf", "ForegroundPrior": "sf",
    "guided_scale": "sf", "GuidedLossScaling": "sf", "init_prior_bias_": "sf",
    "register_mmdet": "torch",
    "crosscheck": "audit", "CrosscheckReport": "audit", "format_report": "audit",
    "load_callable": "audit", "make_cases": "audit", "regime_of": "audit",
    "explore_case": "audit", "brs_with_placement": "brs",
    "explain": "explain", "Explanation": "explain",
}
# label on docs/references.rst -> short citation
_REF = {
    "ref-ap-loss": "Chen et al., CVPR 2019",
    "ref-rs-loss": "Oksuz et al., ICCV 2021",
    "ref-brs": "Yavuz et al., ECCV 2024",
    "ref-rog": "Zhang et al., ICCV 2023",
    "ref-libra": "Pang et al., CVPR 2019 and IJCV 2021",
    "ref-sampling-free": "Chen et al., IEEE TIP 2021",
}
PAPERS = {
    "rs": ["ref-rs-loss"], "ap": ["ref-ap-loss"], "brs": ["ref-brs"], "gap": ["ref-rog"],
    "sampling": ["ref-libra"], "libra": ["ref-libra"], "sf": ["ref-sampling-free"],
    "notation": ["ref-ap-loss", "ref-rs-loss"],
}

OPTIONAL_PAGES = ("worked_example", "gpu_cost")

# autosummary's "first sentence" must not end at these ("(Eqs. 8-10)" and "Eq. 19" included).
_ABBREVIATIONS = ("Eq.", "Eqs.", "et al.", "e.g.", "cf.", "vs.")


def _read_more(app, what, name, obj, options, lines):
    """Insert the "Read more" paragraph after the summary of a public rankref object."""
    if what not in ("function", "class") or not name.startswith(("rankref.", "rankref_gpu.")):
        return
    topic = USER_GUIDE.get(name.rsplit(".", 1)[-1])
    if topic is None or not lines:
        return
    target, title = _UG[topic]
    if target.startswith("/"):
        text = f"Read more in :doc:`{title} <{target}>`"
    else:
        text = f"Read more in the :ref:`User Guide <{target}>` ({title})"
    papers = PAPERS.get(topic, [])
    if papers:
        refs = " and ".join(f":ref:`{_REF[p]} <{p}>`" for p in papers)
        text += f"; the paper: {refs}"
    text += "."
    # the summary is the first paragraph: insert after the first blank line that follows text
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    if start is None:
        return
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    lines[end:end] = ["", text]


def _optional_pages(app, docname, source):
    """Drop the toctree entries of OPTIONAL_PAGES whose file is missing (index.rst only)."""
    if docname != "index":
        return
    missing = [p for p in OPTIONAL_PAGES
               if not os.path.exists(os.path.join(app.srcdir, p + ".rst"))]
    if not missing:
        return
    kept = []
    for line in source[0].splitlines(keepends=True):
        entry = line.strip()
        if any(entry == p or entry.endswith(f"<{p}>") for p in missing):
            continue
        kept.append(line)
    source[0] = "".join(kept)


def setup(app):
    autosummary.WELL_KNOWN_ABBREVIATIONS = tuple(
        dict.fromkeys(autosummary.WELL_KNOWN_ABBREVIATIONS + _ABBREVIATIONS))
    app.connect("autodoc-process-docstring", _read_more, priority=400)
    app.connect("source-read", _optional_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
