r"""Audit another implementation of a loss or sampler against rankref (``rankref crosscheck``).

A battery of generated cases (random, ties, a single positive, zero positives, no relevant
negatives, huge spreads, float16-rounded logits, a 2-D ``[anchors, classes]`` matrix, extreme
delta; inclusion frequencies for samplers) is run through the audited callable and through
rankref, and every case gets one of five outcomes:

========= =================================================================================
PASS      the values and the gradient agree within ``rtol``/``atol``
FAIL      they differ (the report lists the worst entries)
ERROR     the callable raised, or ran longer than the per-case timeout
EXPECTED  a documented difference of the official code, shown with its reason
          (``--convention official`` only)
SKIPPED   the case lies outside the official code's domain (``--convention official`` only)
========= =================================================================================

The run "passes" (exit status 0) when no case FAILs or ERRORs; ``strict=True`` (``--strict``)
counts EXPECTED as a failure too.

Call conventions.  ``convention="rankref"`` (the default) calls the audited callable with
rankref's signatures, on NumPy arrays or torch tensors.  A torch callable returns its loss(es)
and rankref backpropagates through them; a NumPy callable returns its update too:

* rs, brs: ``f(logits, targets, delta)``; torch: ``(ranking, sorting)``, each output carrying
  its own gradient; NumPy: ``(ranking, sorting, grad)``.
* ap: ``f(logits, targets, delta)``; torch: ``loss``; NumPy: ``(loss, grad)``.
* gap: ``f(scores, labels, counts, delta)``, the weighted loss; NumPy: ``(loss, grad)``.
* balanced-l1: ``f(pred, target, alpha=, gamma=, beta=)``, per entry; NumPy: ``(loss, grad)``.
* iou-neg-sampler: ``f(max_overlaps, num_expected, rng=) -> indices``.

``convention="official"`` calls the official callables exactly as the official heads do:

* rs, ``RankSort`` (or ``RankSort.apply``): ``f(logits, targets, delta) -> (ranking,
  sorting)``; the whole update is expected on the ranking output, none on the sorting output.
* brs, ``BucketedRankSort``: as rs, on 1-D float32 logits only.
* ap, ``APLoss.apply`` (RS, aLRP and BRS repositories): ``f(logits, targets, delta) -> loss``.
* ap, ``AP_loss`` (AP-Loss repository): ``f(logits, targets) -> (grad, loss[1])``, the update
  returned directly; delta is fixed at 1.0.
* gap, ``GAPLoss.apply`` (ROG): ``f(scores.reshape(-1), labels, counts.clamp(min=1), C, gamma,
  lam)``, which returns the *unweighted* ranking error (``gap_loss(...).ranking_error``) and
  whose backward carries ``lam`` times the weighted update (``lam * gap_loss(...).grad``);
  delta is fixed at 0.5 and there is no ignore label.  The battery passes ``gamma = 1.0`` and
  ``lam = 0.1``.

The two AP forms are told apart by their signature: a plain function of exactly two positional
parameters ``(logits, targets)`` is ``AP_loss``.  NumPy callables under the official convention
take the same arguments and return their update last (``AP_loss`` returns it first).

rankref's own result types (``RankSortResult`` ...) are accepted as NumPy returns.  A torch
``autograd.Function`` is called through ``apply``; a ``torch.nn.Module`` class is built with
``delta=`` (when it takes it) and called on the inputs; a module instance is called on the
inputs as configured.  ``framework="auto"`` takes for torch an autograd Function class or its
``.apply``, an ``nn.Module`` class or instance, and a function whose module uses torch; anything
else gets NumPy arrays.
"""
import ctypes
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import contextlib
import json
import math
import numbers
import os
import sys
import textwrap
import threading
import time
import traceback
import types

import numpy as np

from . import ClassCounts, ap_loss, balanced_l1_loss, gap_loss, iou_balanced_neg_probabilities
from . import rank_sort_loss

__all__ = ["LOSSES", "CONVENTIONS", "STATUSES", "CrosscheckReport", "load_callable", "make_cases",
           "crosscheck", "format_report", "add_parser", "run"]

LOSSES = ("rs", "ap", "brs", "gap", "balanced-l1", "iou-neg-sampler")
CONVENTIONS = {"rs": ("rankref", "official"), "brs": ("rankref", "official"),
               "ap": ("rankref", "official"), "gap": ("rankref", "official"),
               "balanced-l1": ("rankref",), "iou-neg-sampler": ("rankref",)}
STATUSES = ("pass", "fail", "error", "expected", "skipped")
DEFAULT_DELTA = {"rs": 0.5, "brs": 0.5, "ap": 1.0, "gap": 0.5}
DEFAULT_TIMEOUT = 120.0
GAP_GAMMA = 1.0  # gamma and lam passed to the official GAPLoss.apply
GAP_LAM = 0.1
AP_LOSS_DELTA = 1.0  # fixed inside the AP-Loss repository's AP_loss
GAP_OFFICIAL_DELTA = 0.5  # fixed inside ROG's GAPLoss


# ------------------------------------------------------------------------------ loading

def _public_callables(obj):
    names = []
    for name in dir(obj):
        if name.startswith("_"):
            continue
        try:
            value = getattr(obj, name)
        except Exception:  # a property that raises: not a callable we can offer
            continue
        if callable(value) and not isinstance(value, types.ModuleType):
            names.append(name)
    return sorted(names)


def _missing_name(owner, owner_name, attr):
    names = _public_callables(owner)
    close = difflib.get_close_matches(attr, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(names) if names else "none"
    return ValueError(f"{owner_name} has no attribute {attr!r}.{hint} Its callables: {listing}.")


@contextlib.contextmanager
def _folder_first(folder):
    """Put ``folder`` first on ``sys.path`` for the duration (unless it is there already)."""
    present = folder in sys.path or (folder == os.getcwd() and "" in sys.path)
    if not present:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if not present and folder in sys.path:
            sys.path.remove(folder)


def _is_path(module_part):
    return (module_part.endswith(".py") or os.sep in module_part
            or (os.altsep is not None and os.altsep in module_part))


def _search_folder(spec):
    """The folder an import of ``spec`` starts from: the file's own, or the current one."""
    module_part = spec.rpartition(":")[0] if isinstance(spec, str) else ""
    if module_part and _is_path(module_part):
        return os.path.dirname(os.path.abspath(module_part))
    return os.getcwd()


def _import_file(path):
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path}")
    name = os.path.splitext(os.path.basename(path))[0]
    known = sys.modules.get(name)
    if known is not None and os.path.abspath(getattr(known, "__file__", "") or "") != path:
        digest = hashlib.sha1(path.encode()).hexdigest()[:8]
        name = f"_crosscheck_{digest}_{name}"  # never shadow another module of that name
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load {path} as a Python module (expected a .py file).")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _folder_first(os.path.dirname(path)):  # as `python file.py`: siblings importable
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module, os.path.basename(path)


def _import_module(module_name):
    cwd = os.getcwd()
    importlib.invalidate_caches()
    try:
        with _folder_first(cwd):  # resolve from the current folder, as `python -m` does
            return importlib.import_module(module_name), f"module {module_name!r}"
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ValueError(
                f"no module named {missing!r} (looked in the current folder {cwd} and on "
                f"sys.path). Run from the folder that holds the package, or name a file: "
                f"path/to/file.py:NAME.") from None
        raise ValueError(f"importing {module_name!r} failed: {exc} (a module it imports is "
                         f"not installed).") from None


def load_callable(spec):
    """The object named by ``spec``: ``"package.module:NAME"`` or ``"path/to/file.py:NAME"``.

    ``MODULE`` is imported with the current folder first on the path, as ``python -m`` does, so
    ``rankref crosscheck mypkg.losses:RankSort`` works next to ``mypkg/``.  A path (ending in
    ``.py`` or containing a path separator) is loaded as a file, its folder first on the path.
    ``NAME`` may be dotted (``RankSort.apply``).  ``sys.path`` is restored afterwards (the
    command keeps the folder on it while the audit runs, for imports made at call time).

    Parameters
    ----------
    spec : str

    Returns
    -------
    object
        The callable (or class) named.

    Raises
    ------
    ValueError
        A malformed spec, a missing file or module (naming where it looked), or a missing name
        (listing the callables the module does have).

    Examples
    --------
    >>> from rankref.crosscheck import load_callable
    >>> load_callable("rankref:rank_sort_loss").__name__
    'rank_sort_loss'
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string MODULE:CALLABLE, got {type(spec).__name__}.")
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected MODULE:CALLABLE (e.g. mypkg.losses:RankSort) or "
                         f"path/to/file.py:NAME, got {spec!r}.")
    if _is_path(module_name):
        module, owner_name = _import_file(module_name)
    else:
        module, owner_name = _import_module(module_name)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise _missing_name(obj, owner_name, part)
        obj = getattr(obj, part)
        owner_name = part
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
        t[rng.choice(n, n // 100, replace=False)] = -1.0
        t[pos] = iou(p)
        return x, t, pos

    def tied(x, t, pos):
        x = np.round(x * 2) / 2
        neg = np.flatnonzero(t == 0)
        x[neg[:60]] = x[pos]  # negatives tied with positives
        if not binary:
            t[pos] = rng.choice([0.5, 0.75, 1.0], pos.size)  # IoU ties
        return x, t

    x, t, _ = base(n, 60)
    cases.append(("random", x, t, delta))
    x, t, pos = base(n, 60)
    cases.append(("ties", *tied(x, t, pos), delta))
    x, t, _ = base(n, 1)
    cases.append(("single positive", x, t, delta))
    x, t, _ = base(n, 0)
    t[t > 0] = 0
    cases.append(("zero positives", x, t, delta))
    if not quick:
        x, t, pos = base(n, 40)
        negs = t == 0
        x[negs] = x[pos].min() - delta - 1.0 - rng.random(negs.sum())
        cases.append(("no relevant negatives", x, t, delta))
        x, t, _ = base(n, 60)
        x = rng.uniform(-50, 50, n)
        cases.append(("huge spreads", x, t, delta))
        x, t, _ = base(n, 60)
        cases.append(("float16-rounded", x.astype(np.float16).astype(np.float64), t, delta))
        x, t, _ = base(n, 80)
        cases.append(("2-D [anchors, classes]", x.reshape(250, 12), t.reshape(250, 12), delta))
        x, t, pos = base(n, 60)
        cases.append(("delta = 0, ties", *tied(x, t, pos), 0.0))
        x, t, _ = base(n, 60)
        cases.append(("delta = 4", x, t, 4.0))
    return [(name, x.astype(np.float32), t.astype(np.float32), d) for name, x, t, d in cases]


def make_cases(loss, quick=False, delta=None, seed=0):
    """The battery of ``loss``: a list of ``(name, inputs)``, ``inputs`` a dict of arrays.

    Ranking cases carry their own ``delta`` (``delta``, or the loss's default, except the
    ``delta = 0, ties`` and ``delta = 4`` cases).  ``quick`` keeps the first few cases.

    Examples
    --------
    >>> from rankref import crosscheck
    >>> cases = crosscheck.make_cases("rs", quick=True)
    >>> [name for name, _ in cases]
    ['random', 'ties', 'single positive', 'zero positives']
    >>> sorted(cases[0][1])  # the logits, the targets and the case's delta
    ['delta', 't', 'x']
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}.")
    rng = np.random.default_rng(seed)
    d = DEFAULT_DELTA.get(loss, 0.5) if delta is None else float(delta)
    if loss in ("rs", "brs", "ap"):
        return [(name, {"x": x, "t": t, "delta": dd})
                for name, x, t, dd in _ranking_case_list(loss == "ap", quick, d, rng)]
    if loss == "gap":
        out = []
        specs = [("random", 1.0, None, d), ("ties", 1.0, "grid", d),
                 ("single positive", 1.0, "one", d), ("zero positives", 1.0, "none", d),
                 ("ignored labels", 1.0, "ignore", d)]
        if not quick:
            specs += [("huge spreads", 50.0, None, d), ("float16-rounded", 1.0, "f16", d),
                      ("delta = 0, ties", 1.0, "grid", 0.0), ("delta = 2", 1.0, None, 2.0)]
        for name, spread, mode, dd in specs:
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
            elif mode == "ignore":
                y[rng.random(n) < 0.05] = -1
            s = rng.normal(-2.0, spread, (n, C))
            if mode == "grid":
                s = np.round(s * 2) / 2
            elif mode == "f16":
                s = s.astype(np.float16).astype(np.float64)
            counts = ClassCounts(C).update(y).counts + rng.integers(0, 30, C)
            out.append((name, {"scores": s.astype(np.float32), "labels": y.astype(np.int64),
                               "counts": counts, "delta": dd}))
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


# ------------------------------------------------------------------------------ the callable

def _torch_module():
    """torch if something already imported it (detection never imports torch itself)."""
    return sys.modules.get("torch")


def _uses_torch(module_name, torch):
    """True for torch's own modules and for modules that import torch (rankref.torch ...)."""
    if not isinstance(module_name, str):
        return False
    if module_name == "torch" or module_name.startswith(("torch.", "rankref.torch")):
        return True  # rankref.torch is a package: its __init__ reaches torch through submodules
    module = sys.modules.get(module_name)
    return module is not None and any(v is torch for v in list(vars(module).values()))


def _is_torchish(value, torch):
    """True for torch, a module that uses it, or an object defined in one."""
    if isinstance(value, types.ModuleType):
        return _uses_torch(value.__name__, torch)
    try:
        name = getattr(value, "__module__", None)
    except Exception:  # exotic objects: not torch
        return False
    return _uses_torch(name, torch)


def _function_class(obj):
    """The autograd Function class behind ``obj`` (the class itself or its ``.apply``)."""
    torch = _torch_module()
    if torch is None:
        return None
    Function = torch.autograd.Function
    if isinstance(obj, type) and issubclass(obj, Function):
        return obj
    owner = getattr(obj, "__self__", None)
    if inspect.ismethod(obj) and isinstance(owner, type) and issubclass(owner, Function):
        return owner
    return None


def _module_globals(obj):
    """(module name, namespace) of the code behind ``obj``."""
    while hasattr(obj, "func") and not inspect.isroutine(obj):  # functools.partial
        obj = obj.func
    if inspect.ismethod(obj):
        obj = obj.__func__
    if inspect.isfunction(obj):
        return obj.__module__, obj.__globals__
    name = getattr(obj, "__module__", None) if isinstance(obj, type) else None
    name = name or getattr(type(obj), "__module__", None)
    module = sys.modules.get(name) if name else None
    return name, (vars(module) if module is not None else {})


def _describe(obj):
    cls = _function_class(obj)
    if cls is not None:
        return f"{cls.__name__}.apply"
    name = getattr(obj, "__qualname__", None) or type(obj).__name__
    return name.rpartition("<locals>.")[2]


def _guess_framework(obj):
    """(framework, why, certain) for ``framework="auto"``; a guess from a module's imports is
    not certain."""
    torch = _torch_module()
    if torch is None:
        return "numpy", "torch is not imported by the callable's module", False
    if isinstance(obj, type) and issubclass(obj, torch.autograd.Function):
        return "torch", f"{obj.__name__} is an autograd Function class", True
    if _function_class(obj) is not None:
        return "torch", f"the .apply of the autograd Function {_function_class(obj).__name__}", \
            True
    if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
        return "torch", f"{obj.__name__} is an nn.Module class", True
    if isinstance(obj, torch.nn.Module):
        return "torch", f"an instance of the nn.Module {type(obj).__name__}", True
    name, namespace = _module_globals(obj)
    if _is_torchish(obj, torch) or any(_is_torchish(v, torch) for v in list(namespace.values())):
        return "torch", f"a callable whose module ({name}) uses torch", False
    return "numpy", f"its module ({name}) does not use torch", False


def _positional_parameters(obj):
    """Names of the positional parameters the audited code declares (None if unknown)."""
    cls = _function_class(obj)
    torch = _torch_module()
    target = obj
    drop = 0
    if cls is not None:
        target, drop = cls.forward, 1  # forward(ctx, ...)
    elif torch is not None and isinstance(obj, type) and issubclass(obj, torch.nn.Module):
        target, drop = obj.forward, 1
    elif torch is not None and isinstance(obj, torch.nn.Module):
        target = obj.forward
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())[drop:]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _is_plain_function(obj):
    torch = _torch_module()
    if _function_class(obj) is not None:
        return False
    if torch is not None and (isinstance(obj, torch.nn.Module) or (
            isinstance(obj, type) and issubclass(obj, torch.nn.Module))):
        return False
    return not isinstance(obj, type)


def _as_callable(obj, framework, passes_delta):
    """A plain callable for ``obj``: Function -> .apply, module class -> built and called."""
    cls = _function_class(obj)
    if cls is not None:
        return cls.apply
    torch = _torch_module()
    if framework != "torch" or torch is None:
        return obj
    if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
        def build_and_call(*args, **kw):
            if not passes_delta:
                return obj()(*args, **kw)
            *inputs, delta = args  # delta (the last argument) goes to __init__
            try:
                module = obj(delta=delta)
            except TypeError:
                module = obj()
            return module(*inputs, **kw)
        return build_and_call
    if isinstance(obj, torch.nn.Module) and passes_delta:
        return lambda *args, **kw: obj(*args[:-1], **kw)  # configured already: no delta
    return obj


class _Plan:
    """How one audited callable is called and compared (fixed for the whole run)."""

    def __init__(self, func, loss, convention, framework, auto_reason, certain=True):
        self.obj = func
        self.loss = loss
        self.convention = convention
        self.framework = framework
        self.auto_reason = auto_reason  # None when --framework was given
        self.uncertain_guess = auto_reason is not None and not certain
        self.name = _describe(func)
        params = _positional_parameters(func)
        self.params = params
        official = convention == "official"
        if official and loss == "ap" and _is_plain_function(func) and params is not None \
                and len(params) == 2:
            self.form, self.fixed_delta = "ap_loss", AP_LOSS_DELTA
        elif official and loss == "gap":
            self.form, self.fixed_delta = "gap_official", GAP_OFFICIAL_DELTA
        else:
            self.form, self.fixed_delta = convention, None
        self.call = self._call_text()
        self.f = _as_callable(func, framework, self.form not in ("ap_loss", "gap_official"))

    def with_framework(self, framework):
        return _Plan(self.obj, self.loss, self.convention, framework, None)

    def _call_text(self):
        n, fw = self.name, self.framework
        if self.form == "ap_loss":
            return (f"{n}(logits, targets) -> (grad, loss[1]), the AP-Loss repository's form: "
                    f"delta fixed at {AP_LOSS_DELTA}")
        if self.form == "gap_official":
            tail = ("; its backward carries lam x the weighted update" if fw == "torch" else
                    " and lam x the weighted update")
            return (f"{n}(scores.reshape(-1), labels, counts.clamp(min=1), C, gamma="
                    f"{GAP_GAMMA}, lam={GAP_LAM}) -> the unweighted ranking error{tail}; delta "
                    f"fixed at {GAP_OFFICIAL_DELTA}, labels in [0, C]")
        if self.loss in ("rs", "brs"):
            if fw == "numpy":
                return f"{n}(logits, targets, delta) -> (ranking, sorting, grad)"
            layout = ("the whole update expected on the ranking output" if self.form == "official"
                      else "each output carrying its own gradient")
            dims = "; 1-D float32 logits" if self.form == "official" and self.loss == "brs" \
                else ""
            return f"{n}(logits, targets, delta) -> (ranking, sorting), {layout}{dims}"
        if self.loss == "ap":
            return f"{n}(logits, targets, delta) -> " + (
                "loss, update by autograd" if fw == "torch" else "(loss, grad)")
        if self.loss == "gap":
            return f"{n}(scores, labels, counts, delta) -> " + (
                "the weighted loss, update by autograd" if fw == "torch" else "(loss, grad)")
        if self.loss == "balanced-l1":
            return f"{n}(pred, target, alpha=, gamma=, beta=) -> per-entry loss" + (
                "" if fw == "torch" else " and grad")
        return f"{n}(max_overlaps, num_expected, rng=) -> indices"


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
    return {"ok": True, "detail": [], "hints": []}


OFFICIAL_LAYOUT_HINT = "this looks like the official gradient layout; try `--convention official`"
RANKREF_LAYOUT_HINT = ("this looks like rankref's gradient layout (each output carries its own "
                       "gradient); drop `--convention official`")


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
        _compare(out, "grad", _to_numpy(g, x.shape), ref.grad, rtol, atol)
        return out
    if plan.framework == "torch":
        import torch

        X = torch.tensor(x, requires_grad=True)
        res = f(X, torch.tensor(t), d)
        if loss == "ap":
            lv = res[0] if isinstance(res, (tuple, list)) else res
            _loss_diff(out, "loss", _scalar(lv), ref.loss, rtol, atol)
            (g,) = torch.autograd.grad(lv, X, allow_unused=True)
            _compare(out, "grad", _to_numpy(g, x.shape), ref.grad, rtol, atol)
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
    _compare(out, "grad", _to_numpy(g, x.shape), ref.grad, rtol, atol)
    return out


def _run_gap(plan, inp, rtol, atol):
    out = _new_out()
    s, y, counts, d = inp["scores"], inp["labels"], inp["counts"], inp["delta"]
    official = plan.form == "gap_official"
    ref = gap_loss(s, y, counts, d, GAP_GAMMA)
    n, C = s.shape
    if plan.framework == "torch":
        import torch

        S = torch.tensor(s, requires_grad=True)
        if official:
            num_samples = torch.tensor(counts, dtype=torch.float32).clamp(min=1)
            lv = plan.f(S.reshape(-1), torch.tensor(y), num_samples, C, GAP_GAMMA, GAP_LAM)
        else:
            lv = plan.f(S, torch.tensor(y), torch.tensor(counts), d)
        lv = lv[0] if isinstance(lv, (tuple, list)) else lv
        (g,) = torch.autograd.grad(lv, S, allow_unused=True)
        g = _to_numpy(g, s.shape)
        lv = _scalar(lv)
    elif official:
        lv, g = _unpack(plan.f(s.reshape(-1), y, np.maximum(counts, 1.0), C, GAP_GAMMA, GAP_LAM),
                        ("ranking_error", "grad"))
        lv, g = _scalar(lv), _to_numpy(g, s.shape)
    else:
        lv, g = _unpack(plan.f(s, y, counts, d), ("loss", "grad"))
        lv, g = _scalar(lv), _to_numpy(g, s.shape)
    if official:
        _loss_diff(out, "ranking error (unweighted)", lv, ref.ranking_error, rtol, atol)
        _compare(out, f"grad (lam = {GAP_LAM} x the weighted update)", g, GAP_LAM * ref.grad,
                 rtol, atol)
    else:
        _loss_diff(out, "loss", lv, ref.loss, rtol, atol)
        _compare(out, "grad", g, ref.grad, rtol, atol)
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


def _call_with_timeout(fn, timeout):
    """Run ``fn()`` in a worker thread: ``(value, exc_info, timed_out, seconds)``.

    Past ``timeout`` seconds the worker is sent :class:`CaseTimeout`, which stops Python code at
    its next bytecode (compiled code first returns); either way the caller goes on.
    """
    box = {}

    def work():
        try:
            box["value"] = fn()
        except CaseTimeout:
            box["stopped"] = True
        except BaseException as exc:  # reported per case, never raised
            box["exc"] = (exc, traceback.format_exc())

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


# ------------------------------------------------------------------------------ outcomes

def _positives(inp):
    if "t" in inp:
        return int(np.count_nonzero(inp["t"] > 0))
    y, C = inp["labels"], inp["scores"].shape[1]
    return int(np.count_nonzero((y >= 0) & (y < C)))


def _outside_domain(plan, inp):
    """The reason a case lies outside the official callable's domain, or None."""
    if plan.convention != "official":
        return None
    if plan.loss == "brs" and inp["x"].ndim != 1:
        return ("official BucketedRankSort takes 1-D float32 logits only (the heads flatten "
                "first); rankref ranks any shape as one flat vector")
    if plan.form == "ap_loss" and inp["delta"] != AP_LOSS_DELTA:
        return (f"{plan.name} fixes delta at {AP_LOSS_DELTA} (delta is not an argument); this "
                f"case runs at delta = {inp['delta']:g}")
    if plan.form == "gap_official":
        if inp["delta"] != GAP_OFFICIAL_DELTA:
            return (f"official GAPLoss fixes delta at {GAP_OFFICIAL_DELTA}: its backward returns "
                    f"6 gradients, one per argument, so delta cannot be passed; this case runs "
                    f"at delta = {inp['delta']:g}")
        if (inp["labels"] < 0).any():
            return ("official GAPLoss has no ignore label: labels lie in [0, C], C being the "
                    "background; rankref ignores rows labelled -1")
        if _positives(inp) == 0:
            return ("the official ROG head skips GAPLoss when the batch has no foreground; "
                    "rankref returns a zero loss and gradient")
    return None


_EMPTY_REDUCTION = ("numel() == 0", "zero-size array", "empty")


def _expected_exception(plan, inp, exc):
    """The documented reason for an exception of the official code, or None."""
    if plan.convention != "official" or _positives(inp) != 0:
        return None
    if not any(s in str(exc) for s in _EMPTY_REDUCTION):
        return None
    if plan.loss == "rs":
        return ("official RankSort raises with no positive: torch.min of an empty tensor "
                "(rankref returns zero losses and a zero gradient)")
    if plan.loss == "ap" and plan.form == "official":
        return ("official APLoss raises with no positive: torch.min of an empty tensor "
                "(rankref returns loss 0 and a zero gradient)")
    return None


def _exact_ties(x, t):
    """True when a positive shares its logit with another positive or a negative."""
    x, t = x.reshape(-1), t.reshape(-1)
    xp = x[t > 0]
    return np.unique(xp).size < xp.size or bool(np.isin(x[t == 0], xp).any())


def _tied_negatives(x, t):
    x, t = x.reshape(-1), t.reshape(-1)
    return np.flatnonzero((t == 0) & np.isin(x, x[t > 0]))


def _summary(out):
    return "; ".join(out["detail"][:1]) if out["detail"] else ""


def _brs_tie_proof(plan, inp, out, rtol, atol, budget):
    """EXPECTED reason when moving each tied negative up one ulp makes the case pass."""
    x, t = inp["x"], inp["t"]
    tied = _tied_negatives(x, t)
    if tied.size == 0:
        return None, []
    moved = x.reshape(-1).copy()
    for _ in range(8):  # a moved negative may land on another positive: move it again
        idx = _tied_negatives(moved, t)
        if idx.size == 0:
            break
        moved[idx] = np.nextafter(moved[idx], np.float32(np.inf))
    moved_inp = dict(inp, x=moved.reshape(x.shape))
    value, exc, timed_out, _ = _call_with_timeout(
        lambda: _run_one(plan, moved_inp, False, rtol, atol), budget)
    if timed_out or exc is not None:
        why = "ran past the timeout" if timed_out else f"raised {type(exc[0]).__name__}"
        return None, [f"with each tied negative moved up one ulp the case {why}"]
    if not value["ok"]:
        return None, [f"with each tied negative moved up one ulp the case still fails: "
                      f"{_summary(value)}"]
    return (f"official BucketedRankSort sorts with an unstable sort, so the {tied.size} negatives "
            f"tied with a positive may land below it; rankref places them above (the "
            f"H_0(0) = 1 rule). Moved up one ulp each, the case passes (max grad diff "
            f"{value.get('grad_max_diff') or 0.0:.2e})"), []


def _expected_failure(plan, inp, out, rtol, atol, budget):
    """(EXPECTED reason or None, extra detail) for a case that FAILed."""
    if plan.convention != "official":
        return None, []
    if plan.loss == "brs":
        return _brs_tie_proof(plan, inp, out, rtol, atol, budget)
    if (plan.loss == "ap" and plan.form == "official" and inp["delta"] == 0
            and out.get("nonfinite") and _exact_ties(inp["x"], inp["t"])):
        return ("official APLoss divides by 2 * delta: at delta = 0 an exact tie gives 0/0 = "
                "NaN (rankref uses the exact step, H_0(0) = 1)"), []
    return None, []


def _case_record(name, inp, status, reason=None, out=None, seconds=None):
    out = out or {}
    return {"case": name, "status": status, "reason": reason, "delta": inp.get("delta"),
            "loss_diff": _finite_or_none(out.get("loss_diff")),
            "grad_max_diff": _finite_or_none(out.get("grad_max_diff")),
            "grad_rel_diff": _finite_or_none(out.get("grad_rel_diff")),
            "seconds": None if seconds is None else round(seconds, 4),
            "detail": list(out.get("detail", []))}


def _error_lines(exc_info):
    exc, tb = exc_info
    lines = [f"{type(exc).__name__}: {exc}"]
    frames = [ln for ln in tb.strip().splitlines() if ln.startswith("  File ")]
    if frames:
        where = frames[-1].strip()
        cwd = os.getcwd() + os.sep
        lines.append("raised at " + where.replace(f'"{cwd}', '"'))
    return lines


# ------------------------------------------------------------------------------ the report

class CrosscheckReport:
    """The outcome of :func:`crosscheck`: how the callable was called, and one record per case.

    Made by :func:`crosscheck` (not meant to be built directly).  Iterating (or indexing) a report gives the case records, in the battery's order; ``len``
    is the number of cases.  Each record is a dict with the keys

    ``case`` (str)
        The case's name, e.g. ``"ties"`` or ``"delta = 0, ties"``.
    ``status`` (str)
        One of ``"pass"``, ``"fail"``, ``"error"``, ``"expected"``, ``"skipped"``
        (``rankref.crosscheck.STATUSES``).
    ``reason`` (str or None)
        Why a case is EXPECTED or SKIPPED, the first difference of a FAIL, the exception of an
        ERROR; None for a PASS.
    ``delta`` (float or None)
        The delta of the case (None for losses without one).
    ``loss_diff``, ``grad_max_diff``, ``grad_rel_diff`` (float or None)
        The largest absolute difference of the loss values, of the updates, and of the updates
        relative to rankref's largest update (for the sampler: the largest z-score of an
        inclusion frequency, and the largest ``|frequency - probability|``); None where not
        computed or not finite.
    ``seconds`` (float or None)
        How long the audited call ran.
    ``detail`` (list of str)
        The lines printed under the case in the text report (the worst entries of a FAIL, the
        traceback of an ERROR, the evidence of an EXPECTED).

    Attributes
    ----------
    loss : str
        The loss (or sampler) audited, one of ``rankref.crosscheck.LOSSES``.
    convention : str
        ``"rankref"`` or ``"official"``.
    call : str
        The call made and what it is compared with, e.g.
        ``"rank_sort_loss(logits, targets, delta) -> (ranking, sorting, grad)"``.
    delta : float or None
        The battery's delta (cases named ``"delta = ..."`` keep their own); None for losses
        without one.
    fixed_delta : bool
        True when the official callable fixes delta itself (``AP_loss``, ROG's ``GAPLoss``).
    framework : str
        ``"numpy"`` or ``"torch"``: the array type passed to the callable.
    framework_reason : str
        ``"given"``, or ``"auto: ..."`` with the reason ``framework="auto"`` chose it.
    battery : str
        ``"all"`` or ``"quick"``.
    rtol, atol : float
        The tolerances: a value passes when ``|got - expected| <= atol + rtol |expected|``.
    timeout : float
        Seconds one case may run.
    cases : list of dict
        The case records above.
    hints : list of str
        Suggestions drawn from the failures (a convention or a framework that fits better).

    Examples
    --------
    >>> import rankref
    >>> from rankref.crosscheck import crosscheck
    >>> report = crosscheck(rankref.rank_sort_loss, "rs", cases="quick")
    >>> report.counts()
    {'pass': 4, 'fail': 0, 'error': 0, 'expected': 0, 'skipped': 0}
    >>> first = report[0]
    >>> first["case"], first["status"], first["loss_diff"]
    ('random', 'pass', 0.0)
    >>> report.exit_status()
    0
    """

    def __init__(self, plan, battery, delta, rtol, atol, timeout, cases, hints):
        self.loss = plan.loss
        self.convention = plan.convention
        self.call = plan.call
        self.delta = delta
        self.fixed_delta = plan.fixed_delta is not None
        self.framework = plan.framework
        self.framework_reason = (f"auto: {plan.auto_reason}" if plan.auto_reason else "given")
        self.battery = battery
        self.rtol, self.atol, self.timeout = rtol, atol, timeout
        self.cases = cases
        self.hints = hints

    def __iter__(self):
        return iter(self.cases)

    def __len__(self):
        return len(self.cases)

    def __getitem__(self, i):
        return self.cases[i]

    def counts(self):
        """``{status: number of cases}`` for every status."""
        return {s: sum(c["status"] == s for c in self.cases) for s in STATUSES}

    def exit_status(self, strict=False):
        """0 when no case FAILed or ERRORed (nor was EXPECTED, when ``strict``), else 1."""
        bad = {"fail", "error"} | ({"expected"} if strict else set())
        return 1 if any(c["status"] in bad for c in self.cases) else 0

    def to_dict(self, target=None, strict=False):
        """The report as a dict of plain values (the attributes, ``counts``, ``exit_status``,
        the ``target`` string and ``strict``), as ``--json`` prints it."""
        return {"target": target, "loss": self.loss, "convention": self.convention,
                "call": self.call, "delta": self.delta, "framework": self.framework,
                "framework_reason": self.framework_reason, "battery": self.battery,
                "rtol": self.rtol, "atol": self.atol, "timeout": self.timeout,
                "strict": bool(strict), "cases": self.cases, "hints": self.hints,
                "counts": self.counts(), "exit_status": self.exit_status(strict)}

    def to_json(self, target=None, strict=False):
        """:meth:`to_dict` as a JSON string (indented; no NaN or inf)."""
        return json.dumps(self.to_dict(target, strict), indent=2, allow_nan=False)

    def __repr__(self):
        c = self.counts()
        return (f"CrosscheckReport(loss={self.loss!r}, convention={self.convention!r}, "
                + ", ".join(f"{k}={v}" for k, v in c.items()) + ")")


def _check_options(loss, cases, convention, framework, rtol, atol, delta, timeout):
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}.")
    if cases not in ("all", "quick"):
        raise ValueError(f"cases must be 'all' or 'quick', got {cases!r}.")
    if convention not in ("rankref", "official"):
        raise ValueError(f"convention must be 'rankref' or 'official', got {convention!r}.")
    if convention not in CONVENTIONS[loss]:
        raise ValueError(f"--loss {loss} has no {convention!r} convention (it has: "
                         f"{', '.join(CONVENTIONS[loss])}); drop --convention {convention}.")
    if framework not in ("auto", "numpy", "torch"):
        raise ValueError(f"framework must be 'auto', 'numpy' or 'torch', got {framework!r}.")
    def real(v):
        return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))

    for name, v in (("rtol", rtol), ("atol", atol)):
        if not real(v) or not v >= 0 or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}.")
    if delta is not None and (not real(delta) or not delta >= 0 or not math.isfinite(delta)):
        raise ValueError(f"delta must be a finite number >= 0 (or None for the loss's "
                         f"default), got {delta!r}.")
    if delta is not None and loss not in DEFAULT_DELTA:
        raise ValueError(f"--loss {loss} takes no delta; drop --delta.")
    if not real(timeout) or not timeout > 0 or not math.isfinite(timeout):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}.")


def crosscheck(func, loss, cases="all", convention="rankref", framework="auto", rtol=1e-4,
               atol=1e-6, delta=None, timeout=DEFAULT_TIMEOUT):
    """Run the battery of ``loss`` against ``func`` and rankref; one outcome per case.

    Parameters
    ----------
    func : callable
        The audited implementation (a function, an autograd Function class or its ``.apply``,
        an ``nn.Module`` class or instance), following the signature of ``convention``
        (see :mod:`rankref.crosscheck`).
    loss : {"rs", "ap", "brs", "gap", "balanced-l1", "iou-neg-sampler"}
    cases : {"all", "quick"}
    convention : {"rankref", "official"}
        ``"official"`` calls the official callables as the official heads do (rs, brs, ap, gap
        only) and reports their documented differences as EXPECTED, cases outside their domain
        as SKIPPED.
    framework : {"auto", "numpy", "torch"}
    rtol, atol : float >= 0
        A value passes when ``|got - expected| <= atol + rtol |expected|`` entry by entry.
    delta : float >= 0 or None
        The battery's delta (None: 0.5, 1.0 for ap).  The ``delta = 0, ties`` and ``delta = 4``
        cases keep their own.
    timeout : float > 0, default 120
        Seconds one case may run; past it the case is an ERROR and the run goes on.

    Returns
    -------
    CrosscheckReport
        Iterates over the case records; ``exit_status()`` is the command's exit status.

    Raises
    ------
    ValueError, TypeError
        Bad options (before any case runs), e.g. a convention the loss does not have, or a
        delta the official callable cannot take.  Exceptions raised by ``func`` are reported
        per case, never raised.

    Examples
    --------
    >>> import rankref
    >>> from rankref.crosscheck import crosscheck
    >>> report = crosscheck(rankref.rank_sort_loss, "rs", cases="quick")
    >>> [c["status"] for c in report], report.exit_status()
    (['pass', 'pass', 'pass', 'pass'], 0)
    """
    _check_options(loss, cases, convention, framework, rtol, atol, delta, timeout)
    if not callable(func):
        raise TypeError(f"the audited object must be callable, got {type(func).__name__}.")
    certain = True
    if framework == "auto":
        fw, why, certain = _guess_framework(func)
    else:
        fw, why = framework, None
        if fw == "torch":
            if importlib.util.find_spec("torch") is None:
                raise ValueError("framework='torch' needs torch installed.")
            importlib.import_module("torch")  # the cases pass torch tensors
    plan = _Plan(func, loss, convention, fw, why, certain)
    main_delta = DEFAULT_DELTA.get(loss) if delta is None else float(delta)
    if plan.fixed_delta is not None and delta is not None and float(delta) != plan.fixed_delta:
        raise ValueError(f"{plan.name} fixes delta at {plan.fixed_delta} under --convention "
                         f"official; --delta {delta:g} cannot be audited (drop --delta).")
    if plan.fixed_delta is not None:
        main_delta = plan.fixed_delta
    quick = cases == "quick"
    records, hints, probed = [], [], False
    for name, inp in make_cases(loss, quick, main_delta):
        reason = _outside_domain(plan, inp)
        if reason is not None:
            records.append(_case_record(name, inp, "skipped", reason))
            continue
        value, exc, timed_out, seconds = _call_with_timeout(
            lambda inp=inp: _run_one(plan, inp, quick, rtol, atol), timeout)
        if timed_out:
            records.append(_case_record(name, inp, "error", f"ran longer than the timeout "
                                        f"({timeout:g} s); stopped, the run goes on",
                                        {"detail": ["raise --timeout if this case needs longer"]},
                                        seconds))
            continue
        if exc is not None:
            lines = _error_lines(exc)
            expected = _expected_exception(plan, inp, exc[0])
            if expected is not None:
                records.append(_case_record(name, inp, "expected", expected, {"detail": lines},
                                            seconds))
                continue
            if plan.uncertain_guess and not probed:
                probed = True
                other = "numpy" if fw == "torch" else "torch"
                hint = _probe_framework(plan, other, inp, quick, rtol, atol, timeout)
                if hint:
                    lines.append(hint)
                    hints.append(hint)
            records.append(_case_record(name, inp, "error", lines[0], {"detail": lines},
                                        seconds))
            continue
        for h in value["hints"]:
            if h not in hints:
                hints.append(h)
        if value["ok"]:
            records.append(_case_record(name, inp, "pass", None, value, seconds))
            continue
        budget = max(timeout - seconds, 1e-3)
        expected, extra = _expected_failure(plan, inp, value, rtol, atol, budget)
        value["detail"] += extra
        if expected is not None:
            records.append(_case_record(name, inp, "expected", expected, value, seconds))
        else:
            value["detail"] += [h for h in value["hints"]]
            records.append(_case_record(name, inp, "fail", _summary(value), value, seconds))
    if any(r["status"] in ("fail", "error") for r in records):
        hint = _signature_hint(plan)
        if hint and hint not in hints:
            hints.append(hint)
    return CrosscheckReport(plan, cases, main_delta, rtol, atol, timeout, records, hints)


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


def _signature_hint(plan):
    """A hint when the callable's signature is an official form the convention does not use."""
    if plan.convention != "rankref" or plan.params is None:
        return None
    if plan.loss == "ap" and _is_plain_function(plan.obj) and len(plan.params) == 2:
        return ("this looks like the AP-Loss repository's AP_loss(logits, targets) -> (grad, "
                "loss); try `--convention official`")
    if plan.loss == "gap" and len(plan.params) == 6:
        return ("this looks like ROG's GAPLoss.apply(scores, labels, num_samples, num_classes, "
                "gamma, lam); try `--convention official`")
    return None


def _wrap(text, indent, width=100):
    return textwrap.fill(text, width, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)


def _num(v):
    return "-" if v is None else f"{v:.2e}"


def format_report(report, target=None, strict=False):
    """The text report of a :class:`CrosscheckReport`.

    A header naming the convention and call, delta, framework and battery; one row per case;
    then every case that did not pass with its reason and details; the hints; a summary line
    with the exit status.

    Parameters
    ----------
    report : CrosscheckReport
        The result of :func:`crosscheck`.
    target : str, optional
        The name shown in the header (as given on the command line); by default the call's.
    strict : bool, default False
        Report the exit status of ``--strict`` (EXPECTED cases fail too).

    Returns
    -------
    str

    Examples
    --------
    >>> import rankref
    >>> from rankref import crosscheck
    >>> report = crosscheck.crosscheck(rankref.rank_sort_loss, loss="rs", cases="quick")
    >>> print(crosscheck.format_report(report).splitlines()[0])
    rankref crosscheck rank_sort_loss --loss rs
    """
    loss = report.loss
    first = "max |z|" if loss == "iou-neg-sampler" else "loss diff"
    second = "max |freq-p|" if loss == "iou-neg-sampler" else "max grad diff"
    title = f"rankref crosscheck {target or report.call.split('(')[0]} --loss {loss}"
    if report.convention != "rankref":
        title += f" --convention {report.convention}"
    lines = [title, _wrap(f"  convention  {report.convention}: {report.call}", " " * 14)]
    if report.delta is not None:
        own = ("fixed by the official code; cases at another delta are SKIPPED"
               if report.fixed_delta else "cases named 'delta = ...' use their own")
        lines.append(f"  delta       {float(report.delta)!r} ({own})")
    lines += [f"  framework   {report.framework} ({report.framework_reason})",
              f"  battery     {report.battery}: {len(report)} cases; rtol={report.rtol:g}, "
              f"atol={report.atol:g}, timeout {report.timeout:g} s per case"
              + ("; --strict: EXPECTED fails the run" if strict else ""), ""]
    head = f"{'case':<26}{first:>11}{second:>15}{'rel grad diff':>15}  result"
    lines += [head, "-" * len(head)]
    for r in report:
        lines.append(f"{r['case']:<26}{_num(r['loss_diff']):>11}{_num(r['grad_max_diff']):>15}"
                     f"{_num(r['grad_rel_diff']):>15}  {r['status'].upper()}")
    for r in report:
        if r["status"] == "pass":
            continue
        lines.append("")
        lines.append(_wrap(f"{r['status'].upper()} {r['case']}: {r['reason']}", "    "))
        lines += [_wrap(f"  {d}", "    ") for d in r["detail"] if d != r["reason"]]
    if report.hints:
        lines.append("")
        lines += [_wrap(f"hint: {h}", "      ") for h in report.hints]
    c = report.counts()
    status = report.exit_status(strict)
    lines.append("")
    lines.append(f"{c['pass']} passed, {c['fail']} failed, {c['error']} errors, "
                 f"{c['expected']} expected, {c['skipped']} skipped: exit status {status}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ command line

CLI_DESCRIPTION = """\
Audit another implementation of a loss (or sampler) against rankref: a battery of generated
cases (random, ties, a single positive, zero positives, no relevant negatives, huge spreads,
float16-rounded logits, a 2-D [anchors, classes] matrix, delta = 0 and delta = 4) runs through
the callable and through rankref; each case is PASS, FAIL, ERROR, EXPECTED or SKIPPED.

The callable, in either form (NAME may be dotted: RankSort.apply):
  MODULE:CALLABLE        imported with the current folder first, as python -m does
  path/to/file.py:NAME   a file, loaded as a module
for example
  rankref crosscheck mypkg.losses:RankSort --loss rs --convention official
  rankref crosscheck path/to/ranking_losses.py:APLoss.apply --loss ap --convention official
  rankref crosscheck mypkg.losses:my_rank_sort --loss rs

The official callables, as their heads call them (--convention official):
  rs   RankSort / RankSort.apply     f(logits, targets, delta) -> (ranking, sorting);
                                     the whole update on the ranking output
  brs  BucketedRankSort              as rs; 1-D float32 logits only
  ap   APLoss.apply                  f(logits, targets, delta) -> loss
  ap   AP_loss (AP-Loss repository)  f(logits, targets) -> (grad, loss[1]); delta 1.0 only
  gap  GAPLoss.apply (ROG)           f(scores.reshape(-1), labels, counts.clamp(min=1), C,
                                     gamma, lam) -> unweighted ranking error; backward: lam x
                                     the weighted update; delta 0.5 only; no ignore label
Without --convention official, rankref's signatures apply (the docstring of
rankref.crosscheck lists them).

EXPECTED: a documented difference of the official code, printed with its reason.
SKIPPED: a case outside the official code's domain (2-D input for BRS, delta != 1 for AP_loss,
delta != 0.5 or ignored labels for GAPLoss).
"""

CLI_EPILOG = """\
exit status: 0 when no case FAILs or ERRORs (--strict: nor is EXPECTED), 1 otherwise, 2 for bad
usage (unknown loss, a module or name that cannot be found, a convention the loss does not have).
"""


def add_parser(subparsers):
    """Add the ``crosscheck`` sub-command to an ``argparse`` sub-parser collection."""
    import argparse

    from ._cli_types import _HelpFormatter, _at_least

    class Formatter(argparse.RawDescriptionHelpFormatter, _HelpFormatter):
        """The description and epilog as written; each option's default after its help."""

    p = subparsers.add_parser("crosscheck", help="audit another implementation against rankref",
                              description=CLI_DESCRIPTION, epilog=CLI_EPILOG,
                              formatter_class=Formatter)
    p.add_argument("target", metavar="TARGET",
                   help="the callable to audit: MODULE:CALLABLE (resolved from the current "
                        "folder, as python -m does) or path/to/file.py:NAME")
    p.add_argument("--loss", required=True, choices=LOSSES,
                   help="what the callable computes: rs (RS loss), ap (AP Loss), brs (Bucketed "
                        "RS), gap (ROG's GAP loss), balanced-l1, iou-neg-sampler (required)")
    p.add_argument("--convention", choices=("rankref", "official"), default="rankref",
                   help="official: call the official callables as their heads do (rs, brs, ap, "
                        "gap); rankref: rankref's signatures")
    p.add_argument("--cases", choices=("all", "quick"), default="all",
                   help="the whole battery, or its first four or five cases")
    p.add_argument("--framework", choices=("auto", "numpy", "torch"), default="auto",
                   help="array type passed to the callable (auto: torch for autograd Functions, "
                        "nn.Modules and functions whose module uses torch, NumPy otherwise)")
    p.add_argument("--delta", type=float, default=None,
                   help="the battery's delta; cases named 'delta = ...' keep their own "
                        "(default: 0.5; 1.0 for ap)")
    p.add_argument("--rtol", type=_at_least(float, 0.0), default=1e-4,
                   help="relative tolerance: an entry passes when its difference from "
                        "rankref's is at most atol + rtol x |rankref's value|")
    p.add_argument("--atol", type=_at_least(float, 0.0), default=1e-6,
                   help="absolute tolerance (see --rtol)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help="seconds one case may run; a case running longer is an ERROR and the "
                        "run goes on (default: %(default)g)")
    p.add_argument("--strict", action="store_true", help="EXPECTED cases fail the run too")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON (per-case status and reason)")
    return p


def run(args):
    """Run the ``crosscheck`` sub-command from parsed arguments; returns the exit status."""
    prog = "rankref crosscheck"
    try:
        _check_options(args.loss, args.cases, args.convention, args.framework, args.rtol,
                       args.atol, args.delta, args.timeout)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    with _folder_first(_search_folder(args.target)):  # for imports made at call time
        try:
            func = load_callable(args.target)
        except Exception as exc:  # import errors of the audited module included
            print(f"{prog}: cannot load {args.target}: {exc}", file=sys.stderr)
            return 2
        # what the audited code prints goes to stderr, so that --json output stays parseable
        try:
            with contextlib.redirect_stdout(sys.stderr):
                report = crosscheck(func, args.loss, args.cases, args.convention,
                                    args.framework, args.rtol, args.atol, args.delta,
                                    args.timeout)
        except (TypeError, ValueError) as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(report.to_json(args.target, args.strict))
    else:
        print(format_report(report, args.target, args.strict))
    return report.exit_status(args.strict)
