"""Audit another implementation of a loss or sampler against rankref (``rankref crosscheck``).

The audited callable follows the official signature of its loss, with NumPy arrays or torch
tensors:

================ ==================================================== =============================
``--loss``       torch callable (autograd Function, module, function) NumPy callable returns
================ ==================================================== =============================
rs, brs          ``f(logits, targets, delta) -> (ranking, sorting)``  ``(ranking, sorting, grad)``
ap               ``f(logits, targets, delta) -> loss``                ``(loss, grad)``
gap              ``f(scores, labels, counts, delta) -> loss``         ``(loss, grad)``
balanced-l1      ``f(pred, target, alpha=, gamma=, beta=)``, per entry ``(loss, grad)``
iou-neg-sampler  ``f(max_overlaps, num_expected, rng=) -> indices``   indices
================ ==================================================== =============================

rankref's own result types (``RankSortResult`` ...) are accepted as NumPy returns.  For a torch
callable rankref backpropagates through the outputs.  A ``torch.nn.Module`` class (ranking
losses) is built with ``delta=`` and called on the inputs; a module instance is called on the
inputs as configured.  Gradient conventions: ``rankref`` (default)
expects each RS output to carry its own gradient; ``official`` expects the whole RS gradient on
the ranking output (the official ``RankSort`` backward) and compares it with the total.
"""
import importlib
import importlib.util
import json
import math
import os
import sys
import traceback

import numpy as np

from . import ClassCounts, ap_loss, balanced_l1_loss, gap_loss, iou_balanced_neg_probabilities
from . import rank_sort_loss

__all__ = ["LOSSES", "load_callable", "make_cases", "crosscheck", "format_report"]

LOSSES = ("rs", "ap", "brs", "gap", "balanced-l1", "iou-neg-sampler")
DEFAULT_DELTA = {"rs": 0.5, "brs": 0.5, "ap": 1.0, "gap": 0.5}


def load_callable(spec):
    """``"package.module:name"`` or ``"path/to/file.py:name"`` (``name`` may be dotted)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected MODULE:CALLABLE (e.g. mypkg.losses:RankSort), got {spec!r}.")
    if module_name.endswith(".py") or os.path.sep in module_name:
        path = os.path.abspath(module_name)
        spec_ = importlib.util.spec_from_file_location(
            os.path.splitext(os.path.basename(path))[0], path)
        if spec_ is None:
            raise ValueError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec_)
        sys.modules[spec_.name] = module
        spec_.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


# ------------------------------------------------------------------------------ cases

def _ranking_case_list(binary, quick, delta, rng):
    n = 3000
    iou = (lambda k: np.ones(k)) if binary else (lambda k: rng.uniform(0.3, 1.0, k))
    cases = []

    def base(n, p, spread=1.0, center=-2.0):
        x = rng.normal(center, spread, n)
        t = np.zeros(n)
        pos = rng.choice(n, p, replace=False)
        t[pos] = iou(p)
        t[rng.choice(n, n // 100, replace=False)] = -1.0
        t[pos] = iou(p)
        return x, t, pos

    x, t, _ = base(n, 60)
    cases.append(("random", x, t))
    x, t, pos = base(n, 60)
    x = np.round(x * 2) / 2
    neg = np.flatnonzero(t == 0)
    x[neg[:60]] = x[pos]  # negatives tied with positives
    if not binary:
        t[pos] = rng.choice([0.5, 0.75, 1.0], pos.size)  # IoU ties
    cases.append(("ties", x, t))
    x, t, _ = base(n, 1)
    cases.append(("single positive", x, t))
    x, t, _ = base(n, 0)
    t[t > 0] = 0
    cases.append(("zero positives", x, t))
    if not quick:
        x, t, pos = base(n, 40)
        negs = t == 0
        x[negs] = x[pos].min() - delta - 1.0 - rng.random(negs.sum())
        cases.append(("no relevant negatives", x, t))
        x, t, _ = base(n, 60)
        x = rng.uniform(-50, 50, n)
        cases.append(("huge spreads", x, t))
        x, t, _ = base(n, 60)
        cases.append(("float16-rounded", x.astype(np.float16).astype(np.float64), t))
        x, t, _ = base(n, 80)
        cases.append(("2-D [anchors, classes]", x.reshape(250, 12), t.reshape(250, 12)))
    return [(name, x.astype(np.float32), t.astype(np.float32)) for name, x, t in cases]


def make_cases(loss, quick=False, delta=None, seed=0):
    """The battery for ``loss``: a list of ``(name, inputs dict)``."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}.")
    rng = np.random.default_rng(seed)
    d = DEFAULT_DELTA.get(loss, 0.5) if delta is None else float(delta)
    if loss in ("rs", "brs", "ap"):
        return [(name, {"x": x, "t": t, "delta": d})
                for name, x, t in _ranking_case_list(loss == "ap", quick, d, rng)]
    if loss == "gap":
        out = []
        specs = [("random", 1.0, None), ("ties", 1.0, "grid"), ("single positive", 1.0, "one"),
                 ("zero positives", 1.0, "none")]
        if not quick:
            specs += [("huge spreads", 50.0, None), ("float16-rounded", 1.0, "f16")]
        for name, spread, mode in specs:
            n, C = 256, 20
            y = np.full(n, C)
            fg = rng.random(n) < 0.25
            p = 1.0 / np.arange(1, C + 1) ** 1.3
            y[fg] = rng.choice(C, fg.sum(), p=p / p.sum())
            if mode == "one":
                y[:] = C
                y[0] = 3
            elif mode == "none":
                y[:] = C
            y[rng.random(n) < 0.03] = -1
            s = rng.normal(-2.0, spread, (n, C))
            if mode == "grid":
                s = np.round(s * 2) / 2
            elif mode == "f16":
                s = s.astype(np.float16).astype(np.float64)
            counts = ClassCounts(C).update(y).counts + rng.integers(0, 30, C)
            out.append((name, {"scores": s.astype(np.float32), "labels": y.astype(np.int64),
                               "counts": counts, "delta": d}))
        return out
    if loss == "balanced-l1":
        out = []
        pred = rng.normal(0, 1.5, (400, 4))
        tgt = rng.normal(0, 1.5, (400, 4))
        out.append(("random", pred, tgt))
        out.append(("at beta and zero", np.array([1.0, -1.0, 0.0, 0.5, 2.0]), np.zeros(5)))
        if not quick:
            out.append(("huge spreads", rng.uniform(-50, 50, 300), rng.uniform(-50, 50, 300)))
            out.append(("float16-rounded", pred.astype(np.float16).astype(np.float64), tgt))
        return [(name, {"pred": p.astype(np.float32), "target": q.astype(np.float32),
                        "alpha": 0.5, "gamma": 1.5, "beta": 1.0}) for name, p, q in out]
    # iou-neg-sampler: inclusion frequencies against the exact probabilities
    out = []
    iou = np.concatenate([np.zeros(60), rng.uniform(0, 0.5, 240) ** 2])
    out.append(("random", iou, 64))
    out.append(("ties at bin edges", np.repeat([0.0, 1 / 6, 1 / 3, 0.5], 40), 50))
    out.append(("fewer candidates than requested", rng.uniform(0, 0.5, 20), 64))
    if not quick:
        out.append(("many high IoUs", rng.uniform(0.2, 0.5, 300), 40))
    draws = 1000 if quick else 4000
    return [(name, {"iou": v.astype(np.float32), "num_expected": e, "draws": draws})
            for name, v, e in out]


# ------------------------------------------------------------------------------ running

def _framework(obj, framework):
    if framework != "auto":
        return framework
    try:
        import torch
    except ImportError:
        return "numpy"
    if isinstance(obj, type) and issubclass(obj, (torch.autograd.Function, torch.nn.Module)):
        return "torch"
    if isinstance(obj, torch.nn.Module):
        return "torch"
    return "torch" if (getattr(obj, "__module__", "") or "").startswith("rankref.torch") \
        else "numpy"


def _as_callable(obj, framework):
    if framework == "torch":
        import torch

        if isinstance(obj, type) and issubclass(obj, torch.autograd.Function):
            return obj.apply
        if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
            def build_and_call(*args, **kw):  # delta (the last argument) goes to __init__
                *inputs, delta = args
                try:
                    module = obj(delta=delta)
                except TypeError:
                    module = obj()
                return module(*inputs, **kw)
            return build_and_call
        if isinstance(obj, torch.nn.Module):
            return lambda *args, **kw: obj(*args[:-1], **kw)  # configured already: no delta
    return obj


def _unpack(res, names):
    """Fields of a rankref result type, or positions of a plain tuple."""
    if all(hasattr(res, n) for n in names):
        return [getattr(res, n) for n in names]
    return list(res)


def _compare(out, name, got, expected, rtol, atol):
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    expected = np.asarray(expected, dtype=np.float64).reshape(-1)
    if got.shape != expected.shape:
        out["ok"] = False
        out["detail"].append(f"{name}: shape {got.shape}, expected {expected.shape}")
        return
    diff = np.abs(got - expected)
    big = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    out["grad_max_diff"] = max(out.get("grad_max_diff") or 0.0, big)
    out["grad_rel_diff"] = max(out.get("grad_rel_diff") or 0.0, big / scale if scale else big)
    bad = diff > atol + rtol * np.abs(expected)
    if bad.any():
        out["ok"] = False
        worst = np.argsort(-diff)[:5]
        rows = ", ".join(f"[{i}] got {got[i]:.6g} expected {expected[i]:.6g}" for i in worst)
        out["detail"].append(f"{name}: {int(bad.sum())} of {bad.size} entries differ; {rows}")


def _loss_diff(out, name, got, expected, rtol, atol):
    d = abs(float(got) - float(expected))
    out["loss_diff"] = max(out.get("loss_diff") or 0.0, d)
    if not d <= atol + rtol * abs(float(expected)):
        out["ok"] = False
        out["detail"].append(f"{name}: got {float(got):.8g}, expected {float(expected):.8g}")


def _run_ranking(f, fw, loss, inp, convention, rtol, atol):
    out = {"ok": True, "detail": []}
    x, t, d = inp["x"], inp["t"], inp["delta"]
    if loss == "ap":
        ref = ap_loss(x, t, d, True, "bucketed")
    else:
        ref = rank_sort_loss(x, t, d, "brs" if loss == "brs" else "bucketed")
    if fw == "torch":
        import torch

        X = torch.tensor(x, requires_grad=True)
        res = f(X, torch.tensor(t), d)
        if loss == "ap":
            lv = res[0] if isinstance(res, (tuple, list)) else res
            _loss_diff(out, "loss", lv.item(), ref.loss, rtol, atol)
            (g,) = torch.autograd.grad(lv, X, allow_unused=True)
            _compare(out, "grad", np.zeros(x.shape) if g is None else g.numpy(), ref.grad,
                     rtol, atol)
            return out
        r, s = res[0], res[1]
        _loss_diff(out, "ranking loss", r.item(), ref.ranking_loss, rtol, atol)
        _loss_diff(out, "sorting loss", s.item(), ref.sorting_loss, rtol, atol)
        (gr,) = torch.autograd.grad(r, X, retain_graph=True, allow_unused=True)
        gr = np.zeros(x.shape) if gr is None else gr.numpy()
        if convention == "official":
            _compare(out, "grad (ranking output)", gr, ref.grad, rtol, atol)
        else:
            (gs,) = torch.autograd.grad(s, X, allow_unused=True) if s.requires_grad else (None,)
            gs = np.zeros(x.shape) if gs is None else gs.numpy()
            _compare(out, "ranking grad", gr, ref.ranking_grad, rtol, atol)
            _compare(out, "sorting grad", gs, ref.sorting_grad, rtol, atol)
        return out
    res = f(x, t, d)
    if loss == "ap":
        lv, g = _unpack(res, ("loss", "grad"))
        _loss_diff(out, "loss", lv, ref.loss, rtol, atol)
    else:
        fields = _unpack(res, ("ranking_loss", "sorting_loss", "grad"))
        lv_r, lv_s, g = fields[0], fields[1], fields[-1]
        _loss_diff(out, "ranking loss", lv_r, ref.ranking_loss, rtol, atol)
        _loss_diff(out, "sorting loss", lv_s, ref.sorting_loss, rtol, atol)
    _compare(out, "grad", g, ref.grad, rtol, atol)
    return out


def _run_gap(f, fw, inp, rtol, atol):
    out = {"ok": True, "detail": []}
    s, y, counts, d = inp["scores"], inp["labels"], inp["counts"], inp["delta"]
    ref = gap_loss(s, y, counts, d)
    if fw == "torch":
        import torch

        S = torch.tensor(s, requires_grad=True)
        lv = f(S, torch.tensor(y), torch.tensor(counts), d)
        lv = lv[0] if isinstance(lv, (tuple, list)) else lv
        (g,) = torch.autograd.grad(lv, S, allow_unused=True)
        g = np.zeros(s.shape) if g is None else g.numpy()
        lv = lv.item()
    else:
        lv, g = _unpack(f(s, y, counts, d), ("loss", "grad"))
    _loss_diff(out, "loss", lv, ref.loss, rtol, atol)
    _compare(out, "grad", g, ref.grad, rtol, atol)
    return out


def _run_balanced_l1(f, fw, inp, rtol, atol):
    out = {"ok": True, "detail": []}
    p, q = inp["pred"], inp["target"]
    kw = {k: inp[k] for k in ("alpha", "gamma", "beta")}
    loss_ref, grad_ref = balanced_l1_loss(p, q, **kw)
    if fw == "torch":
        import torch

        P = torch.tensor(p, requires_grad=True)
        try:
            lv = f(P, torch.tensor(q), reduction="none", **kw)
        except TypeError:
            lv = f(P, torch.tensor(q), **kw)
        (g,) = torch.autograd.grad(lv.sum(), P, allow_unused=True)
        got_loss, g = lv.detach().numpy(), (np.zeros(p.shape) if g is None else g.numpy())
    else:
        got_loss, g = _unpack(f(p, q, **kw), ("loss", "grad"))
    _compare(out, "loss", got_loss, loss_ref, rtol, atol)
    out["loss_diff"] = out.pop("grad_max_diff", 0.0)
    out.pop("grad_rel_diff", None)
    _compare(out, "grad", g, grad_ref, rtol, atol)
    return out


def _run_sampler(f, fw, inp, z_max):
    out = {"ok": True, "detail": []}
    iou, E, T = inp["iou"], inp["num_expected"], inp["draws"]
    p = iou_balanced_neg_probabilities(iou, E)
    counts = np.zeros(iou.size)
    if fw == "torch":
        import torch

        gen = torch.Generator().manual_seed(0)
        arg = torch.tensor(iou)
    else:
        gen = np.random.default_rng(0)
        arg = iou
    for _ in range(T):
        idx = f(arg, E, rng=gen)
        idx = np.asarray(idx.cpu() if hasattr(idx, "cpu") else idx).astype(np.int64)
        if np.unique(idx).size != idx.size:
            out["ok"] = False
            out["detail"].append("an index was drawn twice in one call")
            break
        counts[idx] += 1
    freq = counts / T
    mid = (p > 0) & (p < 1)
    z = np.zeros_like(p)
    z[mid] = (counts[mid] - T * p[mid]) / np.sqrt(T * p[mid] * (1 - p[mid]))
    certain = ~mid & (freq != p)
    out["loss_diff"] = float(np.abs(z).max()) if z.size else 0.0  # reported as max |z|
    out["grad_max_diff"] = float(np.abs(freq - p).max()) if p.size else 0.0
    out["grad_rel_diff"] = None
    if certain.any():
        out["ok"] = False
        i = int(np.flatnonzero(certain)[0])
        out["detail"].append(f"candidate {i} has probability {p[i]} but frequency {freq[i]}")
    if mid.any():
        chi = float((z[mid] ** 2).sum())
        m = int(mid.sum())
        if np.abs(z).max() > z_max or abs(chi - m) > 6 * math.sqrt(2 * m):
            out["ok"] = False
            worst = np.argsort(-np.abs(z))[:5]
            rows = ", ".join(f"[{i}] freq {freq[i]:.4f} exact {p[i]:.4f}" for i in worst)
            out["detail"].append(f"frequencies off the exact probabilities (chi2 {chi:.1f} for "
                                 f"{m} candidates); {rows}")
    return out


def crosscheck(func, loss, cases="all", convention="rankref", framework="auto", rtol=1e-4,
               atol=1e-6, delta=None):
    """Run the battery of ``loss`` against ``func``; returns a list of per-case dicts with
    ``case``, ``status`` (pass/fail/error), ``loss_diff``, ``grad_max_diff``, ``grad_rel_diff``
    and ``detail``.  Exceptions raised by ``func`` are reported per case, never raised."""
    if cases not in ("all", "quick"):
        raise ValueError(f"cases must be 'all' or 'quick', got {cases!r}.")
    if convention not in ("rankref", "official"):
        raise ValueError(f"convention must be 'rankref' or 'official', got {convention!r}.")
    fw = _framework(func, framework)
    f = _as_callable(func, fw)
    results = []
    for name, inp in make_cases(loss, cases == "quick", delta):
        try:
            if loss in ("rs", "brs", "ap"):
                out = _run_ranking(f, fw, loss, inp, convention, rtol, atol)
            elif loss == "gap":
                out = _run_gap(f, fw, inp, rtol, atol)
            elif loss == "balanced-l1":
                out = _run_balanced_l1(f, fw, inp, rtol, atol)
            else:
                out = _run_sampler(f, fw, inp, 5.0 if cases == "quick" else 5.5)
            status = "pass" if out["ok"] else "fail"
        except Exception as exc:  # the audited code crashed on this case
            out = {"detail": [f"{type(exc).__name__}: {exc}",
                              traceback.format_exc(limit=-2).strip().splitlines()[-3]]}
            status = "error"
        results.append({"case": name, "status": status, "loss_diff": out.get("loss_diff"),
                        "grad_max_diff": out.get("grad_max_diff"),
                        "grad_rel_diff": out.get("grad_rel_diff"), "detail": out["detail"]})
    return results


def format_report(results, loss, target, rtol, atol):
    """The text table of :func:`crosscheck` results (failing cases followed by their diff)."""
    def num(v):
        return "-" if v is None else f"{v:.2e}"

    first = "max |z|" if loss == "iou-neg-sampler" else "loss diff"
    second = "max |freq-p|" if loss == "iou-neg-sampler" else "max grad diff"
    lines = [f"rankref crosscheck {target} --loss {loss}  (rtol={rtol:g}, atol={atol:g})", ""]
    head = f"{'case':<32}{first:>12}{second:>15}{'rel grad diff':>15}  result"
    lines += [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r['case']:<32}{num(r['loss_diff']):>12}{num(r['grad_max_diff']):>15}"
                     f"{num(r['grad_rel_diff']):>15}  {r['status'].upper()}")
    bad = [r for r in results if r["status"] != "pass"]
    for r in bad:
        lines.append("")
        lines.append(f"{r['status'].upper()} {r['case']}:")
        lines += [f"  {d}" for d in r["detail"]]
    lines.append("")
    lines.append(f"{len(results) - len(bad)} passed, {len(bad)} failed")
    return "\n".join(lines)


def to_json(results):
    return json.dumps(results, indent=2)
