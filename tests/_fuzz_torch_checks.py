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
    m_array,
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


def _dtypes(kind):
    torch = _torch()
    floats = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    ints = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
    return {"float": floats, "int": ints, "target": (torch.bool,) + ints + floats,
            "real": ints + floats}[kind]


def m_tensor(M, name, obj, kind="target"):
    """A tensor argument of rankref.torch: ``kind`` is the documented dtype family (float:
    logits, scores, pred; int: labels, ids; target: bool, integer or float; real: no bool)."""
    if not _is_tensor(obj):
        M.set_bad(name, f"{type(obj).__name__} is not a torch.Tensor")
        return INVALID
    if obj.device.type == "meta":
        M.set_either(name, "a meta tensor")
        M.tags.add("meta")
        return INVALID
    if obj.dtype not in _dtypes(kind):
        M.set_bad(name, f"dtype {obj.dtype} (documented: {kind} tensor)")
        return INVALID
    if obj.is_floating_point() and obj.numel() and not bool(_torch().isfinite(obj).all()):
        M.set_bad(name, "non-finite entry")
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


def _cmp(F, what, got, want, rtol, atol_rel, floor=0.0, cap=None):
    """Compare with rankref.  ``cap``: the gradient dtype's largest number; an entry whose exact
    value is beyond it may be +-inf (float16/float32 gradients overflow as in any torch
    backward; torch.amp.GradScaler detects and skips such steps)."""
    g = np.array(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    if g.shape != w.shape:
        F.add("wrong shape", f"{what}: {g.shape} vs rankref {w.shape}")
        return
    if cap is not None:
        over = (np.abs(w) > cap * (1 - 1e-3)) & ((np.sign(g) == np.sign(w)) | (g == 0))
        over &= np.abs(g) >= cap * (1 - 1e-2)
        g[over] = w[over]
    if not finite(F, what, g):
        return
    scale = float(np.max(np.abs(w))) if w.size else 0.0
    ok = np.isclose(g, w, rtol=rtol, atol=atol_rel * scale + floor + 1e-300, equal_nan=True)
    if not ok.all():
        i = int(np.flatnonzero(~ok.reshape(-1))[0])
        F.add("torch != rankref", f"{what}: flat entry {i} {g.reshape(-1)[i]!r} vs rankref "
              f"{w.reshape(-1)[i]!r}")


def _cap(x):
    torch = _torch()
    return float(torch.finfo(x.dtype).max) if _is_tensor(x) and x.is_floating_point() else None


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
    x = m_tensor(M, "logits", margs[0], "float")
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
        _cmp(F, what + " gradient", g, want_grad, *_grad_tol(xx), _floor(xx), _cap(xx))


def check_rank_sort_loss(F, rt, rr, case):
    _ranking_function(F, rt, rr, case, "rank_sort_loss")


def check_ap_loss(F, rt, rr, case):
    _ranking_function(F, rt, rr, case, "ap_loss")


def torch_isfinite_nonneg(t):
    torch = _torch()
    v = t.detach().double()
    return bool(torch.isfinite(v).all()) and not bool((v < 0).any())


def check_gap_loss(F, rt, rr, case):
    fn = rt.gap_loss
    args, kw = case.build({"pkg": rr, "other": rr})
    margs, mkw = case.build({"pkg": rr, "other": rr})
    M = Model()
    s = m_tensor(M, "scores", margs[0], "float")
    y = m_tensor(M, "labels", margs[1], "int")
    model_kwargs(M, "gap_loss", mkw)
    C = s.shape[-1] if s is not INVALID and s.dim() == 2 else None
    if margs[2] is None and mkw.get("weights") is None:
        M.set_bad("counts", "None without weights")
    for nm, v in (("counts", margs[2]), ("weights", mkw.get("weights"))):
        if v is None or C is None or (nm == "counts" and hasattr(v, "num_classes")):
            continue
        if _is_tensor(v):
            if v.device.type == "meta" or v.dtype not in _dtypes("real") or \
                    tuple(v.shape) != (C,):
                M.set_bad(nm, f"a tensor of dtype {v.dtype}, shape {tuple(v.shape)}")
            elif not bool(torch_isfinite_nonneg(v)):
                M.set_either(nm, "non-finite or negative entries")
        else:
            a = m_array(M, nm, v, shape=(C,), exact64=None)
            if a is not INVALID and a.size and (a < 0).any():
                M.set_bad(nm, "a negative entry")
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
        _cmp(F, what + " gradient", g, ref.value.grad, *_grad_tol(ss), _floor(ss), _cap(ss))


def _elementwise(F, rt, rr, case, name, tensor_names, kinds):
    fn = getattr(rt, name)
    args, kw = case.build({})
    margs, mkw = case.build({})
    M = Model()
    ts = [m_tensor(M, n, a, k) for n, a, k in zip(tensor_names, margs, kinds)]
    model_kwargs(M, name, mkw)
    if all(t is not INVALID for t in ts):  # the documented shapes
        if name == "lgr_cross_entropy" and ts[0].dim() != 2:
            M.set_bad("logits", f"{ts[0].dim()}-D, needs [n, K]")
        elif name == "lgr_cross_entropy" and tuple(ts[1].shape) != tuple(ts[0].shape[:1]):
            M.set_bad("labels", f"shape {tuple(ts[1].shape)}")
        elif name == "balanced_l1_loss" and ts[0].shape != ts[1].shape:
            M.set_bad("target", f"shape {tuple(ts[1].shape)} vs {tuple(ts[0].shape)}")
    ref = None
    if all(t is not INVALID for t in ts):
        ref = invoke(getattr(rr, name), [to_np(t) for t in ts], mkw)
        _float32_range(M, ref, ts[0], tensor_names[0])
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
        _cmp(F, what + " gradient", g, ref.value[1], *_grad_tol(x), _floor(x), _cap(x))


def check_balanced_l1_loss(F, rt, rr, case):
    _elementwise(F, rt, rr, case, "balanced_l1_loss", ["pred", "target"], ["float", "float"])


def check_lgr_cross_entropy(F, rt, rr, case):
    _elementwise(F, rt, rr, case, "lgr_cross_entropy", ["logits", "labels"], ["float", "int"])


def _sampler(F, rt, rr, case, name, tensor_names, kind):
    fn = getattr(rt, name, None)
    if fn is None:
        return
    torch = _torch()
    args, kw = case.build({})
    margs, mkw = case.build({})
    M = Model()
    ts = [m_tensor(M, n, a, kind) for n, a in zip(tensor_names, margs)]
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
    _sampler(F, rt, rr, case, "iou_balanced_neg_sample", ["max_overlaps"], "real")


def check_instance_balanced_pos_sample(F, rt, rr, case):
    _sampler(F, rt, rr, case, "instance_balanced_pos_sample", ["assigned_gt_inds"], "int")


def check_class_balanced_pos_sample(F, rt, rr, case):
    _sampler(F, rt, rr, case, "class_balanced_pos_sample", ["labels", "assigned_gt_inds"],
             "int")


# ------------------------------------------------------------------------------ modules

F32_MAX = float(np.finfo(np.float32).max)


def _m_loss_weight(M, v, name="loss_weight"):
    """Documented: a finite number in [0, float32's maximum]."""
    return m_real(M, name, v, lo=0, hi=F32_MAX)


def _float32_range(M, ref, x, name):
    """float32 outputs: where rankref's float64 result is beyond float32's range, the tensor
    call must refuse (naming the input)."""
    torch = _torch()
    if ref is None or not ref.ok or not _is_tensor(x) or x.dtype == torch.float64:
        return
    for arr in ref.value:
        a = np.abs(np.asarray(arr, dtype=np.float64))
        if a.size and a.max() > F32_MAX * (1 + 1e-6):
            M.set_bad(name, "its loss or gradient is beyond float32's range")
            return
        if a.size and a.max() > F32_MAX * (1 - 1e-6):
            M.set_either(name, "its loss or gradient is at the edge of float32's range")


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
        if k in init and not (k == "lam" and init[k] is None):  # lam=None: not given
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
        nc = m_count(M, "num_classes", init["num_classes"], 1)
        if nc is not INVALID and nc > 2**24:
            M.set_bad("num_classes", "above the documented maximum 2**24")
    out = _construct(F, M, cls, init, name)
    if out is None:
        return
    mod = out.value
    if case.meta.get("mmdet"):
        _check_mmdet_call(F, rr, cls, name, mod, init, M, case, lw)
        return
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
                 "BalancedL1Loss": ("pred", "target"),
                 "LGRCrossEntropyLoss": ("cls_score", "label"), "GAPLoss": ("scores", "labels")}
FORWARD_KINDS = {"RankSortLoss": ("float", "target"), "APLoss": ("float", "target"),
                 "BalancedL1Loss": ("float", "float"), "LGRCrossEntropyLoss": ("float", "int"),
                 "GAPLoss": ("float", "int")}


def _module_reference(M, rr, name, init, fargs, mod, counts_before):
    """The rankref outcome the module's rankref-style forward must match (None: no reference)."""
    torch = _torch()
    names = FORWARD_NAMES[name]
    ts = [m_tensor(M, n, a, k) for n, a, k in zip(names, fargs[:2], FORWARD_KINDS[name])]
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
        ref = invoke(rr.balanced_l1_loss, [x, y], g)
        _float32_range(M, ref, ts[0], "pred")
        _reduced_range(M, ref, mod, ts[0], "pred")
        return ref
    if name == "LGRCrossEntropyLoss":
        if ts[0].dim() != 2:
            M.set_bad("cls_score", f"{ts[0].dim()}-D, needs [n, K]")
            return None
        ref = invoke(rr.lgr_cross_entropy, [x, y], g)
        _float32_range(M, ref, ts[0], "cls_score")
        _reduced_range(M, ref, mod, ts[0], "cls_score")
        return ref
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


def _reduced_range(M, ref, mod, x, name):
    """The module's weighted, reduced loss beyond its dtype's range must be refused."""
    torch = _torch()
    if ref is None or not ref.ok or mod is None:
        return
    loss = np.asarray(ref.value[0], dtype=np.float64)
    red = getattr(mod, "reduction", "mean")
    lw = float(getattr(mod, "loss_weight", 1.0))
    def total(a):
        try:
            return math.fsum(a)
        except OverflowError:
            return math.inf
    with np.errstate(all="ignore"):
        vals = [total(loss.reshape(-1)) / max(loss.size, 1)] if red == "mean" else \
            [total(loss.reshape(-1))] if red == "sum" else list(loss.reshape(-1))
    top = max([abs(v) * lw for v in vals] + [0.0])
    limit = F32_MAX if x.dtype != torch.float64 else ex.FMAX
    if top > limit * (1 + 1e-6):
        M.set_bad(name, "the reduced loss is beyond the output dtype's range")
    elif top > limit * (1 - 1e-6):
        M.set_either(name, "the reduced loss is at the edge of the output dtype's range")


# ------------------------------------------------------------------------------ mmdet calls

def _mm_weight(M, w, shapes, binary):
    """The weight of an mmdetection call: a real tensor of one of ``shapes`` (or broadcasting
    to the first, for the elementwise losses), finite, 0/1 for the ranking losses."""
    if w is None:
        return None
    t = m_tensor(M, "weight", w, "target")
    if t is INVALID:
        return None
    if binary:
        if tuple(t.shape) not in shapes:
            M.set_bad("weight", f"shape {tuple(t.shape)}, not one of {shapes}")
            return None
    else:
        torch = _torch()
        try:
            ok = tuple(torch.broadcast_shapes(t.shape, shapes[0])) == tuple(shapes[0])
        except RuntimeError:
            ok = False
        if not ok:
            M.set_bad("weight", f"shape {tuple(t.shape)} does not broadcast to {shapes[0]}")
            return None
    v = t.detach().double().cpu().numpy()
    if not np.isfinite(v).all():
        M.set_bad("weight", "non-finite entry")
        return None
    if binary and not np.isin(v, (0.0, 1.0)).all():
        M.set_bad("weight", "a value other than 0 and 1")
        return None
    return v


def _mm_avg(M, avg, elementwise, red):
    if avg is None:
        return None
    torch = _torch()
    if _is_tensor(avg):
        if avg.device.type == "meta" or avg.numel() != 1 or avg.dtype not in _dtypes("real"):
            M.set_bad("avg_factor", "not a one-element real tensor")
            return None
        v = float(avg.detach().double())
        if not (math.isfinite(v) and v > 0):
            M.set_bad("avg_factor", f"{v!r} is not > 0")
            return None
    else:
        q = m_real(M, "avg_factor", avg, lo=0, lo_open=True)
        if q is INVALID or q is None or abs(q) > ex.FMAX:
            return None
        v = float(q)
    if elementwise and red == "sum":
        M.set_bad("avg_factor", "with reduction 'sum'")
        return None
    del torch
    return v


def _mmdet_reference(M, rr, name, mod, init, fargs, fkw, counts_before):
    """``(ref Outcome, value, grad)`` the mmdetection call must match (``ref`` refusing means
    the call must refuse); ``(None, None, None)`` when the model already says bad."""
    torch = _torch()
    none = (None, None, None)
    pred, target = fargs
    elementwise = name in ("BalancedL1Loss", "LGRCrossEntropyLoss")
    ro = fkw.get("reduction_override")
    allowed = ("mean", "sum", "none") if elementwise else ("mean",)
    if ro is not None and not (isinstance(ro, str) and ro in allowed):
        M.set_bad("reduction_override", f"{ro!r} not in {allowed}")
    red = ro if isinstance(ro, str) and ro in allowed else getattr(mod, "reduction", "mean")
    avg = _mm_avg(M, fkw.get("avg_factor"), elementwise, red)
    pname = "cls_score" if name == "LGRCrossEntropyLoss" else "pred"
    x = m_tensor(M, pname, pred, "float")
    if x is INVALID:
        return none
    if x.dim() != 2:
        if name == "APLoss" and _is_tensor(target):  # the rankref call (checked elsewhere)
            M.set_either(pname, "the rankref-style call of APLoss (not modelled here)")
            return none
        M.set_bad(pname, f"{x.dim()}-D, needs 2-D")
        return none
    n, C = x.shape
    xn = to_np(x).astype(np.float64) if x.dtype != torch.float16 else to_np(x)
    g = {k: v for k, v in init.items() if k in ("delta", "method", "interpolate", "gamma",
                                                "alpha", "beta", "exclude_foreground")}
    lw = float(getattr(mod, "loss_weight", 1.0))

    def labels_of(obj, lo, hi, what="target"):
        y = m_tensor(M, what, obj, "int")
        if y is INVALID:
            return None
        if tuple(y.shape) != (n,):
            M.set_bad(what, f"labels of shape {tuple(y.shape)}, needs ({n},)")
            return None
        yv = y.detach().cpu().numpy().astype(np.int64)
        if yv.size and (yv.min() < lo or yv.max() > hi):
            M.set_bad(what, f"a label outside [{lo}, {hi}]")
            return None
        return yv

    if name in ("RankSortLoss", "APLoss"):
        if name == "RankSortLoss":
            if not isinstance(target, (tuple, list)) or len(target) != 2:
                M.set_bad("target", "not the pair (labels, scores)")
                return none
            yv = labels_of(target[0], 0, C)
            q = m_tensor(M, "target", target[1], "float")
            if q is INVALID or yv is None:
                return none
            if tuple(q.shape) != (n,):
                M.set_bad("target", f"scores of shape {tuple(q.shape)}")
                return none
            qv = q.detach().double().cpu().numpy()
            if qv.size and not ((qv >= 0) & (qv <= 1)).all():
                M.set_bad("target", "a score outside [0, 1]")
                return none
            qv = q.detach().float().double().cpu().numpy() if q.dtype in (
                torch.float16, torch.bfloat16) else qv
        else:
            if isinstance(target, (tuple, list)):
                if len(target) not in (1, 2):
                    M.set_bad("target", f"a sequence of {len(target)}")
                    return none
                target = target[0]
            yv = labels_of(target, 0, C)
            if yv is None:
                return none
            qv = np.ones(n)
        wv = _mm_weight(M, fkw.get("weight"), [(n,), (n, C)], True)
        if M.bad:
            return none
        t = np.zeros((n, C))
        for i in range(n):
            if yv[i] < C:
                t[i, yv[i]] = qv[i]
        if name == "APLoss":
            t = (t > 0).astype(np.float64)
        if wv is not None:
            full = np.broadcast_to(wv.reshape(n, 1) if wv.shape == (n,) else wv, (n, C))
            t[full == 0] = -1
        if name == "RankSortLoss":
            ref = invoke(rr.rank_sort_loss, [xn, t], g)
        else:
            ref = invoke(rr.ap_loss, [xn, t], g)
        if not ref.ok:
            return ref, None, None
        scale = 1.0 if avg is None else float((t > 0).sum()) / avg
        val = (ref.value.ranking_loss + ref.value.sorting_loss if name == "RankSortLoss"
               else ref.value.loss)
        parts = ((ref.value.ranking_loss, ref.value.sorting_loss) if name == "RankSortLoss"
                 else (ref.value.loss,))
        limit = F32_MAX if x.dtype != torch.float64 else ex.FMAX
        if max(abs(v) * scale for v in parts) > limit * (1 - 1e-6):
            M.set_bad("avg_factor", "the normalised loss is beyond the loss dtype's range")
            return none
        return ref, lw * val * scale, lw * np.asarray(ref.value.grad, np.float64) * scale
    if name == "GAPLoss":
        C0 = init.get("num_classes")
        if C != C0:
            M.set_bad("pred", f"{C} columns for num_classes={C0}")
            return none
        yv = labels_of(target, -1, C)
        wv = _mm_weight(M, fkw.get("weight"), [(n,)], True)
        if yv is None or M.bad:
            return none
        used = np.where(wv == 0, -1, yv) if wv is not None else yv
        cc = rr.ClassCounts(int(C))
        cc.counts = counts_before.double().cpu().numpy().copy()
        cc.update(used)
        g = {k: v for k, v in g.items() if k in ("delta", "gamma", "method",
                                                 "exclude_foreground")}
        ref = invoke(rr.gap_loss, [xn, used, cc], g)
        if not ref.ok:
            return ref, None, None
        return ref, lw * ref.value.loss, lw * np.asarray(ref.value.grad, np.float64)
    if name == "BalancedL1Loss":
        t = m_tensor(M, "target", target, "float")
        if t is INVALID:
            return none
        if tuple(t.shape) != (n, C):
            M.set_bad("target", f"shape {tuple(t.shape)} vs pred {(n, C)}")
            return none
        wv = _mm_weight(M, fkw.get("weight"), [(n, C)], False)
        if M.bad:
            return none
        ref = invoke(rr.balanced_l1_loss, [xn, to_np(t).astype(np.float64) if t.dtype !=
                                           torch.float16 else to_np(t)], g)
        shape = (n, C)
    else:
        yv = labels_of(target, -1, C - 1, "label")
        wv = _mm_weight(M, fkw.get("weight"), [(n,)], False)
        if yv is None or M.bad:
            return none
        ref = invoke(rr.lgr_cross_entropy, [xn, yv], g)
        shape = (n,)
    if not ref.ok:
        return ref, None, None
    _float32_range(M, ref, x, pname)
    loss, grad = (np.asarray(a, np.float64) for a in ref.value)
    w = np.broadcast_to(wv, shape) if wv is not None else np.ones(shape)
    with np.errstate(all="ignore"):
        L = loss * w
        if red == "none":
            val, factor = L, 1.0
        elif red == "sum":
            val, factor = np.sum(L), 1.0
        elif avg is not None:
            val, factor = np.sum(L) / avg, 1.0 / avg
        else:
            val, factor = (np.mean(L) if L.size else 0.0), 1.0 / max(L.size, 1)
        gw = w if grad.ndim == w.ndim else w.reshape(-1, 1)
        gref = lw * grad * gw * factor
        val = lw * np.asarray(val, np.float64)
    limit = F32_MAX if x.dtype != torch.float64 else ex.FMAX
    top = float(np.max(np.abs(val))) if np.size(val) else 0.0
    if not np.isfinite(top) or top > limit * (1 + 1e-6):
        M.set_bad(pname, "the weighted, reduced loss is beyond the output dtype's range")
        return none
    if top > limit * (1 - 1e-6):
        M.set_either(pname, "the reduced loss is at the edge of the output dtype's range")
    return ref, val, gref


def _check_mmdet_call(F, rr, cls, name, mod, init, M, case, lw):
    torch = _torch()
    fargs = [s.build({"pkg": rr, "other": rr}) for s in case.meta["forward"]]
    fkw = {k: v.build({}) for k, v in case.meta.get("forward_kw", {}).items()}
    counts_before = mod.counts.detach().clone() if name == "GAPLoss" else None
    fo = invoke(mod, fargs, fkw, ["pred", "target"])
    F.count(name + ".forward (mmdet call)")
    FM = Model()
    FM.bad.update(M.bad)
    FM.either.update(M.either)
    ref, val, gref = _mmdet_reference(FM, rr, name, mod, init, fargs, fkw, counts_before)
    params = (_params(mod.forward) + list(init) + _params(cls)
              + ["labels", "scores", "label", "logits", "cls_score"])
    what = name + ".forward (mmdet call)"
    ok = _judge_against_ref(F, FM, fo, ref, params, what)
    if name == "GAPLoss":
        after = mod.counts.detach()
        if not fo.ok and not torch.equal(after, counts_before):
            F.add("state changed by a raising call", f"{what} raised "
                  f"{type(fo.exc).__name__} but the counts changed")
    if not ok or ref is None or not ref.ok or val is None:
        return
    x = fargs[0]
    res = fo.value
    if not _is_tensor(res):
        F.add("wrong type", f"{what} returned {type(res).__name__}")
        return
    got = res.detach().double().cpu().numpy()
    if got.shape != np.shape(val):
        F.add("wrong shape", f"{what}: {got.shape} vs {np.shape(val)}")
        return
    if res.dtype != _loss_dtype(x):
        F.add("wrong dtype", f"{what}: {res.dtype} for {x.dtype} input")
    tol = 1e-6 if _loss_dtype(x) == torch.float32 else 1e-12
    _cmp(F, what + " loss", got, val, tol, tol, _floor(res))
    if x.requires_grad:
        g = _backward_grad(F, what, [res], x)
        if g is not None:
            _cmp(F, what + " gradient", g, gref, *_grad_tol(x), _floor(x), _cap(x))


def check_register_mmdet(F, rt, rr, case):
    fn = rt.register_mmdet
    args = [a.build({}) for a in case.args]
    kw = {k: v.build({}) for k, v in case.kwargs.items()}
    M = Model()
    reg = args[0]
    prefix = kw.get("prefix", "RankRef")
    if not isinstance(prefix, str) or not (prefix == "" or prefix.isidentifier()):
        M.set_bad("prefix", f"{prefix!r} is not usable in a class name")
    mmdet_missing = False
    if reg is None:
        import importlib.util
        mmdet_missing = importlib.util.find_spec("mmdet") is None
    elif not (callable(getattr(reg, "get", None)) and callable(getattr(reg, "register_module",
                                                                        None))):
        M.set_bad("registry", f"{type(reg).__name__} is not a Registry")
    elif "prefix" not in M.bad and reg.module_dict.get(prefix + "RankSortLoss") not in (
            None, rt.RankSortLoss):
        M.set_bad("prefix", "a name it makes is taken by another class")
    out = invoke(fn, args, kw, ["registry"])
    F.count("register_mmdet")
    if mmdet_missing and not M.bad:
        if out.ok or not isinstance(out.exc, ImportError) or "mmdet" not in str(out.exc):
            F.add("wrong exception", f"register_mmdet() without mmdetection: "
                  f"{'a result' if out.ok else repr(out.exc)[:200]}, documented ImportError")
        return
    if not judge(F, M, out, ["registry", "prefix"], "register_mmdet"):
        return
    res = out.value
    names = {prefix + c for c in ("RankSortLoss", "APLoss", "GAPLoss", "RoIRankSortLoss",
                                  "BalancedL1Loss", "LGRCrossEntropyLoss")}
    if not isinstance(res, dict) or set(res) != names:
        F.add("wrong value", f"register_mmdet returned {res!r}, expected the names {names}")
        return
    for k, c in res.items():
        # the ranking losses register mmdet-call subclasses of rankref.torch's modules
        base = getattr(rt, k[len(prefix):].replace("RoIRankSortLoss", "RankSortLoss"), None)
        if reg.get(k) is not c or base is None or not issubclass(c, base):
            F.add("wrong value", f"register_mmdet: {k} is registered as {reg.get(k)!r}")
            return
    built = invoke(reg.build, [dict(type=prefix + "GAPLoss", num_classes=3, loss_weight=0.1)],
                   {})
    if not built.ok or not isinstance(built.value, rt.GAPLoss) or \
            built.value.loss_weight != 0.1:
        F.add("wrong value", f"registry.build of {prefix}GAPLoss: "
              f"{built.value if built.ok else repr(built.exc)[:200]}")
    if case.meta.get("twice"):
        again = invoke(fn, args, kw)
        if not again.ok or again.value != res:
            F.add("wrong value", "register_mmdet called twice: "
                  f"{'a different result' if again.ok else repr(again.exc)[:200]}")


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
                 *_grad_tol(x), _floor(x), _cap(x))
    elif name in ("APLoss", "GAPLoss"):
        v = _scalar_out(F, what, res, x)
        want = lw * ref.loss
        if v is not None and not math.isclose(v, want, rel_tol=1e-6, abs_tol=_LOSS_FLOOR):
            F.add("torch != rankref", f"{what}: {v!r} vs {want!r}")
        g = _backward_grad(F, what, [res], x)
        if g is not None:
            _cmp(F, what + " gradient", g, lw * np.asarray(ref.grad, dtype=np.float64),
                 *_grad_tol(x), _floor(x), _cap(x))
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
        t = m_tensor(M, n, a, "float")
        if t is not INVALID:
            if t.numel() != 1:
                M.set_bad(n, f"{t.numel()} values, not a scalar loss")
                continue
            v = float(t.detach().double())
            if not math.isfinite(v) or v < 0:
                M.set_bad(n, f"{v!r} is not a finite loss >= 0")
            vals.append(v)
    if len(vals) == 2 and not M.bad:
        dt = torch.promote_types(fargs[0].dtype, fargs[1].dtype)
        top = float(torch.finfo(dt).max)
        loc, c = vals
        g = ex.fr(loc) / ex.fr(c) if c != 0 else 1
        if abs(g) > ex.FMAX:  # g is computed in float64
            M.set_bad("cls_loss", "loc_loss / cls_loss beyond float64's range")
        elif (2 * ex.fr(loc) if c != 0 else ex.fr(loc)) > top * (1 - 1e-3):
            M.set_either("loc_loss", "the scaled loss at or beyond the dtype's range")
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
    C = m_count(M, "in_channels", init.get("in_channels"), 1)
    L = m_count(M, "num_levels", init.get("num_levels"), 1)
    for name, v in (("in_channels", C), ("num_levels", L)):
        if v is not INVALID and v > 2**16:
            M.set_bad(name, "above the documented maximum 2**16")
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
        FM.set_bad("inputs", f"mixed dtypes {sorted(str(t.dtype) for t in levels)}")
    param = next(mod.parameters(), None)
    if param is not None and any(t.dtype != param.dtype for t in levels):
        FM.set_bad("inputs", f"dtype other than the parameters' {param.dtype}")
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
    "register_mmdet": check_register_mmdet,
}


def check(case):
    import rankref as rr
    import rankref.torch as rt
    F = Findings()
    CHECKS[case.func](F, rt, rr, case)
    return F
