"""The namespace layer of rankref_gpu (rankref_gpu._backend): every primitive against NumPy,
on every backend, plus dispatch, dtype handling and reproducibility."""
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from _backends import be  # noqa: F401  (the backend fixture)
from rankref_gpu import _backend
from rankref_gpu._backend import (
    NUMPY,
    _cummax_doubling,
    _cumsum_doubling,
    _lexsort_by_argsort,
    namespace,
)


@pytest.fixture(scope="module")
def xp(be):
    return namespace(be.asarray(np.zeros(1)))


def test_dispatch(be, xp):
    assert namespace([1.0, 2.0], np.zeros(2)) is NUMPY
    assert xp.name == be.lib
    assert namespace(np.zeros(2), be.asarray(np.zeros(2))) is xp  # the first device array
    if be.lib == "torch":
        assert xp.device == be.device
        assert namespace(be.asarray(np.zeros(2))) is xp  # one namespace per device


def test_asarray_and_dtypes(be, xp):
    a = xp.asarray([0.5, 1.5])
    be.check_array(a, "float64")  # lists are float64, as in NumPy (not torch's float32)
    be.check_array(xp.asarray(np.zeros(2, np.float32)), "float32")
    be.check_array(xp.asarray(np.arange(3, dtype=np.uint32)))
    assert_array_equal(be.host(xp.asarray(np.arange(3, dtype=np.uint32))), [0, 1, 2])
    be.check_array(xp.asarray(np.zeros(3)), "float64")
    be.check_array(xp.asarray(a, dtype=np.float32), "float32")
    strings = xp.asarray(np.array(["a"]))
    assert isinstance(strings, np.ndarray) and strings.dtype.kind == "U"  # left for validation
    be.check_array(xp.zeros(3), "float64", (3,))
    be.check_array(xp.zeros((2, 3), dtype=np.int8), "int8", (2, 3))
    be.check_array(xp.full(4, -1), "int64")
    be.check_array(xp.full(4, np.nan), "float64")
    be.check_array(xp.arange(5), "int64")
    be.check_array(xp.empty(2, dtype=np.int64), "int64")
    assert_array_equal(be.host(xp.concatenate([xp.arange(2), xp.arange(3)])), [0, 1, 0, 1, 2])
    for dt, kind in ((np.float16, "f"), (np.int16, "i"), (np.uint8, "u"), (np.bool_, "b")):
        assert xp.dtype_kind(xp.asarray(np.zeros(1, dt)).dtype) == kind
    scalar = xp.scalar(xp.asarray([2.5])[0])
    if be.lib == "numpy":
        assert type(scalar) is float and scalar == 2.5
    else:
        be.check_array(scalar, "float64", ())
    assert xp.any_flags(xp.asarray([False, True]), xp.asarray([False])) == [True, False]
    assert_array_equal(xp.to_host(xp.asarray([1, 2])), [1, 2])


def test_torch_specifics(be, xp):
    if be.lib != "torch":
        pytest.skip("torch only")
    import torch

    t = torch.ones(3, dtype=torch.float64, requires_grad=True)
    a = xp.asarray(t)
    assert not a.requires_grad  # detached: rankref_gpu records nothing for autograd
    bf = torch.tensor([1.5, -2.25], dtype=torch.bfloat16, device=be.device)
    assert_array_equal(xp.to_host(bf), [1.5, -2.25])
    assert xp.dtype_kind(torch.bfloat16) == "f"
    assert xp.dtype_kind(torch.complex64) == "c"
    assert xp.asarray(np.float32(1.0), dtype=torch.bfloat16).dtype == torch.bfloat16
    # NumPy promotion where torch's differs: a float scalar with an integer tensor is float64
    got = xp.where(xp.asarray([True, False]), xp.arange(2), 0.5)
    be.check_array(got, "float64")
    assert_array_equal(be.host(got), [0.0, 0.5])


def test_sorting_and_search(be, xp):
    rng = np.random.default_rng(0)
    v = np.round(rng.normal(size=500) * 3) / 3  # many ties
    V = be.asarray(v)
    assert_array_equal(be.host(xp.argsort(V, kind="stable")), np.argsort(v, kind="stable"))
    assert_array_equal(be.host(xp.sort(V)), np.sort(v))
    k1, k2 = rng.integers(0, 4, 500), rng.integers(0, 3, 500)
    assert_array_equal(be.host(xp.lexsort([be.asarray(k1), be.asarray(k2)])),
                       np.lexsort([k1, k2]))
    assert_array_equal(_lexsort_by_argsort(NUMPY, [k1, k2]), np.lexsort([k1, k2]))
    edges = np.sort(v)
    queries = np.concatenate([v[:50], [-10.0, 10.0]])
    for side in ("left", "right"):
        want = np.searchsorted(edges, queries, side=side)
        got = xp.searchsorted(be.asarray(edges), be.asarray(queries), side=side)
        assert_array_equal(be.host(got), want)
        q32 = queries.astype(np.float32)  # float32 values into float64 edges: promoted, exact
        assert_array_equal(be.host(xp.searchsorted(be.asarray(edges), be.asarray(q32), side)),
                           np.searchsorted(edges, q32, side=side))
        ik = np.sort(rng.integers(0, 100, 300))  # int64 keys (the engine's class/bit keys)
        iq = rng.integers(-5, 105, 40)
        assert_array_equal(be.host(xp.searchsorted(be.asarray(ik), be.asarray(iq), side)),
                           np.searchsorted(ik, iq, side=side))
    s = np.sort(rng.integers(0, 9, 200))
    want = np.unique(s, return_index=True, return_counts=True)
    for u, w in zip(xp.unique_sorted(be.asarray(s)), want):
        assert_array_equal(be.host(u), w)


def test_scans_and_reductions(be, xp):
    rng = np.random.default_rng(1)
    v = rng.normal(size=1000)
    V = be.asarray(v)
    assert_array_equal(be.host(xp.cummax(V)), np.maximum.accumulate(v))
    assert_array_equal(_cummax_doubling(NUMPY, v), np.maximum.accumulate(v))
    assert_allclose(be.host(xp.cumsum(V)), np.cumsum(v), rtol=1e-12, atol=1e-12)
    assert_allclose(_cumsum_doubling(NUMPY, v), np.cumsum(v), rtol=1e-12, atol=1e-12)
    assert_array_equal(be.host(xp.cumsum(be.asarray(np.arange(10) % 3))),
                       np.cumsum(np.arange(10) % 3))
    assert_array_equal(be.host(xp.cumsum(be.asarray(v > 0))), np.cumsum(v > 0))
    big = rng.normal(size=70_000)
    assert_allclose(float(xp.sum(be.asarray(big))), np.sum(big), rtol=1e-12)
    assert_allclose(float(xp.mean(be.asarray(big))), np.mean(big), rtol=1e-12)
    m = rng.normal(size=(3, 5))
    assert_allclose(be.host(xp.sum(be.asarray(m), axis=1)), m.sum(1), rtol=1e-14)
    assert_allclose(be.host(xp.sum(be.asarray(m), axis=0)), m.sum(0), rtol=1e-14)
    assert_allclose(be.host(xp.max(be.asarray(m), axis=1, keepdims=True)),
                    m.max(axis=1, keepdims=True))
    assert_array_equal(be.host(xp.flip(V)), v[::-1])
    assert_array_equal(be.host(xp.flatnonzero(V > 0)), np.flatnonzero(v > 0))


def test_histograms_and_scatter(be, xp):
    rng = np.random.default_rng(2)
    idx = rng.integers(0, 37, 2000)
    w = rng.normal(size=2000)
    I, W = be.asarray(idx), be.asarray(w)
    c = xp.count(I, 40)
    be.check_array(c, "int64", (40,))
    assert_array_equal(be.host(c), np.bincount(idx, minlength=40))
    s = xp.segment_sum(I, W, 40)
    be.check_array(s, "float64", (40,))
    assert_allclose(be.host(s), np.bincount(idx, weights=w, minlength=40), rtol=1e-12,
                    atol=1e-12)
    s32 = xp.segment_sum(I, be.asarray(w.astype(np.float32)), 40)
    be.check_array(s32, "float64")  # accumulated in float64, as NumPy's bincount
    assert_allclose(be.host(xp.bincount(I, weights=W)), np.bincount(idx, weights=w), rtol=1e-12)
    assert_array_equal(be.host(xp.bincount(I)), np.bincount(idx))
    out = xp.zeros(40)
    xp.scatter_add(out, I, W)
    want = np.zeros(40)
    np.add.at(want, idx, w)
    assert_allclose(be.host(out), want, rtol=1e-12, atol=1e-12)
    if be.name in ("numpy", "torch-cpu", "torch-cpu-cudapaths"):
        # CPU (bincount or index_add_): one sequential pass in index order, bitwise NumPy's
        assert_array_equal(be.host(s), np.bincount(idx, weights=w, minlength=40))


def test_elementwise(be, xp):
    e = be.asarray(np.array([1.0, 2.0, 4.0]))
    got = xp.nextafter(e, -np.inf)
    assert_array_equal(be.host(got), np.nextafter([1.0, 2.0, 4.0], -np.inf))
    lo, hi = be.asarray(np.array([0.0, 2.5, 0.0])), be.asarray(np.array([0.5, 3.0, 9.0]))
    assert_array_equal(be.host(xp.clip(e, lo, hi)), [0.5, 2.5, 4.0])
    assert_array_equal(be.host(xp.clip(e, 1.5, 3.0)), [1.5, 2.0, 3.0])
    assert_array_equal(be.host(xp.maximum(xp.arange(4) - 2, 0)), [0, 0, 0, 1])
    mantissa, exponent = xp.frexp(e)
    assert_array_equal(be.host(mantissa), np.frexp([1.0, 2.0, 4.0])[0])
    assert_array_equal(be.host(exponent), np.frexp([1.0, 2.0, 4.0])[1])
    assert_array_equal(be.host(xp.ldexp(e, 3)), [8.0, 16.0, 32.0])
    w = xp.where(xp.asarray([True, False, True]), e, 0.0)
    be.check_array(w, "float64")
    assert_array_equal(be.host(w), [1.0, 0.0, 4.0])


def test_cumsum_deterministic_mode_cuda_paths(monkeypatch):
    """On CUDA with torch.use_deterministic_algorithms(True), torch.cumsum of floats raises:
    the namespace switches to the fixed-order scan (run here on CPU tensors)."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(_backend, "_CUDA_PATHS_ON_CPU", False)  # whatever `be` left set
    xp = namespace(torch.zeros(1))
    v = torch.from_numpy(np.random.default_rng(3).normal(size=777))
    old = torch.are_deterministic_algorithms_enabled()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_backend, "_CUDA_PATHS_ON_CPU", True)
            torch.use_deterministic_algorithms(True)
            assert xp.deterministic
            got = xp.cumsum(v)
            assert_array_equal(got.numpy(), _cumsum_doubling(NUMPY, v.numpy()))
            torch.use_deterministic_algorithms(False)
            assert not xp.deterministic  # CUDA paths: atomics
        assert xp.deterministic  # CPU: sequential sums
    finally:
        torch.use_deterministic_algorithms(old)


def test_sum_does_not_depend_on_thread_count(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(_backend, "_CUDA_PATHS_ON_CPU", False)
    xp = namespace(torch.zeros(1))
    rng = np.random.default_rng(4)
    old = torch.get_num_threads()
    try:
        for n in (32767, 32768, 100_001, 1_000_000):
            a = torch.from_numpy(rng.normal(size=n))
            m = torch.from_numpy(rng.normal(size=(1, n)))
            got = set()
            for threads in (1, 2, 3, 4):
                torch.set_num_threads(threads)
                got.add((xp.sum(a).item(), xp.mean(a).item(), xp.sum(m, axis=1).item()))
            assert len(got) == 1, (n, got)
    finally:
        torch.set_num_threads(old)


def test_import_needs_neither_cupy_nor_torch():
    code = ("import sys; sys.modules['cupy'] = None; sys.modules['torch'] = None; "
            "import numpy as np, rankref_gpu as rg; "
            "r = rg.rank_sort_loss(np.array([1.0, 0.0]), np.array([1.0, 0.0]), 0.0); "
            "print(type(r.ranking_loss).__name__, r.ranking_loss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tempfile.gettempdir())  # the installed package, not the checkout
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["float", "0.0"]
    code = "import sys, rankref_gpu; print('torch' in sys.modules, 'cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tempfile.gettempdir())
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
