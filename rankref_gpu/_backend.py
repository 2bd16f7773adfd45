"""Array namespaces: the few primitives rankref_gpu needs, on NumPy, CuPy or torch.

:func:`namespace` picks, from a function's inputs, an object ``xp`` that speaks the NumPy API
subset the code uses (``xp.asarray``, ``xp.searchsorted(a, v, side=)``, ``xp.cumsum``, ...) on
the inputs' library and device, plus a handful of named primitives that the libraries spell
differently:

===================  =========================  ==========================  =======================
primitive            NumPy                      CuPy                        torch (CPU / CUDA)
===================  =========================  ==========================  =======================
``count``            ``bincount``               ``bincount``                ``bincount`` /
                                                                            ``index_add_`` (ints)
``segment_sum``      ``bincount(weights=)``     ``bincount(weights=)``      ``bincount(weights=)``
                                                (atomics)                   / ``index_add_``
``scatter_add``      ``add.at``                 ``cupyx.scatter_add``       ``index_add_``
``argsort`` (stable) ``kind="stable"``          always stable               ``stable=True``
``lexsort``          ``lexsort``                stable argsorts             stable argsorts
``cummax``           ``maximum.accumulate``     doubling (log n passes)     ``cummax``
``unique_sorted``    ``unique`` (index,counts)  ``unique``                  ``unique_consecutive``
``cumsum`` (float)   ``cumsum``                 ``cumsum``                  ``cumsum``; doubling
                                                                            scan on CUDA when
                                                                            deterministic
===================  =========================  ==========================  =======================

NumPy and CuPy namespaces delegate every other name to the module itself, so NumPy results are
those of NumPy.  The torch namespace implements the subset explicitly with NumPy's semantics:
float64 by default, NumPy dtypes accepted wherever a dtype is, ``searchsorted`` with type
promotion, reductions whose result does not depend on the number of CPU threads.

Why not ``array-api-compat``: the code and the shared rankref helpers are written against the
NumPy API (which CuPy mirrors), rankref calls those helpers with the plain ``numpy`` module
(NumPy >= 1.25, without ``astype``/``isdtype`` functions), and most of what is needed is outside
the standard (weighted bincount, scatter-add, cumulative max, unique with first index,
``nextafter`` on scalars, lexsort); array-api-compat leaves these to the caller (its torch
``unique_all`` raises NotImplementedError).  One explicit namespace of about sixty short
functions is less than the adapter code needed around the standard one, and adds no dependency.

``import rankref_gpu`` imports neither CuPy nor torch: an input is recognised as a CuPy array or
a torch tensor only if that library is already imported (it must be, to have made the input).
"""
import contextlib
import sys

import numpy as np

# Largest number of elements a dense or ragged temporary may hold (chunks keep memory bounded).
CHUNK = 1 << 24
# Slice of the N logits processed at once by the passes over all of them (binning, scatter).
PASS_CHUNK = 1 << 22
# torch splits a CPU reduction with one output over threads above this size (its GRAIN_SIZE);
# blocked sums of this length keep results independent of the thread count.
_GRAIN = 1 << 15
# Tests set this to run the CUDA code paths of the torch namespace on CPU tensors.
_CUDA_PATHS_ON_CPU = False


def _library(a):
    """'torch', 'cupy' or None for anything else (NumPy arrays, lists, scalars)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(a, torch.Tensor):
        return "torch"
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(a, cupy.ndarray):
        return "cupy"
    return None


def namespace(*arrays):
    """The namespace of the first torch tensor or CuPy array among ``arrays`` (on its device),
    else NumPy's.  Other inputs (lists, NumPy arrays, tensors on another device) are converted
    to that library and device by ``xp.asarray``."""
    for a in arrays:
        lib = _library(a)
        if lib == "torch":
            return _torch_namespace(a.device)
        if lib == "cupy":
            return _cupy_namespace()
    return NUMPY


def on_gpu(xp):
    """Whether a namespace computes on a GPU (CuPy, or torch on CUDA)."""
    return xp.name == "cupy" or bool(getattr(xp, "cuda", False))


def to_host(a):
    """A NumPy copy of a NumPy/CuPy array or torch tensor (or scalar)."""
    return namespace(a).to_host(a)


def _c_order(a):
    """A C-contiguous NumPy array (0-d stays 0-d, unlike np.ascontiguousarray)."""
    return a if a.flags.c_contiguous else a.copy(order="C")


def chunks(total_rows, cols, budget=None):
    """Row ranges ``(i0, i1)`` such that ``(i1 - i0) * cols <= budget`` (at least one row;
    ``budget`` defaults to CHUNK)."""
    step = max(1, (budget or CHUNK) // max(int(cols), 1))
    for i0 in range(0, int(total_rows), step):
        yield i0, min(int(total_rows), i0 + step)


# ---------------------------------------------------------------------------- NumPy and CuPy

class ModuleNamespace:
    """NumPy or CuPy: the module itself, plus the named primitives of the table above."""

    def __init__(self, module, name):
        self._module = module
        self.name = name

    def __getattr__(self, attr):
        return getattr(self._module, attr)

    def __repr__(self):
        return f"<rankref_gpu namespace {self.name}>"

    # dtypes and conversion
    def asarray(self, a, dtype=None):
        if self.name == "cupy" and _library(a) is None:
            a = np.asarray(a)  # host data; non-numeric is left for validation to reject
            if a.dtype.kind not in "biuf":
                return a
        return self._module.asarray(a, dtype=dtype)

    def dtype_kind(self, dtype):
        return np.dtype(dtype).kind

    def astype(self, a, dtype):
        return a.astype(dtype)

    def size(self, a):
        return a.size

    def to_host(self, a):
        return a.get() if self.name == "cupy" and hasattr(a, "get") else np.asarray(a)

    def scalar(self, v):
        """A loss value: a Python float on NumPy, a 0-d float64 array on the device on CuPy."""
        if self.name == "numpy":
            return float(v)
        return self._module.asarray(v, dtype=np.float64).reshape(())

    def any_flags(self, *masks):
        """``[bool(m.any()) for m in masks]`` with one device-to-host transfer."""
        if not masks:
            return []
        return [bool(v) for v in self.to_host(self._module.stack([m.any() for m in masks]))]

    @property
    def deterministic(self):
        """Whether float sums are bitwise reproducible: NumPy yes, CuPy no (atomics)."""
        return self.name == "numpy"

    # primitives
    def argsort(self, a, kind=None):
        if self.name == "cupy":
            return self._module.argsort(a)  # CuPy sorts are always stable
        return np.argsort(a, kind="stable")

    def lexsort(self, keys):
        """Indices sorting by ``keys[-1]``, then ``keys[-2]``, ... (stable)."""
        if self.name == "numpy":
            return np.lexsort(keys)
        return _lexsort_by_argsort(self, keys)

    def count(self, idx, size):
        """``bincount(idx)`` of length ``size`` (every index < size), int64."""
        return self._module.bincount(idx, minlength=size).astype(np.int64, copy=False)

    def segment_sum(self, idx, weights, size):
        """``sum of weights[k] over idx[k] == b`` for b < size, float64."""
        return self._module.bincount(idx, weights=weights, minlength=size)

    def segment_min(self, idx, values, size):
        """``min of values[k] over idx[k] == b`` for b < size (+inf where none), float64."""
        out = self._module.full(size, np.inf)
        if self.name == "cupy":
            import cupyx

            cupyx.scatter_min(out, idx, values)
        else:
            np.minimum.at(out, idx, values)
        return out

    def segment_max(self, idx, values, size):
        """``max of values[k] over idx[k] == b`` for b < size (-inf where none), float64."""
        out = self._module.full(size, -np.inf)
        if self.name == "cupy":
            import cupyx

            cupyx.scatter_max(out, idx, values)
        else:
            np.maximum.at(out, idx, values)
        return out

    def scatter_add(self, out, idx, values):
        """``out[idx] += values`` with repeated indices accumulated (in place)."""
        if self.name == "cupy":
            import cupyx

            cupyx.scatter_add(out, idx, values)
        else:
            np.add.at(out, idx, values)
        return out

    def take(self, a, idx):
        """``a[idx]`` for a 1-D ``a`` and integer indices of any shape."""
        return self._module.take(a, idx)

    def cummax(self, a):
        if self.name == "numpy":
            return np.maximum.accumulate(a)
        return _cummax_doubling(self, a)

    def unique_sorted(self, a):
        """``(values, first_index, counts)`` of a sorted 1-D array."""
        return self._module.unique(a, return_index=True, return_counts=True)

    # the passes over N (see the TorchNamespace versions)
    def read_ints(self, *scalars):
        """Python ints of 0-d arrays (flags, counts), with one device-to-host transfer."""
        if not scalars:
            return []
        if self.name == "numpy":
            return [int(v) for v in scalars]
        return [int(v) for v in self.to_host(self._module.stack(
            [self._module.asarray(v).astype(np.int64) for v in scalars]))]

    def segment_sums(self, data, lengths):
        """Sums of consecutive segments of the rows of ``data`` (``lengths`` >= 1, summing to
        its length), each in row order (NumPy only: ``add.reduceat``)."""
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        return np.add.reduceat(data, starts, axis=0)

    def frac(self, a):
        """``a - trunc(a)`` (NaN stays NaN)."""
        return self._module.modf(a)[0]

    def aminmax(self, a):
        return self._module.min(a), self._module.max(a)

    def flatnonzero_sized(self, mask, size):
        return self._module.flatnonzero(mask)[:size]

    def bin_index(self, keys, v):
        return self._module.searchsorted(keys, v, side="right")

    def add_masked(self, b, mask, shift):
        b += mask * b.dtype.type(shift)
        return b

    def add_counts(self, counts, idx):
        return counts + self._module.bincount(idx, minlength=counts.shape[0]).astype(np.int64)

    def add_sums(self, sums, idx, values):
        return sums + self._module.bincount(idx, weights=values, minlength=sums.shape[0])

    def take_rows(self, table, idx):
        return self._module.take(table, idx, axis=0)

    def addcmul_into(self, a, k, u, out, dtype):
        if out is None:
            return (a + k * u).astype(dtype)
        out[...] = a + k * u
        return out

    def assign(self, dst, src):
        dst[...] = src
        return dst


NUMPY = ModuleNamespace(np, "numpy")
_CUPY = None


def _cupy_namespace():
    global _CUPY
    if _CUPY is None:
        import cupy

        _CUPY = ModuleNamespace(cupy, "cupy")
    return _CUPY


def _lexsort_by_argsort(xp, keys):
    keys = list(keys)
    order = xp.argsort(keys[0], kind="stable")
    for k in keys[1:]:
        order = order[xp.argsort(k[order], kind="stable")]
    return order


def _cummax_doubling(xp, a):
    """Running maximum in ceil(log2 n) elementwise passes (max is exact: any order is)."""
    out = xp.copy(a)
    k = 1
    while k < out.shape[0]:
        out[k:] = xp.maximum(out[k:], out[:-k])
        k *= 2
    return out


def _cumsum_doubling(xp, a):
    """Inclusive prefix sum in ceil(log2 n) elementwise passes: the association is fixed by n
    alone, so the result is bitwise reproducible on any device (no atomics, no look-back)."""
    out = xp.copy(a)
    k = 1
    while k < out.shape[0]:
        out[k:] = out[k:] + out[:-k]
        k *= 2
    return out


# ---------------------------------------------------------------------------- torch

_TORCH = {}


def _torch_namespace(device):
    ns = _TORCH.get(device)
    if ns is None:
        ns = _TORCH[device] = TorchNamespace(device)
    return ns


class TorchNamespace:
    """The NumPy subset used by rankref_gpu, on torch tensors of one device.

    Inputs of other libraries or devices are copied to ``device`` by :meth:`asarray`;
    tensors are detached (rankref_gpu never builds an autograd graph).  Creation functions
    default to float64 (int64 for integer ranges), as NumPy's do.
    """

    name = "torch"

    def __init__(self, device):
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.float16, self.bfloat16 = torch.float16, torch.bfloat16
        self.float32, self.float64 = torch.float32, torch.float64
        self.int8, self.int16, self.int32, self.int64 = (torch.int8, torch.int16, torch.int32,
                                                         torch.int64)
        self.uint8, self.bool_ = torch.uint8, torch.bool
        self._from_np = {np.dtype(k): v for k, v in (
            (np.float16, torch.float16), (np.float32, torch.float32),
            (np.float64, torch.float64), (np.int8, torch.int8), (np.int16, torch.int16),
            (np.int32, torch.int32), (np.int64, torch.int64), (np.uint8, torch.uint8),
            (np.bool_, torch.bool))}

    def __repr__(self):
        return f"<rankref_gpu namespace torch on {self.device}>"

    @property
    def _cuda_paths(self):
        return self.cuda or _CUDA_PATHS_ON_CPU

    @property
    def deterministic(self):
        """Whether float sums are bitwise reproducible: always on CPU; on CUDA when
        ``torch.use_deterministic_algorithms(True)`` is on."""
        return (not self._cuda_paths) or self._torch.are_deterministic_algorithms_enabled()

    # ------------------------------------------------------------------ dtypes, conversion

    def _dt(self, dtype):
        if dtype is None or isinstance(dtype, self._torch.dtype):
            return dtype
        if dtype is float:
            return self._torch.float64
        if dtype is int:
            return self._torch.int64
        if dtype is bool:
            return self._torch.bool
        return self._from_np[np.dtype(dtype)]

    def dtype_kind(self, dtype):
        """NumPy's one-letter kind ('b', 'i', 'u', 'f', 'c') of a torch or NumPy dtype."""
        if not isinstance(dtype, self._torch.dtype):
            return np.dtype(dtype).kind
        if dtype == self._torch.bool:
            return "b"
        if dtype.is_floating_point:
            return "f"
        if dtype.is_complex:
            return "c"
        if dtype in (self._torch.uint8, getattr(self._torch, "uint16", None),
                     getattr(self._torch, "uint32", None), getattr(self._torch, "uint64", None)):
            return "u"
        if dtype in (self._torch.int8, self._torch.int16, self._torch.int32, self._torch.int64):
            return "i"
        return "V"

    def asarray(self, a, dtype=None):
        """A tensor on this device.  Non-numeric input (strings, objects) is returned as a NumPy
        array, for the validation to reject with rankref's message."""
        torch = self._torch
        dt = self._dt(dtype)
        if isinstance(a, torch.Tensor):
            a = a.detach()
            if a.device != self.device:
                a = a.to(self.device)
            return a if dt is None or a.dtype == dt else a.to(dt)
        arr = a.get() if _library(a) == "cupy" else np.asarray(a)
        if arr.dtype.kind not in "biuf":
            return arr
        if arr.dtype not in self._from_np:  # uint16/32/64, longdouble: values kept on the host
            arr = arr.astype(np.int64 if arr.dtype.kind in "iu" and arr.dtype.itemsize < 8
                             else np.float64)
        out = torch.as_tensor(_c_order(arr), device=self.device)
        return out if dt is None or out.dtype == dt else out.to(dt)

    def ascontiguousarray(self, a, dtype=None):
        out = self.asarray(a, dtype)
        return out.contiguous() if isinstance(out, self._torch.Tensor) else out

    def astype(self, a, dtype):
        return a.to(self._dt(dtype))

    def to_host(self, a):
        if not isinstance(a, self._torch.Tensor):
            return np.asarray(a)
        a = a.detach()
        if a.dtype == self._torch.bfloat16:
            a = a.float()
        return a.cpu().numpy()

    def from_host(self, a):
        return self.asarray(a)

    def scalar(self, v):
        """A loss value: a 0-d float64 tensor on the device (``float()`` copies it)."""
        if isinstance(v, self._torch.Tensor):
            return v.to(self._torch.float64).reshape(())
        return self._torch.full((), float(v), dtype=self._torch.float64, device=self.device)

    def any_flags(self, *masks):
        """``[bool(m.any()) for m in masks]`` with one device-to-host transfer."""
        if not masks:
            return []
        return [bool(v) for v in self._torch.stack([m.any() for m in masks]).tolist()]

    def size(self, a):
        return a.numel()

    def _operand(self, v, like):
        """Python scalars as 0-d tensors with NumPy's promotion against ``like``."""
        torch = self._torch
        if isinstance(v, torch.Tensor):
            return v
        if isinstance(v, (bool, np.bool_)):
            dt = torch.bool
        elif isinstance(v, (int, np.integer)):
            dt = like.dtype if isinstance(like, torch.Tensor) else torch.int64
        else:
            v = float(v)
            dt = (like.dtype if isinstance(like, torch.Tensor) and like.is_floating_point()
                  else torch.float64)
        # filled on the device: torch.tensor(v, device=cuda) would copy from the host and
        # synchronise the stream
        return torch.full((), v, dtype=dt, device=self.device)

    # ------------------------------------------------------------------ creation

    def zeros(self, shape, dtype=None):
        return self._torch.zeros(shape, dtype=self._dt(dtype) or self._torch.float64,
                                 device=self.device)

    def ones(self, shape, dtype=None):
        return self._torch.ones(shape, dtype=self._dt(dtype) or self._torch.float64,
                                device=self.device)

    def empty(self, shape, dtype=None):
        return self._torch.empty(shape, dtype=self._dt(dtype) or self._torch.float64,
                                 device=self.device)

    def zeros_like(self, a, dtype=None):
        return self._torch.zeros_like(a, dtype=self._dt(dtype))

    def full(self, shape, fill_value, dtype=None):
        dt = self._dt(dtype)
        if dt is None:
            dt = (self._torch.bool if isinstance(fill_value, (bool, np.bool_)) else
                  self._torch.int64 if isinstance(fill_value, (int, np.integer)) else
                  self._torch.float64)
        return self._torch.full(shape if isinstance(shape, tuple) else (int(shape),),
                                fill_value, dtype=dt, device=self.device)

    def arange(self, start, stop=None, step=1, dtype=None):
        if stop is None:
            start, stop = 0, start
        dt = self._dt(dtype)
        if dt is None:
            ints = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
            dt = self._torch.int64 if ints else self._torch.float64
        return self._torch.arange(start, stop, step, dtype=dt, device=self.device)

    def concatenate(self, arrays, axis=0):
        return self._torch.cat(list(arrays), dim=axis)

    def stack(self, arrays, axis=0):
        return self._torch.stack(list(arrays), dim=axis)

    def copy(self, a):
        return a.clone()

    def reshape(self, a, shape):
        return a.reshape(shape)

    def flip(self, a, axis=None):
        return self._torch.flip(a, dims=tuple(range(a.ndim)) if axis is None else (axis,))

    # ------------------------------------------------------------------ elementwise

    def where(self, cond, a, b):
        like = a if isinstance(a, self._torch.Tensor) else b
        return self._torch.where(cond, self._operand(a, like), self._operand(b, like))

    def clip(self, a, lo, hi):
        torch = self._torch
        if isinstance(lo, torch.Tensor) or isinstance(hi, torch.Tensor):
            lo, hi = self._operand(lo, a), self._operand(hi, a)
        return torch.clamp(a, lo, hi)

    def maximum(self, a, b):
        return self._torch.maximum(self._operand(a, b), self._operand(b, a))

    def minimum(self, a, b):
        return self._torch.minimum(self._operand(a, b), self._operand(b, a))

    def nextafter(self, a, b):
        return self._torch.nextafter(a, self._operand(b, a).expand_as(a))

    def isfinite(self, a):
        return self._torch.isfinite(a)

    def isnan(self, a):
        return self._torch.isnan(a)

    def isinf(self, a):
        return self._torch.isinf(a)

    def abs(self, a):
        return self._torch.abs(a)

    def sign(self, a):
        return self._torch.sign(a)

    def exp(self, a):
        return self._torch.exp(a)

    def log(self, a):
        return self._torch.log(a)

    def log1p(self, a):
        return self._torch.log1p(a)

    def sqrt(self, a):
        return self._torch.sqrt(a)

    def floor(self, a):
        return self._torch.floor(a)

    def ldexp(self, a, e):
        return self._torch.ldexp(a, self._operand(e, self.zeros(0, self._torch.int32)))

    def frexp(self, a):
        return self._torch.frexp(a)

    # ------------------------------------------------------------------ reductions

    def _blocked_sum(self, a):
        """Sum of a large CPU float tensor (at least _GRAIN elements), independent of the thread
        count: rows of _GRAIN / 2 (at least two, and a reduction with several outputs never
        splits one over threads), then the row sums (serial below _GRAIN of them)."""
        block = _GRAIN // 2
        flat = a.reshape(-1)
        pad = (-flat.shape[0]) % block
        if pad:
            flat = self._torch.cat([flat, flat.new_zeros(pad)])
        partial = flat.reshape(-1, block).sum(1)
        while partial.shape[0] >= _GRAIN:
            partial = self._blocked_sum(partial).reshape(1)
        return partial.sum()

    def sum(self, a, axis=None, keepdims=False):
        torch = self._torch
        big_cpu = (not self.cuda) and a.is_floating_point() and a.numel() >= _GRAIN
        if axis is None:
            out = self._blocked_sum(a) if big_cpu else a.sum()
            return out.reshape((1,) * a.ndim) if keepdims else out
        if big_cpu and a.numel() == a.shape[axis]:  # one output: split over threads by torch
            out = self._blocked_sum(a)
            shape = list(a.shape)
            shape[axis] = 1
            return out.reshape(shape) if keepdims else out.reshape(
                [s for i, s in enumerate(a.shape) if i != axis % a.ndim])
        return torch.sum(a, dim=axis, keepdim=keepdims)

    def mean(self, a, axis=None):
        n = a.numel() if axis is None else a.shape[axis]
        return self.sum(a, axis) / n

    def max(self, a, axis=None, keepdims=False):
        if axis is None:
            return a.max()
        return self._torch.amax(a, dim=axis, keepdim=keepdims)

    def min(self, a, axis=None, keepdims=False):
        if axis is None:
            return a.min()
        return self._torch.amin(a, dim=axis, keepdim=keepdims)

    def any(self, a):
        return a.any()

    # ------------------------------------------------------------------ scans, sorting, search

    def cumsum(self, a):
        if a.is_floating_point() and self._cuda_paths and self.deterministic:
            return _cumsum_doubling(self, a)  # torch.cumsum raises here (CUDA, floating)
        return self._torch.cumsum(a, 0)

    def cummax(self, a):
        return self._torch.cummax(a, 0).values

    def take(self, a, idx):
        """``a[idx]`` for a 1-D ``a`` and integer indices of any shape (``index_select``: the
        fastest gather of torch on the CPU)."""
        return a.index_select(0, idx.reshape(-1)).reshape(idx.shape)

    def flatnonzero(self, a):
        return self._torch.nonzero(a.reshape(-1)).reshape(-1)

    def sort(self, a):
        return self._torch.sort(a, stable=True).values

    def argsort(self, a, kind=None):
        return self._torch.argsort(a, stable=True)

    def lexsort(self, keys):
        return _lexsort_by_argsort(self, keys)

    def searchsorted(self, a, v, side="left"):
        torch = self._torch
        v = self._operand(v, a)
        dt = torch.promote_types(a.dtype, v.dtype)
        return torch.searchsorted(a.to(dt).contiguous(), v.to(dt).reshape(v.shape),
                                  side=side)

    def unique_sorted(self, a):
        """``(values, first_index, counts)`` of a sorted 1-D tensor."""
        values, counts = self._torch.unique_consecutive(a, return_counts=True)
        return values, self._torch.cumsum(counts, 0) - counts, counts

    # ------------------------------------------------------------------ passes over N
    # One operator each, in the inputs' own dtypes (no widened copies), int32 bin ids: what
    # benchmarks/bench_gpu.py --census counts.

    def read_ints(self, *scalars):
        """Python ints of 0-d tensors (flags, counts), with one device-to-host transfer."""
        if not scalars:
            return []
        torch = self._torch
        return [int(v) for v in torch.stack([v.reshape(()).to(torch.int64)
                                             for v in scalars]).tolist()]

    def segment_sums(self, data, lengths):
        """Sums of consecutive segments of the rows of ``data`` (``lengths`` >= 1, summing to
        its length), each in row order: ``segment_reduce`` (one thread per segment on CUDA, no
        atomics; unchecked lengths: no sync)."""
        return self._torch.segment_reduce(data, "sum", lengths=lengths, axis=0, unsafe=True)

    def frac(self, a):
        """``a - trunc(a)`` (NaN for NaN and +-inf)."""
        return self._torch.frac(a)

    def aminmax(self, a):
        """``(min, max)`` in one pass (0-d tensors; NaN propagates)."""
        return self._torch.aminmax(a)

    def flatnonzero_sized(self, mask, size):
        """The first ``size`` indices of the True entries of a flat mask (``size`` known on the
        host: no sync, unlike ``nonzero``)."""
        return self._torch.nonzero_static(mask.reshape(-1), size=int(size)).reshape(-1)

    def bin_index(self, keys, v):
        """``#{keys <= v}`` (``keys`` sorted, of v's dtype) as int32."""
        return self._torch.searchsorted(keys, v, right=True, out_int32=True)

    def add_masked(self, b, mask, shift):
        """``b += shift`` where ``mask`` (in place)."""
        return b.add_(mask, alpha=int(shift))

    def add_counts(self, counts, idx):
        """``counts[idx[k]] += 1`` (int64, exact): ``index_add_`` of a broadcast one."""
        one = self._torch.ones(1, dtype=counts.dtype, device=self.device)
        return counts.index_add_(0, idx, one.expand(idx.shape[0]))

    def add_sums(self, sums, idx, values):
        """``sums[idx[k]] += values[k]`` (float64; CPU: sequential, CUDA: atomics unless
        deterministic algorithms are on)."""
        return sums.index_add_(0, idx, values.to(sums.dtype))

    def take_rows(self, table, idx):
        return table.index_select(0, idx)

    def addcmul_into(self, a, k, u, out, dtype):
        """``a + k * u`` computed in float64 and rounded once to ``dtype``: into ``out`` (a
        slice), or a new array when ``out`` is None."""
        if out is None:
            out = self._torch.empty(a.shape, dtype=self._dt(dtype), device=self.device)
        return self._torch.addcmul(a, k, u, out=out)

    def assign(self, dst, src):
        return dst.copy_(src)

    def exp2(self, a):
        return self._torch.exp2(a)

    # ------------------------------------------------------------------ histograms, scatter

    def count(self, idx, size):
        """``bincount(idx)`` of length ``size`` (every index < size), int64, exact."""
        torch = self._torch
        if self._cuda_paths:  # integer atomics: exact in any order; no sync for the length
            return torch.zeros(size, dtype=torch.int64, device=self.device).index_add_(
                0, idx, torch.ones_like(idx, dtype=torch.int64))
        return torch.bincount(idx, minlength=size)

    def segment_sum(self, idx, weights, size):
        """``sum of weights[k] over idx[k] == b`` for b < size, float64.

        CPU: one sequential pass (bitwise reproducible).  CUDA: ``index_add_``, with atomics
        unless ``torch.use_deterministic_algorithms(True)`` is on, when torch switches to a
        sorted, deterministic accumulation (``bincount`` with weights would raise there)."""
        torch = self._torch
        w = weights.to(torch.float64)
        if self._cuda_paths:
            return torch.zeros(size, dtype=torch.float64, device=self.device).index_add_(
                0, idx, w)
        return torch.bincount(idx, weights=w, minlength=size)

    def scatter_add(self, out, idx, values):
        """``out[idx] += values`` with repeated indices accumulated (in place)."""
        return out.index_add_(0, idx, values.to(out.dtype))

    def segment_min(self, idx, values, size):
        """``min of values[k] over idx[k] == b`` for b < size (+inf where none), float64."""
        out = self.full(size, np.inf)
        return out.scatter_reduce_(0, idx, values.to(out.dtype), reduce="amin")

    def segment_max(self, idx, values, size):
        """``max of values[k] over idx[k] == b`` for b < size (-inf where none), float64."""
        out = self.full(size, -np.inf)
        return out.scatter_reduce_(0, idx, values.to(out.dtype), reduce="amax")

    def bincount(self, x, weights=None, minlength=0):
        """NumPy's bincount (the length is read from the data: one sync on CUDA)."""
        size = int(minlength)
        if x.numel() and self._cuda_paths:
            size = max(size, int(x.max()) + 1)
        if weights is None:
            return self.count(x, size) if self._cuda_paths else self._torch.bincount(
                x, minlength=size)
        return self.segment_sum(x, weights, size) if self._cuda_paths else self._torch.bincount(
            x, weights=weights.to(self._torch.float64), minlength=size)

    def errstate(self, **kwargs):
        return contextlib.nullcontext()
