"""The judging machinery of the fuzz suite: calling, classifying outcomes, comparing results.

Every example ends in exactly one of two acceptable ways:

* a clean result, which the function's checker then verifies (finite outputs, invariants,
  exact values, rankref_gpu == rankref, determinism, inputs untouched, no warnings);
* a ValueError or TypeError whose message names the offending argument.

A :class:`Model` of the arguments says which arguments are invalid (the call must refuse
naming one of them: ``bad``), which may be refused (``either``: e.g. a bool where a number is
documented, or a value beyond the float range), and the interpretation of the rest.
"""
import copy
import math
import numbers
import re
import warnings
from fractions import Fraction

import numpy as np

import _fuzz_exact as ex
from _fuzz_specs import host_view

INVALID = object()
FMAX = ex.FMAX
TINY_DELTA = Fraction(1, 2**1000)
HUGE_DELTA = Fraction(2**1000)


class Findings:
    """Collects the findings of one example: ``(kind, detail)`` pairs."""

    def __init__(self):
        self.items = []
        self.tags = set()
        self.calls = {}

    def add(self, kind, detail):
        detail = str(detail)
        if len(detail) > 600:
            detail = detail[:600] + "..."
        if (kind, detail) not in self.items:
            self.items.append((kind, detail))

    def count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1


class Model:
    """What the arguments allow: ``bad[name]`` (must refuse), ``either[name]`` (may refuse),
    ``val[name]`` (interpreted values), ``tags`` (features for classifying findings)."""

    def __init__(self):
        self.bad = {}
        self.either = {}
        self.val = {}
        self.tags = set()

    def set_bad(self, name, why):
        self.bad.setdefault(name, _short(why))

    def set_either(self, name, why):
        self.either.setdefault(name, _short(why))

    @property
    def valid(self):
        return not self.bad


def _short(text, n=100):
    text = str(text)
    return text if len(text) <= n else text[: n - 3] + "..."


# ------------------------------------------------------------------------------ names

# what a message may call an argument besides its name
ALIAS_OF = {
    "other": ["ClassCounts"],
    "label_batches": ["label batch"],
    "conv_or_linear": ["module", "bias"],
    "inputs": ["levels"],
    # rankref.torch modules: forward(pred, target) is documented as the logits and targets
    # (labels for GAPLoss, AP's mmdetection call); LGR's cls_score / label are its logits
    "logits": ["pred", "cls_score"],
    "targets": ["target"],
    "scores": ["pred"],
    "labels": ["target", "label"],
    "pred": ["logits", "scores"],
    "target": ["targets", "labels"],
    "cls_score": ["logits"],
    "label": ["labels"],
}
# documented warnings (not findings)
EXPECTED_WARNINGS = ("no torch.distributed process group",)


def mentions(msg, name):
    variants = {name, name.replace("_", " ")} | set(ALIAS_OF.get(name, ()))
    if name.endswith("es"):
        variants.add(name[:-2].replace("_", " "))
    for v in variants:
        if re.search(r"(?<![A-Za-z0-9])" + re.escape(v) + r"(?![A-Za-z0-9])", msg):
            return True
    return False


def names_in(msg, names):
    return [n for n in names if mentions(msg, n)]


# ------------------------------------------------------------------------------ calling

def _snapshot(obj, depth=0):
    if depth > 3:
        return None
    if isinstance(obj, np.ndarray):
        return ("nd", obj.copy(), obj.dtype, obj.shape, obj.flags.writeable)
    if type(obj).__module__.startswith("torch") and hasattr(obj, "clone") and \
            hasattr(obj, "device"):
        if obj.device.type == "meta":
            return ("meta", tuple(obj.shape), obj.dtype)
        return ("tensor", obj.detach().clone(), obj.dtype, tuple(obj.shape))
    if isinstance(obj, (list, tuple)):
        return ("seq", type(obj), [_snapshot(v, depth + 1) for v in obj])
    if isinstance(obj, dict):
        return ("dict", {k: _snapshot(v, depth + 1) for k, v in obj.items()})
    if hasattr(obj, "counts") and hasattr(obj, "num_classes"):
        return ("counts", obj.num_classes, np.array(obj.counts, copy=True))
    return ("other", None)


def _same_snapshot(a, b):
    if a is None or b is None:
        return True
    if a[0] != b[0]:
        return False
    kind = a[0]
    if kind == "nd":
        return a[2] == b[2] and a[3] == b[3] and a[4] == b[4] and _bitwise_equal(a[1], b[1])
    if kind == "tensor":
        import torch
        x, y = a[1], b[1]
        if x.is_complex() and y.is_complex():
            x, y = torch.view_as_real(x), torch.view_as_real(y)
        return a[2] == b[2] and a[3] == b[3] and bool(torch.equal(x, y) or (
            x.is_floating_point() and torch.equal(torch.nan_to_num(x, nan=7.0),
                                                  torch.nan_to_num(y, nan=7.0))))
    if kind == "seq":
        return a[1] == b[1] and len(a[2]) == len(b[2]) and all(
            _same_snapshot(x, y) for x, y in zip(a[2], b[2]))
    if kind == "dict":
        return a[1].keys() == b[1].keys() and all(_same_snapshot(a[1][k], b[1][k])
                                                  for k in a[1])
    if kind == "counts":
        return a[1] == b[1] and _bitwise_equal(a[2], b[2])
    return True


def _bitwise_equal(a, b):
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True) and np.array_equal(
            np.signbit(a.real), np.signbit(b.real)))
    if a.dtype.kind == "O":
        return all(x is y or x == y for x, y in zip(a.reshape(-1), b.reshape(-1)))
    return bool(np.array_equal(a, b))


class Outcome:
    def __init__(self, value=None, exc=None, warns=(), modified=()):
        self.value = value
        self.exc = exc
        self.warns = list(warns)
        self.modified = list(modified)

    @property
    def ok(self):
        return self.exc is None


def invoke(fn, args, kwargs, labels=None):
    """Call ``fn`` recording the result or exception, the warnings and whether any argument
    was modified.  ``labels`` names the arguments for the report."""
    snaps = [_snapshot(a) for a in args]
    ksnaps = {k: _snapshot(v) for k, v in kwargs.items()}
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            with np.errstate(all="warn", under="ignore"):  # NumPy's defaults
                value = fn(*args, **kwargs)
            exc = None
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001 - every exception is judged
            value, exc = None, e
    modified = []
    for i, (a, s) in enumerate(zip(args, snaps)):
        if not _same_snapshot(s, _snapshot(a)):
            modified.append(labels[i] if labels and i < len(labels) else f"arg {i}")
    for k, s in ksnaps.items():
        if not _same_snapshot(s, _snapshot(kwargs[k])):
            modified.append(k)
    warns = [f"{w.category.__name__}: {w.message}" for w in rec
             if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))
             and not any(e in str(w.message) for e in EXPECTED_WARNINGS)]
    return Outcome(value, exc, warns, modified)


def judge(F, M, out, params, func, allow_skip=()):
    """Classify an outcome against the model.  Returns True when the call succeeded and the
    result should be verified."""
    for name in out.modified:
        F.add("input modified", f"{func}: argument {name} was modified by the call")
    if out.exc is not None:
        e = out.exc
        msg = str(e)
        if isinstance(e, TypeError) and "unexpected keyword argument" in msg and any(
                f"'{k}'" in msg for k in allow_skip):
            return False
        if not isinstance(e, (ValueError, TypeError)):
            F.add("wrong exception", f"{func}: {type(e).__name__}: {_norm(msg)}"
                  + (f" [invalid: {_why(M)}]" if M.bad else "")
                  + (f" [may refuse: {_why_either(M)}]" if M.either else ""))
            return False
        if M.bad:
            # any argument that is invalid, or that may be refused, is a fine reason
            if names_in(msg, list(M.bad) + list(M.either)):
                return False
            others = names_in(msg, params)
            if others:
                F.add("message names another argument",
                      f"{func}: refused {_why(M)} with {type(e).__name__} naming "
                      f"{others}: {_norm(msg)}")
            else:
                F.add("message names no argument",
                      f"{func}: {type(e).__name__} for {_why(M)}: {_norm(msg)}")
            return False
        if M.either and names_in(msg, list(M.either)):
            return False
        if not names_in(msg, params):
            F.add("message names no argument",
                  f"{func}: {type(e).__name__} on valid input: {_norm(msg)}")
        else:
            F.add("valid input refused", f"{func}: {type(e).__name__}: {_norm(msg)}"
                  + (f" [allowed: {_why_either(M)}]" if M.either else ""))
        return False
    if M.bad:
        F.add("invalid input accepted", f"{func}: accepted {_why(M)}")
    for w in out.warns:
        kind = "imaginary part discarded" if "ComplexWarning" in w else "warning leaked"
        F.add(kind, f"{func}: {_norm(w)}")
    return not M.bad


def _why(M):
    return "; ".join(f"{k} ({v})" for k, v in M.bad.items())


def _why_either(M):
    return "; ".join(f"{k} ({v})" for k, v in M.either.items())


def _norm(msg):
    msg = str(msg).replace("\n", " ")
    return msg[:300]


# ------------------------------------------------------------------------------ argument models

def is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(
        v, (bool, np.bool_, np.timedelta64, np.datetime64))


def m_array(M, name, obj, kinds="fiu", finite=True, ndim=None, shape=None, nonempty=False,
            exact64="all", beyond_range_ok=False):
    """Interpret an array_like argument; returns the ndarray or INVALID.

    ``exact64``: the function computes in float64 and must refuse entries float64 cannot hold
    exactly ("all": int64/uint64 beyond 2**53 and long doubles; "float": long doubles only;
    None: the values are used in their own dtype)."""
    if obj is None or isinstance(obj, (str, bytes, dict)):
        M.set_bad(name, f"{type(obj).__name__} is not an array")
        return INVALID
    obj = host_view(obj)  # CPU tensors and DLPack/__array__ objects: what NumPy reads
    if type(obj).__module__.startswith("torch"):
        M.set_bad(name, "a torch tensor not on the CPU")
        return INVALID
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.asarray(obj)
    except Exception as e:  # noqa: BLE001
        M.set_bad(name, f"not an array ({type(e).__name__})")
        return INVALID
    k = a.dtype.kind
    if k == "b" and "b" not in kinds:
        M.set_either(name, "bool dtype")
    elif k not in kinds and k != "b":
        M.set_bad(name, f"dtype {a.dtype}")
        return INVALID
    if ndim is not None and a.ndim != ndim:
        M.set_bad(name, f"{a.ndim}-D, needs {ndim}-D")
        return INVALID
    if shape is not None and a.shape != tuple(shape):
        M.set_bad(name, f"shape {a.shape}, needs {tuple(shape)}")
        return INVALID
    if nonempty and a.size == 0:
        M.set_bad(name, "empty")
        return INVALID
    if k == "f" and finite and a.size and not np.isfinite(a).all():
        M.set_bad(name, "non-finite entry")
        return INVALID
    if k == "f" and a.dtype.itemsize > 8 and a.size:
        M.tags.add("longdouble")
        fin = a[np.isfinite(a)]
        # refused as not finite, except where the function computes in the input's own dtype
        # (sort_scores: finite=False) or exactly (guided_scale: beyond_range_ok)
        if ((exact64 is not None or finite) and not beyond_range_ok and fin.size
                and np.abs(fin).max() > FMAX):
            M.set_bad(name, "a long double beyond float64's range")
            return INVALID
        with np.errstate(all="ignore"):
            inexact = (a.astype(np.float64).astype(a.dtype) != a) & ~np.isnan(a)
        if exact64 and inexact.any():
            M.set_bad(name, "a long double float64 cannot hold exactly")
            return INVALID
    if k in "iu" and a.size and (int(a.max()) > 2**53 or int(a.min()) < -2**53):
        M.tags.add("int beyond 2**53")
        if exact64 == "all":
            M.set_bad(name, "an integer beyond 2**53 (not exact in float64)")
            return INVALID
    return a


def exact_values(a):
    flat = np.asarray(a).reshape(-1)
    if flat.dtype.kind == "b":
        return [Fraction(int(v)) for v in flat]
    if flat.dtype.kind in "iu":
        return [Fraction(int(v)) for v in flat]
    out = []
    for v in flat:
        out.append(ex.fr(v) if np.isfinite(v) else (math.inf if v > 0 else -math.inf)
                   if not np.isnan(v) else math.nan)
    return out


def m_real(M, name, v, lo=None, lo_open=False, hi=None, hi_open=False, allow_none=False,
           integer=False, bool_ok="either", huge_ok="either", longdouble_ok=False):
    """Interpret a real scalar argument; returns a Fraction (or None) or INVALID."""
    if v is None:
        if allow_none:
            return None
        M.set_bad(name, "None")
        return INVALID
    if isinstance(v, (bool, np.bool_)):
        if bool_ok == "either":
            M.set_either(name, "a bool")
        else:
            M.set_bad(name, "a bool")
            return INVALID
        q = Fraction(int(v))
    elif isinstance(v, (np.timedelta64, np.datetime64)):
        M.set_bad(name, f"a NumPy {type(v).__name__} is not a number")
        return INVALID
    elif isinstance(v, np.ndarray):
        if v.ndim == 0 and v.dtype.kind in "fiu":
            M.set_either(name, "a 0-d array")
            return m_real(M, name, v[()], lo, lo_open, hi, hi_open, allow_none, integer,
                          bool_ok, huge_ok)
        M.set_bad(name, f"an array of shape {v.shape}")
        return INVALID
    elif integer:
        if not is_int(v):
            if isinstance(v, (float, np.floating)) and math.isfinite(float(v)) and \
                    float(v).is_integer():
                M.set_either(name, "an integral float")
                q = ex.fr(v)
            else:
                M.set_bad(name, f"{type(v).__name__} {v!r} is not an integer")
                return INVALID
        else:
            q = Fraction(int(v))
    elif isinstance(v, Fraction):
        M.set_either(name, "a Fraction")
        q = v
    elif is_int(v):
        q = Fraction(int(v))
    elif isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            M.set_bad(name, f"{v!r} is not finite")
            return INVALID
        if isinstance(v, np.floating) and v.dtype.itemsize > 8:
            with np.errstate(all="ignore"):
                beyond = abs(v) > FMAX or (v != 0 and float(v) == 0.0)
            if beyond and longdouble_ok:
                M.set_either(name, "longdouble beyond float64")
            elif beyond:
                M.set_bad(name, "a long double beyond float64's range (would read as 0 or inf)")
                return INVALID
        q = ex.fr(v)
    else:
        M.set_bad(name, f"{type(v).__name__} is not a real number")
        return INVALID
    if lo is not None and (q < lo or (lo_open and q == lo)):
        M.set_bad(name, f"{_fmt(q)} below the allowed range")
        return INVALID
    if hi is not None and (q > hi or (hi_open and q == hi)):
        M.set_bad(name, f"{_fmt(q)} above the allowed range")
        return INVALID
    if abs(q) > FMAX and huge_ok == "either":
        M.set_either(name, "beyond the float range")
    return q


def _fmt(q):
    try:
        return repr(float(q))
    except OverflowError:
        return "huge"


def m_delta(M, v, name="delta"):
    q = m_real(M, name, v, lo=0)
    if q is not INVALID and q > 0 and (q < TINY_DELTA or q > HUGE_DELTA):
        M.set_either(name, "extreme delta (a documented limit may refuse it)")
        M.tags.add("tiny delta" if q < 1 else "huge delta")
    return q


def m_flag(M, name, v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if is_int(v) and int(v) in (0, 1):
        M.set_either(name, "an int 0/1 for a bool")
        return bool(v)
    M.set_bad(name, f"{type(v).__name__} {v!r} is not a bool")
    return INVALID


def m_choice(M, name, v, allowed):
    if isinstance(v, str) and v in allowed:
        return str(v)
    M.set_bad(name, f"{v!r} not in {allowed}")
    return INVALID


def m_count(M, name, v, minimum=0, huge_either=None):
    q = m_real(M, name, v, lo=minimum, integer=True)
    if q is INVALID:
        return INVALID
    if huge_either is not None and q > huge_either:
        M.set_either(name, f"huge ({_fmt(q)})")
    return int(q)


# ------------------------------------------------------------------------------ comparisons

def fl(q):
    return ex.to_float(q) if isinstance(q, Fraction) else float(q)


def close(F, what, got, exact, rtol, atol):
    """Compare a float (or array) with exact values (Fractions or floats)."""
    g = np.asarray(got, dtype=np.float64).reshape(-1)
    e = np.array([fl(q) for q in (exact if isinstance(exact, (list, tuple)) else [exact])],
                 dtype=np.float64)
    if g.shape != e.shape:
        F.add("wrong shape", f"{what}: {g.shape} vs exact {e.shape}")
        return False
    with np.errstate(all="ignore"):
        err = np.abs(g - e)
        bad = ~(err <= rtol * np.abs(e) + atol)
    bad &= ~(np.isinf(e) & (g == e))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        F.add("wrong value", f"{what}: entry {i} is {g[i]!r}, exact {e[i]!r}"
              + (f" (and {int(bad.sum()) - 1} more)" if bad.sum() > 1 else ""))
        return False
    return True


def finite(F, what, arr):
    a = np.asarray(arr)
    if a.dtype.kind in "fc" and a.size and not np.isfinite(a).all():
        i = int(np.flatnonzero(~np.isfinite(a.reshape(-1)))[0])
        F.add("NaN/inf from finite input", f"{what}: flat entry {i} is {a.reshape(-1)[i]!r}")
        return False
    return True


def same_result(a, b, rtol=1e-9, atol_rel=1e-13, path="result"):
    """None if ``a`` and ``b`` agree (ints and shapes exactly, floats to rtol), else a reason."""
    if a is None or b is None:
        return None if a is None and b is None else f"{path}: {a!r} vs {b!r}"
    if isinstance(a, tuple) and isinstance(b, tuple):
        if type(a) is not type(b) and (hasattr(a, "_fields") or hasattr(b, "_fields")):
            return f"{path}: type {type(a).__name__} vs {type(b).__name__}"
        if len(a) != len(b):
            return f"{path}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            name = a._fields[i] if hasattr(a, "_fields") else str(i)
            r = same_result(x, y, rtol, atol_rel, f"{path}.{name}")
            if r:
                return r
        return None
    if hasattr(a, "counts") and hasattr(a, "num_classes"):
        if a.num_classes != b.num_classes:
            return f"{path}: num_classes {a.num_classes} vs {b.num_classes}"
        return same_result(np.asarray(a.counts), np.asarray(b.counts), rtol, atol_rel,
                           path + ".counts")
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        x, y = np.asarray(a), np.asarray(b)
        if x.shape != y.shape:
            return f"{path}: shape {x.shape} vs {y.shape}"
        if x.dtype != y.dtype:
            return f"{path}: dtype {x.dtype} vs {y.dtype}"
        if x.dtype.kind in "fc":
            if rtol == 0:
                return None if _bitwise_equal(x, y) else f"{path}: not bitwise equal"
            scale = float(np.nanmax(np.abs(y[np.isfinite(y)]))) if np.isfinite(y).any() \
                else 0.0
            with np.errstate(all="ignore"):
                ok = np.isclose(x, y, rtol=rtol, atol=atol_rel * scale, equal_nan=True)
            if not ok.all():
                i = int(np.flatnonzero(~ok.reshape(-1))[0])
                return f"{path}: flat entry {i} {x.reshape(-1)[i]!r} vs {y.reshape(-1)[i]!r}"
            return None
        return None if np.array_equal(x, y) else f"{path}: values differ"
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, float) and isinstance(b, float)):
            return f"{path}: type {type(a).__name__} vs {type(b).__name__}"
        if rtol == 0:
            return None if (a == b or (math.isnan(a) and math.isnan(b))) else \
                f"{path}: {a!r} vs {b!r}"
        return None if math.isclose(a, b, rel_tol=rtol, abs_tol=1e-300) or (
            math.isnan(a) and math.isnan(b)) or abs(a - b) <= atol_rel * max(abs(a), abs(b),
                                                                           1.0) else \
            f"{path}: {a!r} vs {b!r}"
    if type(a) is not type(b):
        return f"{path}: type {type(a).__name__} vs {type(b).__name__}"
    return None if a == b else f"{path}: {a!r} vs {b!r}"


def deepcopy_spec(x):
    return copy.deepcopy(x)


def is_real_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
