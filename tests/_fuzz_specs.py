"""Picklable descriptions of fuzz inputs, built into real objects inside the worker process.

A case is a list of positional specs and a dict of keyword specs.  Specs are sent to the
worker (``_fuzz_runner``) and built there, so views (read-only, strided, transposed) and
tensors are created where the call runs.  Every spec also renders itself as Python code,
which makes the one-line reproducers of the findings.
"""
import math
from fractions import Fraction

import importlib.util
import sys

import numpy as np

__all__ = ["Arr", "Val", "NpScalar", "Rng", "Tensor", "Counts", "DictSpec", "SeqSpec",
           "ModuleSpec", "build", "code", "Case"]


def _float_code(v):
    if math.isnan(v):
        return "float('nan')"
    if math.isinf(v):
        return "float('inf')" if v > 0 else "-float('inf')"
    return repr(v)


def _lit(v):
    """Python source of a literal value (floats, ints, complex, str, None, lists, Fractions)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return repr(v)
    if isinstance(v, int):
        if abs(v) > 10**20:
            for base in (2, 10):
                e = round(math.log(abs(v), base))
                for off in range(-2, 3):
                    if abs(v) == base ** e + off:
                        tail = f" + {off}" if off > 0 else f" - {-off}" if off else ""
                        s = f"{base}**{e}" + tail
                        return ("-(" + s + ")") if v < 0 else s
        return repr(v)
    if isinstance(v, float):
        return _float_code(v)
    if isinstance(v, complex):
        return f"complex({_float_code(v.real)}, {_float_code(v.imag)})"
    if isinstance(v, Fraction):
        return f"Fraction({v.numerator}, {v.denominator})"
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_lit(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    if isinstance(v, Spec):
        return v.code()
    return repr(v)


class Spec:
    def build(self, env):
        raise NotImplementedError

    def code(self):
        raise NotImplementedError

    def __repr__(self):
        return self.code()


LAYOUTS = ("c", "ro", "strided", "rev", "T", "F", "list", "item", "npscalar")


class Arr(Spec):
    """An ndarray argument: flat values (C order), dtype name, shape and layout.

    Layouts: ``c`` contiguous, ``ro`` read-only, ``strided`` every other row of a larger base,
    ``rev`` reversed along axis 0 (negative strides), ``T`` a transposed view, ``F`` Fortran
    order, ``list`` nested Python lists, ``item`` a Python scalar (0-d only), ``npscalar`` a
    NumPy scalar (0-d only).  longdouble values are kept as strings (exact beyond float64).
    """

    def __init__(self, values, dtype, shape, layout="c"):
        self.values = list(values)
        self.dtype = dtype
        self.shape = tuple(shape)
        self.layout = layout

    def base(self):
        dt = np.dtype(self.dtype)
        if dt.kind == "f" and dt.itemsize > 8:
            arr = np.array([np.longdouble(v) for v in self.values], dtype=dt)
        elif dt.kind in "Mm":
            arr = np.array(self.values, dtype="int64").astype(dt)
        else:
            arr = np.array(self.values, dtype=dt) if self.values else np.zeros(0, dtype=dt)
        return arr.reshape(self.shape)

    def build(self, env=None):
        a = self.base()
        lay = self.layout
        if lay in FOREIGN:
            # arrays of other frameworks reach rankref's NumPy API (issue 21); with a tensor
            # rankref_gpu would compute in torch and return tensors: it gets the plain array
            if lay == "torch" and env is not None and env.get("name") != "rankref":
                return a
            return foreign(a, lay)
        if lay == "ro":
            a.flags.writeable = False
        elif lay == "strided" and a.ndim >= 1:
            big = np.zeros((a.shape[0] * 2,) + a.shape[1:], dtype=a.dtype)
            big[::2] = a
            big[1::2] = a  # garbage between the rows would be fine too; keep it finite
            a = big[::2]
        elif lay == "rev" and a.ndim >= 1:
            a = np.ascontiguousarray(a[::-1])[::-1]
        elif lay == "T" and a.ndim >= 2:
            a = np.ascontiguousarray(a.T).T
        elif lay == "F" and a.ndim >= 2:
            a = np.asfortranarray(a)
        elif lay == "list":
            a = a.tolist()
        elif lay == "item" and a.ndim == 0:
            a = a.item()
        elif lay == "npscalar" and a.ndim == 0:
            a = a[()]
        return a

    def _values_code(self):
        dt = np.dtype(self.dtype)
        if dt.kind == "f" and dt.itemsize > 8:
            return "[" + ", ".join(f"np.longdouble({v!r})" for v in self.values) + "]"
        return _lit(self.values)

    def code(self):
        dt = np.dtype(self.dtype)
        name = {"float16": "np.float16", "float32": "np.float32", "float64": "np.float64",
                "int8": "np.int8", "int16": "np.int16", "int32": "np.int32",
                "int64": "np.int64", "uint8": "np.uint8", "uint16": "np.uint16",
                "uint32": "np.uint32", "uint64": "np.uint64", "bool": "bool",
                "complex64": "np.complex64", "complex128": "np.complex128",
                "object": "object"}.get(dt.name, repr(dt.str) if dt.kind in "USMm" else
                                       "np.longdouble" if dt.kind == "f" else repr(dt.name))
        if dt.kind in "Mm":
            s = f"np.array({_lit(self.values)}, dtype='int64').astype({name})"
        else:
            s = f"np.array({self._values_code()}, dtype={name})"
        if len(self.shape) != 1 or self.shape[0] != len(self.values):
            s += f".reshape({self.shape!r})"
        lay = self.layout
        if lay in FOREIGN:
            return FOREIGN[lay].format(s) if _foreign_ok(np.dtype(self.dtype), lay) else s
        if lay == "ro":
            s = f"_readonly({s})"
        elif lay == "strided" and self.shape:
            s = f"np.repeat({s}, 2, axis=0)[::2]"
        elif lay == "rev" and self.shape:
            s = f"{s}[::-1].copy()[::-1]"
        elif lay == "T" and len(self.shape) >= 2:
            s = f"{s}.T.copy().T"
        elif lay == "F" and len(self.shape) >= 2:
            s = f"np.asfortranarray({s})"
        elif lay == "list":
            s = _lit(np.asarray(self.base()).tolist()) if np.dtype(self.dtype).kind not in "fc" \
                or np.dtype(self.dtype).itemsize <= 8 else f"{s}.tolist()"
            if np.dtype(self.dtype).kind in "Mm":
                s = f"{s}.tolist()"
        elif lay == "item" and not self.shape:
            s = _lit(self.base().item()) if np.dtype(self.dtype).kind in "fiubc" \
                and np.dtype(self.dtype).itemsize <= 8 else f"{s}.item()"
        elif lay == "npscalar" and not self.shape:
            s = f"{s}[()]"
        return s


class DLPackOnly:
    """An array exposed through ``__dlpack__`` only (as a JAX or TensorFlow CPU array is)."""

    def __init__(self, a):
        self._a = np.array(a, copy=True)

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


class ArrayLike:
    """An object with ``__array__`` only (as pandas or xarray objects are)."""

    def __init__(self, a):
        self._a = np.array(a, copy=True)

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


# layouts of other frameworks, with their reproducer code
FOREIGN = {"torch": "_grad_tensor({})", "dlpack": "DLPackOnly({})", "arrayobj": "ArrayLike({})"}
_TORCH_KINDS = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                "bool")


def _foreign_ok(dt, lay):
    if lay == "torch":  # (without torch the array stays a NumPy array)
        return dt.name in _TORCH_KINDS and importlib.util.find_spec("torch") is not None
    if lay == "dlpack":
        return dt.kind in "fiub" and dt.itemsize <= 8
    return True


def _grad_tensor(a):
    """A CPU tensor of ``a``'s values: requires_grad for floats, a non-contiguous view for
    arrays of at least one dimension."""
    import torch
    if a.ndim >= 1:
        t = torch.from_numpy(np.repeat(a, 2, axis=0))[::2]
    else:
        t = torch.from_numpy(np.array(a))
    return t.requires_grad_() if t.is_floating_point() else t


def foreign(a, lay):
    if not _foreign_ok(a.dtype, lay):
        return a
    if lay == "torch":
        return _grad_tensor(a)
    return DLPackOnly(a) if lay == "dlpack" else ArrayLike(a)


def host_view(v):
    """What NumPy sees of an argument: CPU tensors detached (bfloat16 as float32), DLPack-only
    and ``__array__`` objects converted; anything else as it is."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(v, torch.Tensor) and v.device.type == "cpu":
        t = v.detach()
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    if isinstance(v, DLPackOnly):
        return np.from_dlpack(v)
    if isinstance(v, ArrayLike):
        return np.asarray(v)
    return v


class Val(Spec):
    """A literal Python value passed as is."""

    def __init__(self, value):
        self.value = value

    def build(self, env=None):
        v = self.value
        return list(v) if isinstance(v, list) else v

    def code(self):
        return _lit(self.value)


class NpScalar(Spec):
    def __init__(self, dtype, value):
        self.dtype = dtype
        self.value = value

    def build(self, env=None):
        return np.dtype(self.dtype).type(self.value)

    def code(self):
        return f"np.{np.dtype(self.dtype).name}({_lit(self.value)})"


class Rng(Spec):
    """A random generator: ``np`` (numpy Generator), ``torch`` (torch.Generator), ``legacy``
    (np.random.RandomState, refused), ``int`` (a seed, refused), ``none``."""

    def __init__(self, kind, seed=0):
        self.kind = kind
        self.seed = seed

    def build(self, env=None):
        if self.kind == "np":
            return np.random.default_rng(self.seed)
        if self.kind == "torch":
            import torch
            return torch.Generator().manual_seed(self.seed)
        if self.kind == "legacy":
            return np.random.RandomState(self.seed)
        if self.kind == "int":
            return self.seed
        return None

    def code(self):
        return {"np": f"np.random.default_rng({self.seed})",
                "torch": f"torch.Generator().manual_seed({self.seed})",
                "legacy": f"np.random.RandomState({self.seed})",
                "int": repr(self.seed), "none": "None"}[self.kind]


TORCH_DTYPES = ("float16", "bfloat16", "float32", "float64", "int64", "int32", "int8",
                "uint8", "bool", "complex64")


class Tensor(Spec):
    """A torch tensor made from an Arr's values: dtype, layout (c/strided/T/rev), requires_grad
    and device (cpu or meta)."""

    def __init__(self, arr, dtype, layout="c", requires_grad=False, device="cpu"):
        self.arr = arr
        self.dtype = dtype
        self.layout = layout
        self.requires_grad = requires_grad
        self.device = device

    def build(self, env=None):
        import torch
        a = np.array(self.arr.base(), copy=True)
        dt = getattr(torch, self.dtype)
        if a.dtype.kind in "fc" and a.dtype.itemsize > 8:
            a = a.astype(np.float64)
        if a.dtype == np.uint64 or a.dtype == np.uint32 or a.dtype == np.uint16:
            a = a.astype(np.float64) if self.dtype in ("float16", "bfloat16", "float32",
                                                       "float64") else a.astype(np.int64)
        t = torch.as_tensor(a).to(dt)
        if self.layout == "strided" and t.dim() >= 1:
            t = torch.repeat_interleave(t, 2, dim=0)[::2]
        elif self.layout == "T" and t.dim() >= 2:
            t = t.T.contiguous().T
        if self.device != "cpu":
            t = t.to(self.device)
        if self.requires_grad and (t.is_floating_point() or t.is_complex()):
            t.requires_grad_(True)
        return t

    def code(self):
        s = f"torch.as_tensor({self.arr.code()}).to(torch.{self.dtype})"
        if self.layout == "strided" and self.arr.shape:
            s = f"torch.repeat_interleave({s}, 2, dim=0)[::2]"
        elif self.layout == "T" and len(self.arr.shape) >= 2:
            s = f"{s}.T.contiguous().T"
        if self.device != "cpu":
            s += f".to({self.device!r})"
        if self.requires_grad:
            s += ".requires_grad_()"
        return s


class Counts(Spec):
    """A ClassCounts of the package under test (or of the other package: ``foreign``) holding
    the given counts (set through load_state_dict when valid, else assigned)."""

    def __init__(self, num_classes, counts, foreign=False):
        self.num_classes = num_classes
        self.counts = list(counts)
        self.foreign = foreign

    def build(self, env):
        mod = env["other"] if self.foreign else env["pkg"]
        cc = mod.ClassCounts(self.num_classes)
        n = cc.num_classes
        cc.counts = np.array((self.counts + [0.0] * n)[:n], dtype=np.float64)
        return cc

    def code(self):
        mod = "other" if self.foreign else "pkg"
        return (f"_counts({mod}, {self.num_classes}, {_lit(self.counts)})"
                if any(self.counts) else f"{mod}.ClassCounts({self.num_classes})")


class DictSpec(Spec):
    def __init__(self, items):
        self.items = dict(items)

    def build(self, env):
        return {k: build(v, env) for k, v in self.items.items()}

    def code(self):
        return "{" + ", ".join(f"{k!r}: {code(v)}" for k, v in self.items.items()) + "}"


class SeqSpec(Spec):
    """A list, tuple or generator of specs."""

    def __init__(self, items, kind="list"):
        self.items = list(items)
        self.kind = kind

    def build(self, env):
        vals = [build(v, env) for v in self.items]
        if self.kind == "tuple":
            return tuple(vals)
        if self.kind == "gen":
            return (v for v in vals)
        return vals

    def code(self):
        inner = ", ".join(code(v) for v in self.items)
        if self.kind == "tuple":
            return f"({inner}{',' if len(self.items) == 1 else ''})"
        if self.kind == "gen":
            return f"iter([{inner}])"
        return f"[{inner}]"


class ModuleSpec(Spec):
    """A torch module for init_prior_bias_: Conv2d/Linear with or without bias, or junk."""

    def __init__(self, kind, bias=True, dtype="float32"):
        self.kind = kind
        self.bias = bias
        self.dtype = dtype

    def build(self, env):
        import torch
        dt = getattr(torch, self.dtype)
        if self.kind == "conv":
            return torch.nn.Conv2d(2, 3, 1, bias=self.bias).to(dt)
        if self.kind == "linear":
            return torch.nn.Linear(2, 3, bias=self.bias).to(dt)
        if self.kind == "seq":
            return torch.nn.Sequential(torch.nn.Linear(2, 3))
        return None

    def code(self):
        if self.kind == "conv":
            return f"torch.nn.Conv2d(2, 3, 1, bias={self.bias}).to(torch.{self.dtype})"
        if self.kind == "linear":
            return f"torch.nn.Linear(2, 3, bias={self.bias}).to(torch.{self.dtype})"
        if self.kind == "seq":
            return "torch.nn.Sequential(torch.nn.Linear(2, 3))"
        return "None"


class RegistrySpec(Spec):
    """A registry for register_mmdet: a fresh mmengine Registry ("fresh"), one where a name is
    taken by another class ("taken": ``<prefix>RankSortLoss`` is ``dict``), or junk."""

    def __init__(self, kind, prefix="RankRef"):
        self.kind = kind
        self.prefix = prefix

    def build(self, env):
        if self.kind in ("fresh", "taken"):
            from mmengine.registry import Registry
            reg = Registry("model")
            if self.kind == "taken":
                reg.register_module(name=f"{self.prefix}RankSortLoss", module=dict)
            return reg
        return {"dict": {}, "int": 5, "str": "MODELS"}[self.kind]

    def code(self):
        if self.kind == "fresh":
            return "mmengine.registry.Registry('model')"
        if self.kind == "taken":
            return (f"_registry_with({self.prefix + 'RankSortLoss'!r})")
        return {"dict": "{}", "int": "5", "str": "'MODELS'"}[self.kind]


def build(spec, env):
    return spec.build(env) if isinstance(spec, Spec) else spec


def code(spec):
    return spec.code() if isinstance(spec, Spec) else _lit(spec)


class Case:
    """One example: the call (a function name, or a list of steps for stateful objects),
    positional and keyword specs, and free-form metadata for the checker."""

    def __init__(self, func, args=(), kwargs=None, meta=None):
        self.func = func
        self.args = list(args)
        self.kwargs = dict(kwargs or {})
        self.meta = dict(meta or {})

    def build(self, env):
        return [build(a, env) for a in self.args], {k: build(v, env) for k, v in
                                                    self.kwargs.items()}

    def call_code(self, prefix):
        parts = [code(a) for a in self.args] + [f"{k}={code(v)}" for k, v in self.kwargs.items()]
        return f"{prefix}{self.func}({', '.join(parts)})"

    def __repr__(self):
        return self.call_code("")
