"""How an audited callable is called: the conventions, framework detection, the official domains."""
import inspect
import sys
import types

import numpy as np

LOSSES = ("rs", "ap", "brs", "gap", "balanced-l1", "iou-neg-sampler")
CONVENTIONS = {"rs": ("rankref", "official"), "brs": ("rankref", "official"),
               "ap": ("rankref", "official"), "gap": ("rankref", "official"),
               "balanced-l1": ("rankref",), "iou-neg-sampler": ("rankref",)}
STATUSES = ("pass", "fail", "error", "expected", "skipped")
DEFAULT_DELTA = {"rs": 0.5, "brs": 0.5, "ap": 1.0, "gap": 0.5}
DEFAULT_TIMEOUT = 120.0
MIN_CASES = 8  # --strict fails a run in which fewer cases ran
GAP_GAMMA = 1.0  # gamma and lam passed to the official GAPLoss.apply
GAP_LAM = 0.1
AP_LOSS_DELTA = 1.0  # fixed inside the AP-Loss repository's AP_loss
GAP_OFFICIAL_DELTA = 0.5  # fixed inside ROG's GAPLoss

OFFICIAL_LAYOUT_HINT = "this looks like the official gradient layout; try `--convention official`"
RANKREF_LAYOUT_HINT = ("this looks like rankref's gradient layout (each output carries its own "
                       "gradient); drop `--convention official`")


# ------------------------------------------------------------------------------ framework

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


# ------------------------------------------------------------------------------ the plan

class _Plan:
    """How one audited callable is called and compared (fixed for the whole run)."""

    def __init__(self, func, loss, convention, framework, auto_reason, certain=True):
        self.obj = func
        self.loss = loss
        self.convention = convention
        self.framework = framework
        self.auto_reason = auto_reason  # None when --framework was given
        self.certain = certain
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
        self.official_shape = _official_shape(self)

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
                    f"{GAP_GAMMA} (0.5 and 2.0 in two trained cases), lam={GAP_LAM}) -> the "
                    f"unweighted ranking error{tail}; delta fixed at {GAP_OFFICIAL_DELTA}, "
                    f"labels in [0, C]")
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

    @property
    def takes_delta(self):
        """True when the cases' delta reaches the callable (not fixed by the official code)."""
        return self.loss in DEFAULT_DELTA and self.fixed_delta is None


def _official_shape(plan):
    """The official form a callable's signature has while the rankref convention is asked
    for (a hint, and the reason of its errors), or None."""
    if plan.convention != "rankref" or plan.params is None:
        return None
    if plan.loss == "ap" and _is_plain_function(plan.obj) and len(plan.params) == 2:
        return ("this looks like the AP-Loss repository's AP_loss(logits, targets) -> (grad, "
                "loss); try `--convention official`")
    if plan.loss == "gap" and len(plan.params) >= 6:
        shown = ", ".join(plan.params[:6]) + (", ..." if len(plan.params) > 6 else "")
        return (f"this looks like ROG's GAPLoss.apply ({plan.name} takes ({shown})): the ROG "
                f"head calls it as f(scores.reshape(-1), labels, counts.clamp(min=1), C, gamma, "
                f"lam), not with rankref's f(scores, labels, counts, delta); try "
                f"`--convention official`")
    return None


def _delta_parameter_hint(plan):
    """A hint when the parameter that receives delta is not a delta (the BRS repository's
    ``RankSort.forward(ctx, logits, targets, loss_weight=1, delta_RS=0.5)``)."""
    if plan.loss not in ("rs", "brs", "ap") or not plan.takes_delta or plan.params is None:
        return None
    if len(plan.params) < 3 or "delta" in plan.params[2].lower():
        return None
    later = [p for p in plan.params[3:] if "delta" in p.lower()]
    if not later:
        return None
    return (f"the third parameter of {plan.name} is `{plan.params[2]}`, not delta: the call "
            f"f(logits, targets, delta) puts delta there and `{later[0]}` keeps its default "
            f"(the BRS repository's heads call its RankSort the same way: "
            f"apply(flat_preds, flat_labels, self.delta))")


# ------------------------------------------------------------------------------ domains

def _positives(inp):
    if "t" in inp:
        return int(np.count_nonzero(inp["t"] > 0))
    y, C = inp["labels"], inp["scores"].shape[1]
    return int(np.count_nonzero((y >= 0) & (y < C)))


class OutsideDomain(Exception):
    """A case that the official callable cannot run, even adapted (the reason is the text)."""


def _in_domain(plan, inp):
    """``(inputs, note)``: the case as the official callable can take it.

    Where the official domain excludes a case, the same regime runs inside the domain, and the
    note says how (2-D logits flattened for BRS, the fixed delta of ``AP_loss`` and ``GAPLoss``,
    GAP rows labelled -1 dropped).  Raises :class:`OutsideDomain` for a case with no such
    variant (a GAP batch without foreground, which the ROG head never passes).
    """
    if plan.convention != "official":
        return inp, None
    notes = []
    if plan.loss == "brs" and inp["x"].ndim != 1:
        inp = dict(inp, x=inp["x"].reshape(-1), t=inp["t"].reshape(-1))
        notes.append("flattened to 1-D, as the heads do (official BucketedRankSort takes 1-D "
                     "float32 logits only)")
    if plan.fixed_delta is not None and inp["delta"] != plan.fixed_delta:
        notes.append(f"run at delta = {plan.fixed_delta:g} instead of {inp['delta']:g} "
                     f"({plan.name} fixes delta)")
        inp = dict(inp, delta=plan.fixed_delta)
    if plan.form == "gap_official":
        keep = inp["labels"] >= 0
        if not keep.all():
            notes.append(f"the {int((~keep).sum())} rows labelled -1 dropped (official GAPLoss "
                         f"has no ignore label: ROG reads -1 as a positive of class C-1)")
            inp = dict(inp, scores=inp["scores"][keep], labels=inp["labels"][keep])
        if _positives(inp) == 0:
            raise OutsideDomain("the official ROG head skips GAPLoss when the batch has no "
                                "foreground; rankref returns a zero loss and gradient")
    return inp, "; ".join(notes) or None
