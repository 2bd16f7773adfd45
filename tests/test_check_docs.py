"""The CI check that the built docs load nothing from the internet (.ci/check_docs.py)."""
import importlib.util
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".ci", "check_docs.py")


@pytest.fixture(scope="module")
def check_docs():
    if not os.path.isfile(SCRIPT):
        pytest.skip("runs from a source checkout (.ci/check_docs.py)")
    spec = importlib.util.spec_from_file_location("check_docs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _page(root, name, body, head=""):
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"<html><head>{head}</head><body>{body}</body></html>")


def test_local_mathjax_and_links_pass(check_docs, tmp_path):
    root = str(tmp_path)
    os.makedirs(tmp_path / "_static" / "mathjax")
    (tmp_path / "_static" / "mathjax" / "tex-chtml.js").write_text("// local")
    (tmp_path / "_static" / "theme.css").write_text(
        "a{background:url(\"data:image/svg+xml;charset=utf-8,%3Csvg xmlns='http://www.w3.org"
        "/2000/svg'%3E\")} b{background:url(icons/x.svg)}")
    _page(root, "index.html", '<span class="math">\\(x\\)</span>'
          '<a href="https://www.sphinx-doc.org/">Sphinx</a>',
          head='<script defer src="_static/mathjax/tex-chtml.js"></script>'
               '<link rel="stylesheet" href="_static/theme.css">')
    problems, pages, math_pages = check_docs.check_html(root)
    assert problems == [] and pages == 1 and math_pages == 1


@pytest.mark.parametrize("head, body, expected", [
    ('<script src="https://cdn.jsdelivr.net/npm/mathjax@4/tex-mml-chtml.js"></script>',
     '<span class="math">x</span>', "loads https://cdn.jsdelivr.net/npm/mathjax@4"),
    ('<link rel="stylesheet" href="//fonts.example.org/font.css">', "", "loads //fonts"),
    ("", '<img src="http://example.org/a.png">', "<img> loads http://example.org/a.png"),
    ("<style>@import 'https://example.org/a.css';</style>", "", "inline style imports"),
    ("", '<script>var s = "https://code.jquery.com/jquery-3.7.0.js";</script>',
     "inline code loads https://code.jquery.com/jquery-3.7.0.js"),
    ("", '<span class="math">x</span>', "has maths but loads no local MathJax"),
    ('<script src="_static/mathjax/missing.js"></script>', '<span class="math">x</span>',
     "is not in the build"),
])
def test_remote_resources_fail(check_docs, tmp_path, head, body, expected):
    _page(str(tmp_path), "sub/page.html", body, head)
    problems, _, _ = check_docs.check_html(str(tmp_path))
    assert len(problems) >= 1 and any(expected in p for p in problems), problems


def test_example_times_are_reported_never_a_failure(check_docs, tmp_path, capsys):
    html = tmp_path / "html"
    _page(str(html), "index.html", "")
    ex = tmp_path / "auto_examples"
    ex.mkdir()
    (ex / "plot_a.rst").write_text("**Total running time of the script:** (0 minutes 1.250 "
                                   "seconds)\n")
    (ex / "plot_b.rst").write_text("**Total running time of the script:** (1 minutes 2.000 "
                                   "seconds)\n")
    assert check_docs.example_times(str(ex)) == {"plot_a.py": 1.25, "plot_b.py": 62.0}
    # a slow example (a busy machine) is reported, and the check still passes
    assert check_docs.main([str(html), "--examples", str(ex)]) == 0
    out = capsys.readouterr().out
    assert "62.00 s  plot_b.py  over budget" in out and "1.25 s  plot_a.py\n" in out
    assert "never a failure" in out
    with pytest.raises(SystemExit):  # no option makes a time a failure
        check_docs.main([str(html), "--examples", str(ex), "--limit", "10"])
