"""Shared helpers of the rankref.torch tests.

``RANKREF_TORCH_BACKEND`` picks the code path under test: with ``auto`` (default) or ``cpu``
CPU tensors are computed by rankref itself, so results must equal rankref's bitwise; with
``gpu`` they go through rankref_gpu on the tensors (the path of CUDA tensors), which equals
rankref to round-off.  CI runs every ``tests/test_torch*.py`` file both ways.
"""
import os

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal

BACKEND = os.environ.get("RANKREF_TORCH_BACKEND", "auto").strip().lower() or "auto"
EXACT = BACKEND != "gpu"


def as_numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def assert_backend_equal(actual, expected, rtol=None, atol=None):
    """``actual`` (a tensor or number) equals rankref's ``expected``: bitwise on the rankref
    path, to round-off on the rankref_gpu path."""
    a, e = as_numpy(actual), np.asarray(expected)
    if EXACT and rtol is None:
        assert_array_equal(a, e.astype(a.dtype) if a.dtype != e.dtype else e)
        return
    single = a.dtype == np.float32 or e.dtype == np.float32
    rtol = rtol if rtol is not None else (2e-5 if single else 1e-10)
    scale = float(np.abs(e).max()) if e.size else 0.0
    atol = atol if atol is not None else rtol * scale
    assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol)


def problem(seed=0, n=600, shape=None, ignore=0.03, pos=0.08):
    """Random RS logits (float64) and targets: IoU positives, negatives and ignored entries."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = np.where(rng.random(n) < pos, rng.uniform(0.2, 1.0, n), 0.0)
    t[rng.random(n) < ignore] = -1
    if shape:
        x, t = x.reshape(shape), t.reshape(shape)
    return x, t
