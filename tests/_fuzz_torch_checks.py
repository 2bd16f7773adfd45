"""Checks of rankref.torch (functions and modules), run in the worker.

Every tensor call is compared with the rankref call on the same values as NumPy arrays (the
reference): rankref refusing means the tensor call must refuse (a ValueError or TypeError
naming an argument), rankref accepting means the tensor call must give the same losses and,
through backward, the same gradients (in the input's dtype).  Only the public names are
targeted, rankref-style calls are used, and unknown new keyword arguments are tolerated.
"""
import inspect
import math

import numpy as np

import _fuzz_exact as ex
from _fuzz_core import (
    INVALID,
    Findings,
    Model,
    finite,
    invoke,
    is_int,
    judge,
    m_choice,
    m_count,
    m_delta,
    m_flag,
    m_real,
)

_LOSS_FLOOR = 1.2e-38  # losses are float32 unless the input is float64: tinier values flush
NEW_KWARGS = ("lam", "loss_weight", "gather", "use_sigmoid", "reduction")


def _torch():
    import torch
    return torch


def _is_tensor(x):
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


def to_np(t):
    """The NumPy array rankref sees for a tensor (bfloat16 widened to float32)."""
    torch = _torch()
    if _is_tensor(t):
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.detach().cpu().numpy()
    return t


def _params(fn):
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def m_tensor(M, name, obj):
    torch = _torch()
    if not _is_tensor(obj):
        M.set_bad(name, f"{type(obj).__name__} is not a torch.Tensor")
        return INVALID
    if obj.device.type == "meta":
        M.set_either(name, "a meta tensor")
        M.tags.add("meta")
        return INVALID
    if obj.is_complex():
        M.set_bad(name, "complex tensor")
        return INVALID
    if obj.is_floating_point() and obj.numel() and not bool(_torch().isfinite(obj).all()):
        M.set_bad(name, "non-finite entry")
    if obj.dtype == torch.bool:
        M.set_either(name, "bool tensor")
    return obj


def _loss_dtype(x):
    torch = _torch()
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _grad_tol(x):
    torch = _torch()
    if x.dtype == torch.float16:
        return 2e-3, 1e-3
    if x.dtype == torch.bfloat16:
        return 1.6e-2, 1e-2
    if x.dtype == torch.float32:
        return 1e-6, 1e-6
    return 1e-12, 1e-13


METHODS = {"rank_sort_loss": ("bucketed", "dense", "brs"), "ap_loss": ("bucketed", "dense"),
           "gap_loss": ("bucketed", "dense")}


def model_kwargs(M, name, kw):
    """The scalar keyword arguments shared with rankref (so that a refusal is attributed to
    the right argument)."""
    for k, v in kw.items():
        if k == "delta":
            m_delta(M, v)
        elif k == "method":
            m_choice(M, k, v, METHODS.get(name, ("bucketed", "dense")))
        elif k in ("interpolate", "exclude_foreground", "gather"):
            m_flag(M, k, v)
        elif k == "gamma" and name == "gap_loss":
            m_real(M, k, v, lo=0)
        elif k in ("alpha", "gamma", "beta"):
            m_real(M, k, v, lo=0, lo_open=True)


def _floor(t):
    """The smallest normal number of a tensor's dtype (values below it may flush)."""
    torch = _torch()
    return float(torch.finfo(t.dtype).tiny) if t.is_floating_point() else 0.0


def _judge_against_ref(F, M, out, ref, params, what):
    """The tensor call must refuse iff the NumPy reference refuses (or the model says bad)."""
    if ref is not None and not ref.ok and isinstance(ref.exc, (ValueError, TypeError)):
        for n in params:
            if n in str(ref.exc) and n not in M.bad:
                M.set_bad(n, f"rankref refuses it: {str(ref.exc)[:120]}")
                break
        else:
            M.set_bad(params[0] if params else "input", f"rankref refuses: {str(ref.exc)[:120]}")
    return judge(F, M, out, params, what, allow_skip=NEW_KWARGS)


def _backward_grad(F, what, loss_terms, x):
    torch = _torch()
    if not (x.requires_grad and x.is_leaf):
        return None
    total = None
    for t in loss_terms:
        if not _is_tensor(t):
            F.add("wrong type", f"{what} returned {type(t).__name__}, not a tensor")
            return None
        t = t.sum() if t.dim() else t
        total = t if total is None else total + t
    if total is None or not total.requires_grad:
        F.add("torch: no gradient", f"{what}: the loss does not require grad although the "
              f"input does")
        return None
    x.grad = None
    try:
        total.backward()
    except Exception as e:  # noqa: BLE001
        F.add("torch: backward failed", f"{what}: {type(e).__name__}: {str(e)[:200]}")
        return None
    if x.grad is None:
        F.add("torch: no gradient", f"{what}: backward left no gradient")
        return None
    if x.grad.dtype != x.dtype:
        F.add("wrong dtype", f"{what}: gradient {x.grad.dtype} for input {x.dtype}")
    return x.grad.detach().to(torch.float64).cpu().numpy()


def _cmp(F, what, got, want, rtol, atol_rel, floor=0.0):
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    if g.shape != w.shape:
        F.add("wrong shape", f"{what}: {g.shape} vs rankref {w.shape}")
        return
    if not finite(F, what, g):
        return
    scale = float(np.max(np.abs(w))) if w.size else 0.0
    ok = np.isclose(g, w, rtol=rtol, atol=atol_rel * scale + floor + 1e-300, equal_nan=True)
    if not ok.all():
        i = int(np.flatnonzero(~ok.reshape(-1))[0])
        F.add("torch != rankref", f"{what}: flat entry {i} {g.reshape(-1)[i]!r} vs rankref "
              f"{w.reshape(-1)[i]!r}")


def _scalar_out(F, what, t, like):
    torch = _torch()
    if not _is_tensor(t):
        F.add("wrong type", f"{what}: {type(t).__name__}, not a tensor")
        return None
    if t.dim() != 0:
        F.add("wrong shape", f"{what}: shape {tuple(t.shape)}, expected a scalar")
        return None
    if t.dtype != _loss_dtype(like):
        F.add("wrong dtype", f"{what}: {t.dtype} for {like.dtype} input (documented "
              f"{_loss_dtype(like)})")
    v = float(t.detach().to(torch.float64))
    if not math.isfinite(v):
        F.add("NaN/inf from finite input", f"{what} = {v!r}")
        return None
    return v


# ------------------------------------------------------------------------------ functions

def _ranking_function(F, rt, rr, case, name):
    fn = getattr(rt, name)
    args, kw = case.build({})
    margs, mkw = case.build({})
    M = Model()
    x = m_tensor(M, "logits", margs[0])
    t = m_tensor(M, "targets", margs[1])
    model_kwargs(M, name, mkw)
    ref = None
    if x is not INVALID and t is not INVALID:
        rkw = {k: v for k, v in mkw.items() if k != "gather"}
        ref = invoke(getattr(rr, name), [to_np(x), to_np(t)], rkw)
    what = f"rankref.torch.{name}"
    out = invoke(fn, args, kw, ["logits", "targets"])
    F.count(name)
    params = _params(fn)
    if not _judge_against_ref(F, M, out, ref, params, what):
        return
    if x is INVALID or t is INVALID or ref is None or not ref.ok:
        return
    xx = args[0]
    res = out.value
    if name == "rank_sort_loss":
        if not (isinstance(res, tuple) and len(res) == 2):
            F.add("wrong type", f"{what} returned {type(res).__name__}, expected "
                  "(ranking, sorting)")
            return
        vals = [_scalar_out(F, f"{what}[{i}]", r, xx) for i, r in enumerate(res)]
        want = [ref.value.ranking_loss, ref.value.sorting_loss]
        want_grad = ref.value.grad
        terms = list(res)
    else:
        vals = [_scalar_out(F, what, res, xx)]
        want = [ref.value.loss]
        want_grad = ref.value.grad
        terms = [res]
    rtol = 1e-6 if _loss_dtype(xx) == _torch().float32 else 1e-15
    for v, w in zip(vals, want):
        if v is not None and not math.isclose(v, w, rel_tol=rtol, abs_tol=_LOSS_FLOOR):
            F.add("torch != rankref", f"{what}: loss {v!r} vs rankref {w!r}")
    g = _backward_grad(F, what, terms, xx)
    if g is not None:
        _cmp(F, what + " gradient", g, want_grad, *_grad_tol(xx), _floor(xx))


def check_rank_sort_loss(F, rt, rr, case):
    _ranking_function(F, rt, rr, case, "rank_sort_loss")


def check_ap_loss(F, rt, rr, case):
    _ranking_function(F, rt, rr, case, "ap_loss")


def check_gap_loss(F, rt, rr, case):
    fn = rt.gap_loss
    args, kw = case.build({"pkg": rr, "other": rr})
    margs, mkw = case.build({"pkg": rr, "other": rr})
    M = Model()
    s = m_tensor(M, "scores", margs[0])
    y = m_tensor(M, "labels", margs[1])
    model_kwargs(M, "gap_loss", mkw)
    ref = None
    if s is not INVALID and y is not INVALID:
        counts = margs[2]
        if _is_tensor(counts):
            counts = to_np(counts)
        rkw = {k: (to_np(v) if _is_tensor(v) else v) for k, v in mkw.items()}
        ref = invoke(rr.gap_loss, [to_np(s), to_np(y), counts], rkw)
    what = "rankref.torch.gap_loss"
    out = invoke(fn, args, kw, ["scores", "labels", "counts"])
    F.count("gap_loss")
    if not _judge_against_ref(F, M, out, ref, _params(fn), what):
        return
    if ref is None or not ref.ok:
        return
    ss = args[0]
    v = _scalar_out(F, what, out.value, ss)
    if v is not None and not math.isclose(v, ref.value.loss, rel_tol=1e-6 if _loss_dtype(
            ss) == _torch().float32 else 1e-15, abs_tol=_LOSS_FLOOR):
        F.add("torch != rankref", f"{what}: loss {v!r} vs rankref {ref.value.loss!r}")
    g = _backward_grad(F, what, [out.value], ss)
    if g is not None:
        _cmp(F, what + " gradient", g, ref.value.grad, *_grad_tol(ss), _floor(ss))


def _elementwise(F, rt, rr, case, name, tensor_names):
    fn = getattr(rt, name)
    args, kw = case.build({})
    margs, mkw = case.build({})
    M = Model()
    ts = [m_tensor(M, n, a) for n, a in zip(tensor_names, margs)]
    model_kwargs(M, name, mkw)
    ref = None
    if all(t is not INVALID for t in ts):
        ref = invoke(getattr(rr, name), [to_np(t) for t in ts], mkw)
    what = f"rankref.torch.{name}"
    out = invoke(fn, args, kw, tensor_names)
    F.count(name)
    if not _judge_against_ref(F, M, out, ref, _params(fn), what):
        return
    if ref is None or not ref.ok:
        return
    x = args[0]
    res = out.value
    if not _is_tensor(res):
        F.add("wrong type", f"{what} returned {type(res).__name__}")
        return
    if res.dtype != _loss_dtype(x):
        F.add("wrong dtype", f"{what}: loss {res.dtype} for {x.dtype} input")
    tol = 1e-6 if _loss_dtype(x) == _torch().float32 else 1e-15
    _cmp(F, what + " loss", res.detach().double().numpy(), ref.value[0], tol, tol, _floor(res))
    g = _backward_grad(F, what, [res], x)
    if g is not None:
        _cmp(F, what + " gradient", g, ref.value[1], *_grad_tol(x), _floor(x))


def check_balanced_l1_loss(F, rt, rr, case):
    _elementwise(F, rt, rr, case, "balanced_l1_loss", ["pred", "target"])


def check_lgr_cross_entropy(F, rt, rr, case):
    _elementwise(F, rt, rr, case, "lgr_cross_entropy", ["logits", "labels"])


def _sampler(F, rt, rr, case, name, tensor_names):
    fn = getattr(rt, name, None)
    if fn is None:
        return
    torch = _torch()
    args, kw = case.build({})
    margs, mkw = case.build({})
    M = Model()
    ts = [m_tensor(M, n, a) for n, a in zip(tensor_names, margs)]
    rng = mkw.get("rng")
    if not isinstance(rng, (np.random.Generator, torch.Generator)):
        M.set_bad("rng", f"{type(rng).__name__}")
    ref = None
    if all(t is not INVALID for t in ts) and "rng" not in M.bad:
        rkw = dict(mkw)
        rkw["rng"] = np.random.default_rng(0)
        rest = [to_np(t) if t.dtype != torch.float16 else to_np(t.float()) for t in ts]
        ref = invoke(getattr(rr, name), rest + margs[len(ts):], rkw)
    what = f"rankref.torch.{name}"
    out = invoke(fn, args, kw, tensor_names)
    F.count(name)
    if not _judge_against_ref(F, M, out, ref, _params(fn), what):
        return
    res = out.value
    if not _is_tensor(res) or res.dtype != torch.int64 or res.dim() != 1:
        F.add("wrong type", f"{what} returned {getattr(res, 'dtype', type(res))}")
        return
    if ref is not None and ref.ok and res.numel() != len(ref.value):
        F.add("torch != rankref", f"{what}: {res.numel()} indices vs rankref "
              f"{len(ref.value)}")
    args2, kw2 = case.build({})
    again = invoke(fn, args2, kw2)
    if again.ok and not torch.equal(again.value, res):
        F.add("not deterministic", f"{what}: same generator state, different indices")
    if isinstance(rng, np.random.Generator) and ref is not None and ref.ok:
        rkw = dict(mkw)
        rkw["rng"] = case.kwargs["rng"].build({})
        direct = invoke(getattr(rr, name), [to_np(t) if t.dtype != torch.float16 else
                                            to_np(t.float()) for t in ts] + margs[len(ts):],
                        rkw)
        if direct.ok and direct.value.tolist() != res.tolist():
            F.add("torch != rankref", f"{what}: indices {res.tolist()} vs rankref "
                  f"{direct.value.tolist()} with the same numpy generator")


def check_iou_balanced_neg_sample(F, rt, rr, case):
    _sampler(F, rt, rr, case, "iou_balanced_neg_sample", ["max_overlaps"])


def check_instance_balanced_pos_sample(F, rt, rr, case):
    _sampler(F, rt, rr, case, "instance_balanced_pos_sample", ["assigned_gt_inds"])


def check_class_balanced_pos_sample(F, rt, rr, case):
    _sampler(F, rt, rr, case, "class_balanced_pos_sample", ["labels", "assigned_gt_inds"])


# ------------------------------------------------------------------------------ modules

def _m_loss_weight(M, v, name="loss_weight"):
    return m_real(M, name, v)


def _construct(F, M, cls, init, what):
    out = invoke(cls, [], init)
    F.count(what + "()")
    params = _params(cls)
    if out.exc is not None:
        judge(F, M, out, params, what + "()", allow_skip=NEW_KWARGS)
        return None
    return out


def check_module(F, rt, rr, case):
    name = case.func
    cls = getattr(rt, name, None)
    if cls is None:
        return
    init = {k: v.build({}) for k, v in case.kwargs.items()}
    M = Model()
    lw = 1.0
    if "delta" in init:
        m_delta(M, init["delta"])
    if "method" in init:
        m_choice(M, "method", init["method"], ("bucketed", "dense", "brs") if
                 name == "RankSortLoss" else ("bucketed", "dense"))
    for k in ("loss_weight", "lam"):
        if k in init:
            q = _m_loss_weight(M, init[k], k)
            lw = float(q) if q is not INVALID and q is not None and abs(q) <= ex.FMAX else lw
    for k in ("alpha", "gamma", "beta"):
        if k in init:
            m_real(M, k, init[k], lo=0, lo_open=(name != "GAPLoss"))
    for k in ("interpolate", "exclude_foreground"):
        if k in init:
            m_flag(M, k, init[k])
    if "reduction" in init:
        m_choice(M, "reduction", init["reduction"], ("none", "mean", "sum"))
    if name == "GAPLoss":
        m_count(M, "num_classes", init["num_classes"], 1, huge_either=10**6)
    out = _construct(F, M, cls, init, name)
    if out is None:
        return
    mod = out.value
    fwd_specs = case.meta["forward"]
    calls = case.meta.get("calls", 1)
    for _ in range(calls):
        fargs = [s.build({"pkg": rr, "other": rr}) for s in fwd_specs]
        counts_before = None
        if name == "GAPLoss" and hasattr(mod, "counts"):
            counts_before = mod.counts.detach().clone()
        fo = invoke(mod, fargs, {})
        F.count(name + ".forward")
        FM = Model()
        FM.bad.update(M.bad)
        FM.either.update(M.either)
        ref = _module_reference(FM, rr, name, init, fargs, mod, counts_before)
        fparams = _params(mod.forward) + list(init) + _params(cls)
        ok = _judge_against_ref(F, FM, fo, ref, fparams, name + ".forward")
        if name == "GAPLoss" and counts_before is not None:
            _gap_state(F, mod, counts_before, fargs, fo, init)
        if not ok or ref is None or not ref.ok:
            return
        _module_compare(F, name, mod, fo.value, ref.value, fargs, lw)


FORWARD_NAMES = {"RankSortLoss": ("logits", "targets"), "APLoss": ("logits", "targets"),
                 "BalancedL1Loss": ("pred", "target"), "LGRCrossEntropyLoss": ("logits", "labels"),
                 "GAPLoss": ("scores", "labels")}


def _module_reference(M, rr, name, init, fargs, mod, counts_before):
    """The rankref outcome the module's rankref-style forward must match (None: no reference)."""
    torch = _torch()
    names = FORWARD_NAMES[name]
    ts = [m_tensor(M, n, a) for n, a in zip(names, fargs[:2])]
    if name == "GAPLoss":
        C = init["num_classes"]
        s, y = fargs[0], fargs[1]
        if _is_tensor(s) and is_int(C) and (s.dim() != 2 or s.shape[1] != C):
            M.set_bad("scores", f"shape {tuple(s.shape)} for num_classes={C}")
        if _is_tensor(y):
            if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
                M.set_bad("labels", f"dtype {y.dtype}")
            elif y.numel() and is_int(C) and (int(y.min()) < -1 or int(y.max()) > C):
                M.set_bad("labels", f"values outside [-1, {C}]")
    if any(t is INVALID for t in ts):
        return None
    g = {k: v for k, v in init.items() if k not in ("loss_weight", "lam", "reduction",
                                                     "num_classes", "gather", "sync_counts")}
    x, y = to_np(ts[0]), to_np(ts[1])
    if name == "RankSortLoss":
        return invoke(rr.rank_sort_loss, [x, y], g)
    if name == "APLoss":
        return invoke(rr.ap_loss, [x, y], g)
    if name == "BalancedL1Loss":
        return invoke(rr.balanced_l1_loss, [x, y], g)
    if name == "LGRCrossEntropyLoss":
        return invoke(rr.lgr_cross_entropy, [x, y], g)
    if name == "GAPLoss":
        C = init["num_classes"]
        if not is_int(C) or not 1 <= C <= 10**6:
            return None
        cc = rr.ClassCounts(int(C))
        cc.counts = counts_before.double().cpu().numpy().copy()
        upd = invoke(cc.update, [y], {})
        if not upd.ok:
            return upd
        g = {k: v for k, v in g.items() if k in ("delta", "gamma", "method",
                                                 "exclude_foreground")}
        return invoke(rr.gap_loss, [x, y, cc], g)
    return None


def _gap_state(F, mod, before, fargs, fo, init):
    torch = _torch()
    after = mod.counts.detach()
    if not fo.ok:
        if not torch.equal(after.double(), before.double()):
            F.add("state changed by a raising call",
                  f"GAPLoss.forward raised {type(fo.exc).__name__} but the counts changed "
                  f"from {before.tolist()} to {after.tolist()}")
            with torch.no_grad():
                mod.counts.copy_(before)
        return
    y = fargs[1]
    if _is_tensor(y) and not y.is_floating_point():
        C = mod.counts.numel()
        hist = np.bincount([int(v) for v in y.reshape(-1).tolist() if 0 <= int(v) < C],
                           minlength=C).astype(np.float64)
        want = before.double().cpu().numpy() + hist
        if not np.array_equal(after.double().cpu().numpy(), want):
            F.add("wrong value", f"GAPLoss counts after a call {after.tolist()} vs "
                  f"{want.tolist()}")


def _module_compare(F, name, mod, res, ref, fargs, lw):
    x = fargs[0]
    what = f"rankref.torch.{name}(...)(rankref-style call)"
    if name == "RankSortLoss":
        if not (isinstance(res, tuple) and len(res) == 2):
            if _is_tensor(res):
                v = _scalar_out(F, what, res, x)
                want = lw * (ref.ranking_loss + ref.sorting_loss)
                if v is not None and not math.isclose(v, want, rel_tol=1e-6,
                                                      abs_tol=_LOSS_FLOOR):
                    F.add("torch != rankref", f"{what}: {v!r} vs {want!r}")
                terms = [res]
            else:
                F.add("wrong type", f"{what} returned {type(res).__name__}")
                return
        else:
            for r, w in zip(res, (ref.ranking_loss, ref.sorting_loss)):
                v = _scalar_out(F, what, r, x)
                if v is not None and not math.isclose(v, lw * w, rel_tol=1e-6,
                                                      abs_tol=_LOSS_FLOOR):
                    F.add("torch != rankref", f"{what}: {v!r} vs loss_weight * rankref "
                          f"{lw * w!r}")
            terms = list(res)
        g = _backward_grad(F, what, terms, x)
        if g is not None:
            _cmp(F, what + " gradient", g, lw * np.asarray(ref.grad, dtype=np.float64),
                 *_grad_tol(x), _floor(x))
    elif name in ("APLoss", "GAPLoss"):
        v = _scalar_out(F, what, res, x)
        want = lw * ref.loss
        if v is not None and not math.isclose(v, want, rel_tol=1e-6, abs_tol=_LOSS_FLOOR):
            F.add("torch != rankref", f"{what}: {v!r} vs {want!r}")
        g = _backward_grad(F, what, [res], x)
        if g is not None:
            _cmp(F, what + " gradient", g, lw * np.asarray(ref.grad, dtype=np.float64),
                 *_grad_tol(x), _floor(x))
    else:
        loss, grad = ref
        red = getattr(mod, "reduction", "mean")
        want = np.asarray(loss, dtype=np.float64)
        if red == "mean":
            want = np.mean(want) if want.size else np.nan
        elif red == "sum":
            want = np.sum(want)
        if not _is_tensor(res):
            F.add("wrong type", f"{what} returned {type(res).__name__}")
            return
        got = res.detach().double().cpu().numpy()
        if np.asarray(loss).size == 0 and red == "mean":
            if got.size and not np.isfinite(got).all():
                F.add("NaN/inf from finite input", f"{what}: reduction='mean' of an empty "
                      f"batch is {got!r}")
            return
        _cmp(F, what + " loss", got, lw * want, 1e-6, 1e-6, _floor(res))


def check_guided(F, rt, rr, case):
    torch = _torch()
    cls = getattr(rt, "GuidedLossScaling", None)
    if cls is None:
        return
    mod = cls()
    F.count("GuidedLossScaling()")
    fargs = [s.build({}) for s in case.meta["forward"]]
    M = Model()
    vals = []
    for n, a in zip(("loc_loss", "cls_loss"), fargs):
        t = m_tensor(M, n, a)
        if t is not INVALID:
            v = float(t.detach().double())
            if not math.isfinite(v) or v < 0:
                M.set_either(n, f"{v!r}")
            vals.append(v)
    out = invoke(mod, fargs, {}, ["loc_loss", "cls_loss"])
    F.count("GuidedLossScaling.forward")
    if not judge(F, M, out, ["loc_loss", "cls_loss"], "GuidedLossScaling.forward"):
        return
    if M.either or len(vals) != 2:
        return
    loc, c = vals
    res = out.value
    what = f"GuidedLossScaling()(loc={loc!r}, cls={c!r})"
    exact = 2 * ex.fr(loc) if c != 0 else ex.fr(loc)
    try:
        v = float(res.detach().double())
    except Exception as e:  # noqa: BLE001
        F.add("wrong type", f"{what}: {type(e).__name__}")
        return
    if not math.isfinite(v):
        if abs(exact) <= ex.FMAX * (1 - 1e-3):
            F.add("NaN/inf from finite input", f"{what} = {v!r}, exact {float(exact)!r}")
        return
    lt = fargs[1].dtype
    tol = 1e-3 if lt == torch.float16 or fargs[0].dtype == torch.float16 else 1e-6
    if not math.isclose(v, float(exact), rel_tol=tol, abs_tol=1e-300):
        F.add("wrong value", f"{what} = {v!r}, exact {float(exact)!r}")
    mod.zero_grad()
    try:
        res.backward()
    except Exception as e:  # noqa: BLE001
        F.add("torch: backward failed", f"{what}: {type(e).__name__}: {e}")
        return
    gp = mod.p.grad
    if gp is not None and not torch.isfinite(gp).all():
        F.add("NaN/inf from finite input", f"{what}: gradient of p is {float(gp)!r}")


def check_init_prior(F, rt, rr, case):
    torch = _torch()
    fn = getattr(rt, "init_prior_bias_", None)
    if fn is None:
        return
    env = {}
    args = [s.build(env) for s in case.args]
    margs = [s.build(env) for s in case.args]
    M = Model()
    mod = margs[0]
    if getattr(mod, "bias", None) is None:
        M.set_bad("conv_or_linear", "no bias")
    p = m_real(M, "prior", margs[1], lo=0, lo_open=True, hi=1, hi_open=True)
    out = invoke(fn, args, {}, ["conv_or_linear", "prior"])
    F.count("init_prior_bias_")
    params = _params(fn) + ["module", "bias"]
    if not judge(F, M, out, params, "init_prior_bias_"):
        return
    b = args[0].bias.detach().double()
    what = f"init_prior_bias_({case.args[0].code()}, {float(p)!r})"
    if not torch.isfinite(b).all():
        ref = ex.mpmath.log(ex.mp(p)) - ex.mpmath.log(ex.mp(1 - p)) if ex.mpmath else None
        F.add("NaN/inf from finite input", f"{what}: bias {b.tolist()[:1]}, exact "
              f"{float(ref) if ref is not None else '?'}")
        return
    if ex.mpmath is not None:
        ref = float(ex.mpmath.log(ex.mp(p)) - ex.mpmath.log(ex.mp(1 - p)))
        dt = args[0].bias.dtype
        tol = {torch.float16: 1e-3, torch.bfloat16: 8e-3, torch.float32: 1e-7}.get(dt, 1e-15)
        if not np.allclose(b.numpy(), ref, rtol=tol, atol=1e-300):
            F.add("wrong value", f"{what}: bias {b.tolist()[:1]}, exact {ref!r}")
    if out.value is not args[0]:
        F.add("wrong value", "init_prior_bias_ did not return the module")


def check_bfp(F, rt, rr, case):
    torch = _torch()
    cls = getattr(rt, "BalancedFeaturePyramid", None)
    if cls is None:
        return
    init = {k: v.build({}) for k, v in case.kwargs.items()}
    M = Model()
    C = m_count(M, "in_channels", init.get("in_channels"), 1, huge_either=4096)
    L = m_count(M, "num_levels", init.get("num_levels"), 1, huge_either=64)
    rl = init.get("refine_level", 2)
    if not is_int(rl) or (L is not INVALID and not 0 <= rl < L):
        M.set_bad("refine_level", f"{rl!r}")
    if L is INVALID:
        M.set_either("refine_level", "num_levels is invalid")
    rtp = init.get("refine_type", "non_local")
    if rtp not in ("non_local", "conv", None):
        M.set_bad("refine_type", f"{rtp!r}")
    out = invoke(cls, [], init)
    F.count("BalancedFeaturePyramid()")
    if not judge(F, M, out, _params(cls), "BalancedFeaturePyramid()"):
        return
    mod = out.value
    levels = case.meta["forward"][0].build({})
    FM = Model()
    if len(levels) != L:
        FM.set_bad("inputs", f"{len(levels)} levels for num_levels={L}")
    shapes = [tuple(t.shape) for t in levels]
    if len({t.dtype for t in levels}) > 1:
        FM.set_either("inputs", f"mixed dtypes {sorted(str(t.dtype) for t in levels)}")
    for i, s in enumerate(shapes):
        if len(s) != 4 or s[1] != C or s[0] != shapes[0][0] or 0 in s:
            FM.set_bad("inputs", f"level {i} has shape {s} (in_channels={C})")
    fo = invoke(mod, [levels], {}, ["inputs"])
    F.count("BalancedFeaturePyramid.forward")
    if not judge(F, FM, fo, _params(mod.forward), "BalancedFeaturePyramid.forward"):
        return
    res = fo.value
    if not isinstance(res, tuple) or len(res) != len(levels):
        F.add("wrong type", f"BalancedFeaturePyramid returned {type(res).__name__}")
        return
    for i, (o, x) in enumerate(zip(res, levels)):
        if tuple(o.shape) != tuple(x.shape) or o.dtype != x.dtype:
            F.add("wrong shape", f"BalancedFeaturePyramid level {i}: {tuple(o.shape)} "
                  f"{o.dtype} vs input {tuple(x.shape)} {x.dtype}")
        if not torch.isfinite(o).all():
            F.add("NaN/inf from finite input", f"BalancedFeaturePyramid level {i}")
    again = invoke(mod, [[t.detach() for t in levels]], {})
    if again.ok and not all(torch.equal(a, b.detach()) for a, b in zip(again.value, res)):
        F.add("not deterministic", "BalancedFeaturePyramid.forward")


CHECKS = {
    "rank_sort_loss": check_rank_sort_loss,
    "ap_loss": check_ap_loss,
    "gap_loss": check_gap_loss,
    "balanced_l1_loss": check_balanced_l1_loss,
    "lgr_cross_entropy": check_lgr_cross_entropy,
    "iou_balanced_neg_sample": check_iou_balanced_neg_sample,
    "instance_balanced_pos_sample": check_instance_balanced_pos_sample,
    "class_balanced_pos_sample": check_class_balanced_pos_sample,
    "RankSortLoss": check_module,
    "APLoss": check_module,
    "GAPLoss": check_module,
    "BalancedL1Loss": check_module,
    "LGRCrossEntropyLoss": check_module,
    "GuidedLossScaling": check_guided,
    "init_prior_bias_": check_init_prior,
    "BalancedFeaturePyramid": check_bfp,
}


def check(case):
    import rankref as rr
    import rankref.torch as rt
    F = Findings()
    CHECKS[case.func](F, rt, rr, case)
    return F
