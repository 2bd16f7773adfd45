import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr

X = np.array([0.5, -1.0, 2.0, 0.0])
T = np.array([1.0, 0.0, 0.0, -1.0])

CALLS = {
    "rank_sort_loss": lambda x, t, **k: rr.rank_sort_loss(x, t, **k),
    "ap_loss": lambda x, t, **k: rr.ap_loss(x, t, **k),
    "relaxed_ranks": lambda x, t, **k: rr.relaxed_ranks(x, t, **k),
    "make_buckets": lambda x, t, **k: rr.make_buckets(x, t, **k),
}


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 1, 3])  # a positive, a negative, an ignored entry
def test_nonfinite_logits(name, bad, where):
    x = X.copy()
    x[where] = bad
    with pytest.raises(ValueError, match="logits must be finite"):
        CALLS[name](x, T)


@pytest.mark.parametrize("method", ["dense", "brs"])
def test_nonfinite_logits_other_methods(method):
    with pytest.raises(ValueError, match="logits"):
        rr.rank_sort_loss([0.0, np.nan], [1.0, 0.0], method=method)
    with pytest.raises(ValueError, match="logits"):
        rr.rank_sort_loss([0.0, np.nan], [0.0, 0.0], method=method)


@pytest.mark.parametrize("name", CALLS)
def test_shape_mismatch(name):
    with pytest.raises(ValueError, match="targets has shape"):
        CALLS[name](X, T[:3])
    with pytest.raises(ValueError, match="targets has shape"):
        CALLS[name](X.reshape(2, 2), T)


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize("delta", [-0.1, np.nan, np.inf, "0.5", None])
def test_bad_delta(name, delta):
    with pytest.raises(ValueError, match="delta"):
        CALLS[name](X, T, delta=delta)
    with pytest.raises(ValueError, match="delta"):
        rr.heaviside([0.0], delta)


@pytest.mark.parametrize("name", ["rank_sort_loss", "relaxed_ranks", "make_buckets"])
@pytest.mark.parametrize("bad", [1.5, np.nan, np.inf, -np.inf, 2])
def test_bad_targets(name, bad):
    t = T.astype(np.float64) if not isinstance(bad, int) else T.astype(np.int64)
    t[1] = bad
    with pytest.raises(ValueError, match="targets"):
        CALLS[name](X, t)


@pytest.mark.parametrize("bad", [0.5, 2, -2, np.nan])
def test_ap_targets_must_be_binary(bad):
    t = T.copy()
    t[1] = bad
    with pytest.raises(ValueError, match="-1 .ignored.*rank_sort_loss"):
        rr.ap_loss(X, t)


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize("logits", [np.array(["a", "b", "c", "d"]), np.array([1j, 0, 0, 0]),
                                    np.array([True, False, True, False]),
                                    np.array([None] * 4, dtype=object)])
def test_non_numeric_logits(name, logits):
    with pytest.raises(ValueError, match="logits must be a real numeric array"):
        CALLS[name](logits, T)


def test_non_numeric_targets():
    with pytest.raises(ValueError, match="targets must be a numeric array"):
        rr.rank_sort_loss(X, np.array(["1", "0", "0", "0"]))


def test_bad_method():
    with pytest.raises(ValueError, match="method must be one of"):
        rr.rank_sort_loss(X, T, method="fast")
    with pytest.raises(ValueError, match="method must be one of"):
        rr.ap_loss(X, T, method="fast")


def test_readonly_and_noncontiguous_inputs(rng):
    x = rng.normal(size=(40, 6))
    t = np.where(rng.random((40, 6)) < 0.1, 0.7, 0.0)
    ref = rr.rank_sort_loss(np.ascontiguousarray(x[:, ::2]), np.ascontiguousarray(t[:, ::2]))
    xs, ts = x[:, ::2], t[:, ::2]
    xs.flags.writeable = False
    ts.flags.writeable = False
    res = rr.rank_sort_loss(xs, ts)
    assert_array_equal(res.grad, ref.grad)
    x.flags.writeable = False
    rr.ap_loss(x, (t > 0).astype(np.int8))
    rr.make_buckets(x, t)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32])
def test_dtypes(dtype, rng):
    x = (rng.normal(size=500) * 4).astype(dtype)
    t = np.where(rng.random(500) < 0.1, 0.8, 0.0)
    res = rr.rank_sort_loss(x, t)
    expected = np.float64 if dtype in (np.float64, np.int32) else np.float32
    assert res.grad.dtype == expected
    ref = rr.rank_sort_loss(x.astype(np.float64), t, method="dense")
    assert_allclose(res.grad, ref.grad, rtol=1e-6, atol=1e-7)
    assert_allclose(res.ranking_loss, ref.ranking_loss, rtol=1e-12)


@pytest.mark.parametrize("tdtype", [bool, np.int8, np.uint8, np.int16, np.int64, np.float32])
def test_target_dtypes(tdtype, rng):
    x = rng.normal(size=300)
    lab = rng.random(300) < 0.1
    ref = rr.ap_loss(x, lab.astype(np.float64))
    res = rr.ap_loss(x, lab.astype(tdtype))
    assert_array_equal(res.grad, ref.grad)


def test_empty_input():
    res = rr.rank_sort_loss(np.zeros(0), np.zeros(0))
    assert res.ranking_loss == 0.0 and res.grad.shape == (0,)
