"""Property-based fuzzing of every public function of rankref, rankref_gpu and rankref.torch.

Each example must end in exactly one of two ways:

(a) a clean result satisfying the function's invariants: finite outputs, gradients that sum
    to 0, losses in range, values equal to an exact rational (or 40-digit) reference on small
    inputs, bucketed == dense, rankref_gpu == rankref, rankref.torch == rankref, ignored
    entries without gradient, documented shapes and dtypes, inputs not modified, no warnings,
    the same result on a repeated call; or
(b) a ValueError or TypeError whose message names the offending argument.

Anything else is a finding: another exception type, a message naming no (or another)
argument, NaN/inf from finite input, a wrong value, a changed state after a raising call, an
invalid input silently accepted, a crash of the interpreter, or no answer within the time
bound.  Each test collects every distinct finding of its run and fails listing them, each with
a reproducer (``rr`` is rankref, ``rg`` rankref_gpu, ``rt`` rankref.torch, ``_readonly(a)``
is ``a`` made read-only, ``_counts(pkg, C, c)`` a ClassCounts holding counts ``c``).

Profiles
--------
* default (CI): the explicit regression examples (``_fuzz_known``) plus a few derandomized
  examples per test; the whole file in well under a minute.
* ``RANKREF_FUZZ_EXAMPLES=10000 pytest tests/test_fuzz.py``: the long campaign, randomized
  (``RANKREF_FUZZ_SEED`` fixes the seed).

Every example runs in a worker subprocess (see ``_fuzz_runner``): a segfault is reported as a
``crash`` finding and the next example gets a fresh worker; an example that does not finish
within ``RANKREF_FUZZ_TIMEOUT`` seconds is reported as ``unbounded work``.  The default, 600 s,
is a hang watchdog far above any honest example on a busy machine (examples take milliseconds
to a few seconds); a campaign on an idle machine may set it lower (e.g. 20) to hunt for inputs
that make the work blow up.  ``RANKREF_FUZZ_LOG=<dir>`` writes every distinct
finding and the per-test example counts as JSON lines (``findings.jsonl``, ``stats.jsonl``);
``python tests/_fuzz_report.py <dir>`` turns them into a Markdown report.
"""
import json
import os
import re
import time

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import seed as hypothesis_seed

import rankref
from _fuzz_known import KNOWN, TORCH_KNOWN
from _fuzz_runner import Runner
from _fuzz_strategies import RANKREF_CASES, TORCH_CASES

EXAMPLES = int(os.environ.get("RANKREF_FUZZ_EXAMPLES", "0") or 0)
LONG = EXAMPLES > 0
N_EXAMPLES = EXAMPLES if LONG else 15
# a hang watchdog, never a speed test: a slow machine must not turn an example into a finding
TIMEOUT = float(os.environ.get("RANKREF_FUZZ_TIMEOUT", "600"))
SEED = os.environ.get("RANKREF_FUZZ_SEED")
LOG_DIR = os.environ.get("RANKREF_FUZZ_LOG")

# result types in __all__: NamedTuples, fuzzed as the return values of the functions
RESULT_TYPES = {"RelaxedRanks", "Buckets", "RankSortResult", "APLossResult", "GAPResult",
                "ForegroundPrior"}
# rankref.torch public names that take no input worth fuzzing (none today)
TORCH_EXEMPT = {}

TARGETS = ([("rankref", f) for f in RANKREF_CASES]
           + [("rankref_gpu", f) for f in RANKREF_CASES]
           + [("rankref.torch", f) for f in TORCH_CASES])

PREFIX = {"rankref": "rr.", "rankref_gpu": "rg.", "rankref.torch": "rt."}


@pytest.fixture(scope="module")
def runner():
    r = Runner(timeout=TIMEOUT, inprocess=os.environ.get("RANKREF_FUZZ_INPROCESS") == "1")
    yield r
    r.close()


def reproducer(pkg, case):
    p = PREFIX[pkg]
    if case.func == "ClassCounts":
        lines = [f"cc = {p}ClassCounts({case.args[0].code()})"]
        for op, specs in case.meta["steps"]:
            a = ", ".join(s.code() for s in specs)
            lines.append(f"cc + {a}" if op == "add" else f"cc.{op}({a})")
        return "; ".join(lines).replace("pkg", p.rstrip("."))
    if "forward" in case.meta:
        init = ", ".join(f"{k}={v.code()}" for k, v in case.kwargs.items())
        fwd = ", ".join([s.code() for s in case.meta["forward"]]
                        + [f"{k}={v.code()}" for k, v in case.meta.get("forward_kw",
                                                                         {}).items()])
        times = case.meta.get("calls", 1)
        call = f"m = {p}{case.func}({init}); " + "; ".join([f"m({fwd})"] * times)
        return call.replace("pkg.", "rr.")
    other = "rr" if pkg == "rankref_gpu" else "rg"
    return case.call_code(p).replace("pkg.", p).replace("other.", other + ".") \
        .replace("_counts(pkg", f"_counts({p.rstrip('.')}").replace("_counts(other",
                                                                     f"_counts({other}")


def _key(kind, detail):
    d = re.sub(r"0x[0-9a-f]+", "ADDR", detail)
    d = re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "N", d)
    d = re.sub(r"\[[^\]]*\]", "[...]", d)
    return kind, d[:200]


class Recorder:
    """Distinct findings of one test (the shortest reproducer kept for each) and counts."""

    def __init__(self, pkg, func):
        self.pkg, self.func = pkg, func
        self.found = {}
        self.examples = 0
        self.with_findings = 0
        self.calls = {}
        self.seconds = 0.0
        self.t0 = time.perf_counter()

    def add(self, case, res):
        self.examples += 1
        self.seconds += res.get("seconds", 0.0)
        for k, v in res.get("calls", {}).items():
            self.calls[k] = self.calls.get(k, 0) + v
        if res["findings"]:
            self.with_findings += 1
        tags = tuple(res.get("tags", ()))
        for kind, detail in res["findings"]:
            key = _key(kind, detail) + (tags,)
            rep = reproducer(self.pkg, case)
            entry = self.found.get(key)
            if entry is None:
                self.found[key] = {"kind": kind, "detail": detail, "repro": rep, "count": 1,
                                   "tags": list(tags)}
            else:
                entry["count"] += 1
                if len(rep) < len(entry["repro"]):
                    entry.update(detail=detail, repro=rep)

    def finish(self):
        wall = time.perf_counter() - self.t0
        if LOG_DIR:
            os.makedirs(LOG_DIR, exist_ok=True)
            with open(os.path.join(LOG_DIR, "findings.jsonl"), "a") as fh:
                for e in self.found.values():
                    fh.write(json.dumps(dict(e, package=self.pkg, function=self.func)) + "\n")
            with open(os.path.join(LOG_DIR, "stats.jsonl"), "a") as fh:
                fh.write(json.dumps({"package": self.pkg, "function": self.func,
                                     "examples": self.examples,
                                     "examples_with_findings": self.with_findings,
                                     "distinct_findings": len(self.found),
                                     "calls": self.calls, "seconds": round(wall, 1)}) + "\n")
        if self.found:
            items = sorted(self.found.values(), key=lambda e: (e["kind"], len(e["repro"])))
            lines = [f"{len(items)} distinct finding(s) in {self.examples} examples of "
                     f"{self.pkg}.{self.func}:"]
            for e in items[:40]:
                tags = f" [{', '.join(e['tags'])}]" if e["tags"] else ""
                lines.append(f"- {e['kind']}{tags} (x{e['count']}): {e['detail']}\n"
                             f"    {e['repro']}")
            if len(items) > 40:
                lines.append(f"... and {len(items) - 40} more")
            pytest.fail("\n".join(lines), pytrace=False)


def _settings():
    kw = dict(max_examples=N_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
              derandomize=not LONG and SEED is None, print_blob=False)
    return settings(**kw)


@pytest.mark.parametrize("pkg,func", TARGETS, ids=[f"{p}.{f}" for p, f in TARGETS])
def test_fuzz(pkg, func, runner):
    if pkg == "rankref.torch":
        pytest.importorskip("torch")
        strategy, known = TORCH_CASES[func], TORCH_KNOWN.get(func, [])
    else:
        strategy, known = RANKREF_CASES[func], KNOWN.get(func, [])
    rec = Recorder(pkg, func)

    @_settings()
    @given(case=strategy)
    def run(case):
        rec.add(case, runner.run(pkg, case))

    for case in reversed(known):  # the regression examples run first, in order
        run = example(case=case)(run)

    if SEED is not None:
        run = hypothesis_seed(int(SEED))(run)
    run()
    rec.finish()


def test_every_public_name_is_fuzzed():
    missing = [n for n in rankref.__all__ if n not in RANKREF_CASES and n not in RESULT_TYPES]
    assert not missing, f"public names of rankref without a fuzz strategy: {missing}"


def test_every_torch_name_is_fuzzed():
    pytest.importorskip("torch")
    import rankref.torch as rt
    missing = [n for n in rt.__all__ if n not in TORCH_CASES and n not in TORCH_EXEMPT]
    assert not missing, f"public names of rankref.torch without a fuzz strategy: {missing}"


def test_isolation_reports_crash_and_hang():
    """The worker pool turns a segfault and a hang into findings and keeps going."""
    r = Runner(timeout=600.0, inprocess=False)  # a busy machine never makes these time out
    try:
        crash = r.run("__selftest__", "segfault")["findings"]
        assert [k for k, _ in crash] == ["crash"] and "SIGSEGV" in crash[0][1]
        r.timeout = 1.0  # the self-test hang sleeps an hour: only the hang meets this bound
        hang = r.run("__selftest__", "hang")["findings"]
        assert [k for k, _ in hang] == ["unbounded work"]
        r.timeout = 600.0
        after = r.run("__selftest__", "ok")  # a fresh worker takes the next example
        assert after["findings"] == [] and after["calls"] == {"selftest": 1}
        assert r.restarts == 2
    finally:
        r.close()

