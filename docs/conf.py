"""Sphinx configuration of the rankref documentation.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (runs the example
gallery), then ``python .ci/check_docs.py docs/_build/html`` (no resource from the internet).
Quick build without running the examples: add ``-D sphinx_gallery_conf.plot_gallery=0``.
CuPy is mocked (and torch too, when it is not installed), so the docs build on a CPU machine.
The maths is typeset by a MathJax copied into ``_static/mathjax`` (sphinx-mathjax-offline), so
the pages render without a network.
"""
import importlib.util
import os
import sys

project = "rankref"
author = "the rankref developers"
copyright = "2026, the rankref developers"

# The examples are small: one thread runs them fastest and keeps their running times steady on
# a shared machine (rankref's kernels and torch read this when they are first imported).
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Document the *installed* package (its compiled kernels live there, not in the checkout).
_root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _root]
try:
    import rankref  # noqa: E402
except ImportError as exc:  # pragma: no cover
    raise RuntimeError("install rankref first (pip install '.[docs]'); the docs import the "
                       f"installed package: {exc}") from exc

release = version = rankref.__version__
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sphinxext"))

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 from the package, copied to _static/mathjax
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
mathjax_path = "mathjax/tex-chtml.js"  # relative to _static: never a CDN

autosummary_generate = True
autodoc_mock_imports = ["cupy", "cupyx"]
if importlib.util.find_spec("torch") is None:
    autodoc_mock_imports.append("torch")
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
templates_path = ["_templates"]  # autosummary pages end with the examples that use the object
exclude_patterns = ["_build", "gen_modules"]
suppress_warnings = ["config.cache"]

html_theme = "pydata_sphinx_theme"
html_title = f"rankref {release}"
html_static_path = ["_static"]
html_css_files = ["rankref.css"]
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    # "*" is a top-level page only: the API pages (generated/) and the examples get no right
    # column, so that a display equation and 100-column code fit the page at 1280 pixels.
    "secondary_sidebar_items": {"*": ["page-toc", "sourcelink"]},
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
    "navigation_with_keys": False,
}
# The user guide and the API page need no left column: their own table of contents is on the
# right, and the page gets the whole width for the tables and the code.
html_sidebars = {"index": [], "user_guide": [], "api": []}

sphinx_gallery_conf = {
    "examples_dirs": os.path.join("..", "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"plot_",
    "plot_gallery": "True",
    "within_subsection_order": "gallery_order.teaching_order",  # docs/sphinxext
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    # Backreferences: every API page lists the examples that call its object.
    "doc_module": ("rankref", "rankref_gpu"),
    "backreferences_dir": os.path.join("gen_modules", "backreferences"),
    "reference_url": {"rankref": None},  # link the example code to the API pages
    # No sg_execution_times.rst: it would change on every build (each example's running time
    # is still printed at the end of its page).
    "write_computation_times": False,
}
sys.setrecursionlimit(5000)
