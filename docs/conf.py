"""Sphinx configuration of the rankref documentation.

Build: ``python -m sphinx -W -b html docs docs/_build/html`` (runs the example gallery).
Quick build without running the examples: add ``-D sphinx_gallery_conf.plot_gallery=0``.
CuPy is mocked (and torch too, when it is not installed), so the docs build on a CPU machine.
"""
import importlib.util
import os
import sys

project = "rankref"
author = "the rankref developers"
copyright = "2026, the rankref developers"

# Document the *installed* package (its compiled kernels live there, not in the checkout).
_root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _root]
try:
    import rankref  # noqa: E402
except ImportError as exc:  # pragma: no cover
    raise RuntimeError("install rankref first (pip install '.[docs]'); the docs import the "
                       f"installed package: {exc}") from exc

release = version = rankref.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

autosummary_generate = True
autodoc_mock_imports = ["cupy", "cupyx"]
if importlib.util.find_spec("torch") is None:
    autodoc_mock_imports.append("torch")
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
templates_path = []
exclude_patterns = ["_build", "generated/*.examples"]
html_theme = "alabaster"
html_static_path = ["_static"]
suppress_warnings = ["config.cache"]

sphinx_gallery_conf = {
    "examples_dirs": os.path.join("..", "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"plot_",
    "plot_gallery": "True",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
}
sys.setrecursionlimit(5000)
