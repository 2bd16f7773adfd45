"""``--explore``: random cases beyond the battery, and the first failure shrunk to a minimal,
runnable input."""
import time

import numpy as np

from ._battery import explore_case
from ._conventions import STATUSES, OutsideDomain, _in_domain
from ._running import evaluate

MAX_EVALUATIONS = 600  # runs the shrinking may spend
MAX_SHRINK_SECONDS = 300.0


def _entries(loss, inp):
    if loss in ("rs", "brs", "ap"):
        return int(inp["x"].size)
    if loss == "gap":
        return int(inp["scores"].size)
    return int(inp["pred"].size)


def _flat(loss, inp):
    """The case with 1-D arrays (ranking, balanced-l1): the unit the shrinking removes."""
    if loss in ("rs", "brs", "ap"):
        return dict(inp, x=inp["x"].reshape(-1), t=inp["t"].reshape(-1))
    if loss == "balanced-l1":
        return dict(inp, pred=inp["pred"].reshape(-1), target=inp["target"].reshape(-1))
    return dict(inp)


def _take(loss, inp, keep):
    """The case restricted to the units (entries; GAP: rows) in ``keep``."""
    if loss in ("rs", "brs", "ap"):
        return dict(inp, x=inp["x"][keep], t=inp["t"][keep])
    if loss == "gap":
        return dict(inp, scores=inp["scores"][keep], labels=inp["labels"][keep])
    return dict(inp, pred=inp["pred"][keep], target=inp["target"][keep])


def _units(loss, inp):
    return inp["scores"].shape[0] if loss == "gap" else _entries(loss, inp)


def _simpler_values(v):
    """Simpler candidates for a value, simplest first: 0, +-1, half of it (an integer), an
    integer, a half."""
    out = []
    for c in (0.0, float(np.sign(v)), float(np.round(v / 2)), float(np.round(v)),
              float(np.round(v * 2) / 2)):
        if c != v and c not in out:
            out.append(c)
    return out


class _Shrinker:
    def __init__(self, plan, status, kind, rtol, atol, timeout):
        self.plan, self.status, self.kind = plan, status, kind
        self.rtol, self.atol = rtol, atol
        self.timeout = min(timeout, 60.0)
        self.evaluations = 0
        self.deadline = time.perf_counter() + MAX_SHRINK_SECONDS

    def budget(self):
        return self.evaluations < MAX_EVALUATIONS and time.perf_counter() < self.deadline

    def fails(self, inp):
        """True when ``inp`` fails the same way (same status; an ERROR: same exception)."""
        if not self.budget():
            return False
        self.evaluations += 1
        rec, _ = evaluate(self.plan, "shrink", "shrink", inp, False, self.rtol, self.atol,
                          self.timeout)
        if rec["status"] != self.status:
            return False
        return self.status != "error" or (rec["reason"] or "").split(":")[0] == self.kind

    def remove_units(self, inp):
        """Delta debugging over the units (entries; GAP: rows): drop chunks while it fails."""
        loss = self.plan.loss
        n = _units(loss, inp)
        k = 2
        while n > 1 and self.budget():
            size = -(-n // k)
            for start in range(0, n, size):
                keep = np.r_[0:start, min(start + size, n):n]
                if keep.size == 0:
                    continue
                cand = _take(loss, inp, keep)
                if self.fails(cand):
                    inp, n, k = cand, keep.size, max(k - 1, 2)
                    break
            else:
                if size == 1:
                    break
                k = min(2 * k, n)
        return inp

    def simplify_values(self, inp):
        """Each value replaced by a simpler one (0, an integer, a half) while it fails."""
        loss = self.plan.loss
        keys = {"rs": ("x", "t"), "brs": ("x", "t"), "ap": ("x",), "gap": ("scores",),
                "balanced-l1": ("pred", "target")}[loss]
        for key in keys:
            arr = inp[key]
            flat = arr.reshape(-1)
            for i in range(flat.size):
                if key == "t":
                    if not flat[i] > 0:
                        continue
                    candidates = [c for c in (1.0, 0.5) if c != flat[i]]
                else:
                    candidates = _simpler_values(float(flat[i]))
                for c in candidates:
                    trial = flat.copy()
                    trial[i] = c
                    cand = dict(inp, **{key: trial.reshape(arr.shape)})
                    if self.fails(cand):
                        inp, flat = cand, trial
                        break
        if loss == "gap":
            ones = np.ones_like(inp["counts"])
            if not np.array_equal(ones, inp["counts"]):
                cand = dict(inp, counts=ones)
                if self.fails(cand):
                    inp = cand
        if self.plan.takes_delta and "delta" in inp:
            for d in (0.5, 1.0, 0.0):
                if d != inp["delta"] and self.fails(dict(inp, delta=d)):
                    inp = dict(inp, delta=d)
                    break
        return inp


def shrink(plan, inp, record, rtol, atol, timeout):
    """The failing case ``inp`` reduced to a minimal input that fails the same way:
    ``(inputs, evaluations)``.  Units are removed by delta debugging, then values are made
    simpler, then units are removed once more, one by one."""
    s = _Shrinker(plan, record["status"], (record["reason"] or "").split(":")[0], rtol, atol,
                  timeout)
    inp = _flat(plan.loss, inp)
    inp = s.remove_units(inp)
    for _ in range(4):  # values shrink step by step (halving): repeat while something changes
        before = s.evaluations
        simpler = s.simplify_values(inp)
        if all(np.array_equal(simpler[k], inp[k]) for k in inp):
            break
        inp = simpler
        if s.evaluations == before:
            break
    inp = s.remove_units(inp)
    return inp, s.evaluations


# ------------------------------------------------------------------------------ printing

def _literal(a):
    a = np.asarray(a)
    if a.dtype.kind in "iu":
        body = ", ".join(str(int(v)) for v in a.reshape(-1))
    elif a.dtype == np.float32:
        body = ", ".join(str(np.float32(v)) for v in a.reshape(-1))
    else:
        body = ", ".join(repr(float(v)) for v in a.reshape(-1))
    text = f"np.array([{body}], dtype=np.{a.dtype.name})"
    if a.ndim > 1:
        text += f".reshape{tuple(a.shape)}"
    return text


def snippet(plan, inp, target, rtol, atol):
    """A runnable Python snippet that re-runs the case through :func:`crosscheck`."""
    lines = ["import numpy as np", "",
             "from rankref.crosscheck import crosscheck, format_report, load_callable", "",
             "inputs = {"]
    for key, value in inp.items():
        if isinstance(value, np.ndarray):
            lines.append(f"    {key!r}: {_literal(value)},")
        else:
            lines.append(f"    {key!r}: {value!r},")
    lines.append("}")
    if target:
        lines.append(f"func = load_callable({target!r})  # from the folder the command ran in")
    else:
        lines.append("func = load_callable('MODULE:CALLABLE')  # name the audited callable")
    options = [f"convention={plan.convention!r}", f"framework={plan.framework!r}"]
    if (rtol, atol) != (1e-4, 1e-6):
        options += [f"rtol={rtol!r}", f"atol={atol!r}"]
    lines.append(f"report = crosscheck(func, {plan.loss!r}, cases=[('shrunk', inputs)], "
                 f"{', '.join(options)})")
    lines.append("print(format_report(report))")
    return "\n".join(lines)


def _side_by_side(plan, inp, outputs, record):
    """Lines with the reference's and the implementation's outputs side by side."""
    if outputs is None:
        return [f"the implementation raised: {record['reason']}"] + [
            f"  {d}" for d in record["detail"][1:2]]
    lines = [f"{'output':<28}{'reference':>16}{'implementation':>18}"]
    for name, ref, got in outputs["losses"]:
        lines.append(f"{name:<28}{ref:>16.8g}{got:>18.8g}")
    ref_g, got_g = outputs["grads"]
    if plan.loss in ("rs", "brs", "ap"):
        cols = (("logit", inp["x"].reshape(-1)), ("target", inp["t"].reshape(-1)))
    elif plan.loss == "gap":
        s = inp["scores"]
        rows, C = s.shape
        entry_label = np.repeat(inp["labels"], C)
        positive = (entry_label == np.tile(np.arange(C), rows)).astype(np.float64)
        cols = (("score", s.reshape(-1)), ("positive", positive))
    else:
        cols = (("pred", inp["pred"].reshape(-1)), ("target", inp["target"].reshape(-1)))
    if ref_g.size != cols[0][1].size:
        return lines
    lines.append("")
    lines.append(f"{'entry':>6}{cols[0][0]:>12}{cols[1][0]:>10}{'reference grad':>18}"
                 f"{'implementation grad':>21}")
    differ = ~(np.abs(got_g - ref_g) <= 0.0)
    show = np.arange(ref_g.size)
    if show.size > 24:  # the differing entries first
        show = np.concatenate([np.flatnonzero(differ), np.flatnonzero(~differ)])[:24]
    for i in show:
        mark = "  <-" if differ[i] else ""
        lines.append(f"{i:>6}{cols[0][1][i]:>12.6g}{cols[1][1][i]:>10.4g}{ref_g[i]:>18.8g}"
                     f"{got_g[i]:>21.8g}{mark}")
    if ref_g.size > show.size:
        lines.append(f"... {ref_g.size - show.size} more entries")
    return lines


def _save(path, plan, inp, outputs, meta):
    arrays = {k: v for k, v in inp.items() if isinstance(v, np.ndarray)}
    scalars = {k: np.asarray(v) for k, v in inp.items() if not isinstance(v, np.ndarray)}
    extra = {f"meta_{k}": np.asarray(v) for k, v in meta.items()}
    if outputs is not None:
        extra["reference_grad"], extra["implementation_grad"] = outputs["grads"]
        for name, ref, got in outputs["losses"]:
            key = name.split(" (")[0].replace(" ", "_")
            extra[f"reference_{key}"] = np.asarray(ref)
            extra[f"implementation_{key}"] = np.asarray(got)
    np.savez(path, **arrays, **scalars, **extra)


def explore(plan, count, seed, delta, rtol, atol, timeout, state, target=None, save=None):
    """Run ``count`` random cases (:func:`explore_case`, seeded by ``seed``) and shrink the
    first that FAILs or ERRORs (a timeout excepted): the ``explore`` dict of the report."""
    rng = np.random.default_rng(seed)
    counts = {s: 0 for s in STATUSES}
    records, failure = [], None
    for i in range(count):
        regime, inp = explore_case(plan.loss, rng, delta, plan.takes_delta)
        name = f"explore {i}"
        rec, _ = evaluate(plan, name, f"explore: {regime}", inp, False, rtol, atol, timeout,
                          state)
        counts[rec["status"]] += 1
        if rec["status"] == "pass":
            continue
        records.append(rec)
        timed_out = (rec["reason"] or "").startswith("ran longer than the timeout")
        if failure is None and rec["status"] in ("fail", "error") and not timed_out:
            try:
                start, _ = _in_domain(plan, inp)
            except OutsideDomain:  # cannot happen for a case that ran
                start = inp
            before = _entries(plan.loss, start)
            small, evaluations = shrink(plan, start, rec, rtol, atol, timeout)
            final, outputs = evaluate(plan, name, regime, small, False, rtol, atol, timeout)
            failure = {"case": name, "regime": regime, "status": final["status"],
                       "reason": final["reason"], "entries_before": before,
                       "entries": _entries(plan.loss, small), "evaluations": evaluations,
                       "inputs": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                  for k, v in small.items()},
                       "table": _side_by_side(plan, small, outputs, final),
                       "snippet": snippet(plan, small, target, rtol, atol), "saved": None}
            if save is not None:
                _save(save, plan, small, outputs,
                      {"loss": plan.loss, "convention": plan.convention,
                       "target": target or "", "case": name, "regime": regime, "seed": seed,
                       "status": final["status"], "reason": final["reason"] or ""})
                failure["saved"] = save
    return {"cases": count, "seed": seed, "counts": counts, "records": records,
            "failure": failure}
