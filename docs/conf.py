"""Sphinx configuration of the rankref documentation.

Build (nitpicky, warnings are errors; runs the example gallery, which needs torch):

    python -m sphinx -n -W --keep-going -b html docs docs/_build/html
    python .ci/check_docs.py docs/_build/html      # no resource from the internet

Quick build without running the examples: add ``-D sphinx_gallery_conf.plot_gallery=0``.
Without torch the build still works: torch is mocked for the API pages, and the gallery shows
the examples that import torch without running them (a note says so at the start of the build).  CuPy is always
mocked, so the docs build on a CPU machine.  The maths is typeset by a MathJax copied into
``_static/mathjax`` (sphinx-mathjax-offline), so the pages render without a network.  The
picture of the landing page is drawn at build time by ``figures/rs_updates.py`` (NumPy and
matplotlib only).
"""
import importlib.util
import os
import re
import sys

project = "rankref"
author = "the rankref developers"
copyright = "2026, the rankref developers"

# The examples are small: one thread runs them fastest and keeps their running times steady on
# a shared machine (rankref's kernels and torch read this when they are first imported).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

_docs = os.path.dirname(os.path.abspath(__file__))
_root = os.path.abspath(os.path.join(_docs, ".."))

# Document the *installed* package (its compiled kernels live there, not in the checkout).
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _root]
try:
    import rankref  # noqa: E402
except ImportError as exc:  # pragma: no cover
    raise RuntimeError("install rankref first (pip install '.[docs]'); the docs import the "
                       f"installed package: {exc}") from exc

release = version = rankref.__version__
sys.path.insert(0, os.path.join(_docs, "sphinxext"))

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 from the package, copied to _static/mathjax
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",  # the landing page's picture, drawn at build time
    "rankref_docs",  # docs/sphinxext: "Read more" links, optional pages, whole summaries
]
mathjax_path = "mathjax/tex-chtml.js"  # relative to _static: never a CDN

# Every cross-reference must resolve: the build runs with -n -W.
nitpicky = True


def _installed(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


HAVE_TORCH = _installed("torch")

autosummary_generate = True
autodoc_mock_imports = ["cupy", "cupyx"]
# The docstrings give every type in numpydoc's Parameters/Returns/Attributes sections; the
# annotations of the result named tuples (numpy.ndarray) would only repeat them in the signature.
autodoc_typehints = "none"
if HAVE_TORCH:
    # Import torch (and torch._dynamo, which the first optimizer loads) once here, so that the
    # gallery's recorded running times are the examples' own work, not the seconds these
    # one-time imports take in whichever example happens to come first.
    import torch  # noqa: F401
    import torch._dynamo  # noqa: F401
else:
    autodoc_mock_imports.append("torch")
    print("rankref docs: torch is not installed, so the API pages of rankref.torch are built "
          "on a mocked torch, and the gallery shows the examples that use torch without "
          "running them "
          "(install torch to run them, e.g. pip install torch==2.13.0 --index-url "
          "https://download.pytorch.org/whl/cpu)")
# The "On this page" column lists sections, not objects (api.rst documents MAX_ENTRIES in place).
toc_object_entries = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
templates_path = ["_templates"]  # autosummary pages end with the examples that use the object
exclude_patterns = ["_build", "gen_modules", "figures"]
suppress_warnings = ["config.cache"]

html_theme = "pydata_sphinx_theme"
html_title = f"rankref {release}"
html_static_path = ["_static"]
html_css_files = ["rankref.css"]
html_theme_options = {
    "logo": {"text": "rankref"},
    "navbar_align": "left",
    # The top-level pages (the hidden toctree of index.rst) before the "More" menu: install,
    # getting started, user guide, worked example, examples, API, auditing, training, design.
    "header_links_before_dropdown": 9,
    # the search as an icon (the wide search field would push the links onto a second line
    # below about 1400 pixels)
    "navbar_persistent": ["search-button"],
    "show_toc_level": 2,
    # "*" is a top-level page only: the API pages (generated/) and the examples get no right
    # column, so that a display equation and 100-column code fit the page at 1280 pixels.
    # The landing page has no right column either: its picture and its three paths use the width.
    "secondary_sidebar_items": {"*": ["page-toc", "sourcelink"], "index": []},
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
    "navigation_with_keys": False,
}
# A left column only where it lists pages to go to: the API pages (every object of the API)
# and the examples.  Every other page is a page of its own, with its table of contents on the
# right, and gets the whole width for its tables and code.
html_sidebars = {
    "*": [],  # the top-level pages ("*" does not match a "/")
    "generated/*": ["sidebar-nav-bs"],
    "auto_examples/*": ["sidebar-nav-bs"],
}

# The landing page's picture (docs/figures/rs_updates.py), drawn when the docs are built.
plot_basedir = "figures"
plot_formats = [("png", 110)]
plot_html_show_source_link = False
plot_html_show_formats = False
plot_include_source = False
plot_rcparams = {"figure.autolayout": False}



def _imports_torch(path):
    with open(path, encoding="utf-8") as fh:
        return re.search(r"^\s*(import|from)\s+(torch|rankref\.torch)\b", fh.read(), re.M)


def _gallery_pattern():
    """The examples sphinx-gallery runs: all, or without torch those that do not import it."""
    if HAVE_TORCH:
        return r"plot_"
    examples = os.path.join(_root, "examples")
    needs_torch = sorted(name for name in os.listdir(examples)
                         if name.startswith("plot_") and name.endswith(".py")
                         and _imports_torch(os.path.join(examples, name)))
    return r"plot_" + "".join(f"(?!{re.escape(name[5:])})" for name in needs_torch)


sphinx_gallery_conf = {
    "examples_dirs": os.path.join("..", "examples"),
    "gallery_dirs": "auto_examples",
    # Every example runs, except, without torch, the ones that import it: those are shown with
    # their code and without output.
    "filename_pattern": _gallery_pattern(),
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
