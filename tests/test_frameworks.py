"""Issue 21: arrays from every framework reach rankref's NumPy API cleanly.

CPU torch tensors (any ``requires_grad``, bfloat16, non-contiguous), objects with ``__array__``
or only ``__dlpack__``, read-only and non-contiguous NumPy views give the results of the plain
NumPy array; arrays on a GPU are refused with a TypeError naming the argument and pointing to
rankref_gpu and rankref.torch.  The samplers of rankref and rankref_gpu take the same
generators and draw the same indices.
"""
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import rankref
import rankref_gpu

torch = pytest.importorskip("torch")


class DLPackOnly:
    def __init__(self, a, device=None):
        self._a = np.array(a, copy=True)
        self._device = device

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._device or self._a.__dlpack_device__()


class ArrayLike:
    def __init__(self, a):
        self._a = np.asarray(a)

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


class OnGPU:
    """Stands for a CuPy array or any array in GPU memory (``__cuda_array_interface__``)."""
    __cuda_array_interface__ = {"shape": (2,), "typestr": "<f8", "data": (0, False),
                                "version": 3}

    def __array__(self, dtype=None, copy=None):  # pragma: no cover - must never be called
        raise AssertionError("a GPU array was read on the host")


def _noncontig(a):
    return np.repeat(np.asarray(a), 2, axis=0)[::2]


def _readonly(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def _grad(a):
    t = torch.from_numpy(np.repeat(np.asarray(a), 2, axis=0))[::2]
    return t.requires_grad_() if t.is_floating_point() else t


WRAPPERS = {
    "torch_requires_grad": _grad,
    "torch": lambda a: torch.as_tensor(np.asarray(a)),
    "dlpack": DLPackOnly,
    "array_interface": ArrayLike,
    "readonly": _readonly,
    "noncontiguous": _noncontig,
}

X = np.array([[2.5, 2.0, 1.8], [1.0, 0.2, -2.0]])
T_RS = np.array([[0.0, 0.9, 0.6], [0.0, 0.7, 0.0]])
T_AP = np.array([[0, 1, 1], [0, 1, -1]])
LABELS = np.array([0, 3])


def _calls():
    """(name, function of the wrapper, reference on plain arrays)."""
    rng = np.random.default_rng
    return {
        "rank_sort_loss": lambda w: rankref.rank_sort_loss(w(X), w(T_RS)),
        "ap_loss": lambda w: rankref.ap_loss(w(X), w(T_AP)),
        "relaxed_ranks": lambda w: rankref.relaxed_ranks(w(X), w(T_RS)),
        "make_buckets": lambda w: rankref.make_buckets(w(X), w(T_RS)),
        "average_precision": lambda w: rankref.average_precision(w(X), w(T_AP)),
        "heaviside": lambda w: rankref.heaviside(w(X), 0.5),
        "sort_scores": lambda w: rankref.sort_scores(w(X)),
        "gap_loss": lambda w: rankref.gap_loss(w(X), w(LABELS), w(np.array([1.0, 2.0, 3.0]))),
        "ClassCounts.update": lambda w: rankref.ClassCounts(3).update(w(LABELS)).counts,
        "iou_balanced_neg_sample": lambda w: rankref.iou_balanced_neg_sample(
            w(X.ravel() / 3), 3, rng=rng(0)),
        "instance_balanced_pos_sample": lambda w: rankref.instance_balanced_pos_sample(
            w(np.array([1, 1, 2, 0, 2])), 2, rng=rng(0)),
        "class_balanced_pos_sample": lambda w: rankref.class_balanced_pos_sample(
            w(np.array([0, 1, 1, 2, 0])), w(np.array([1, 1, 2, 0, 2])), 2, rng=rng(0)),
        "balanced_l1_loss": lambda w: rankref.balanced_l1_loss(w(X), w(X / 2)),
        "lgr_weights": lambda w: rankref.lgr_weights(w(np.array([0.1, 0.9]))),
        "lgr_cross_entropy": lambda w: rankref.lgr_cross_entropy(w(X), w(np.array([0, 2]))),
        "bucketed_class_weights": lambda w: rankref.bucketed_class_weights(
            w(np.array([0.5, 0.01, 0.2]))),
        "class_reweighted_targets": lambda w: rankref.class_reweighted_targets(
            w(np.array([0, 1, 2])), w(np.array([1.0, 2.0]))),
        "foreground_prior": lambda w: rankref.foreground_prior([w(np.array([0, 1, 3]))]),
    }


def _same(a, b):
    if isinstance(a, tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for u, v in zip(a, b):
            _same(u, v)
    elif a is None or isinstance(a, (int, float, np.integer, np.floating)):
        assert a == b or (a != a and b != b), (a, b)
    else:
        np.testing.assert_array_equal(a, b)
        assert np.asarray(a).dtype == np.asarray(b).dtype


@pytest.mark.parametrize("wrap", list(WRAPPERS))
@pytest.mark.parametrize("name", list(_calls()))
def test_arrays_of_every_framework(name, wrap):
    call = _calls()[name]
    _same(call(WRAPPERS[wrap]), call(np.asarray))


def test_issue_example_tensor_requires_grad():
    x = torch.tensor([0.3, 1.0], requires_grad=True)
    res = rankref.rank_sort_loss(x, [1.0, 0.0])
    ref = rankref.rank_sort_loss(np.array([0.3, 1.0], dtype=np.float32), [1.0, 0.0])
    _same(res, ref)
    assert res.grad.dtype == np.float32
    assert x.grad is None and x.requires_grad  # the tensor is left as it was


def test_bfloat16_tensor_is_read_exactly():
    x = torch.tensor([0.3, 1.0, -0.7], dtype=torch.bfloat16)
    ref = rankref.ap_loss(x.float().numpy(), [1, 0, 0])
    _same(rankref.ap_loss(x, [1, 0, 0]), ref)


@pytest.mark.parametrize("bad", [
    OnGPU(), DLPackOnly([0.3, 1.0], device=(2, 0)),
    torch.empty(2, device="meta"),
])
@pytest.mark.parametrize("pkg_call", [
    lambda pkg, v: pkg.ap_loss(v, [1, 0]),
    lambda pkg, v: pkg.rank_sort_loss([0.3, 1.0], v),
])
def test_device_arrays_are_refused_with_a_pointer(pkg_call, bad):
    with pytest.raises(TypeError) as e:
        pkg_call(rankref, bad)
    msg = str(e.value)
    assert msg.split()[0] in ("logits", "targets")
    assert "rankref_gpu" in msg and "rankref.torch" in msg
    assert isinstance(e.value, ValueError)  # every argument error of rankref is a ValueError


def test_sampler_and_counts_refuse_device_arrays_naming_them():
    with pytest.raises(TypeError, match=r"^max_overlaps .*rankref_gpu"):
        rankref.iou_balanced_neg_sample(OnGPU(), 1, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"^labels .*rankref_gpu"):
        rankref.ClassCounts(2).update(OnGPU())
    with pytest.raises(TypeError, match=r"^u .*rankref_gpu"):
        rankref.heaviside(OnGPU(), 0.5)


def test_import_rankref_does_not_import_torch():
    code = ("import sys, rankref, numpy as np; rankref.ap_loss(np.array([0.3, 1.0]), [1, 0]); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tempfile.gettempdir())


@pytest.mark.parametrize("sampler", [
    lambda pkg, rng: pkg.iou_balanced_neg_sample(np.linspace(0.0, 0.5, 12), 5, rng=rng),
    lambda pkg, rng: pkg.instance_balanced_pos_sample(np.array([1, 1, 2, 0, 2, 3, 3, 3]), 4,
                                                      rng=rng),
    lambda pkg, rng: pkg.class_balanced_pos_sample(np.array([0, 1, 1, 2, 0, 2, 1, 0]),
                                                   np.array([1, 1, 2, 0, 2, 3, 3, 3]), 4,
                                                   rng=rng),
])
def test_samplers_take_the_same_generators(sampler):
    """rankref and rankref_gpu agree: a NumPy, torch or (not here) CuPy generator, the same
    indices for the same generator state."""
    for make in (lambda: np.random.default_rng(5), lambda: torch.Generator().manual_seed(5)):
        a = sampler(rankref, make())
        b = sampler(rankref_gpu, make())
        np.testing.assert_array_equal(a, np.asarray(b))
        np.testing.assert_array_equal(a, sampler(rankref, make()))  # reproducible
    for bad in (5, None, np.random.RandomState(0)):
        for pkg in (rankref, rankref_gpu):
            with pytest.raises(ValueError, match=r"^rng must be a numpy.random.Generator"):
                sampler(pkg, bad)
