"""Check a built HTML documentation: nothing is loaded from the internet, the maths renderer
is served from the build itself, and report how long each gallery example ran.

Usage: python .ci/check_docs.py [docs/_build/html] [--examples docs/auto_examples]
                                [--budget 5]

Fails (exit 1) when a page loads a script, a stylesheet, a font, an image or a frame from an
absolute http(s) or protocol-relative URL (links a reader clicks are fine), when a stylesheet
imports one, or when a page with maths does not load a MathJax that lies in the build.
The running time of each gallery example is reported, those over ``--budget`` seconds marked:
a time is never a failure (a busy machine makes every example slow).
"""
import argparse
import os
import re
import sys
from html.parser import HTMLParser

# attributes through which a page *loads* something (an <a href> is only followed on a click)
LOADING = {
    "script": ("src",), "img": ("src", "srcset"), "iframe": ("src",), "frame": ("src",),
    "source": ("src", "srcset"), "video": ("src", "poster"), "audio": ("src",),
    "embed": ("src",), "object": ("data",), "input": ("src",), "track": ("src",),
}
LINK_LOADS = {"stylesheet", "preload", "modulepreload", "prefetch", "preconnect",
              "dns-prefetch", "icon", "shortcut", "apple-touch-icon", "manifest", "import"}
REMOTE = re.compile(r"^\s*(https?:)?//", re.I)
CSS_REMOTE = re.compile(r"""(url\(\s*['"]?\s*(https?:)?//|@import\s+['"]\s*(https?:)?//)""",
                        re.I)
INLINE_REMOTE = re.compile(r"""['"`](https?:)?//[^'"`\s]+\.(js|css|woff2?|ttf|otf)\b""", re.I)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.loads, self.inline, self.has_math, self.scripts = [], [], False, []
        self._in = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "link" and set((a.get("rel") or "").lower().split()) & LINK_LOADS:
            self.loads.append(("link", a.get("href") or ""))
        for name in LOADING.get(tag, ()):
            for url in (a.get(name) or "").split(","):
                if url.strip():
                    self.loads.append((tag, url.strip().split()[0]))
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        if "math" in (a.get("class") or "").split():
            self.has_math = True
        if "style" in a:
            self.inline.append(a["style"])
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in:
            self.inline.append(data)


def check_html(root):
    """Problems found in the HTML and CSS under ``root``, as strings."""
    problems, pages, math_pages = [], 0, 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if name.endswith(".css"):
                with open(path, encoding="utf-8", errors="replace") as fh:
                    if CSS_REMOTE.search(fh.read()):
                        problems.append(f"{rel}: a stylesheet imports from the internet")
                continue
            if not name.endswith(".html"):
                continue
            pages += 1
            page = _Page()
            with open(path, encoding="utf-8", errors="replace") as fh:
                page.feed(fh.read())
            for tag, url in page.loads:
                if REMOTE.match(url):
                    problems.append(f"{rel}: <{tag}> loads {url}")
            for text in page.inline:
                for m in INLINE_REMOTE.finditer(text) or ():
                    problems.append(f"{rel}: inline code loads {m.group(0)[1:]}")
                if CSS_REMOTE.search(text):
                    problems.append(f"{rel}: inline style imports from the internet")
            if page.has_math:
                math_pages += 1
                local = [s for s in page.scripts if "mathjax" in s.lower() and not REMOTE.match(s)]
                if not local:
                    problems.append(f"{rel}: has maths but loads no local MathJax")
                for src in local:
                    target = os.path.normpath(os.path.join(dirpath, src.split("?")[0]))
                    if not os.path.isfile(target):
                        problems.append(f"{rel}: MathJax {src} is not in the build")
    if pages == 0:
        problems.append(f"{root}: no HTML page found (build the docs first)")
    return problems, pages, math_pages


def example_times(examples_dir):
    """{example: seconds} from the pages sphinx-gallery generated in ``examples_dir``."""
    times = {}
    pattern = re.compile(r"Total running time of the script:\*\* \((\d+) minutes ([\d.]+) seconds")
    for name in sorted(os.listdir(examples_dir)):
        if name.endswith(".rst"):
            with open(os.path.join(examples_dir, name), encoding="utf-8") as fh:
                m = pattern.search(fh.read())
            if m:
                times[name[:-4] + ".py"] = 60 * int(m.group(1)) + float(m.group(2))
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("html", nargs="?", default="docs/_build/html", help="the built HTML")
    parser.add_argument("--examples", default="docs/auto_examples",
                        help="sphinx-gallery's generated pages, with the running times")
    parser.add_argument("--budget", type=float, default=5.0,
                        help="seconds an example should take on an idle machine (marked in "
                             "the report when exceeded; never a failure)")
    args = parser.parse_args(argv)
    problems, pages, math_pages = check_html(args.html)
    print(f"check_docs: {pages} pages, {math_pages} with maths, "
          f"{len(problems)} loading problem(s)")
    for p in problems:
        print("  " + p)
    if os.path.isdir(args.examples):
        times = example_times(args.examples)
        print(f"example running times (reported, never a failure; budget {args.budget:g} s on "
              "an idle machine):")
        for name, sec in sorted(times.items(), key=lambda kv: -kv[1]):
            flag = "  over budget" if sec > args.budget else ""
            print(f"  {sec:7.2f} s  {name}{flag}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
