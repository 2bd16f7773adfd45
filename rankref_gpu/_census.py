"""An op census of a call on torch tensors: what a GPU would be asked to do, counted on the CPU.

:class:`Census` records, with a ``TorchDispatchMode``, every aten operator a call runs on torch
tensors, and counts what bounds a large ranking loss on a GPU:

* ``ops``: every aten operator, each taken as one kernel launch (the count of issue 24), views
  included; ``kernels``: the same without the views and metadata queries (``view``, ``slice``,
  ``select``, ``expand``, ``unsqueeze``, ``detach``, ...: an alias, no kernel, no traffic);
* ``big_ops``: the operators that touch a tensor of at least ``big`` elements (``N / 4`` by
  default), views excluded;
* ``bytes``: the bytes of every tensor input and output of those operators (elements times item
  size; a broadcast operand, with zero strides, counts the elements it really holds): the
  memory traffic of a kernel that reads each input once and writes each output once (an
  in-place operand is read and written);
* ``syncs``: the host syncs, operators whose result is read on the host or whose output size
  depends on the data (``nonzero``, ``item``/``_local_scalar_dense``, ``masked_select``,
  ``unique``, boolean-mask indexing, ``bincount`` without a fixed length, ...), and the host
  reads that bypass the dispatcher on CPU tensors (``Tensor.tolist``, ``Tensor.numpy``), which
  on CUDA copy to the host.

:func:`roofline` turns a census into a predicted GPU time:
``bytes / bandwidth + ops * launch + syncs * sync``.  The hardware numbers and their sources are
in ``docs/gpu_cost.rst``.

``import rankref_gpu`` does not import this module; this module imports torch only when a
census starts.
"""
import contextlib

# HBM bandwidth in bytes per second (NVIDIA H100 Tensor Core GPU datasheet: H100 SXM 3.35 TB/s;
# NVIDIA H200 Tensor Core GPU datasheet: H200 SXM 4.8 TB/s HBM3e), and the model's cost of one
# kernel launch and of one host sync (a few microseconds each; see docs/gpu_cost.rst).
DEVICES = {"H100": 3.35e12, "H200": 4.8e12}
LAUNCH_S = 4e-6
SYNC_S = 20e-6

# aten operators that only read metadata or make an alias: no kernel, no traffic
_NO_KERNEL = {
    "view", "_unsafe_view", "reshape", "alias", "as_strided", "slice", "select", "expand",
    "permute", "transpose", "t", "unsqueeze", "squeeze", "detach", "lift_fresh",
    "unbind", "split", "split_with_sizes", "chunk", "narrow", "diagonal", "unfold",
    "view_as_real", "view_as_complex", "_reshape_alias", "sym_size", "sym_stride",
    "sym_numel", "sym_storage_offset", "is_same_size", "_nested_tensor_size", "dim",
    "size", "stride", "numel", "is_contiguous", "_to_copy_noop",
}
# operators that read device data on the host or whose output size depends on the data
_SYNC = {
    "nonzero", "nonzero_static_noop", "_local_scalar_dense", "item", "masked_select",
    "unique", "_unique", "_unique2", "unique_dim", "unique_consecutive", "unique_dim_consecutive",
    "is_nonzero", "equal", "allclose", "repeat_interleave", "nonzero_numpy", "argwhere",
}


_HOST_READS = ("tolist", "numpy")


def _held(t):
    """Elements a tensor really holds: its size over the dimensions with a non-zero stride."""
    n = 1
    for size, stride in zip(t.shape, t.stride()):
        if stride != 0:
            n *= size
    return n


def _name(func):
    """The aten operator's name without the overload (``aten.add.Tensor`` -> ``add``)."""
    return func._schema.name.split("::")[-1]


def _is_bool_index(func, args):
    """Boolean-mask indexing (``x[mask]``, ``x[mask] = v``): a nonzero inside, on CUDA a sync."""
    if _name(func) not in ("index", "index_put", "index_put_", "_index_put_impl_"):
        return False
    import torch

    idx = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
               for i in (idx or ()))


def _sync_reason(func, args, kwargs):
    name = _name(func)
    if name in _SYNC:
        if name == "repeat_interleave" and kwargs.get("output_size") is not None:
            return None
        return name
    if _is_bool_index(func, args):
        return f"{name}[bool mask]"
    if name == "bincount":  # the length is the data's maximum unless given
        return "bincount"
    return None


class Record:
    """One operator of a census: ``name``, ``big`` (touches a tensor of at least the census'
    size), ``nbytes`` (its tensors' bytes, counted when ``big``), ``sync`` (the reason, or
    None), ``numels`` (the sizes of its tensors)."""

    __slots__ = ("name", "big", "nbytes", "sync", "numels", "view")

    def __init__(self, name, big, nbytes, sync, numels, view=False):
        self.name, self.big, self.nbytes, self.sync, self.numels = (name, big, nbytes, sync,
                                                                    numels)
        self.view = view

    def __repr__(self):
        return (f"Record({self.name!r}, big={self.big}, nbytes={self.nbytes}, "
                f"sync={self.sync!r})")


class Census:
    """Count the operators of the torch calls made inside ``with Census(big) as c:``.

    ``big``: the number of elements from which a tensor is "N-sized" (the census' N / 4).
    After the block: ``c.ops``, ``c.kernels``, ``c.big_ops``, ``c.bytes``, ``c.syncs``,
    ``c.sync_names`` and ``c.records`` (every operator, in order; the host reads ``tolist`` and
    ``numpy`` are records too, syncs that are not operators).

    Example::

        >>> import torch
        >>> from rankref_gpu._census import Census
        >>> x = torch.ones(1000)
        >>> with Census(big=250) as c:
        ...     y = (x * 2.0).sum()
        >>> c.ops, c.kernels, c.big_ops, c.bytes, c.syncs
        (2, 2, 2, 12004, 0)
    """

    def __init__(self, big):
        self.big = int(big)
        self.records = []
        self._stack = None

    # results
    @property
    def ops(self):
        return sum(r.name not in _HOST_READS for r in self.records)

    @property
    def kernels(self):
        return sum(not r.view and r.name not in _HOST_READS for r in self.records)

    @property
    def big_ops(self):
        return sum(r.big for r in self.records)

    @property
    def bytes(self):
        return sum(r.nbytes for r in self.records)

    @property
    def syncs(self):
        return sum(r.sync is not None for r in self.records)

    @property
    def sync_names(self):
        return [r.sync for r in self.records if r.sync is not None]

    def by_name(self, big_only=False):
        """``{operator: (calls, bytes)}``, the heaviest first."""
        out = {}
        for r in self.records:
            if (big_only and not r.big) or r.view:
                continue
            n, b = out.get(r.name, (0, 0))
            out[r.name] = (n + 1, b + r.nbytes)
        return dict(sorted(out.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0])))

    # recording
    def _record(self, func, args, kwargs, out):
        import torch
        from torch.utils._pytree import tree_leaves

        name = _name(func)
        if name in _NO_KERNEL:
            self.records.append(Record(name, False, 0, None, [], view=True))
            return
        # an ``out=`` tensor is written, not read: it is counted once, as an output
        inputs = {k: v for k, v in kwargs.items() if k != "out"}
        tensors = [a for a in tree_leaves((args, inputs)) if isinstance(a, torch.Tensor)]
        outs = [a for a in tree_leaves(out) if isinstance(a, torch.Tensor)]
        # an in-place result is also an input: read and written, counted twice
        numels = [t.numel() for t in tensors + outs]
        big = any(n >= self.big for n in numels)
        nbytes = 0
        if big:
            nbytes = sum(_held(t) * t.element_size() for t in tensors + outs)
        self.records.append(Record(name, big, nbytes, _sync_reason(func, args, kwargs),
                                   numels))

    def _host_read(self, what, tensor):
        self.records.append(Record(what, tensor.numel() >= self.big,
                                   tensor.numel() * tensor.element_size()
                                   if tensor.numel() >= self.big else 0, what,
                                   [tensor.numel()]))

    def __enter__(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        census = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                census._record(func, args, kwargs, out)
                return out

        stack = contextlib.ExitStack()
        # host reads that do not go through the dispatcher on CPU tensors
        for meth in ("tolist", "numpy"):
            orig = getattr(torch.Tensor, meth)

            def wrapped(t, *a, _orig=orig, _meth=meth, **k):
                census._host_read(_meth, t)
                return _orig(t, *a, **k)

            setattr(torch.Tensor, meth, wrapped)
            stack.callback(setattr, torch.Tensor, meth, orig)
        stack.enter_context(_Mode())
        self._stack = stack
        return self

    def __exit__(self, *exc):
        self._stack.close()
        self._stack = None
        return False


def roofline(census_bytes, ops, syncs, bandwidth):
    """Predicted seconds on a GPU of HBM ``bandwidth`` (bytes/s): every byte moved once at
    full bandwidth, plus a fixed cost per launch and per host sync (nothing overlaps)."""
    return census_bytes / bandwidth + ops * LAUNCH_S + syncs * SYNC_S


def extrapolate(n0, v0, n1, v1, n):
    """The value at ``n`` of the line through ``(n0, v0)`` and ``(n1, v1)``."""
    return v0 + (v1 - v0) * (n - n0) / (n1 - n0)
