"""Summarise a fuzz campaign's log (``RANKREF_FUZZ_LOG=<dir>``) as Markdown.

    python tests/_fuzz_report.py <dir>

Prints the per-test example counts (examples, examples with a finding, distinct findings,
calls per function or method, seconds) and every distinct finding, grouped by function and
kind, each with its shortest reproducer.  Findings equal up to numbers in rankref and
rankref_gpu are merged.
"""
import json
import os
import re
import sys
from collections import defaultdict


def _norm(detail):
    d = re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "N", detail)
    return re.sub(r"\[[^\]]*\]", "[...]", d)[:160]


def main(path):
    stats = [json.loads(line) for line in open(os.path.join(path, "stats.jsonl"))]
    findings = [json.loads(line) for line in open(os.path.join(path, "findings.jsonl"))]
    print("## Example counts\n")
    print("| package | function | examples | with findings | distinct | calls | s |")
    print("|---|---|---|---|---|---|---|")
    for s in stats:
        calls = ", ".join(f"{k}: {v}" for k, v in s["calls"].items())
        print(f"| {s['package']} | {s['function']} | {s['examples']} | "
              f"{s['examples_with_findings']} | {s['distinct_findings']} | {calls} | "
              f"{s['seconds']} |")
    groups = defaultdict(dict)
    for f in findings:
        pkg = "rankref.torch" if f["package"] == "rankref.torch" else "rankref(+_gpu)"
        key = (f["kind"], _norm(f["detail"]), tuple(f["tags"]))
        g = groups[(pkg, f["function"])]
        if key in g:
            e = g[key]
            e["packages"].add(f["package"])
            e["count"] += f["count"]
            if len(f["repro"]) < len(e["repro"]):
                e["repro"], e["detail"] = f["repro"], f["detail"]
        else:
            g[key] = dict(f, packages={f["package"]})
    print("\n## Findings\n")
    for (pkg, func), g in sorted(groups.items()):
        print(f"### {pkg} {func}\n")
        for e in sorted(g.values(), key=lambda e: (e["kind"], len(e["repro"]))):
            tags = f" [{', '.join(e['tags'])}]" if e["tags"] else ""
            print(f"- **{e['kind']}**{tags} ({'/'.join(sorted(e['packages']))}, "
                  f"x{e['count']}): {e['detail']}\n  `{e['repro']}`")
        print()


if __name__ == "__main__":
    main(sys.argv[1])
