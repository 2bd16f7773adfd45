"""Running one case: the calls, the comparisons, timeouts, and the proofs behind EXPECTED."""
import ctypes
import importlib
import importlib.util
import math
import os
import re
import threading
import time
import traceback

import numpy as np

from .. import ap_loss, balanced_l1_loss, gap_loss, heaviside, iou_balanced_neg_probabilities
from .. import rank_sort_loss
from ._conventions import (
    GAP_GAMMA,
    GAP_LAM,
    OFFICIAL_LAYOUT_HINT,
    RANKREF_LAYOUT_HINT,
    OutsideDomain,
    _in_domain,
    _positives,
)


# ------------------------------------------------------------------------------ comparing

def _finite_or_none(v):
    return None if v is None or not math.isfinite(v) else float(v)


def _within(got, expected, rtol, atol):
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    expected = np.asarray(expected, dtype=np.float64).reshape(-1)
    return got.shape == expected.shape and bool(
        np.all(np.abs(got - expected) <= atol + rtol * np.abs(expected)))


def _compare(out, name, got, expected, rtol, atol):
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    expected = np.asarray(expected, dtype=np.float64).reshape(-1)
    if got.shape != expected.shape:
        out["ok"] = False
        out["detail"].append(f"{name}: {got.size} entries, expected {expected.size}")
        return
    if not np.isfinite(got).all():
        out["nonfinite"] = True
    with np.errstate(invalid="ignore"):
        diff = np.abs(got - expected)
        diff[~np.isfinite(diff)] = np.inf
    big = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    out["grad_max_diff"] = max(out.get("grad_max_diff") or 0.0, big)
    out["grad_rel_diff"] = max(out.get("grad_rel_diff") or 0.0, big / scale if scale else big)
    bad = diff > atol + rtol * np.abs(expected)
    if bad.any():
        out["ok"] = False
        idx = np.flatnonzero(bad)
        worst = idx[np.argsort(-diff[idx], kind="stable")[:5]]  # the largest differences
        rows = ", ".join(f"[{i}] got {got[i]:.6g} expected {expected[i]:.6g}" for i in worst)
        out["detail"].append(f"{name}: {int(bad.sum())} of {bad.size} entries differ; {rows}")


def _loss_diff(out, name, got, expected, rtol, atol):
    got = float(got)
    out.setdefault("losses", []).append((name, float(expected), got))
    if not math.isfinite(got):
        out["nonfinite"] = True
    d = abs(got - float(expected)) if math.isfinite(got) else math.inf
    out["loss_diff"] = max(out.get("loss_diff") or 0.0, d)
    if not d <= atol + rtol * abs(float(expected)):
        out["ok"] = False
        out["detail"].append(f"{name}: got {got:.8g}, expected {float(expected):.8g}")


def _scalar(v):
    """A Python float from a tensor, an array or a number of one element."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    a = np.asarray(v, dtype=np.float64)
    if a.size != 1:
        raise ValueError(f"expected a loss of one element, got shape {a.shape}")
    return float(a.reshape(-1)[0])


def _to_numpy(v, shape):
    if v is None:
        return np.zeros(shape)
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.float64)


def _unpack(res, names):
    """Fields of a rankref result type, or positions of a plain tuple."""
    if all(hasattr(res, n) for n in names):
        return [getattr(res, n) for n in names]
    return list(res)


def _outputs(res, count, name, layout):
    """The outputs of a callable that must return a tuple of at least ``count`` items."""
    if not isinstance(res, (tuple, list)) or len(res) < count:
        got = f"{len(res)} outputs" if isinstance(res, (tuple, list)) else type(res).__name__
        raise TypeError(f"{name} returned {got}; expected {layout}")
    return res


def _new_out():
    return {"ok": True, "detail": [], "hints": [], "losses": [], "grads": None}


def _record_grad(out, expected, got):
    out["grads"] = (np.asarray(expected, np.float64).reshape(-1),
                    np.asarray(got, np.float64).reshape(-1))


def _run_ranking(plan, inp, rtol, atol):
    out = _new_out()
    x, t, d = inp["x"], inp["t"], inp["delta"]
    loss, f = plan.loss, plan.f
    if loss == "ap":
        ref = ap_loss(x, t, d, True, "bucketed")
    else:
        ref = rank_sort_loss(x, t, d, "brs" if loss == "brs" else "bucketed")
    if plan.form == "ap_loss":
        if plan.framework == "torch":
            import torch

            res = f(torch.tensor(x), torch.tensor(t))
        else:
            res = f(x, t)
        g, lv = _outputs(res, 2, f"{plan.name}", "(grad, loss)")
        _loss_diff(out, "loss", _scalar(lv), ref.loss, rtol, atol)
        g = _to_numpy(g, x.shape)
        _compare(out, "grad", g, ref.grad, rtol, atol)
        _record_grad(out, ref.grad, g)
        return out
    if plan.framework == "torch":
        import torch

        X = torch.tensor(x, requires_grad=True)
        res = f(X, torch.tensor(t), d)
        if loss == "ap":
            lv = res[0] if isinstance(res, (tuple, list)) else res
            _loss_diff(out, "loss", _scalar(lv), ref.loss, rtol, atol)
            (g,) = torch.autograd.grad(lv, X, allow_unused=True)
            g = _to_numpy(g, x.shape)
            _compare(out, "grad", g, ref.grad, rtol, atol)
            _record_grad(out, ref.grad, g)
            return out
        r, s = _outputs(res, 2, plan.name, "(ranking, sorting)")[:2]
        _loss_diff(out, "ranking loss", _scalar(r), ref.ranking_loss, rtol, atol)
        _loss_diff(out, "sorting loss", _scalar(s), ref.sorting_loss, rtol, atol)
        (gr,) = torch.autograd.grad(r, X, retain_graph=True, allow_unused=True)
        gr = _to_numpy(gr, x.shape)
        gs = None
        if getattr(s, "requires_grad", False):
            (gs,) = torch.autograd.grad(s, X, allow_unused=True)
        gs = _to_numpy(gs, x.shape)
        if plan.form == "official":
            _compare(out, "grad (ranking output)", gr, ref.grad, rtol, atol)
            _record_grad(out, ref.grad, gr)
            if np.any(gs != 0):
                out["ok"] = False
                out["detail"].append("the sorting output carries a gradient; the official "
                                     "layout puts the whole update on the ranking output")
            if not out["ok"] and _within(gr, ref.ranking_grad, rtol, atol) and _within(
                    gs, ref.sorting_grad, rtol, atol):
                out["hints"].append(RANKREF_LAYOUT_HINT)
        else:
            _compare(out, "ranking grad", gr, ref.ranking_grad, rtol, atol)
            _compare(out, "sorting grad", gs, ref.sorting_grad, rtol, atol)
            _record_grad(out, ref.grad, gr + gs)
            if not out["ok"] and _within(gr, ref.grad, rtol, atol):
                out["hints"].append(OFFICIAL_LAYOUT_HINT)
        return out
    res = f(x, t, d)
    if loss == "ap":
        lv, g = _unpack(res, ("loss", "grad"))
        _loss_diff(out, "loss", _scalar(lv), ref.loss, rtol, atol)
    else:
        fields = _unpack(res, ("ranking_loss", "sorting_loss", "grad"))
        lv_r, lv_s, g = fields[0], fields[1], fields[-1]
        _loss_diff(out, "ranking loss", _scalar(lv_r), ref.ranking_loss, rtol, atol)
        _loss_diff(out, "sorting loss", _scalar(lv_s), ref.sorting_loss, rtol, atol)
    g = _to_numpy(g, x.shape)
    _compare(out, "grad", g, ref.grad, rtol, atol)
    _record_grad(out, ref.grad, g)
    return out


def _run_gap(plan, inp, rtol, atol):
    out = _new_out()
    s, y, counts, d = inp["scores"], inp["labels"], inp["counts"], inp["delta"]
    official = plan.form == "gap_official"
    gamma = float(inp.get("gamma", GAP_GAMMA)) if official else GAP_GAMMA
    ref = gap_loss(s, y, counts, d, gamma)
    n, C = s.shape
    if plan.framework == "torch":
        import torch

        S = torch.tensor(s, requires_grad=True)
        if official:
            num_samples = torch.tensor(counts, dtype=torch.float32).clamp(min=1)
            lv = plan.f(S.reshape(-1), torch.tensor(y), num_samples, C, gamma, GAP_LAM)
        else:
            lv = plan.f(S, torch.tensor(y), torch.tensor(counts), d)
        lv = lv[0] if isinstance(lv, (tuple, list)) else lv
        (g,) = torch.autograd.grad(lv, S, allow_unused=True)
        g = _to_numpy(g, s.shape)
        lv = _scalar(lv)
    elif official:
        lv, g = _unpack(plan.f(s.reshape(-1), y, np.maximum(counts, 1.0), C, gamma, GAP_LAM),
                        ("ranking_error", "grad"))
        lv, g = _scalar(lv), _to_numpy(g, s.shape)
    else:
        lv, g = _unpack(plan.f(s, y, counts, d), ("loss", "grad"))
        lv, g = _scalar(lv), _to_numpy(g, s.shape)
    if official:
        _loss_diff(out, "ranking error (unweighted)", lv, ref.ranking_error, rtol, atol)
        _compare(out, f"grad (lam = {GAP_LAM} x the weighted update)", g, GAP_LAM * ref.grad,
                 rtol, atol)
        _record_grad(out, GAP_LAM * ref.grad, g)
    else:
        _loss_diff(out, "loss", lv, ref.loss, rtol, atol)
        _compare(out, "grad", g, ref.grad, rtol, atol)
        _record_grad(out, ref.grad, g)
    return out


def _run_balanced_l1(plan, inp, rtol, atol):
    out = _new_out()
    p, q = inp["pred"], inp["target"]
    kw = {k: inp[k] for k in ("alpha", "gamma", "beta")}
    loss_ref, grad_ref = balanced_l1_loss(p, q, **kw)
    if plan.framework == "torch":
        import torch

        P = torch.tensor(p, requires_grad=True)
        try:
            lv = plan.f(P, torch.tensor(q), reduction="none", **kw)
        except TypeError:
            lv = plan.f(P, torch.tensor(q), **kw)
        (g,) = torch.autograd.grad(lv.sum(), P, allow_unused=True)
        got_loss, g = lv.detach().numpy(), _to_numpy(g, p.shape)
    else:
        got_loss, g = _unpack(plan.f(p, q, **kw), ("loss", "grad"))
    _compare(out, "loss", got_loss, loss_ref, rtol, atol)
    out["loss_diff"] = out.pop("grad_max_diff", 0.0)
    out.pop("grad_rel_diff", None)
    _compare(out, "grad", g, grad_ref, rtol, atol)
    _record_grad(out, grad_ref, _to_numpy(g, p.shape))
    return out


def _run_sampler(plan, inp, z_max):
    out = _new_out()
    iou, E, T = inp["iou"], inp["num_expected"], inp["draws"]
    p = iou_balanced_neg_probabilities(iou, E)
    counts = np.zeros(iou.size)
    if plan.framework == "torch":
        import torch

        gen = torch.Generator().manual_seed(0)
        arg = torch.tensor(iou)
    else:
        gen = np.random.default_rng(0)
        arg = iou
    for _ in range(T):
        idx = plan.f(arg, E, rng=gen)
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
            worst = np.argsort(-np.abs(z), kind="stable")[:5]
            rows = ", ".join(f"[{i}] freq {freq[i]:.4f} exact {p[i]:.4f}" for i in worst)
            out["detail"].append(f"frequencies off the exact probabilities (chi2 {chi:.1f} for "
                                 f"{m} candidates); {rows}")
    return out


def _run_one(plan, inp, quick, rtol, atol):
    if plan.loss in ("rs", "brs", "ap"):
        return _run_ranking(plan, inp, rtol, atol)
    if plan.loss == "gap":
        return _run_gap(plan, inp, rtol, atol)
    if plan.loss == "balanced-l1":
        return _run_balanced_l1(plan, inp, rtol, atol)
    return _run_sampler(plan, inp, 5.0 if quick else 5.5)


# ------------------------------------------------------------------------------ timeouts

class CaseTimeout(BaseException):
    """Raised inside a case's worker thread when it ran past the per-case timeout (a
    BaseException, so that the audited code's ``except Exception`` does not swallow it)."""


_LIBRARY_PARTS = tuple(f"{os.sep}{name}{os.sep}" for name in ("numpy", "torch"))


def _raising_frame(exc):
    """The last frame of the traceback in the audited code (not inside NumPy or torch)."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if not any(part in frame.filename for part in _LIBRARY_PARTS):
            return frame
    return frames[-1] if frames else None


def _call_with_timeout(fn, timeout):
    """Run ``fn()`` in a worker thread: ``(value, exc_info, timed_out, seconds)``.

    ``exc_info`` is ``(exception, formatted traceback, last frame)``.  Past ``timeout`` seconds
    the worker is sent :class:`CaseTimeout`, which stops Python code at its next bytecode
    (compiled code first returns); either way the caller goes on.
    """
    box = {}

    def work():
        try:
            box["value"] = fn()
        except CaseTimeout:
            box["stopped"] = True
        except BaseException as exc:  # reported per case, never raised
            box["exc"] = (exc, traceback.format_exc(), _raising_frame(exc))

    start = time.perf_counter()
    worker = threading.Thread(target=work, name="rankref-crosscheck-case", daemon=True)
    worker.start()
    worker.join(timeout)
    seconds = time.perf_counter() - start
    if worker.is_alive():
        try:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident),
                                                       ctypes.py_object(CaseTimeout))
        except AttributeError:  # no CPython C API: the worker finishes on its own
            pass
        worker.join(5.0)
        return None, None, True, seconds
    return box.get("value"), box.get("exc"), False, seconds


# ------------------------------------------------------------------------------ proofs

# The documented failure with no positive: the relevance cut ``torch.min(fg_logits) - delta``
# (NumPy transcriptions: ``fg_logits.min() - delta``) of an empty selection.
_EMPTY_CUT_LINE = re.compile(r"(torch\.min\(\s*[\w.\[\]]+\s*\)|[\w.\[\]]+\.min\(\s*\))\s*-")
_EMPTY_CUT_ERRORS = ((RuntimeError, "numel() == 0"), (ValueError, "zero-size array"))


def _expected_exception(plan, inp, exc_info):
    """The documented reason for an exception of the official code, or None.

    Only the documented failure: RankSort's or APLoss's relevance cut ``torch.min(fg_logits) -
    delta`` raising on an empty selection, on a case without positives, at the line that
    makes the cut.  Any other exception is an ERROR.
    """
    exc, _, frame = exc_info
    if plan.convention != "official" or _positives(inp) != 0 or frame is None:
        return None
    if not any(isinstance(exc, kind) and text in str(exc) for kind, text in _EMPTY_CUT_ERRORS):
        return None
    line = (frame.line or "").split("#")[0].strip()
    if not _EMPTY_CUT_LINE.search(line):
        return None
    where = f"line {frame.lineno} of {os.path.basename(frame.filename)}: `{line}`"
    if plan.loss == "rs":
        return (f"official RankSort raises with no positive: torch.min of an empty tensor in "
                f"its relevance cut ({where}); rankref returns zero losses and a zero gradient")
    if plan.loss == "ap" and plan.form == "official":
        return (f"official APLoss raises with no positive: torch.min of an empty tensor in its "
                f"relevance cut ({where}); rankref returns loss 0 and a zero gradient")
    return None


def _exact_ties(x, t):
    """True when a positive shares its logit with another positive or a negative."""
    x, t = x.reshape(-1), t.reshape(-1)
    xp = x[t > 0]
    return np.unique(xp).size < xp.size or bool(np.isin(x[t == 0], xp).any())


def _summary(out):
    return "; ".join(out["detail"][:1]) if out["detail"] else ""


def brs_with_placement(x, t, delta, above):
    """Bucketed RS (the published BRS, with rankref's ``method="brs"`` guards) with each
    negative tied with positives placed as ``above`` says: ``above[j]`` is the number of the
    positives tied with negative ``j`` that the sort put above it (0: above them all, the
    ``H_0(0) = 1`` rule of rankref; larger than their number: below them all).  Runs of
    negatives between consecutive positives are the buckets, each compared with the positives
    through the mean of its members' own values.

    Returns ``(ranking loss, sorting loss, update)`` in float64.  With ``above`` all 0 this is
    ``rank_sort_loss(x, t, delta, method="brs")``.

    Examples
    --------
    >>> import numpy as np
    >>> from rankref.crosscheck import brs_with_placement
    >>> x, t = np.array([1.0, 1.0, 0.5, 0.7]), np.array([1.0, 0.0, 1.0, 0.0])
    >>> brs_with_placement(x, t, 0.0, [0, 0, 0, 0])[0]  # the negative at 1 above the positive
    0.5
    >>> brs_with_placement(x, t, 0.0, [0, 1, 0, 0])[0]  # below it, in a bucket of mean 0.85
    0.25
    """
    x64 = np.asarray(x, np.float64).reshape(-1)
    t = np.asarray(t).reshape(-1)
    above = np.asarray(above).reshape(-1)
    pos = np.flatnonzero(t > 0)
    Z = pos.size
    xp = x64[pos]
    xs = np.sort(xp)
    rel = np.flatnonzero((t == 0) & (x64 >= xs[0] - delta))
    # the run of a negative: the number of positives above it in the placed order
    strictly = Z - np.searchsorted(xs, x64[rel], "right")
    at_least = Z - np.searchsorted(xs, x64[rel], "left")
    run = strictly + np.minimum(above[rel], at_least - strictly)
    runs, bucket = np.unique(run, return_inverse=True)
    sizes = np.bincount(bucket).astype(np.float64)
    means = np.bincount(bucket, weights=x64[rel]) / np.maximum(sizes, 1.0)
    h_bucket = heaviside(means[None, :] - xp[:, None], delta)  # [positive, bucket]
    fp = h_bucket @ sizes
    rank_pos = heaviside(xp[None, :] - xp[:, None], delta).sum(axis=1)
    ranking_error = fp / (rank_pos + fp)
    c = ranking_error / np.where(fp == 0, 1.0, fp) / Z  # BRS guard FP = 0 -> 1
    sort = rank_sort_loss(x64, t, delta, method="brs")
    grad = np.array(sort.sorting_grad, dtype=np.float64).reshape(-1)
    grad[rel] = (c @ h_bucket)[bucket] if runs.size else 0.0
    grad[pos] += -ranking_error / Z
    return float(ranking_error.mean()), float(sort.sorting_loss), grad


def _observe_placement(x, t, delta, got, rtol, atol):
    """Where the implementation's sort put each negative tied with positives, read from its own
    update: the members of one BRS bucket share one update, so a tied negative sits above the
    positives of its value when its update is that of the bucket above them (whose other
    members lie higher), below them when it is that of the bucket below (whose other members
    lie lower), and otherwise between them, in a bucket of its value only (where the split
    among such buckets changes no value).  The levels are read from the top down, each bucket
    learning its update from members whose place is known.

    Returns ``(above, tied, where)``: the number of tied positives above each entry (as
    :func:`brs_with_placement` takes it), the mask of the tied negatives, and for each of them
    ``"above"``, ``"below"`` or ``"between"``.
    """
    x = np.asarray(x, np.float64).reshape(-1)
    t = np.asarray(t).reshape(-1)
    got = np.asarray(got, np.float64).reshape(-1)
    xs = np.sort(x[t > 0])
    Z = xs.size
    rel = (t == 0) & (x >= xs[0] - delta)
    tied = rel & np.isin(x, xs)
    strictly = Z - np.searchsorted(xs, x, "right")
    at_least = Z - np.searchsorted(xs, x, "left")
    known = {}  # run -> the update of its members that do not lie at the level read
    for j in np.flatnonzero(rel & ~tied):
        known.setdefault(int(strictly[j]), got[j])

    def same(a, b):
        return b is not None and abs(a - b) <= atol + rtol * abs(b)

    levels = [np.flatnonzero(tied & (x == v)) for v in np.unique(x[tied])[::-1]]
    # a bucket shared by two tied levels (the lower members of one, the upper of the next)
    # shows as an update found at both levels
    for hi, lo in zip(levels, levels[1:]):
        run = int(at_least[hi[0]])
        if run != int(strictly[lo[0]]) or run in known:
            continue
        lower = np.unique(got[lo])
        for g in np.unique(got[hi]):
            if any(same(g, h) for h in lower):
                known[run] = g
                break
    above = np.zeros(x.size, np.int64)
    where = {}
    for ids in levels:
        a, b = int(strictly[ids[0]]), int(at_least[ids[0]])
        ga, gb = known.get(a), known.get(b)
        for j in ids:
            if same(got[j], ga):
                place = "above"
            elif same(got[j], gb):
                place = "below"
            elif b - a > 1:
                place = "between"
            elif ga is None:  # the bucket above holds this level only: above
                place = "above"
            elif gb is None:
                place = "below"
            else:  # matches neither: the nearer (the proof will then fail)
                place = "above" if abs(got[j] - ga) <= abs(got[j] - gb) else "below"
            where[int(j)] = place
            above[j] = {"above": 0, "between": 1, "below": b - a}[place]
    return above, tied, where


def _brs_tie_proof(plan, inp, out, rtol, atol):
    """(EXPECTED reason or None, extra detail) for a BRS case that FAILed.

    The official BucketedRankSort sorts with an unstable sort, so a negative tied with a
    positive may land above or below it.  The placement it chose is read from its own update
    (:func:`_observe_placement`); rankref's BRS is rebuilt with exactly that placement (as if
    each tied negative were moved one ulp up or down, bucket means from the true values), and
    the case is EXPECTED only if the implementation agrees with that rebuilt reference.
    """
    x, t, d = inp["x"], inp["t"], inp["delta"]
    if out.get("grads") is None or out.get("nonfinite") or not (t > 0).any():
        return None, []
    _, got = out["grads"]
    xf, tf = x.reshape(-1), t.reshape(-1)
    if not ((tf == 0) & np.isin(xf, xf[tf > 0])).any():
        return None, []
    above, tied, where = _observe_placement(xf, tf, d, got, rtol, atol)
    rl, sl, g = brs_with_placement(xf, tf, d, above)
    check = {"ok": True, "detail": []}
    _compare(check, "grad", got, g, rtol, atol)
    losses = {name: value for name, _, value in out["losses"]}
    for name, value in (("ranking loss", rl), ("sorting loss", sl)):
        if name in losses:
            _loss_diff(check, name, losses[name], value, rtol, atol)
    counts = {p: sum(1 for v in where.values() if v == p) for p in ("above", "between", "below")}
    placed = (f"{counts['above']} of the {len(where)} negatives tied with a positive above it, "
              f"{counts['below']} below" + (f" and {counts['between']} between tied positives"
                                            if counts["between"] else ""))
    if check["ok"]:
        diff = float(np.max(np.abs(got - g))) if got.size else 0.0
        return (f"official BucketedRankSort sorts with an unstable sort: its update places "
                f"{placed} (rankref places them all above, the H_0(0) = 1 rule). Rebuilt with "
                f"that placement (each tied negative one ulp up or down), the reference agrees "
                f"(max grad diff {diff:.2e})"), []
    bad = np.flatnonzero(tied & ~(np.abs(got - g) <= atol + rtol * np.abs(g)))
    head = (f"the tie placement read from the update ({placed}) does not explain the "
            f"difference: ")
    if bad.size:
        rows = ", ".join(f"[{j}] x={xf[j]:.6g} placed {where[int(j)]}: got {got[j]:.6g}, "
                         f"rebuilt reference {g[j]:.6g}" for j in bad[:5])
        return None, [head + f"{bad.size} tied entries differ from the reference rebuilt with "
                             f"that placement; {rows}"]
    return None, [head + f"with that placement rebuilt, "
                         f"{_summary(check) or 'the case still fails'}"]


def _expected_failure(plan, inp, out, rtol, atol):
    """(EXPECTED reason or None, extra detail) for a case that FAILed."""
    if plan.convention != "official":
        return None, []
    if plan.loss == "brs":
        return _brs_tie_proof(plan, inp, out, rtol, atol)
    if (plan.loss == "ap" and plan.form == "official" and inp["delta"] == 0
            and out.get("nonfinite") and _exact_ties(inp["x"], inp["t"])):
        return ("official APLoss divides by 2 * delta: at delta = 0 an exact tie gives 0/0 = "
                "NaN (rankref uses the exact step, H_0(0) = 1)"), []
    return None, []


# ------------------------------------------------------------------------------ one case

def _case_record(name, regime, inp, status, reason=None, out=None, seconds=None, note=None):
    out = out or {}
    return {"case": name, "regime": regime, "status": status, "reason": reason,
            "delta": inp.get("delta"), "note": note,
            "loss_diff": _finite_or_none(out.get("loss_diff")),
            "grad_max_diff": _finite_or_none(out.get("grad_max_diff")),
            "grad_rel_diff": _finite_or_none(out.get("grad_rel_diff")),
            "seconds": None if seconds is None else round(seconds, 4),
            "detail": list(out.get("detail", []))}


def _error_lines(exc_info):
    exc, tb, _ = exc_info
    lines = [f"{type(exc).__name__}: {exc}"]
    frames = [ln for ln in tb.strip().splitlines() if ln.startswith("  File ")]
    if frames:
        where = frames[-1].strip()
        cwd = os.getcwd() + os.sep
        lines.append("raised at " + where.replace(f'"{cwd}', '"'))
    return lines


def _probe_framework(plan, other, inp, quick, rtol, atol, timeout):
    """A hint when the callable fails on the guessed array type but runs on the other."""
    if other == "torch":
        if importlib.util.find_spec("torch") is None:
            return None
        importlib.import_module("torch")
    alt = plan.with_framework(other)
    _, exc, timed_out, _ = _call_with_timeout(lambda: _run_one(alt, inp, quick, rtol, atol),
                                              timeout)
    if timed_out or exc is not None:
        return None
    arrays = {"torch": "torch tensors", "numpy": "NumPy arrays"}
    return (f"--framework auto guessed {plan.framework} ({plan.auto_reason}), and the callable "
            f"fails on {arrays[plan.framework]} but runs on {arrays[other]}: pass "
            f"`--framework {other}`")


def evaluate(plan, name, regime, inp, quick, rtol, atol, timeout, state=None):
    """Run one case through the callable and rankref: ``(record, outputs)``.

    ``record`` is the case's record (see :class:`CrosscheckReport`); ``outputs`` holds what was
    compared (``losses``: ``(name, reference, implementation)``; ``grads``: ``(reference,
    implementation)``), or None when nothing was.  ``state`` (a dict) carries the run's hints
    and whether the framework was probed.
    """
    state = {} if state is None else state
    hints = state.setdefault("hints", [])
    try:
        run_inp, note = _in_domain(plan, inp)
    except OutsideDomain as why:
        return _case_record(name, regime, inp, "skipped", str(why)), None
    value, exc, timed_out, seconds = _call_with_timeout(
        lambda: _run_one(plan, run_inp, quick, rtol, atol), timeout)
    if timed_out:
        return _case_record(name, regime, run_inp, "error",
                            f"ran longer than the timeout ({timeout:g} s); stopped, the run "
                            f"goes on", {"detail": ["raise --timeout if this case needs longer"]},
                            seconds, note), None
    if exc is not None:
        lines = _error_lines(exc)
        expected = _expected_exception(plan, run_inp, exc)
        if expected is not None:
            return _case_record(name, regime, run_inp, "expected", expected, {"detail": lines},
                                seconds, note), None
        reason = lines[0]
        if plan.official_shape is not None:  # the official form under rankref's convention
            reason = (f"{plan.name} has an official signature, which the rankref convention "
                      f"does not call (see the hint); its error: {lines[0]}")
            if plan.official_shape not in hints:
                hints.append(plan.official_shape)
        elif plan.uncertain_guess and not state.get("probed"):
            state["probed"] = True
            other = "numpy" if plan.framework == "torch" else "torch"
            hint = _probe_framework(plan, other, run_inp, quick, rtol, atol, timeout)
            if hint:
                lines.append(hint)
                hints.append(hint)
        return _case_record(name, regime, run_inp, "error", reason, {"detail": lines}, seconds,
                            note), None
    for h in value["hints"]:
        if h not in hints:
            hints.append(h)
    if value["ok"]:
        return _case_record(name, regime, run_inp, "pass", None, value, seconds, note), value
    expected, extra = _expected_failure(plan, run_inp, value, rtol, atol)
    value["detail"] += extra
    if expected is not None:
        return _case_record(name, regime, run_inp, "expected", expected, value, seconds,
                            note), value
    value["detail"] += list(value["hints"])
    return _case_record(name, regime, run_inp, "fail", _summary(value), value, seconds,
                        note), value
