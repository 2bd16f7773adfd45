"""Every Python code block of the README and of the docs runs.

What runs
---------
* ``README.md``: the fenced blocks marked ``python`` (or ``py``, ``python3``, ``pycon``).
* ``docs/**/*.rst`` (not the build's or sphinx-gallery's output): ``.. code-block:: python``
  (also ``.. code::``/``.. sourcecode::``, and ``py``, ``python3``, ``pycon``; a block without a
  language takes the page's ``.. highlight::``), and the ``::`` literal blocks that Sphinx
  highlights as Python: those whose text compiles as Python (shell commands, program output
  and YAML do not, and are never run).
* A block whose first line starts with ``>>>`` runs as a doctest: its printed output must
  match (ELLIPSIS, NORMALIZE_WHITESPACE).

The blocks of one page run in order in one namespace, as a reader pasting them into one
session would, in a temporary folder as the current directory; each page starts afresh.

Skipped, with the reason in the test report
-------------------------------------------
* A block that imports an optional package that is not installed (torch, ``rankref.torch``,
  matplotlib, tqdm, cupy).
* A block marked just before it (the nearest non-blank line above the ``.. code-block::``
  directive, above the paragraph that ends with ``::``, or above the fence)::

      .. doc-block: skip REASON                 (an rst comment: invisible in the page)
      .. doc-block: needs mmdet[, OTHER]        (runs only where these modules import)
      <!-- doc-block: skip REASON -->           (README.md)
      <!-- doc-block: needs mmdet -->

  ``skip`` is for a block that cannot run anywhere (a fragment of someone's training loop, a
  module the reader writes); ``needs`` for one that runs only with an external package.
* A block that uses a name bound only by a skipped block of the same page (so a page whose
  first torch block is skipped does not fail on the next one).
"""
import ast
import contextlib
import doctest
import importlib.util
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
# generated trees under docs/ (never hand-written pages)
GENERATED = {"_build", "generated", "gen_modules", "auto_examples", "_templates", "_static"}
PYTHON = {"python", "py", "python3", "pycon", "default", "ipython"}
# optional packages of rankref's extras: a block importing one that is missing is skipped
OPTIONAL = {"torch": "a CPU-only torch: see the README", "matplotlib": "pip install matplotlib",
            "tqdm": "pip install tqdm", "cupy": "CuPy and a CUDA GPU", "cupyx": "CuPy"}
MARKER = re.compile(r"^\s*(?:\.\.|<!--)\s*doc-block:\s*(skip|needs)\b\s*(.*?)\s*(?:-->)?\s*$")


class Block:
    def __init__(self, page, line, code, markers):
        self.page, self.line, self.code = page, line, code
        self.doctest = code.lstrip().startswith(">>>")
        self.skip = next((text or "marked skip" for kind, text in markers if kind == "skip"),
                         None)
        self.needs = [m.strip() for kind, text in markers if kind == "needs"
                      for m in text.split(",") if m.strip()]

    @property
    def id(self):
        return f"{os.path.relpath(self.page, ROOT)}:{self.line}"

    def source(self):
        """The Python source (a doctest's examples joined)."""
        if not self.doctest:
            return self.code
        return "".join(e.source for e in doctest.DocTestParser().get_examples(self.code))


def _markers(lines, index):
    """The ``doc-block`` markers on the non-blank lines just above ``lines[index]``."""
    found = []
    i = index - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    while i >= 0 and MARKER.match(lines[i]):
        found.append(MARKER.match(lines[i]).groups())
        i -= 1
    return found


def _indent(line):
    return len(line) - len(line.lstrip())


def _indented_block(lines, start, parent_indent):
    """The dedented block of lines from ``start`` indented deeper than ``parent_indent``
    (a directive's options such as ``:caption:`` skipped); returns its first line's number
    (counted from 1), its text and the index of the line after it."""
    i = start
    while (i < len(lines) and _indent(lines[i]) > parent_indent
           and re.match(r"^\s*:[\w-]+:", lines[i])):
        i += 1
    body = []
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > parent_indent):
        body.append((i, lines[i]))
        i += 1
    end = i
    while body and not body[-1][1].strip():
        body.pop()
    while body and not body[0][1].strip():
        body.pop(0)
    if not body:
        return start + 1, "", end
    cut = min(_indent(b) for _, b in body if b.strip())
    return body[0][0] + 1, "\n".join(b[cut:] for _, b in body) + "\n", end


def _is_python(text):
    """A ``::`` block is Python when it compiles to more than bare names and constants."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, (ast.Name,
                                                                           ast.Constant)))
               for node in tree.body)


def rst_blocks(path):
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    blocks, highlight, i = [], "default", 0
    directive = re.compile(r"^(\s*)\.\.\s+(code-block|code|sourcecode)::\s*(\S*)\s*$")
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\s*\.\.\s+highlight::\s*(\S+)", line)
        if m:
            highlight = m.group(1).lower()
            i += 1
            continue
        m = directive.match(line)
        if m:  # a code block of any language: its text is never scanned for '::'
            first, code, end = _indented_block(lines, i + 1, len(m.group(1)))
            if (m.group(3) or highlight).lower() in PYTHON and code.strip():
                blocks.append(Block(path, first, code, _markers(lines, i)))
            i = end
            continue
        if not line.rstrip().endswith("::") or re.match(r"^\s*\.\.\s", line):
            i += 1  # not a literal block (a directive such as .. math:: ends with :: too)
            continue
        start = i  # the paragraph that introduces the block, for its markers
        while start > 0 and lines[start - 1].strip() and _indent(lines[start - 1]) == _indent(line):
            start -= 1
        first, code, end = _indented_block(lines, i + 1, _indent(line))
        if highlight in PYTHON and code.strip() and _is_python(code):
            blocks.append(Block(path, first, code, _markers(lines, start)))
        i = max(end, i + 1)
    return blocks


def markdown_blocks(path):
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)(```+|~~~+)\s*([\w+-]*)", lines[i])
        if not m:
            i += 1
            continue
        fence, language, start = m.group(2), m.group(3).lower(), i
        i += 1
        body = []
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        if language in PYTHON - {"default"}:
            blocks.append(Block(path, start + 2, "\n".join(body) + "\n",
                                _markers(lines, start)))
    return blocks


def all_blocks():
    pages = []
    readme = os.path.join(ROOT, "README.md")
    if os.path.isfile(readme):
        pages.append(markdown_blocks(readme))
    if os.path.isdir(DOCS):
        for folder, subfolders, files in os.walk(DOCS):
            subfolders[:] = sorted(d for d in subfolders if d not in GENERATED)
            for name in sorted(files):
                if name.endswith(".rst"):
                    pages.append(rst_blocks(os.path.join(folder, name)))
    return [b for page in pages for b in page]


BLOCKS = all_blocks()


# ------------------------------------------------------------------------------ names

def _imported_modules(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def _bound_and_used(tree):
    bound, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, (ast.Store, ast.Del)) else used).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return bound, used


def _missing_optional(modules):
    for name in modules:
        top = name.split(".")[0]
        if name == "rankref.torch" or name.startswith("rankref.torch."):
            top = "torch"
        if top in OPTIONAL and importlib.util.find_spec(top) is None:
            return f"needs {top}, which is not installed ({OPTIONAL[top]})"
    return None


def _available(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# ------------------------------------------------------------------------------ running

class _Page:
    """The namespace of one page and what its earlier blocks left behind."""

    def __init__(self, folder):
        self.ns = {"__name__": "__doc_block__"}
        self.folder = folder
        self.done = 0               # blocks of the page run (or skipped) so far
        self.unavailable = {}       # name -> the skipped or failed block that binds it

    def lose_names(self, block):
        """The names ``block`` binds are unavailable to the next blocks (it failed)."""
        try:
            bound, _ = _bound_and_used(ast.parse(block.source()))
        except SyntaxError:
            return
        for name in bound:
            self.unavailable.setdefault(name, block.id)


def _skip_reason(block, page):
    try:
        tree = ast.parse(block.source())
    except SyntaxError:
        return None  # reported as a failure when it runs
    bound, used = _bound_and_used(tree)
    reason = block.skip
    if reason is None:
        missing = [m for m in block.needs if not _available(m)]
        if missing:
            reason = f"needs {', '.join(missing)} (not installed)"
    if reason is None:
        reason = _missing_optional(_imported_modules(tree))
    if reason is None:
        from_skipped = sorted(used & set(page.unavailable))
        if from_skipped:
            name = from_skipped[0]
            reason = (f"uses {name!r} from {page.unavailable[name]}, which was skipped or "
                      "failed")
    if reason is not None:
        for name in bound:
            page.unavailable.setdefault(name, block.id)
    else:
        for name in bound:
            page.unavailable.pop(name, None)
    return reason


def _execute(block, page):
    with contextlib.chdir(page.folder) if hasattr(contextlib, "chdir") else _chdir(page.folder):
        if block.doctest:
            test = doctest.DocTestParser().get_doctest(block.code, page.ns, block.id,
                                                       block.page, block.line - 1)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS
                                           | doctest.NORMALIZE_WHITESPACE)
            out = []
            runner.run(test, out=out.append, clear_globs=False)
            if runner.failures:
                raise AssertionError("".join(out))
        else:
            # padded so that a traceback points at the line of the page
            exec(compile("\n" * (block.line - 1) + block.code, block.page, "exec"), page.ns)


@contextlib.contextmanager
def _chdir(folder):  # contextlib.chdir before Python 3.11
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    os.environ.setdefault("MPLBACKEND", "Agg")  # a block that plots never opens a window
    return {}


@pytest.mark.parametrize("block", BLOCKS or [None], ids=[b.id for b in BLOCKS] or ["none"])
def test_doc_block_runs(block, pages, tmp_path_factory):
    if block is None:
        pytest.skip("no README.md or docs/ next to the tests (not a source checkout)")
    siblings = [b for b in BLOCKS if b.page == block.page]
    index = siblings.index(block)
    page = pages.get(block.page)
    if page is None or page.done > index:  # a fresh page (or a test run out of order)
        page = pages[block.page] = _Page(str(tmp_path_factory.mktemp("doc_block")))
    while page.done < index:  # the earlier blocks of the page, when they did not run yet
        earlier = siblings[page.done]
        page.done += 1
        if _skip_reason(earlier, page) is None:
            try:
                _execute(earlier, page)
            except Exception:  # noqa: BLE001 - reported by that block's own test
                page.lose_names(earlier)
    page.done = index + 1
    reason = _skip_reason(block, page)
    if reason is not None:
        pytest.skip(reason)
    try:
        _execute(block, page)
    except Exception as exc:  # noqa: BLE001 - reported with the block and its line
        page.lose_names(block)  # the next blocks of the page still run, unless they use them
        pytest.fail(_report(block, exc), pytrace=False)


def _report(block, exc):
    """The failing block, numbered as in its page, and the traceback from the block on."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    mine = [i for i, f in enumerate(frames) if f.filename == block.page]
    tb = traceback.format_list(frames[mine[0]:] if mine else frames[-3:])
    code = "".join(f"{block.line + i:5d}  {line}\n"
                   for i, line in enumerate(block.code.splitlines()))
    hint = ("\nIf this block cannot run, mark it (see tests/test_doc_blocks.py): "
            "'.. doc-block: skip REASON' or '.. doc-block: needs MODULE' on the line above it "
            "(above its '::' paragraph), '<!-- doc-block: skip REASON -->' in README.md.")
    return (f"{block.id}: the code block raised {type(exc).__name__}: {exc}\n\n{code}\n"
            f"{''.join(tb)}{hint}")


# ------------------------------------------------------------------------------ the extractor

def test_extractor_finds_the_blocks_and_the_markers(tmp_path):
    page = tmp_path / "page.rst"
    page.write_text("""\
Title
=====

.. code-block:: python
   :caption: one

   x = 1
   y = x + 1

A literal block::

    z = y * 2

Shell, never run::

    rankref demo --plot

.. doc-block: skip a fragment of the reader's training loop

The loop::

    for images in loader:
        pass

.. doc-block: needs mmdet

.. code-block:: python

   import mmdet

.. code-block:: text

   output that ends with::

       not = code

.. math::

   x = 1

* A list item:

  .. code-block:: python

     >>> print(z)
     4
""")
    blocks = rst_blocks(str(page))
    assert [b.code for b in blocks] == ["x = 1\ny = x + 1\n", "z = y * 2\n",
                                        "for images in loader:\n    pass\n", "import mmdet\n",
                                        ">>> print(z)\n4\n"]
    assert [b.line for b in blocks] == [7, 12, 22, 29, 45]
    assert [b.skip for b in blocks] == [None, None, "a fragment of the reader's training loop",
                                        None, None]
    assert blocks[3].needs == ["mmdet"] and blocks[4].doctest
    md = tmp_path / "README.md"
    md.write_text("```bash\npip install .\n```\n\n<!-- doc-block: skip needs a GPU -->\n"
                  "```python\nimport cupy\n```\n\n```python\nprint(1)\n```\n")
    blocks = markdown_blocks(str(md))
    assert [(b.code, b.line, b.skip) for b in blocks] == [
        ("import cupy\n", 7, "needs a GPU"), ("print(1)\n", 11, None)]


def test_a_page_shares_one_namespace_and_skips_what_depends_on_a_skipped_block(tmp_path):
    page = _Page(str(tmp_path))
    a = Block("p", 1, "x = 2\n", [])
    b = Block("p", 2, "y = undefined_name\n", [("skip", "a fragment")])
    c = Block("p", 3, "print(y)\n", [])
    d = Block("p", 4, ">>> x * 3\n6\n", [])
    e = Block("p", 5, ">>> x * 3\n7\n", [])
    assert _skip_reason(a, page) is None
    _execute(a, page)
    assert _skip_reason(b, page) == "a fragment"
    assert _skip_reason(c, page) == "uses 'y' from p:2, which was skipped or failed"
    assert _skip_reason(d, page) is None
    _execute(d, page)
    with pytest.raises(AssertionError, match="Expected:"):
        _execute(e, page)
    missing = Block("p", 6, "import no_such_module_xyz\n", [("needs", "no_such_module_xyz")])
    assert _skip_reason(missing, page) == "needs no_such_module_xyz (not installed)"
