"""Per-function models and invariants for rankref and rankref_gpu (run in the worker).

``check(package, case)`` builds the case's inputs, calls the function, judges the outcome
(:func:`_fuzz_core.judge`), verifies a clean result against the function's invariants and an
exact reference, repeats the call for determinism and, for rankref_gpu, compares with rankref.
It returns the findings as ``(kind, detail)`` pairs.
"""
import importlib
import inspect
import math
import sys
from collections.abc import Iterable, Mapping
from fractions import Fraction

import numpy as np

import _fuzz_exact as ex
from _fuzz_specs import host_view
from _fuzz_core import (
    INVALID,
    Findings,
    Model,
    close,
    exact_values,
    finite,
    fl,
    invoke,
    is_int,
    judge,
    m_array,
    m_choice,
    m_count,
    m_delta,
    m_flag,
    m_real,
    same_result,
)

# argument names a message may use besides the parameter names
ALIASES = {
    "foreground_prior": ["label batch"],
    "merge": ["ClassCounts", "other"],
    "__add__": ["ClassCounts", "other"],
    "load_state_dict": ["state", "counts", "num_classes"],
    "gap_loss": ["ClassCounts"],
}

EXACT_BUDGET = 1024  # positives x entries evaluated in rationals per example


def env_for(name):
    pkg = importlib.import_module(name)
    other = importlib.import_module("rankref_gpu" if name == "rankref" else "rankref")
    return {"name": name, "pkg": pkg, "other": other}


def _grad_dtype(x):
    return np.float32 if x.dtype in (np.float16, np.float32) else np.float64


def _check_grad_array(F, what, g, shape, x_dtype):
    if not isinstance(g, np.ndarray):
        F.add("wrong type", f"{what} is {type(g).__name__}, not an ndarray")
        return False
    if g.shape != tuple(shape):
        F.add("wrong shape", f"{what} has shape {g.shape}, logits {tuple(shape)}")
        return False
    want = _grad_dtype(np.empty(0, x_dtype))
    if g.dtype != want and not (np.dtype(x_dtype).itemsize > 8 and g.dtype.kind == "f"):
        F.add("wrong dtype", f"{what} is {g.dtype} for {np.dtype(x_dtype)} logits "
              f"(documented {np.dtype(want)})")
    return finite(F, what, g)


def _sums_to_zero(F, what, g, tol, loss=0.0):
    """The updates sum to zero up to ``tol`` times their size: the sum of their absolute
    values, or where an entry adds terms of both signs (RS sorting, GAP's positives as other
    classes' negatives) the terms' mass, at most twice the (weighted) loss."""
    g = np.asarray(g, dtype=np.float64)
    total = abs(math.fsum(g.reshape(-1)))
    mass = math.fsum(np.abs(g).reshape(-1))
    if isinstance(loss, float) and math.isfinite(loss):
        mass = max(mass, 2.0 * abs(loss))
    if np.isfinite(mass) and total > tol * mass + 1e-300:
        F.add("gradient does not sum to zero", f"{what}: sum {total!r} vs sum|g| {mass!r}")


def _tol(gdt):
    return (1e-6, 1e-6) if gdt == np.float32 else (1e-9, 1e-12)


ULP = 2.0 ** -53  # unit round-off of float64


def rel_tol(ops):
    """The relative judge of the exact references: a few ulps per operation (``ops`` bounds
    the roundings on the longest path: the sums over the entries, the relaxed steps, the
    ratios), never an absolute floor."""
    return 4.0 * ops * ULP


def _ops(n):
    return 2 * (n + 8)


def _grad_tol(n, gdt, mass):
    """Per-entry tolerance of an update: relative to the sum of its terms' absolute values
    (its own size where every term has one sign), plus float32's rounding of the output."""
    r = rel_tol(_ops(n)) + (2.0 ** -23 if gdt == np.float32 else 0.0)
    return r * np.array([fl(m) for m in mass], dtype=np.float64) + _floor(gdt)


def _zero_sum_tol(n, gdt):
    """The updates sum to zero up to round-off of their own size."""
    return 2.0 ** -22 if gdt == np.float32 else rel_tol(_ops(n))


def _floor(gdt):
    """Values below the smallest normal number of the output dtype may flush to zero."""
    return float(np.finfo(gdt).tiny) if gdt == np.float32 else 0.0


# ------------------------------------------------------------------------------ ranking models

def model_ranking(M, B, binary, xname="logits", tname="targets"):
    """Logits and targets; returns (exact logits, exact targets with ignored as -1) or None."""
    x = m_array(M, xname, B[xname])
    t = m_array(M, tname, B[tname], kinds="fiub", finite=False, exact64="float")
    if t is INVALID:
        return None
    if x is not INVALID and t.shape != x.shape:
        M.set_bad(tname, f"shape {t.shape} vs {x.shape}")
        return None
    tv = []
    for v in exact_values(t):
        if isinstance(v, float):  # nan or inf
            if math.isnan(v) or v > 0:
                M.set_bad(tname, f"{v!r}")
                return None
            if binary:
                M.set_bad(tname, "-inf")
                return None
            M.set_either(tname, "-inf (documented as any value < 0: ignored)")
            tv.append(Fraction(-1))
            continue
        if binary:
            if v not in (-1, 0, 1):
                M.set_bad(tname, f"{fl(v)!r} is not -1, 0 or 1")
                return None
            tv.append(v)
        else:
            if v > 1:
                M.set_bad(tname, f"{fl(v)!r} > 1")
                return None
            tv.append(Fraction(-1) if v < 0 else v)
    if any(v != -1 and v < 0 for v in exact_values(t) if not isinstance(v, float)):
        M.tags.add("negative targets other than -1")
    if x is INVALID:
        return None
    xv = exact_values(x)
    if np.asarray(B[xname]).ndim == 0 and not isinstance(B[xname], np.ndarray):
        M.tags.add("scalar logits")
    return xv, tv


def _sub_resolution(xv, tv, d):
    """delta within a few ulps of a positive's logit (x -+ delta is not exact in floats)."""
    if d is INVALID or d is None or d == 0:
        return False
    for v, t in zip(xv, tv):
        if t > 0 and abs(fl(v)) > 0 and d < 4 * math.ulp(fl(v)):
            return True
    return False


def _exact_ok(prob):
    xv, tv = prob
    P = sum(1 for t in tv if t > 0)
    return len(xv) * max(P, 1) <= EXACT_BUDGET


# ------------------------------------------------------------------------------ heaviside

def model_heaviside(M, B, env):
    u = m_array(M, "u", B["u"], finite=False)
    if u is not INVALID and u.dtype.kind == "f" and np.isnan(u).any():
        M.set_bad("u", "NaN")
    M.val["d"] = m_delta(M, B["delta"])
    M.val["u"] = u


def verify_heaviside(F, M, B, res, env, case):
    u = M.val["u"]
    d = M.val["d"]
    if u.ndim == 0:
        if not isinstance(res, float):
            F.add("wrong type", f"heaviside of a scalar returned {type(res).__name__}, "
                  "documented float")
            return
        got = np.asarray([res])
    else:
        if not isinstance(res, np.ndarray) or res.shape != u.shape or res.dtype != np.float64:
            F.add("wrong type", f"heaviside returned {type(res).__name__} "
                  f"{getattr(res, 'shape', '')} {getattr(res, 'dtype', '')}, "
                  f"documented float64 of shape {u.shape}")
            return
        got = res.reshape(-1)
    exact = []
    for v in exact_values(u):
        if isinstance(v, float):
            exact.append(Fraction(1) if v > 0 else Fraction(0))
        else:
            exact.append(ex.H(v, d))
    # (u + delta) / delta / 2: three roundings, relative (subnormal results: absolute)
    close(F, f"heaviside(delta={fl(d)!r})", got, exact, 4 * ULP, 4 * 2.0 ** -1074)


# ------------------------------------------------------------------------------ sort_scores

def model_sort_scores(M, B, env):
    x = m_array(M, "logits", B["logits"], finite=False, exact64=None)
    if x is not INVALID and x.dtype.kind == "f" and np.isnan(x).any():
        M.set_bad("logits", "NaN")
    M.val["x"] = x
    M.val["desc"] = m_flag(M, "descending", B["descending"])


def verify_sort_scores(F, M, B, res, env, case):
    x = M.val["x"]
    n = x.size
    if not isinstance(res, np.ndarray) or res.dtype != np.int64 or res.shape != (n,):
        F.add("wrong type", f"sort_scores returned {getattr(res, 'dtype', type(res))} "
              f"{getattr(res, 'shape', '')}, documented int64 ({n},)")
        return
    if sorted(res.tolist()) != list(range(n)):
        F.add("wrong value", "sort_scores: not a permutation")
        return
    keys = [v if not isinstance(v, float) else v for v in exact_values(x)]
    desc = M.val["desc"]
    expect = sorted(range(n), key=lambda i: (-keys[i] if desc else keys[i], i)) if all(
        not isinstance(k, float) for k in keys) else sorted(
        range(n), key=lambda i: ((-keys[i] if desc else keys[i]), i))
    if res.tolist() != expect:
        F.add("wrong value", f"sort_scores(descending={desc}): {res.tolist()} vs exact "
              f"stable order {expect}")


# ------------------------------------------------------------------------------ relaxed ranks

def _tag_resolution(M):
    if M.val.get("prob") is not None and M.val.get("d") is not INVALID and _sub_resolution(
            *M.val["prob"], M.val["d"]):
        M.tags.add("delta below the logits' resolution")


def model_relaxed(M, B, env):
    M.val["d"] = m_delta(M, B["delta"])
    M.val["prob"] = model_ranking(M, B, False)
    _tag_resolution(M)


def verify_relaxed(F, M, B, res, env, case):
    xv, tv = M.val["prob"]
    d = M.val["d"]
    if not (isinstance(res, tuple) and hasattr(res, "rank_pos")):
        F.add("wrong type", f"relaxed_ranks returned {type(res).__name__}")
        return
    P, rank_pos, fp, rank = ex.relaxed_ranks(xv, tv, d)
    if not (isinstance(res.pos_index, np.ndarray) and res.pos_index.dtype == np.int64):
        F.add("wrong dtype", f"relaxed_ranks.pos_index is {getattr(res.pos_index, 'dtype', '')}")
    if np.asarray(res.pos_index).tolist() != P:
        F.add("wrong value", f"relaxed_ranks.pos_index {np.asarray(res.pos_index).tolist()} "
              f"vs {P}")
        return
    for name, got, want in (("rank_pos", res.rank_pos, rank_pos), ("fp", res.fp, fp),
                            ("rank", res.rank, rank)):
        if np.asarray(got).dtype != np.float64:
            F.add("wrong dtype", f"relaxed_ranks.{name} is {np.asarray(got).dtype}")
        if finite(F, f"relaxed_ranks.{name}", got) and _exact_ok(M.val["prob"]):
            close(F, f"relaxed_ranks.{name} (delta={fl(d)!r})", got, want,
                  rel_tol(_ops(len(xv))), 0.0)


# ------------------------------------------------------------------------------ make_buckets

def model_buckets(M, B, env):
    M.val["d"] = m_delta(M, B["delta"])
    M.val["kind"] = m_choice(M, "kind", B["kind"], ("exact", "brs"))
    M.val["prob"] = model_ranking(M, B, False)
    _tag_resolution(M)


def verify_buckets(F, M, B, res, env, case):
    xv, tv = M.val["prob"]
    d = M.val["d"]
    kind = M.val["kind"]
    shape = np.asarray(B["logits"]).shape
    if not (isinstance(res, tuple) and hasattr(res, "edges")):
        F.add("wrong type", f"make_buckets returned {type(res).__name__}")
        return
    edges, bucket, counts, sums, means = res
    for name, arr, dt in (("edges", edges, np.float64), ("bucket", bucket, np.int64),
                          ("counts", counts, np.int64), ("sums", sums, np.float64),
                          ("means", means, np.float64)):
        if not isinstance(arr, np.ndarray) or arr.dtype != dt:
            F.add("wrong dtype", f"make_buckets.{name} is {getattr(arr, 'dtype', type(arr))}, "
                  f"documented {np.dtype(dt)}")
            return
    if bucket.shape != shape:
        F.add("wrong shape", f"make_buckets.bucket has shape {bucket.shape}, logits {shape}")
        return
    P = sum(1 for t in tv if t > 0)
    if kind == "brs":
        M_exp = 0 if P == 0 else (P + 1 if d > 0 else P)
    else:
        M_exp = 0 if P == 0 else (2 * P if d > 0 else P)
    if edges.shape != (M_exp,) or counts.shape != (M_exp + 1,) or sums.shape != (M_exp + 1,) \
            or means.shape != (M_exp + 1,):
        F.add("wrong shape", f"make_buckets(kind={kind}, delta={fl(d)!r}) with {P} positives: "
              f"edges {edges.shape}, counts {counts.shape} (expected {M_exp} edges)")
        return
    if edges.size and not np.all(edges[1:] >= edges[:-1]):
        F.add("wrong value", "make_buckets.edges not sorted")
    ids = bucket.reshape(-1)
    neg = [j for j, t in enumerate(tv) if t == 0]
    nonneg = [j for j in range(len(tv)) if j not in set(neg)]
    if nonneg and np.any(ids[nonneg] != -1):
        F.add("wrong value", "make_buckets: an entry that is not a negative has a bucket id")
    if kind == "exact" or P == 0:
        _, eids, ecounts, esums = ex.buckets(xv, tv, d)
        got = ids.tolist()
        if got != eids:
            j = next(i for i in range(len(got)) if got[i] != eids[i])
            F.add("wrong value", f"make_buckets(kind={kind!r}, delta={fl(d)!r}): entry {j} "
                  f"(logit {fl(xv[j])!r}) in bucket {got[j]}, exact {eids[j]}")
            return
    else:
        eids_exact = ex.brs_bucket_ids(xv, tv, d)
        cut_v = fl(min(x for x, t in zip(xv, tv) if t > 0) - d) if d > 0 else None
        cut_f = None if cut_v is None else (Fraction(cut_v) if math.isfinite(cut_v) else cut_v)
        eids_float = ex.brs_bucket_ids(
            xv, tv, d) if cut_f is None else [
            -1 if t != 0 else (0 if x < cut_f else sum(1 for v, tt in zip(xv, tv)
                                                         if tt > 0 and v <= x) + 1)
            for x, t in zip(xv, tv)]
        got = ids.tolist()
        if got != eids_exact and got != eids_float:
            j = next(i for i in range(len(got)) if got[i] != eids_exact[i])
            F.add("wrong value", f"make_buckets(kind='brs', delta={fl(d)!r}): entry {j} "
                  f"(logit {fl(xv[j])!r}) in run {got[j]}, expected {eids_exact[j]}")
            return
    ecounts = [0] * (M_exp + 1)
    esums = [Fraction(0)] * (M_exp + 1)
    members = [[] for _ in range(M_exp + 1)]
    for j in neg:
        b = int(ids[j])
        if not 0 <= b <= M_exp:
            F.add("wrong value", f"make_buckets: bucket id {b} out of range")
            return
        ecounts[b] += 1
        esums[b] += xv[j]
        members[b].append(xv[j])
    if counts.tolist() != ecounts:
        F.add("wrong value", f"make_buckets.counts {counts.tolist()} vs members {ecounts}")
    for b in range(M_exp + 1):
        mag = sum(abs(v) for v in members[b])
        if abs(esums[b]) >= Fraction(FMAX_MP) + 2**970:  # rounds to +-inf (documented)
            if not (np.isinf(sums[b]) and (sums[b] > 0) == (esums[b] > 0)):
                F.add("wrong value", f"make_buckets.sums[{b}] is {float(sums[b])!r}; the exact "
                      f"sum is beyond float64's range (documented +-inf)")
                return
        elif not finite(F, "make_buckets.sums", sums[b:b + 1]):
            return
        if math.isfinite(float(sums[b])) and abs(Fraction(float(sums[b])) - esums[b]) > \
                Fraction(1e-12) * mag + Fraction(1, 2**1074):
            F.add("wrong value", f"make_buckets(kind={kind!r}, delta={fl(d)!r}).sums[{b}] is "
                  f"{float(sums[b])!r}, exact {fl(esums[b])!r}")
            return
        if ecounts[b] == 0:
            if not np.isnan(means[b]):
                F.add("wrong value", f"make_buckets.means[{b}] of an empty bucket is "
                      f"{means[b]!r}, documented NaN")
            continue
        m = means[b]
        lo, hi = min(members[b]), max(members[b])
        if not np.isfinite(m) or Fraction(float(m)) < lo or Fraction(float(m)) > hi:
            F.add("wrong value", f"make_buckets.means[{b}] = {m!r} outside its members "
                  f"[{fl(lo)!r}, {fl(hi)!r}]")
            return
        exact_mean = esums[b] / ecounts[b]
        if abs(Fraction(float(m)) - exact_mean) > Fraction(1e-12) * max(abs(lo), abs(hi)) + \
                Fraction(5e-324):
            F.add("wrong value", f"make_buckets.means[{b}] = {m!r}, exact {fl(exact_mean)!r}")


# ------------------------------------------------------------------------------ AP metric

def model_ap_metric(M, B, env):
    prob = model_ranking(M, B, True, xname="scores", tname="labels")
    M.val["prob"] = prob
    M.val["interp"] = m_flag(M, "interpolate", B["interpolate"])
    if prob is not None and not any(t == 1 for t in prob[1]):
        M.set_bad("labels", "no positive (AP undefined, documented ValueError)")


def verify_ap_metric(F, M, B, res, env, case):
    xv, tv = M.val["prob"]
    if not isinstance(res, float):
        F.add("wrong type", f"average_precision returned {type(res).__name__}")
        return
    close(F, f"average_precision(interpolate={M.val['interp']})", [res],
          [ex.average_precision(xv, tv, M.val["interp"])], 1e-12, 1e-15)


# ------------------------------------------------------------------------------ RS loss

def model_rank_sort(M, B, env):
    M.val["d"] = m_delta(M, B["delta"])
    M.val["method"] = m_choice(M, "method", B["method"], ("bucketed", "dense", "brs"))
    M.val["cg"] = m_flag(M, "compute_grad", B["compute_grad"])
    M.val["prob"] = model_ranking(M, B, False)
    if M.val["prob"] is not None and M.val["d"] is not INVALID and _sub_resolution(
            *M.val["prob"], M.val["d"]):
        M.tags.add("delta below the logits' resolution")


def _loss_float(F, what, v, lo=0.0, hi=1.0):
    if not isinstance(v, float):
        F.add("wrong type", f"{what} is {type(v).__name__}, documented float")
        return False
    if not math.isfinite(v):
        F.add("NaN/inf from finite input", f"{what} is {v!r}")
        return False
    if lo is not None and not (lo - 1e-12 <= v and (hi is None or v <= hi + 1e-12)):
        F.add("loss out of range", f"{what} = {v!r} outside [{lo}, {hi}]")
    return True


def verify_rank_sort(F, M, B, res, env, case):
    xv, tv = M.val["prob"]
    d, method, cg = M.val["d"], M.val["method"], M.val["cg"]
    x = np.asarray(B["logits"])
    what = f"rank_sort_loss(method={method!r}, delta={fl(d)!r})"
    if not (isinstance(res, tuple) and hasattr(res, "ranking_loss")):
        F.add("wrong type", f"{what} returned {type(res).__name__}")
        return
    ok = _loss_float(F, what + ".ranking_loss", res.ranking_loss)
    ok &= _loss_float(F, what + ".sorting_loss", res.sorting_loss)
    grads_ok = False
    if not cg:
        if any(g is not None for g in res[2:]):
            F.add("wrong value", f"{what} with compute_grad=False returned gradients")
    else:
        grads_ok = all(_check_grad_array(F, f"{what}.{n}", getattr(res, n), x.shape, x.dtype)
                       for n in ("ranking_grad", "sorting_grad", "grad"))
    gdt = _grad_dtype(x)
    rtol, atol = _tol(gdt)
    if grads_ok:
        rg, sg, g = (np.asarray(a, dtype=np.float64).reshape(-1) for a in res[2:])
        if not np.allclose(g, rg + sg, rtol=rtol, atol=1e-300):
            F.add("wrong value", f"{what}: grad != ranking_grad + sorting_grad")
        ign = [j for j, t in enumerate(tv) if t < 0]
        neg = [j for j, t in enumerate(tv) if t == 0]
        if ign and (np.any(rg[ign] != 0) or np.any(sg[ign] != 0) or np.any(g[ign] != 0)):
            F.add("ignored entry has gradient", f"{what}: an ignored entry got a gradient")
        if neg and np.any(sg[neg] != 0):
            F.add("wrong value", f"{what}: a negative got a sorting gradient")
        if neg and np.any(rg[neg] < 0):
            F.add("wrong value", f"{what}: a negative got a negative ranking gradient")
        _sums_to_zero(F, what + ".ranking_grad", rg, _zero_sum_tol(len(tv), gdt))
        _sums_to_zero(F, what + ".sorting_grad", sg, _zero_sum_tol(len(tv), gdt),
                      res.sorting_loss)
    if not ok:
        return
    if _exact_ok((xv, tv)) and (method != "brs" or d == 0):
        rl, sl, erg, esg, amb, (mr, ms) = ex.rank_sort(xv, tv, d)
        r = rel_tol(_ops(len(tv)))
        close(F, what + ".ranking_loss", [res.ranking_loss], [rl], r, 0.0)
        close(F, what + ".sorting_loss", [res.sorting_loss], [sl], r, 0.0)
        if grads_ok and not amb:
            close(F, what + ".ranking_grad", res.ranking_grad, erg, 0.0,
                  _grad_tol(len(tv), gdt, mr))
            close(F, what + ".sorting_grad", res.sorting_grad, esg, 0.0,
                  _grad_tol(len(tv), gdt, ms))
    elif method == "bucketed":
        args, kw = case.build(env)
        kw = dict(kw)
        kw["method"] = "dense"
        dense = invoke(env["pkg"].rank_sort_loss, args, kw)
        if dense.ok:
            r = same_result(res, dense.value, rtol=1e-9 if gdt == np.float64 else 1e-6,
                            atol_rel=1e-12 if gdt == np.float64 else 1e-6)
            if r:
                F.add("bucketed != dense", f"{what}: {r}")


# ------------------------------------------------------------------------------ AP loss

def model_ap_loss(M, B, env):
    M.val["d"] = m_delta(M, B["delta"])
    M.val["interp"] = m_flag(M, "interpolate", B["interpolate"])
    if B["method"] == "brs":
        M.set_bad("method", "'brs' (rank_sort_loss only)")
    M.val["method"] = m_choice(M, "method", B["method"], ("bucketed", "dense"))
    M.val["cg"] = m_flag(M, "compute_grad", B["compute_grad"])
    M.val["prob"] = model_ranking(M, B, True)
    if M.val["prob"] is not None and M.val["d"] is not INVALID and _sub_resolution(
            *M.val["prob"], M.val["d"]):
        M.tags.add("delta below the logits' resolution")


def verify_ap_loss(F, M, B, res, env, case):
    xv, tv = M.val["prob"]
    d, method, cg, interp = M.val["d"], M.val["method"], M.val["cg"], M.val["interp"]
    x = np.asarray(B["logits"])
    what = f"ap_loss(method={method!r}, delta={fl(d)!r}, interpolate={interp})"
    if not (isinstance(res, tuple) and hasattr(res, "loss")):
        F.add("wrong type", f"{what} returned {type(res).__name__}")
        return
    ok = _loss_float(F, what + ".loss", res.loss)
    gdt = _grad_dtype(x)
    rtol, atol = _tol(gdt)
    grads_ok = False
    if not cg:
        if res.grad is not None:
            F.add("wrong value", f"{what} with compute_grad=False returned a gradient")
    else:
        grads_ok = _check_grad_array(F, what + ".grad", res.grad, x.shape, x.dtype)
    if grads_ok:
        g = np.asarray(res.grad, dtype=np.float64).reshape(-1)
        ign = [j for j, t in enumerate(tv) if t < 0]
        if ign and np.any(g[ign] != 0):
            F.add("ignored entry has gradient", f"{what}: an ignored entry got a gradient")
        _sums_to_zero(F, what + ".grad", g, _zero_sum_tol(len(tv), gdt))
    if not ok:
        return
    if _exact_ok((xv, tv)):
        loss, eg, mass = ex.ap_loss(xv, tv, d, interp)
        close(F, what + ".loss", [res.loss], [loss], rel_tol(_ops(len(tv))), 0.0)
        if grads_ok:
            close(F, what + ".grad", res.grad, eg, 0.0, _grad_tol(len(tv), gdt, mass))
    elif method == "bucketed":
        args, kw = case.build(env)
        kw = dict(kw)
        kw["method"] = "dense"
        dense = invoke(env["pkg"].ap_loss, args, kw)
        if dense.ok:
            r = same_result(res, dense.value, rtol=1e-9 if gdt == np.float64 else 1e-6,
                            atol_rel=1e-12 if gdt == np.float64 else 1e-6)
            if r:
                F.add("bucketed != dense", f"{what}: {r}")


# ------------------------------------------------------------------------------ GAP loss

def _is_counts(obj):
    return hasattr(obj, "num_classes") and hasattr(obj, "counts") and hasattr(obj, "weights")


def model_gap(M, B, env):
    M.val["d"] = m_delta(M, B["delta"])
    M.val["gamma"] = m_real(M, "gamma", B["gamma"], lo=0)
    M.val["method"] = m_choice(M, "method", B["method"], ("bucketed", "dense"))
    M.val["excl"] = m_flag(M, "exclude_foreground", B["exclude_foreground"])
    M.val["cg"] = m_flag(M, "compute_grad", B["compute_grad"])
    s = m_array(M, "scores", B["scores"], ndim=2)
    M.val["ok"] = False
    try:  # the shape is known even when the values are invalid: model the other arguments
        shape = np.shape(B["scores"])
    except Exception:  # noqa: BLE001
        shape = ()
    if len(shape) != 2:
        return
    n, C = shape
    if C < 1:
        M.set_bad("scores", "no class column")
        return
    y = m_array(M, "labels", B["labels"], kinds="iu", finite=False)
    if y is not INVALID:
        if y.ndim != 1 or y.shape[0] != n:
            M.set_bad("labels", f"shape {y.shape}, needs ({n},)")
        elif y.size and (int(y.min()) < -1 or int(y.max()) > C):
            M.set_bad("labels", f"value outside [-1, {C}]")
    w = B["weights"]
    if w is not None:
        wa = m_array(M, "weights", w, shape=(C,), exact64=None)
        if wa is not INVALID and wa.size and (wa < 0).any():
            M.set_bad("weights", "negative weight")
        elif wa is not INVALID and wa.size and s is not INVALID and s.dtype.kind == "f" and \
                s.dtype.itemsize <= 4 and float(np.max(wa)) > F32_MAX:
            M.set_bad("weights", "above float32's maximum for float16/float32 scores")
        M.val["wq"] = wa
    cnt = B["counts"]
    if _is_counts(cnt):
        if cnt.num_classes != C:
            M.set_bad("counts", f"ClassCounts of {cnt.num_classes} classes for {C} columns")
        M.val["counts"] = [Fraction(float(v)) for v in np.asarray(cnt.counts)]
    elif cnt is None:
        if w is None:
            M.set_bad("counts", "None without weights")
        M.val["counts"] = None
    else:
        ca = m_array(M, "counts", cnt, shape=(C,), exact64=None)
        if ca is not INVALID:
            if ca.size and (ca < 0).any():
                M.set_bad("counts", "negative count")
            M.val["counts"] = exact_values(ca)
    if M.bad or s is INVALID:
        return
    M.val.update(ok=True, x=exact_values(s), y=[int(v) for v in np.asarray(y).reshape(-1)],
                 n=n, C=C, s=s)
    yl = M.val["y"]
    flat_t = [Fraction(1) if 0 <= yl[e // C] < C and e % C == yl[e // C] else Fraction(0)
              for e in range(n * C)]
    M.val["prob"] = (M.val["x"], flat_t)
    _tag_resolution(M)


def verify_gap(F, M, B, res, env, case):
    if not M.val["ok"]:
        return
    d, method, excl, cg = M.val["d"], M.val["method"], M.val["excl"], M.val["cg"]
    n, C, s = M.val["n"], M.val["C"], M.val["s"]
    what = f"gap_loss(method={method!r}, delta={fl(d)!r}, exclude_foreground={excl})"
    if not (isinstance(res, tuple) and hasattr(res, "ranking_error")):
        F.add("wrong type", f"{what} returned {type(res).__name__}")
        return
    ok = _loss_float(F, what + ".loss", res.loss, lo=0.0, hi=None)
    ok &= _loss_float(F, what + ".ranking_error", res.ranking_error)
    w = res.weights
    if not isinstance(w, np.ndarray) or w.shape != (C,) or w.dtype != np.float64:
        F.add("wrong type", f"{what}.weights is {type(w).__name__} "
              f"{getattr(w, 'shape', '')} {getattr(w, 'dtype', '')}")
        return
    if not finite(F, what + ".weights", w):
        return
    if B["weights"] is not None:
        close(F, what + ".weights (given)", w, exact_values(M.val["wq"]), 0.0, 0.0)
    elif ex.mpmath is not None:
        ref = ex.class_weights(M.val["counts"], M.val["gamma"])
        close(F, f"{what}.weights from counts (gamma={fl(M.val['gamma'])!r})", w,
              [float(v) for v in ref], 1e-12, 1e-300)
    gdt = _grad_dtype(s)
    rtol, atol = _tol(gdt)
    grads_ok = False
    if not cg:
        if res.grad is not None:
            F.add("wrong value", f"{what} with compute_grad=False returned a gradient")
    else:
        grads_ok = _check_grad_array(F, what + ".grad", res.grad, (n, C), s.dtype)
    y = M.val["y"]
    if grads_ok:
        g = np.asarray(res.grad, dtype=np.float64)
        ign = [r for r in range(n) if y[r] < 0]
        if ign and np.any(g[ign] != 0):
            F.add("ignored entry has gradient", f"{what}: an ignored row got a gradient")
        _sums_to_zero(F, what + ".grad", g, _zero_sum_tol(n * C, gdt), res.loss)
    if not ok:
        return
    wq = [Fraction(float(v)) for v in w]
    if n * C * max(1, sum(1 for v in y if 0 <= v < C)) <= 4 * EXACT_BUDGET:
        loss, rerr, eg, amb, mass = ex.gap(M.val["x"], y, C, wq, d, excl)
        r = rel_tol(_ops(n * C) + C)
        close(F, what + ".loss", [res.loss], [loss], r, 0.0)
        close(F, what + ".ranking_error", [res.ranking_error], [rerr], r, 0.0)
        if grads_ok and not amb:
            close(F, what + ".grad", res.grad, eg, 0.0, _grad_tol(n * C, gdt, mass))


# ------------------------------------------------------------------------------ sampling

def _valid_rng(rng):
    """rankref and rankref_gpu take a NumPy, torch or CuPy generator (issue 21: they agree)."""
    if isinstance(rng, np.random.Generator):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(rng, torch.Generator)


def _iou_model(M, B):
    iou = m_array(M, "max_overlaps", B["max_overlaps"], ndim=1)
    if iou is not INVALID and iou.size and (np.any(iou < -1) or np.any(iou > 1)):
        M.set_bad("max_overlaps", "IoU outside [-1, 1]")
    M.val["iou"] = iou
    M.val["E"] = m_count(M, "num_expected", B["num_expected"], 0)
    M.val["bins"] = m_count(M, "num_bins", B["num_bins"], 1, huge_either=10**6)
    ft = m_real(M, "floor_thr", B["floor_thr"])
    if ft is not INVALID and not (ft == -1 or 0 <= ft < 1):
        M.set_bad("floor_thr", f"{fl(ft)!r} is neither -1 nor in [0, 1)")
    M.val["ft"] = ft
    M.val["ff"] = m_real(M, "floor_fraction", B["floor_fraction"], lo=0, hi=1)
    M.val["max_iou"] = m_real(M, "max_iou", B["max_iou"], allow_none=True)


def model_iou_sample(M, B, env):
    _iou_model(M, B)
    rng = B["rng"]
    if not _valid_rng(rng):
        M.set_bad("rng", f"{type(rng).__name__}")


def _check_indices(F, what, res, n, expect_len, pool=None):
    if not isinstance(res, np.ndarray) or res.dtype != np.int64 or res.ndim != 1:
        F.add("wrong type", f"{what} returned {getattr(res, 'dtype', type(res))} "
              f"{getattr(res, 'shape', '')}, documented 1-D int64")
        return False
    r = res.tolist()
    if r != sorted(set(r)) or (r and (r[0] < 0 or r[-1] >= n)):
        F.add("wrong value", f"{what}: indices {r} not sorted, unique and in [0, {n})")
        return False
    if pool is not None and not set(r) <= set(pool):
        F.add("wrong value", f"{what}: indices {sorted(set(r) - set(pool))} are not positives")
        return False
    if len(r) != expect_len:
        F.add("wrong count", f"{what}: {len(r)} indices, documented exactly {expect_len}")
        return False
    return True


def verify_iou_sample(F, M, B, res, env, case):
    n = M.val["iou"].size
    E = M.val["E"]
    what = "iou_balanced_neg_sample"
    if not _check_indices(F, what, res, n, min(E, n)):
        return
    args, kw = case.build(env)
    kw = {k: v for k, v in kw.items() if k != "rng"}
    prob = invoke(env["pkg"].iou_balanced_neg_probabilities, args, kw)
    if not prob.ok:
        F.add("sampler and probabilities disagree", f"{what} accepted the arguments but "
              f"iou_balanced_neg_probabilities raised {type(prob.exc).__name__}: {prob.exc}")
        return
    p = np.asarray(prob.value)
    if p.shape == (n,):
        chosen = np.zeros(n, dtype=bool)
        chosen[res] = True
        if np.any(chosen & (p <= 0)):
            F.add("sampler and probabilities disagree", f"{what} took index "
                  f"{int(np.flatnonzero(chosen & (p <= 0))[0])} whose probability is 0")
        if np.any(~chosen & (p >= 1)):
            F.add("sampler and probabilities disagree", f"{what} skipped index "
                  f"{int(np.flatnonzero(~chosen & (p >= 1))[0])} whose probability is 1")


def model_iou_prob(M, B, env):
    _iou_model(M, B)


def verify_iou_prob(F, M, B, res, env, case):
    n = M.val["iou"].size
    E = M.val["E"]
    what = "iou_balanced_neg_probabilities"
    if not isinstance(res, np.ndarray) or res.dtype != np.float64 or res.shape != (n,):
        F.add("wrong type", f"{what} returned {getattr(res, 'dtype', type(res))} "
              f"{getattr(res, 'shape', '')}")
        return
    if not finite(F, what, res):
        return
    if np.any(res < 0) or np.any(res > 1 + 1e-12):
        F.add("wrong value", f"{what}: probability outside [0, 1]: {res.tolist()}")
    if abs(math.fsum(res) - min(E, n)) > 1e-9 * max(1, min(E, n)):
        F.add("wrong value", f"{what}: probabilities sum to {math.fsum(res)!r}, documented "
              f"min(E, n) = {min(E, n)}")


def _gt_model(M, name, obj):
    g = m_array(M, name, obj, kinds="iu", finite=False, ndim=1, exact64=None)
    if g is not INVALID and g.size and int(g.max()) > 2**63 - 1:
        M.set_bad(name, "an id beyond int64")
        return INVALID
    return g


def model_instance(M, B, env):
    g = _gt_model(M, "assigned_gt_inds", B["assigned_gt_inds"])
    M.val["g"] = g
    M.val["E"] = m_count(M, "num_expected", B["num_expected"], 0)
    if not _valid_rng(B["rng"]):
        M.set_bad("rng", f"{type(B['rng']).__name__}")


def verify_instance(F, M, B, res, env, case):
    g = M.val["g"]
    pos = [i for i, v in enumerate(g.tolist()) if int(v) > 0]
    _check_indices(F, "instance_balanced_pos_sample", res, g.size, min(M.val["E"], len(pos)),
                   pos)


def model_class_bal(M, B, env):
    g = _gt_model(M, "assigned_gt_inds", B["assigned_gt_inds"])
    y = _gt_model(M, "labels", B["labels"])
    if g is not INVALID and y is not INVALID and y.shape != g.shape:
        M.set_bad("labels", f"shape {y.shape} vs {g.shape}")
    M.val["g"] = g
    M.val["E"] = m_count(M, "num_expected", B["num_expected"], 0)
    if not _valid_rng(B["rng"]):
        M.set_bad("rng", f"{type(B['rng']).__name__}")


def verify_class_bal(F, M, B, res, env, case):
    g = M.val["g"]
    pos = [i for i, v in enumerate(g.tolist()) if int(v) > 0]
    _check_indices(F, "class_balanced_pos_sample", res, g.size, min(M.val["E"], len(pos)), pos)


# ------------------------------------------------------------------------------ re-weighting

def _pos_param(M, name, v):
    return m_real(M, name, v, lo=0, lo_open=True)


def model_bl1(M, B, env):
    M.val["a"] = _pos_param(M, "alpha", B["alpha"])
    M.val["g"] = _pos_param(M, "gamma", B["gamma"])
    M.val["beta"] = _pos_param(M, "beta", B["beta"])
    p = m_array(M, "pred", B["pred"])
    t = m_array(M, "target", B["target"])
    M.val["p"], M.val["t"] = p, t
    if p is not INVALID and t is not INVALID and p.shape != t.shape:
        try:
            np.broadcast_shapes(p.shape, t.shape)
            M.set_either("target", "broadcastable shape (documented: broadcast shape)")
        except ValueError:
            M.set_bad("target", f"shape {t.shape} vs pred {p.shape}")
    _bl1_range(M, p, t)


def _bl1_range(M, p, t):
    """Beyond float64's range, the exact loss or gradient must be refused (naming pred)."""
    if M.bad or ex.mpmath is None or p.shape != t.shape or p.size > 16:
        return
    for pv, tv in zip(np.asarray(p).reshape(-1), np.asarray(t).reshape(-1)):
        rl, rg, _ = ex.balanced_l1(ex.fr(pv) - ex.fr(tv), M.val["a"], M.val["g"],
                                   M.val["beta"])
        top = max(abs(rl), abs(rg))
        if top > FMAX_MP * (1 + 1e-9):
            M.set_bad("pred", "its exact balanced L1 loss is beyond float64's range")
            return
        if top > FMAX_MP * (1 - 1e-9):
            M.set_either("pred", "its exact loss is at the edge of float64's range")


def verify_bl1(F, M, B, res, env, case):
    p, t = M.val["p"], M.val["t"]
    shape = np.broadcast_shapes(p.shape, t.shape)
    what = "balanced_l1_loss(alpha={}, gamma={}, beta={})".format(
        *(fl(M.val[k]) for k in ("a", "g", "beta")))
    if not (isinstance(res, tuple) and len(res) == 2):
        F.add("wrong type", f"{what} returned {type(res).__name__}")
        return
    loss, grad = res
    for name, arr in (("loss", loss), ("grad", grad)):
        if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != np.float64:
            F.add("wrong type", f"{what}.{name}: {type(arr).__name__} "
                  f"{getattr(arr, 'dtype', '')} {getattr(arr, 'shape', '')}, documented "
                  f"float64 ndarray {shape}")
            return
    ok = finite(F, what + ".loss", loss) & finite(F, what + ".grad", grad)
    if M.val["beta"] <= 1 and np.any(np.asarray(loss) < 0):  # beta > 1 has negative losses
        F.add("loss out of range", f"{what}: negative loss {float(np.min(loss))!r}")
    if not ok or ex.mpmath is None:
        return
    pv = np.broadcast_to(np.asarray(p, dtype=np.float64), shape).reshape(-1)
    tv = np.broadcast_to(np.asarray(t, dtype=np.float64), shape).reshape(-1)
    L = np.asarray(loss).reshape(-1)
    G = np.asarray(grad).reshape(-1)
    for i in range(pv.size):
        diff = ex.fr(pv[i]) - ex.fr(tv[i])
        rl, rg, scale = ex.balanced_l1(diff, M.val["a"], M.val["g"], M.val["beta"])
        for name, got, ref in (("loss", L[i], rl), ("grad", G[i], rg)):
            sc = float(scale) if name == "loss" else abs(float(rg))
            if abs(ex.mp(Fraction(float(got))) - ref) > 1e-9 * abs(ref) + 1e-13 * sc + 1e-305:
                F.add("wrong value", f"{what}.{name} at pred-target={fl(diff)!r}: "
                      f"{float(got)!r}, exact {float(ref)!r}")
                return


def model_lgr_weights(M, B, env):
    M.val["a"] = _pos_param(M, "alpha", B["alpha"])
    M.val["g"] = _pos_param(M, "gamma", B["gamma"])
    u = m_array(M, "base", B["base"])
    if u is not INVALID and u.size and (u < 0).any():
        M.set_bad("base", "negative")
    M.val["u"] = u
    if not M.bad and ex.mpmath is not None and u.size <= 16:
        for v in np.asarray(u).reshape(-1):
            ref = ex.lgr_weight(ex.fr(v), M.val["a"], M.val["g"])
            if ref > FMAX_MP * (1 + 1e-9):
                M.set_bad("base", "its exact weight is beyond float64's range")
                break
            if ref > FMAX_MP * (1 - 1e-9):
                M.set_either("base", "its exact weight is at the edge of float64's range")


def verify_lgr_weights(F, M, B, res, env, case):
    u = M.val["u"]
    what = "lgr_weights(alpha={}, gamma={})".format(fl(M.val["a"]), fl(M.val["g"]))
    if not isinstance(res, np.ndarray) or res.shape != u.shape or res.dtype != np.float64:
        F.add("wrong type", f"{what}: {getattr(res, 'dtype', type(res))} "
              f"{getattr(res, 'shape', '')}, expected float64 {u.shape}")
        return
    if not finite(F, what, res) or ex.mpmath is None:
        return
    for v, got in zip(np.asarray(u).reshape(-1), res.reshape(-1)):
        ref = ex.lgr_weight(ex.fr(v), M.val["a"], M.val["g"])
        if abs(ex.mp(Fraction(float(got))) - ref) > 1e-9 * abs(ref) + 1e-305:
            F.add("wrong value", f"{what} at base={float(v)!r}: {float(got)!r}, exact "
                  f"{float(ref)!r}")
            return


FMAX_MP = ex.FMAX
F32_MAX = float(np.finfo(np.float32).max)


def model_lgr_ce(M, B, env):
    M.val["a"] = _pos_param(M, "alpha", B["alpha"])
    M.val["g"] = _pos_param(M, "gamma", B["gamma"])
    z = m_array(M, "logits", B["logits"], ndim=2)
    M.val["z"] = z
    if z is INVALID:
        return
    n, K = z.shape
    if K < 1:
        M.set_bad("logits", "no class column")
        return
    y = m_array(M, "labels", B["labels"], kinds="iu", finite=False)
    if y is not INVALID:
        if y.ndim != 1 or y.shape[0] != n:
            M.set_bad("labels", f"shape {y.shape}, needs ({n},)")
        elif y.size and (int(y.min()) < -1 or int(y.max()) >= K):
            M.set_bad("labels", f"outside [0, {K}) and -1")
    M.val["y"] = y
    if M.bad or ex.mpmath is None or z.size > 24:
        return
    zz = np.asarray(z)
    with np.errstate(all="ignore"):
        spread = [bool(np.isinf(np.float64(r.max()) - np.float64(r.min()))) for r in zz]
    r_big = ex.mpmath.mpf(M.val["g"].numerator) / M.val["g"].denominator / (
        ex.mpmath.mpf(M.val["a"].numerator) / M.val["a"].denominator)
    if any(spread) and r_big > 709.78:
        M.set_either("logits", "a row spans beyond float64 while gamma/alpha > 709.78 "
                               "(documented refusal)")
    for r, lab in enumerate(int(v) for v in np.asarray(y).reshape(-1)):
        if lab < 0:
            continue
        rl, rg, _ = ex.lgr_cross_entropy_row([ex.fr(v) for v in zz[r]], lab, M.val["a"],
                                             M.val["g"])
        top = max([abs(rl)] + [abs(v) for v in rg])
        if top > FMAX_MP * (1 + 1e-9):
            M.set_bad("logits", "its exact loss is beyond float64's range")
            return
        if top > FMAX_MP * (1 - 1e-9):
            M.set_either("logits", "its exact loss is at the edge of float64's range")


def verify_lgr_ce(F, M, B, res, env, case):
    z, y = M.val["z"], M.val["y"]
    n, K = z.shape
    what = "lgr_cross_entropy(alpha={}, gamma={})".format(fl(M.val["a"]), fl(M.val["g"]))
    if not (isinstance(res, tuple) and len(res) == 2):
        F.add("wrong type", f"{what} returned {type(res).__name__}")
        return
    loss, grad = res
    if not (isinstance(loss, np.ndarray) and loss.shape == (n,) and loss.dtype == np.float64
            and isinstance(grad, np.ndarray) and grad.shape == (n, K)
            and grad.dtype == np.float64):
        F.add("wrong type", f"{what}: loss {getattr(loss, 'shape', '')}, grad "
              f"{getattr(grad, 'shape', '')}")
        return
    ok = finite(F, what + ".loss", loss) & finite(F, what + ".grad", grad)
    if np.any(loss < 0):
        F.add("loss out of range", f"{what}: negative loss")
    yl = [int(v) for v in np.asarray(y).reshape(-1)]
    for r in range(n):
        if yl[r] < 0 and (loss[r] != 0 or np.any(grad[r] != 0)):
            F.add("ignored entry has gradient", f"{what}: ignored row {r} has loss/gradient")
    if not ok or ex.mpmath is None:
        return
    for r in range(n):
        if yl[r] < 0:
            continue
        rl, rg, rho = ex.lgr_cross_entropy_row([ex.fr(v) for v in np.asarray(z)[r]], yl[r],
                                               M.val["a"], M.val["g"])
        if abs(ex.mp(Fraction(float(loss[r]))) - rl) > 1e-9 * abs(rl) + 1e-14 * rho + 1e-305:
            F.add("wrong value", f"{what}: loss of row {r} (logits {np.asarray(z)[r].tolist()},"
                  f" label {yl[r]}) is {float(loss[r])!r}, exact {float(rl)!r}")
            return
        for k in range(K):
            if abs(ex.mp(Fraction(float(grad[r, k]))) - rg[k]) > 1e-9 * abs(rg[k]) + \
                    1e-14 * rho + 1e-305:
                F.add("wrong value", f"{what}: grad[{r}, {k}] is {float(grad[r, k])!r}, "
                      f"exact {float(rg[k])!r}")
                return


def model_bcw(M, B, env):
    f = m_array(M, "frequencies", B["frequencies"], ndim=1, nonempty=True, exact64=None)
    if f is not INVALID and (f <= 0).any():
        M.set_bad("frequencies", "a frequency <= 0")
    M.val["f"] = f
    M.val["S"] = m_count(M, "num_buckets", B["num_buckets"], 2)
    if M.val["S"] is not INVALID and M.val["S"] > 2**53:
        M.set_bad("num_buckets", "above the documented maximum 2**53")
    M.val["a"] = m_real(M, "a", B["a"])
    M.val["t"] = _pos_param(M, "t", B["t"])


def verify_bcw(F, M, B, res, env, case):
    f = M.val["f"]
    what = "bucketed_class_weights(num_buckets={}, a={}, t={})".format(
        M.val["S"], fl(M.val["a"]), fl(M.val["t"]))
    if not isinstance(res, np.ndarray) or res.shape != f.shape or res.dtype != np.float64:
        F.add("wrong type", f"{what}: {getattr(res, 'dtype', type(res))} "
              f"{getattr(res, 'shape', '')}")
        return
    if not finite(F, what, res):
        return
    if np.any(res < 0) or np.any(res > 1):
        F.add("wrong value", f"{what}: weight outside [0, 1]")
    if ex.mpmath is None:
        return
    cands = ex.bucketed_class_weights([ex.fr(v) for v in f], M.val["S"], M.val["a"],
                                      M.val["t"])
    for i, (got, cs) in enumerate(zip(res, cands)):
        if not any(abs(ex.mp(Fraction(float(got))) - c) <= 1e-9 * abs(c) + 1e-300 for c in cs):
            F.add("wrong value", f"{what}: weight of class {i} (frequency {float(f[i])!r}) is "
                  f"{float(got)!r}, exact {[float(c) for c in cs]}")
            return


def model_crt(M, B, env):
    w = m_array(M, "class_weights", B["class_weights"], ndim=1, exact64=None)
    M.val["w"] = w
    if w is INVALID:
        return
    C = w.size
    y = m_array(M, "labels", B["labels"], kinds="iu", finite=False, ndim=1)
    if y is not INVALID and y.size and (int(y.min()) < -1 or int(y.max()) > C):
        M.set_bad("labels", f"outside [-1, {C}]")
    M.val["y"] = y


def verify_crt(F, M, B, res, env, case):
    w, y = M.val["w"], M.val["y"]
    C = w.size
    n = y.size
    if not isinstance(res, np.ndarray) or res.shape != (n, C + 1) or res.dtype != np.float64:
        F.add("wrong type", f"class_reweighted_targets: {getattr(res, 'dtype', type(res))} "
              f"{getattr(res, 'shape', '')}, documented float64 ({n}, {C + 1})")
        return
    exp = np.zeros((n, C + 1))
    for r, lab in enumerate(int(v) for v in y.reshape(-1)):
        if lab < 0:
            continue
        exp[r, :C] = np.asarray(w, dtype=np.float64)
        exp[r, C] = 1.0
        if lab < C:
            exp[r, lab] = 1.0
    if not np.array_equal(res, exp):
        F.add("wrong value", f"class_reweighted_targets: {res.tolist()} vs {exp.tolist()}")


# ------------------------------------------------------------------------------ sampling-free

def model_optimal_bias(M, B, env):
    nf = m_real(M, "num_foreground", B["num_foreground"], lo=0, longdouble_ok=True)
    n = m_real(M, "num_total", B["num_total"], lo=0, longdouble_ok=True)
    C = m_count(M, "num_classes", B["num_classes"], 1)
    for name, v in (("num_foreground", B["num_foreground"]), ("num_total", B["num_total"])):
        if isinstance(v, np.floating) and not isinstance(v, float):
            M.set_either(name, "a NumPy float that is not a Python float")
    if INVALID in (nf, n, C):
        return
    if not (0 < nf < n * C):
        for name in ("num_foreground", "num_total", "num_classes"):
            M.set_bad(name, "prior outside (0, 1)")
    M.val.update(nf=nf, n=n, C=C)


def verify_optimal_bias(F, M, B, res, env, case):
    if not isinstance(res, float):
        F.add("wrong type", f"optimal_bias returned {type(res).__name__}")
        return
    what = f"optimal_bias({fl(M.val['nf'])!r}, {fl(M.val['n'])!r}, {M.val['C']})"
    if not math.isfinite(res):
        F.add("NaN/inf from finite input", f"{what} = {res!r}")
        return
    if ex.mpmath is not None:
        ref = ex.optimal_bias(M.val["nf"], M.val["n"], M.val["C"])
        if abs(ex.mp(Fraction(res)) - ref) > 1e-12 * abs(ref) + 1e-15:
            F.add("wrong value", f"{what} = {res!r}, exact {float(ref)!r}")


def model_foreground_prior(M, B, env):
    lb = B["label_batches"]
    if not isinstance(lb, Iterable) or isinstance(lb, (str, bytes)):
        M.set_bad("label_batches", f"{type(lb).__name__} is not an iterable of arrays")
        return
    try:
        batches = list(case_batches(lb))
    except Exception:  # noqa: BLE001
        M.set_bad("label_batches", "not iterable")
        return
    nf = n = 0
    for b in batches:
        a = m_array(M, "label_batches", b, kinds="iu", finite=False, exact64=None)
        if a is INVALID:
            return
        if a.size and int(a.min()) < -1:
            M.set_bad("label_batches", "label < -1")
            return
        vals = [int(v) for v in a.reshape(-1)]
        nf += sum(1 for v in vals if v >= 1)
        n += sum(1 for v in vals if v >= 0)
    M.val.update(nf=nf, n=n)


def case_batches(lb):
    if isinstance(lb, np.ndarray) and lb.ndim == 0:
        raise TypeError("0-d")
    return list(lb)


def verify_foreground_prior(F, M, B, res, env, case):
    if not (isinstance(res, tuple) and hasattr(res, "num_foreground")):
        F.add("wrong type", f"foreground_prior returned {type(res).__name__}")
        return
    if not (type(res.num_foreground) is int and type(res.num_total) is int):
        F.add("wrong type", "foreground_prior fields are not Python ints")
    if (res.num_foreground, res.num_total) != (M.val["nf"], M.val["n"]):
        F.add("wrong value", f"foreground_prior = {tuple(res)}, exact "
              f"({M.val['nf']}, {M.val['n']})")


def model_guided(M, B, env):
    vals = []
    for name in ("loc_loss", "cls_loss"):
        v = B[name]
        if isinstance(v, (list, tuple)) or (isinstance(v, np.ndarray) and v.ndim > 0):
            a = m_array(M, name, v, exact64=None, beyond_range_ok=True)  # exact (Fractions)
            if a is INVALID:
                return
            if a.size != 1:
                M.set_bad(name, f"{a.size} values")
                return
            M.set_either(name, "a one-element array")
            v = a.reshape(-1)[0]
        q = m_real(M, name, v, lo=0, longdouble_ok=True)
        if q is INVALID:
            return
        vals.append(q)
    M.val["v"] = vals
    if len(vals) == 2 and vals[1] != 0 and vals[0] / vals[1] > FMAX_MP:
        M.set_bad("cls_loss", "loc_loss / cls_loss is beyond float64's range")


def verify_guided(F, M, B, res, env, case):
    if not isinstance(res, float):
        F.add("wrong type", f"guided_scale returned {type(res).__name__}")
        return
    loc, cls = M.val["v"]
    exact = Fraction(1) if cls == 0 else loc / cls
    if not math.isfinite(res):
        F.add("NaN/inf from finite input", f"guided_scale({fl(loc)!r}, {fl(cls)!r}) = {res!r}"
              + (" (exact beyond the float range: refuse it)" if abs(exact) > FMAX_MP
                 else f" (exact {fl(exact)!r})"))
        return
    close(F, f"guided_scale({fl(loc)!r}, {fl(cls)!r})", [res], [exact], 1e-15, 0.0)


# ------------------------------------------------------------------------------ ClassCounts

def _counts_float(shadow):
    return np.array([fl(q) for q in shadow], dtype=np.float64)


def check_class_counts(env, case, F):
    pkg = env["pkg"]
    nc = case.args[0].build(env)
    M = Model()
    C = m_count(M, "num_classes", nc, 1)
    if C is not INVALID and C > 2**24:
        M.set_bad("num_classes", "above the documented maximum 2**24")
    out = invoke(pkg.ClassCounts, [nc], {}, ["num_classes"])
    F.count("ClassCounts()")
    if not judge(F, M, out, ["num_classes"], "ClassCounts()"):
        return
    cc = out.value
    if C > 10**6:
        return  # accepted a huge number of classes: nothing more to check cheaply
    if not (isinstance(cc.counts, np.ndarray) and cc.counts.dtype == np.float64
            and cc.counts.shape == (C,) and not cc.counts.any()):
        F.add("wrong value", f"ClassCounts({C}).counts is {cc.counts!r}")
        return
    shadow = [Fraction(0)] * C
    for op, specs in case.meta["steps"]:
        before = (cc.num_classes, np.array(cc.counts, copy=True))
        args = [s.build(env) for s in specs]
        M = Model()
        what = f"ClassCounts.{op}"
        F.count(what)
        if op == "update":
            y = m_array(M, "labels", args[0], kinds="iu", finite=False)
            if y is not INVALID and y.size and (int(y.min()) < -1 or int(y.max()) > C):
                M.set_bad("labels", f"outside [-1, {C}]")
            elif y is not INVALID:
                hist = np.bincount([int(v) for v in y.reshape(-1) if 0 <= int(v) < C],
                                   minlength=C)
                if any(shadow[k] + int(hist[k]) > 2**53 for k in range(C)):
                    M.set_bad("labels", "a count would exceed 2**53")
            out = invoke(cc.update, args, {}, ["labels"])
            if judge(F, M, out, ["labels"], what):
                if out.value is not cc:
                    F.add("wrong value", f"{what} did not return self")
                for v in np.asarray(y).reshape(-1):
                    if 0 <= int(v) < C:
                        shadow[int(v)] += 1
        elif op == "weights":
            g = m_real(M, "gamma", args[0], lo=0) if args else Fraction(1)
            out = invoke(cc.weights, args, {}, ["gamma"])
            if judge(F, M, out, ["gamma"], what):
                w = out.value
                if not isinstance(w, np.ndarray) or w.shape != (C,) or w.dtype != np.float64:
                    F.add("wrong type", f"{what} returned {type(w).__name__}")
                elif finite(F, f"{what}(gamma={fl(g)!r})", w) and ex.mpmath is not None:
                    ref = ex.class_weights([Fraction(float(v)) for v in cc.counts], g)
                    close(F, f"{what}(gamma={fl(g)!r}) for counts {cc.counts.tolist()}", w,
                          [float(v) for v in ref], 1e-12, 1e-300)
        elif op in ("merge", "add"):
            other = args[0]
            if not _is_counts(other):
                M.set_bad("other", f"{type(other).__name__} is not a ClassCounts")
            elif other.num_classes != C:
                M.set_bad("other", f"{other.num_classes} classes vs {C}")
            elif any(abs(a + Fraction(float(b))) > Fraction(FMAX_MP) for a, b in
                     zip(shadow, np.asarray(other.counts, dtype=np.float64))):
                M.set_either("other", "a sum beyond float64's range (refused, or rounded "
                                      "to the largest float)")
                with np.errstate(over="ignore"):
                    if not np.isfinite(np.asarray(cc.counts) + np.asarray(other.counts)).all():
                        M.set_bad("other", "a sum beyond float64's range")
            other_before = np.array(other.counts, copy=True) if _is_counts(other) else None
            fn = cc.merge if op == "merge" else (lambda o: cc + o)
            out = invoke(fn, [other], {}, ["other"])
            name = "merge" if op == "merge" else "__add__"
            if judge(F, M, out, ["other", "ClassCounts"], f"ClassCounts.{name}"):
                res = out.value
                if type(res) is not type(cc):
                    F.add("wrong type", f"{type(cc).__module__}.ClassCounts.{name} returned a "
                          f"{type(res).__module__}.{type(res).__name__}")
                exact = [a + Fraction(float(b)) for a, b in zip(shadow, other.counts)]
                if finite(F, f"ClassCounts.{name} of counts {cc.counts.tolist()} and "
                             f"{np.asarray(other.counts).tolist()}", res.counts):
                    close(F, f"ClassCounts.{name}", res.counts, exact, 1e-15, 0.0)
                if res is cc or res is other:
                    F.add("wrong value", f"ClassCounts.{name} returned an operand")
            if other_before is not None and not np.array_equal(other.counts, other_before):
                F.add("state changed", f"ClassCounts.{op} modified its argument")
        elif op == "state_dict":
            out = invoke(cc.state_dict, [], {})
            if judge(F, M, out, [], what):
                sd = out.value
                if not isinstance(sd, dict) or set(sd) != {"num_classes", "counts"} or \
                        sd["num_classes"] != C or not np.array_equal(sd["counts"], cc.counts):
                    F.add("wrong value", f"{what} = {sd!r}")
                elif isinstance(sd["counts"], np.ndarray) and sd["counts"].flags.writeable:
                    sd["counts"][...] = 12345.0
                    if np.any(cc.counts == 12345.0):
                        F.add("state changed", f"{what} returned the live counts array")
        elif op == "load_state_dict":
            st = args[0]
            new = None
            if not isinstance(st, Mapping):
                M.set_bad("state", f"{type(st).__name__} is not a mapping")
            elif "counts" not in st or "num_classes" not in st:
                M.set_bad("state", f"keys {sorted(st)}")
            else:
                ncs = st["num_classes"]
                if not is_int(ncs) or int(ncs) != C:
                    M.set_bad("num_classes", f"{ncs!r} for a ClassCounts({C})")
                ca = m_array(M, "counts", st["counts"], shape=(C,), exact64=None)
                if ca is not INVALID:
                    if ca.size and (ca < 0).any():
                        M.set_bad("counts", "negative")
                    new = exact_values(ca)
                if M.bad:  # a bad key: a message about the state names it well enough
                    M.set_either("state", "holds the bad key")
                if set(st) - {"num_classes", "counts"}:
                    extra = sorted(set(st) - {"num_classes", "counts"})
                    M.set_either("state", f"extra keys {extra}")
            out = invoke(cc.load_state_dict, [st], {}, ["state"])
            if judge(F, M, out, ["state", "counts", "num_classes"], what) and new is not None:
                shadow = list(new)
        elif op == "reset":
            out = invoke(cc.reset, [], {})
            if judge(F, M, out, [], what):
                shadow = [Fraction(0)] * C
        else:
            raise AssertionError(op)
        if out.ok and M.bad:  # an invalid input was accepted (reported): follow the object
            shadow = [Fraction(float(v)) for v in np.asarray(cc.counts, dtype=np.float64)]
            if cc.num_classes != C:
                return
            continue
        if not out.ok:
            if cc.num_classes != before[0] or not np.array_equal(cc.counts, before[1],
                                                                 equal_nan=True):
                F.add("state changed by a raising call",
                      f"{what} raised {type(out.exc).__name__} but changed the counts from "
                      f"{before[1].tolist()} to {np.asarray(cc.counts).tolist()}")
            shadow = [Fraction(float(v)) for v in before[1]]
            cc.counts = before[1]
            continue
        if cc.num_classes != C or not isinstance(cc.counts, np.ndarray) or \
                cc.counts.shape != (C,) or cc.counts.dtype != np.float64:
            F.add("wrong value", f"after {what}: num_classes {cc.num_classes}, counts "
                  f"{cc.counts!r}")
            return
        if not finite(F, f"counts after {what}", cc.counts):
            return
        if not close(F, f"counts after {what}", cc.counts, shadow, 1e-15, 0.0):
            return
        shadow = [Fraction(float(v)) for v in cc.counts]


def _class_counts_trace(env, case):
    """The outcome of every step (for rankref_gpu vs rankref and determinism)."""
    pkg = env["pkg"]
    trace = []
    try:
        cc = pkg.ClassCounts(case.args[0].build(env))
    except Exception as e:  # noqa: BLE001
        return [("init", type(e).__name__)]
    for op, specs in case.meta["steps"]:
        args = [s.build(env) for s in specs]
        try:
            if op == "add":
                r = cc + args[0]
            else:
                r = getattr(cc, op)(*args)
            if _is_counts(r):
                r = np.array(r.counts)
            elif isinstance(r, dict):
                r = (r.get("num_classes"), np.asarray(r.get("counts")))
            trace.append((op, r, np.array(cc.counts)))
        except Exception as e:  # noqa: BLE001
            trace.append((op, type(e).__name__, np.array(cc.counts)))
    return trace


# ------------------------------------------------------------------------------ driver

FUNCS = {
    "heaviside": (model_heaviside, verify_heaviside),
    "sort_scores": (model_sort_scores, verify_sort_scores),
    "relaxed_ranks": (model_relaxed, verify_relaxed),
    "make_buckets": (model_buckets, verify_buckets),
    "average_precision": (model_ap_metric, verify_ap_metric),
    "rank_sort_loss": (model_rank_sort, verify_rank_sort),
    "ap_loss": (model_ap_loss, verify_ap_loss),
    "gap_loss": (model_gap, verify_gap),
    "iou_balanced_neg_sample": (model_iou_sample, verify_iou_sample),
    "iou_balanced_neg_probabilities": (model_iou_prob, verify_iou_prob),
    "instance_balanced_pos_sample": (model_instance, verify_instance),
    "class_balanced_pos_sample": (model_class_bal, verify_class_bal),
    "bucketed_class_weights": (model_bcw, verify_bcw),
    "class_reweighted_targets": (model_crt, verify_crt),
    "balanced_l1_loss": (model_bl1, verify_bl1),
    "lgr_weights": (model_lgr_weights, verify_lgr_weights),
    "lgr_cross_entropy": (model_lgr_ce, verify_lgr_ce),
    "optimal_bias": (model_optimal_bias, verify_optimal_bias),
    "foreground_prior": (model_foreground_prior, verify_foreground_prior),
    "guided_scale": (model_guided, verify_guided),
}


def _compare_outcomes(F, kind, a, b, rtol, what):
    if a.ok != b.ok:
        ea = f"{type(a.exc).__name__}: {str(a.exc)[:150]}" if not a.ok else "a result"
        eb = f"{type(b.exc).__name__}: {str(b.exc)[:150]}" if not b.ok else "a result"
        F.add(kind, f"{what}: {ea} vs {eb}")
        return
    if not a.ok:
        if type(a.exc) is not type(b.exc):
            F.add(kind, f"{what}: {type(a.exc).__name__} vs {type(b.exc).__name__}")
        return
    r = same_result(a.value, b.value, rtol=rtol)
    if r:
        F.add(kind, f"{what}: {r}")


# messages that must not say something false about the argument (checked on refusals)
MISLEADING = {
    "lgr_cross_entropy": [("background", "there is no background class in lgr_cross_entropy: "
                                         "labels are in [0, K) or -1"),
                          ("of scores", "lgr_cross_entropy has no scores (its rows are logits)")],
    "class_reweighted_targets": [("scores", "class_reweighted_targets has no scores"),
                                 ("shape (0,)", "an expected shape not from the user's inputs")],
    "make_buckets": [("method", "make_buckets' argument is kind, not method")],
}


def check(pkg_name, case):
    """Run one example; returns (findings, tags, calls)."""
    F = Findings()
    env = env_for(pkg_name)
    if case.func == "ClassCounts":
        check_class_counts(env, case, F)
        t1 = _class_counts_trace(env, case)
        t2 = _class_counts_trace(env, case)
        r = same_result(tuple(map(tuple, t1)), tuple(map(tuple, t2)), rtol=0)
        if r:
            F.add("not deterministic", f"ClassCounts steps: {r}")
        if pkg_name == "rankref_gpu":
            r = same_result(tuple(map(tuple, t1)), tuple(map(tuple, _class_counts_trace(
                env_for("rankref"), case))), rtol=1e-12)
            if r:
                F.add("rankref_gpu != rankref", f"ClassCounts steps: {r}")
        return F
    model, verify = FUNCS[case.func]
    fn = getattr(env["pkg"], case.func)
    sig = inspect.signature(fn)
    params = list(sig.parameters) + ALIASES.get(case.func, [])
    margs, mkw = case.build(env)
    M = Model()
    try:
        bound = sig.bind(*margs, **mkw)
        bound.apply_defaults()
        B = {k: host_view(v) for k, v in bound.arguments.items()}
    except TypeError:
        B = None
    if B is not None:
        model(M, B, env)
    args, kw = case.build(env)
    labels = list(B) if B else None
    out = invoke(fn, args, kw, labels)
    F.count(case.func)
    F.tags |= M.tags
    if B is None:
        if out.ok:
            F.add("invalid input accepted", f"{case.func}: arguments do not bind")
        return F
    if judge(F, M, out, params, case.func):
        verify(F, M, B, out.value, env, case)
    for text, why in MISLEADING.get(case.func, ()) if not out.ok else ():
        if text in str(out.exc):
            F.add("misleading message", f"{case.func}: {why}; got: {str(out.exc)[:200]}")
    args2, kw2 = case.build(env)
    _compare_outcomes(F, "not deterministic", out, invoke(fn, args2, kw2), 0, case.func)
    if pkg_name == "rankref_gpu":
        renv = env_for("rankref")
        args3, kw3 = case.build(renv)
        ref = invoke(getattr(renv["pkg"], case.func), args3, kw3)
        _compare_outcomes(F, "rankref_gpu != rankref", out, ref, 1e-9, case.func)
    return F
