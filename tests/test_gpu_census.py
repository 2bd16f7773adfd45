"""The op census (rankref_gpu._census) on known small functions, and the bucket engine's passes
over N: their values against rankref, and what the census counts for them (no host sync, a
bounded number of bytes per logit)."""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr

torch = pytest.importorskip("torch")

from rankref_gpu import _backend  # noqa: E402
from rankref_gpu._backend import namespace  # noqa: E402
from rankref_gpu._census import Census, extrapolate, roofline  # noqa: E402
from rankref_gpu._engine import BucketEngine  # noqa: E402
from rankref_gpu.losses import sorted_positives  # noqa: E402


def test_census_of_a_known_function():
    x = torch.ones(1000)  # float32: 4000 bytes
    with Census(big=250) as c:
        y = x * 2.0                  # mul: reads 4000, writes 4000
        y.sum()                      # sum: reads 4000, writes 4
        x.view(10, 100)              # a view: an op, no kernel, no bytes
        x[x > 1.5]                   # gt: 4000 + 1000; index by a mask: 4000 + 1000 + 0, a sync
        torch.zeros(10)              # small: an op and a kernel, no N-sized tensor
        x[:3].tolist()               # slice (a view), then a host read: a sync, not an op
    assert [r.name for r in c.records] == ["mul", "sum", "view", "gt", "index", "zeros",
                                           "slice", "tolist"]
    assert c.ops == 7
    assert c.kernels == 5
    assert c.big_ops == 4
    assert c.bytes == 8000 + 4004 + 5000 + 5000
    assert c.syncs == 2
    assert c.sync_names == ["index[bool mask]", "tolist"]
    assert c.by_name(big_only=True)["mul"] == (1, 8000)


def test_census_out_inplace_and_broadcast():
    a, b = torch.ones(1000, dtype=torch.float64), torch.ones(1000, dtype=torch.float64)
    out = torch.empty(1000, dtype=torch.float32)
    idx = torch.zeros(1000, dtype=torch.int32)
    with Census(big=250) as c:
        torch.add(a, b, out=out)            # reads 8000 + 8000, writes 4000 (out= once)
        a.add_(b)                           # in place: a read and written, b read
        counts = torch.zeros(4, dtype=torch.int64)
        one = torch.ones(1, dtype=torch.int64)
        counts.index_add_(0, idx, one.expand(1000))  # idx 4000; a broadcast one holds 1 element
    add, add_, index_add = (r for r in c.records if r.big)
    assert add.nbytes == 20000
    assert add_.nbytes == 24000
    assert index_add.nbytes == 4000 + 2 * 32 + 8
    assert c.syncs == 0
    assert counts.tolist() == [1000, 0, 0, 0]


def test_census_syncs():
    x = torch.arange(100.0)
    with Census(big=25) as c:
        torch.nonzero(x > 50)
        float(x.max())
        torch.unique(x)
        torch.nonzero_static(x > 50, size=3)  # size given on the host: no sync
        x.numpy()
    names = c.sync_names
    assert names[0] == "nonzero" and names[1] == "_local_scalar_dense"
    assert any(n.startswith("_unique") or n.startswith("unique") for n in names)
    assert names[-1] == "numpy"
    assert c.syncs == 4
    assert "nonzero_static" in [r.name for r in c.records]


def test_roofline_and_extrapolation():
    from rankref_gpu import _census

    assert roofline(3.35e12, 0, 0, 3.35e12) == pytest.approx(1.0)
    assert roofline(0, 250, 0, 1.0) == pytest.approx(250 * _census.LAUNCH_S)
    assert roofline(0, 0, 2, 1.0) == pytest.approx(2 * _census.SYNC_S)
    assert extrapolate(1, 10.0, 3, 30.0, 5) == pytest.approx(50.0)
    assert _census.DEVICES == {"H100": 3.35e12, "H200": 4.8e12}


def _problem(n, dtype, seed, ignored=True, fg=0.08):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=n) * 2).astype(dtype)
    x[: n // 10] = np.round(x[: n // 10] * 4) / 4  # ties
    t = np.where(rng.random(n) < fg, rng.uniform(0.1, 1.0, n), 0.0).astype(dtype)
    if ignored:
        t[rng.random(n) < 0.05] = -1.0
    t[0] = 0.7  # at least one positive
    return x, t


def _engine(xp, x, t, delta, ignored=True):
    X, T = xp.asarray(x), xp.asarray(t)
    pos = xp.flatnonzero(T > 0)
    pos, _, xq, d, sigma = sorted_positives(xp, X, pos, delta)
    return BucketEngine(xp, X, T, xq, d, sigma, pos=pos, ignored=ignored), pos, xq, d


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("delta", [0.0, 0.5, 1e-30, 3.0, 1e300])
@pytest.mark.parametrize("ignored", [True, False])
def test_engine_gradient_writes_every_entry_once(lib, dtype, delta, ignored):
    """gradient(): the negatives' sums of c_i H(x_j - x_i) (against the dense formula in
    float64), the positives' given values, 0 on the ignored entries; at_positives(): the
    positives' values and 0 elsewhere; scatter() the same as gradient() without positives.
    Without ignored entries the engine may skip the targets' mask (``ignored=False``)."""
    x, t = _problem(1500, dtype, 3, ignored=ignored)
    xp = namespace(torch.zeros(1)) if lib == "torch" else _backend.NUMPY
    eng, pos, xq, d = _engine(xp, x, t, delta, ignored)
    P = xq.shape[0]
    c = np.linspace(0.1, 2.0, P)
    at = -np.arange(1, P + 1, dtype=np.float64)
    g = xp.to_host(eng.gradient(xp.asarray(c), dtype, at_pos=xp.asarray(at)))
    neg = t == 0
    xq_h = xp.to_host(xq)
    u = x[neg].astype(np.float64)[:, None] * (eng.sigma) - xq_h[None, :]
    if d > 0:
        with np.errstate(over="ignore"):
            H = np.clip((u / d) / 2.0 + 0.5, 0.0, 1.0)
    else:
        H = (u >= 0).astype(np.float64)
    want = (H * c[None, :]).sum(1).astype(dtype)
    assert g.dtype == dtype
    assert_allclose(g[neg], want, rtol=1e-9, atol=1e-30)
    pos_h = xp.to_host(pos)
    assert_array_equal(g[pos_h], at.astype(dtype))
    assert_array_equal(g[t < 0], 0.0)
    s = xp.to_host(eng.at_positives(xp.asarray(at), dtype))
    assert_array_equal(s[pos_h], at.astype(dtype))
    assert not np.any(np.delete(s, pos_h))
    out = xp.asarray(np.full(x.shape[0], 7.0, dtype=dtype))
    eng2 = BucketEngine(xp, xp.asarray(x), xp.asarray(t), xq, d, eng.sigma)
    eng2.scatter(xp.asarray(c), out)
    o = xp.to_host(out)
    assert_allclose(o[neg], want, rtol=1e-9, atol=1e-30)
    assert_array_equal(o[~neg], 0.0)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_engine_fp_equals_rankref(lib):
    x, t = _problem(3000, np.float32, 5)
    xp = namespace(torch.zeros(1)) if lib == "torch" else _backend.NUMPY
    want = rr.relaxed_ranks(x, t, 0.5)
    eng, pos, xq, d = _engine(xp, x, t, 0.5)
    order = np.argsort(x[t > 0], kind="stable")
    assert_allclose(xp.to_host(eng.fp()), np.asarray(want.fp)[order], rtol=1e-12)


def test_engine_passes_census(monkeypatch):
    """What a GPU would run for the engine's passes over N (float32 logits, torch, CUDA code
    paths): no host sync, and a bounded number of bytes per logit (binning: search, mask,
    positives, offsets, two histogram additions; gradient: one gather of two coefficients, one
    fused multiply-add written in float32, one gather of the positives' values)."""
    monkeypatch.setattr(_backend, "_CUDA_PATHS_ON_CPU", True)
    n = 1 << 18
    x, t = _problem(n, np.float32, 7, ignored=True, fg=0.002)
    xp = namespace(torch.zeros(1))
    X, T = torch.from_numpy(x), torch.from_numpy(t)
    pos = xp.flatnonzero(T > 0)
    pos, _, xq, d, sigma = sorted_positives(xp, X, pos, 0.5)
    P = xq.shape[0]
    c = xp.asarray(np.full(P, 0.01))
    with Census(big=n // 4) as census:
        eng = BucketEngine(xp, X, T, xq, d, sigma, pos=pos)
        eng.fp()
        rg = eng.gradient(c, xp.float32, at_pos=-c)
        eng.at_positives(c, xp.float32)
    assert census.syncs == 0, census.sync_names
    assert census.bytes / n <= 140, census.by_name(big_only=True)
    assert rg.dtype == torch.float32


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("d", [0.0, 0.5])
def test_tree_levels_at_once_equal_level_by_level(lib, d, monkeypatch):
    """The segment tree's levels from one segmented sum equal those built level by level (the
    path of large trees and of CuPy), to round-off: both add only non-negative terms."""
    from rankref_gpu import _tree

    rng = np.random.default_rng(11)
    n = 37
    keys = np.sort(np.round(rng.normal(size=n) * 8) / 8)
    W = rng.integers(0, 3, (n, 2)).astype(np.float64)
    O = rng.random((n, 2)) * W
    xp = namespace(torch.zeros(1)) if lib == "torch" else _backend.NUMPY
    args = (xp, xp.asarray(keys), xp.asarray(W), d, xp.asarray(O) if d > 0 else None)
    at_once = _tree.Tree(*args)
    monkeypatch.setattr(_tree, "LEAF_BUDGET", 0)
    one_by_one = _tree.Tree(*args)
    assert at_once.K == one_by_one.K == 7
    for a, b in zip(at_once.W, one_by_one.W):
        assert_array_equal(xp.to_host(a), xp.to_host(b))  # integer counts: exact
    if d > 0:
        assert_array_equal(xp.to_host(at_once.L), xp.to_host(one_by_one.L))
        for a, b in zip(at_once.O, one_by_one.O):
            assert_allclose(xp.to_host(a), xp.to_host(b), rtol=1e-14, atol=0)
