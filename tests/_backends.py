"""The array backends the rankref_gpu tests run on (the SciPy ``xp`` test style).

``numpy`` and ``torch-cpu`` run everywhere (torch-cpu needs torch, as CI installs it);
``torch-cpu-cudapaths`` runs the CUDA code paths of the torch namespace on CPU tensors;
``cupy`` and ``torch-cuda`` need a GPU and carry the ``gpu`` marker (skipped otherwise).
"""
import importlib.util

import numpy as np
import pytest


def _cupy():
    try:
        import cupy

        cupy.zeros(1)
        return cupy
    except Exception:  # no CuPy, or no device
        return None


def _torch():
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


def _cuda():
    torch = _torch()
    return torch is not None and torch.cuda.is_available()


class Backend:
    """Converts NumPy test data to one library/device and checks what comes back."""

    def __init__(self, name):
        self.name = name
        self.cuda_paths = name == "torch-cpu-cudapaths"
        if name == "numpy":
            self.lib, self.device = "numpy", None
        elif name == "cupy":
            self.lib, self.device, self.mod = "cupy", None, _cupy()
        else:
            self.lib, self.mod = "torch", _torch()
            self.device = self.mod.device("cuda" if name == "torch-cuda" else "cpu")

    def __repr__(self):
        return self.name

    def asarray(self, a, dtype=None):
        """``a`` (NumPy data) in this backend; ``dtype`` may name a torch-only dtype."""
        a = np.asarray(a)
        if self.lib == "numpy":
            return a if dtype is None else a.astype(dtype)
        if self.lib == "cupy":
            return self.mod.asarray(a if dtype is None else a.astype(dtype))
        torch = self.mod
        out = torch.as_tensor(a if a.flags.c_contiguous else a.copy(), device=self.device)
        if dtype is not None:
            out = out.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
        return out

    def host(self, a):
        if self.lib == "torch" and isinstance(a, self.mod.Tensor):
            a = a.detach()
            return (a.float() if a.dtype == self.mod.bfloat16 else a).cpu().numpy()
        if self.lib == "cupy" and hasattr(a, "get"):
            return a.get()
        return np.asarray(a)

    def is_array(self, a):
        """``a`` is an array of this library, on this device."""
        if self.lib == "numpy":
            return isinstance(a, np.ndarray)
        if self.lib == "cupy":
            return isinstance(a, self.mod.ndarray)
        return isinstance(a, self.mod.Tensor) and a.device.type == self.device.type

    def dtype_name(self, a):
        return str(a.dtype).replace("torch.", "")

    def check_scalar(self, v):
        """A loss value: a Python float on NumPy, a 0-d float64 array on the device otherwise."""
        if self.lib == "numpy":
            assert type(v) is float, type(v)
        else:
            assert self.is_array(v) and v.ndim == 0 and self.dtype_name(v) == "float64", v

    def check_array(self, a, dtype=None, shape=None):
        assert self.is_array(a), (type(a), self.name)
        if dtype is not None:
            assert self.dtype_name(a) == dtype, (a.dtype, dtype)
        if shape is not None:
            assert tuple(a.shape) == tuple(shape), (a.shape, shape)


def backend_params(with_cuda_paths=True):
    """pytest params of the backends, with marks and skips."""
    no_torch = pytest.mark.skipif(_torch() is None, reason="needs torch")
    gpu_cupy = [pytest.mark.gpu, pytest.mark.skipif(_cupy() is None, reason="needs CuPy and a GPU")]
    gpu_torch = [pytest.mark.gpu, pytest.mark.skipif(not _cuda(), reason="needs torch and CUDA")]
    params = [pytest.param("numpy"), pytest.param("torch-cpu", marks=no_torch)]
    if with_cuda_paths:
        params.append(pytest.param("torch-cpu-cudapaths", marks=no_torch))
    params += [pytest.param("cupy", marks=gpu_cupy), pytest.param("torch-cuda", marks=gpu_torch)]
    return params


@pytest.fixture(params=backend_params(), scope="module")
def be(request):
    """The backend of a test (import this fixture into a test module)."""
    b = Backend(request.param)
    with pytest.MonkeyPatch.context() as mp:
        if b.cuda_paths:
            from rankref_gpu import _backend

            mp.setattr(_backend, "_CUDA_PATHS_ON_CPU", True)
        yield b
