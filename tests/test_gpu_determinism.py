"""rankref_gpu: bitwise reproducibility, torch.use_deterministic_algorithms, device syncs, and
the calls rankref.torch makes (torch tensors in, tensors on the same device out)."""
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr
import rankref_gpu as rg
from _backends import _cuda, be  # noqa: F401  (the backend fixture)


def _problem(seed=0, n=20_000, p=300, C=6, fg=0.3):
    rng = np.random.default_rng(seed)
    x = rng.normal(-2.0, 1.0, n)
    t = np.zeros(n)
    idx = rng.choice(n, p, replace=False)
    t[idx] = np.round(rng.uniform(0.3, 1.0, p), 2)  # IoU ties
    x[idx] += 1.0
    k = min(50, p)
    x[rng.choice(n, k)] = x[idx[:k]]  # negatives tied with positives
    t[rng.random(n) < 0.02] = -1.0
    s = rng.normal(size=(n // C, C))
    y = np.where(rng.random(n // C) < fg, rng.integers(0, C, n // C), C)
    return x, t, s, y


def _all_outputs(be, x, t, s, y):
    """Every float output of the ranking losses, as host arrays."""
    X, T, S, Y = be.asarray(x), be.asarray(t), be.asarray(s), be.asarray(y)
    tb = be.asarray((t > 0).astype(np.int8) - (t < 0))
    out = []
    for method in ("bucketed", "brs"):
        r = rg.rank_sort_loss(X, T, 0.5, method)
        out += [r.ranking_loss, r.sorting_loss, r.ranking_grad, r.sorting_grad]
    r = rg.ap_loss(X, tb, 1.0)
    out += [r.loss, r.grad]
    g = rg.gap_loss(S, Y, None, weights=np.linspace(0.5, 1.5, s.shape[1]))
    out += [g.loss, g.ranking_error, g.grad]
    out += list(rg.make_buckets(X, T, 0.25))[2:] + list(rg.relaxed_ranks(X, T, 0.5))[1:]
    return [be.host(v) for v in out]


def _bitwise_equal(a, b):
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert u.tobytes() == v.tobytes()


def test_bitwise_reproducible(be):
    """Same inputs, same bits: NumPy and torch CPU always; CUDA when deterministic algorithms
    are on (checked in test_deterministic_algorithms); CuPy to round-off only."""
    x, t, s, y = _problem()
    first, second = _all_outputs(be, x, t, s, y), _all_outputs(be, x, t, s, y)
    if be.lib == "cupy" or be.name == "torch-cuda" or be.cuda_paths:
        for u, v in zip(first, second):  # atomics (CPU index_add_ is sequential, but the
            assert_allclose(u, v, rtol=1e-12, atol=1e-15)  # guarantee is round-off)
    else:
        _bitwise_equal(first, second)


def test_thread_count_does_not_change_bits(be):
    if be.name != "torch-cpu":
        pytest.skip("torch CPU threads")
    import torch

    x, t, s, y = _problem(seed=1, n=60_000, p=400)
    old = torch.get_num_threads()
    try:
        runs = []
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            runs.append(_all_outputs(be, x, t, s, y))
    finally:
        torch.set_num_threads(old)
    _bitwise_equal(runs[0], runs[1])
    _bitwise_equal(runs[0], runs[2])


def test_deterministic_algorithms(be):
    """Under torch.use_deterministic_algorithms(True) nothing raises (torch refuses bincount
    with weights and float cumsum on CUDA) and results are bitwise reproducible."""
    if be.lib != "torch":
        pytest.skip("torch only")
    import torch

    x, t, s, y = _problem(seed=2)
    reference = _all_outputs(be, x, t, s, y)
    old = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        first, second = _all_outputs(be, x, t, s, y), _all_outputs(be, x, t, s, y)
    finally:
        torch.use_deterministic_algorithms(old)
    _bitwise_equal(first, second)
    for u, v in zip(first, reference):
        assert_allclose(u, v, rtol=1e-12, atol=1e-15)
    if be.name == "torch-cpu":
        _bitwise_equal(first, reference)  # the CPU paths are the same either way


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_rankref_torch_calls(be, dtype):
    """The calls rankref.torch makes on tensors: rankref's arguments plus compute_grad=False
    for values only; tensors that require grad; results on the input's device, nothing
    recorded for autograd, loss values 0-d float64 tensors (no host copy)."""
    if be.lib != "torch":
        pytest.skip("torch only")
    import torch

    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 5))
    t = np.where(rng.random((64, 5)) < 0.1, rng.uniform(0.2, 1.0, (64, 5)), 0.0)
    X = torch.tensor(x, device=be.device).to(getattr(torch, dtype)).requires_grad_(True)
    xh = X.detach().double().cpu().numpy()
    T = torch.tensor(t, device=be.device, dtype=X.dtype if dtype != "bfloat16" else None)
    gdt = "float64" if dtype == "float64" else "float32"
    tol = dict(rtol=1e-6, atol=1e-9) if gdt == "float32" else dict(rtol=1e-9, atol=1e-12)
    for method in ("bucketed", "brs", "dense"):
        want = rr.rank_sort_loss(xh, be.host(T), 0.5, method)
        got = rg.rank_sort_loss(X, T, 0.5, method)
        for v in got:
            assert v.device.type == be.device.type and not v.requires_grad
        be.check_scalar(got.ranking_loss)
        assert_allclose(float(got.ranking_loss), want.ranking_loss, rtol=1e-9)
        be.check_array(got.grad, gdt, (64, 5))
        assert_allclose(be.host(got.grad), want.grad, **tol)
        values = rg.rank_sort_loss(X, T, 0.5, method, compute_grad=False)
        assert values.grad is None
        assert_allclose(float(values.sorting_loss), want.sorting_loss, rtol=1e-9)
    tb = (T > 0).to(torch.int8)
    got = rg.ap_loss(X, tb, 1.0, True, "bucketed", compute_grad=False)
    be.check_scalar(got.loss)
    assert_allclose(float(got.loss), rr.ap_loss(xh, be.host(tb), 1.0).loss, rtol=1e-9)
    labels = torch.tensor(rng.integers(-1, 6, 64), device=be.device)
    counts = rr.ClassCounts(5).update(be.host(labels))
    for weights in (None, torch.ones(5, dtype=torch.float64, device=be.device)):
        got = rg.gap_loss(X, labels, counts, 0.5, 1.0, "bucketed", True, weights)
        want = rr.gap_loss(xh, be.host(labels), counts, 0.5, 1.0, "bucketed", True,
                           None if weights is None else np.ones(5))
        be.check_scalar(got.loss)
        be.check_array(got.weights, "float64", (5,))
        assert_allclose(be.host(got.grad), want.grad, **tol)
    loss, grad = rg.balanced_l1_loss(X, X.detach() * 0.5)
    be.check_array(loss, "float64", (64, 5))
    assert not loss.requires_grad
    loss, grad = rg.lgr_cross_entropy(X, labels.clamp(-1, 4))
    be.check_array(grad, "float64", (64, 5))


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs torch and CUDA")
def test_cuda_syncs_do_not_grow_with_the_problem():
    """The number of device syncs of a call is O(1): the same for a small and a large input."""
    import torch

    counts = []
    for n, p in ((2_000, 10), (400_000, 2_000)):
        x = torch.randn(n, device="cuda")
        t = torch.zeros(n, device="cuda")
        t[torch.randperm(n, device="cuda")[:p]] = 0.7
        rg.rank_sort_loss(x, t)  # warm-up
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = rg.rank_sort_loss(x, t)
        finally:
            torch.cuda.set_sync_debug_mode(0)
        assert res.grad.device.type == "cuda" and res.ranking_loss.device.type == "cuda"
        counts.append(sum("synchroniz" in str(w.message) for w in caught))
    assert counts[0] == counts[1], counts
    assert counts[0] <= 12, counts


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs torch and CUDA")
def test_cuda_results_equal_cpu_results():
    import torch

    x, t, s, y = _problem(seed=5)
    from _backends import Backend

    cpu, gpu = Backend("torch-cpu"), Backend("torch-cuda")
    for u, v in zip(_all_outputs(cpu, x, t, s, y), _all_outputs(gpu, x, t, s, y)):
        assert_allclose(v, u, rtol=1e-9, atol=1e-12)
    assert torch.cuda.is_available()


def test_integer_outputs_exact(be):
    x, t, _, _ = _problem(seed=6)
    X, T = be.asarray(x), be.asarray(t)
    for kind in ("exact", "brs"):
        a, b = rr.make_buckets(x, t, 0.5, kind), rg.make_buckets(X, T, 0.5, kind)
        assert_array_equal(be.host(b.bucket), a.bucket)
        assert_array_equal(be.host(b.counts), a.counts)
    assert_array_equal(be.host(rg.sort_scores(X)), rr.sort_scores(x))


_HOST_READS = {"nonzero", "item", "tolist", "__bool__", "__int__", "__float__", "__index__",
               "numpy", "cpu", "unique_consecutive", "masked_select", "bincount", "as_tensor",
               "tensor", "__len__"}


@pytest.mark.parametrize("case", ["rank_sort_loss", "values_only", "ap_loss", "gap_loss"])
def test_host_round_trips_are_few_and_do_not_grow(case):
    """Every torch call that reads device data on the host (a sync on CUDA) or copies host data
    to the device, counted with a TorchFunctionMode on the CUDA code paths (CPU tensors): a
    handful per call, the same for a small and a large problem, none of N-sized data."""
    torch = pytest.importorskip("torch")
    from torch.overrides import TorchFunctionMode

    from rankref_gpu import _backend

    class Count(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", str(func))
            if name in _HOST_READS:
                self.calls.append(name)
            return func(*args, **(kwargs or {}))

    counts = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_backend, "_CUDA_PATHS_ON_CPU", True)
        for n, p, fg in ((3_000, 10, 0.3), (120_000, 1_000, 0.05)):
            x, t, s, y = _problem(seed=7, n=n, p=p, fg=fg)
            X, T = torch.from_numpy(x), torch.from_numpy(t)
            S, Y = torch.from_numpy(s), torch.from_numpy(y)
            with Count() as mode:
                if case == "rank_sort_loss":
                    rg.rank_sort_loss(X, T)
                elif case == "values_only":
                    rg.rank_sort_loss(X, T, compute_grad=False)
                elif case == "ap_loss":
                    rg.ap_loss(X, (T > 0).to(torch.int8))
                else:
                    rg.gap_loss(S, Y, None, weights=np.ones(s.shape[1]))
            counts.append(sorted(mode.calls))
    assert counts[0] == counts[1], counts
    assert len(counts[0]) <= {"gap_loss": 6}.get(case, 3), counts[0]
