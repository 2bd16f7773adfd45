"""rankref.torch state and argument checks: GAPLoss counts through dtype casts and state
dicts, rejected calls that change nothing, and a clear error for every bad argument."""
import io
import os
import tempfile

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

torch = pytest.importorskip("torch")
import rankref as rr  # noqa: E402
import rankref.torch as rt  # noqa: E402

BIG = [2**40 + 1, 2**24 + 1, 257]  # lost by float32 and bfloat16 (and float16)


def _batch(C=3, n=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = torch.tensor(np.where(rng.random(n) < 0.5, rng.integers(0, C, n), C))
    return torch.tensor(rng.normal(size=(n, C))), labels


@pytest.mark.parametrize("cast", [lambda m: m.half(), lambda m: m.to(torch.bfloat16),
                                  lambda m: m.double(), lambda m: m.float(),
                                  lambda m: m.to(torch.float16)])
def test_gap_counts_stay_exact_through_dtype_casts(cast):
    mod = rt.GAPLoss(3)
    mod.load_state_dict({"counts": torch.tensor(BIG)})
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), mod)
    cast(model)
    assert mod.counts.dtype == torch.int64
    scores, labels = _batch()
    dtype = model[0].weight.dtype
    loss = mod(scores.to(dtype).requires_grad_(), labels)
    loss.backward()
    hist = np.bincount(labels.numpy()[labels.numpy() < 3], minlength=3)
    assert_array_equal(mod.counts.numpy(), np.array(BIG) + hist)
    expected = torch.float64 if dtype == torch.float64 else torch.float32
    assert loss.dtype == expected


def test_gap_state_dict_round_trip():
    mod = rt.GAPLoss(3, loss_weight=0.1)
    for seed in range(3):
        mod(*_batch(seed=seed))
    buf = io.BytesIO()
    torch.save(mod.state_dict(), buf)
    buf.seek(0)
    other = rt.GAPLoss(3)
    other.load_state_dict(torch.load(buf))
    assert torch.equal(other.counts, mod.counts) and other.counts.dtype == torch.int64
    assert other.class_counts == mod.class_counts
    with tempfile.TemporaryDirectory() as d:  # through a file, as checkpoints are saved
        path = os.path.join(d, "gap.pt")
        torch.save(mod.state_dict(), path)
        third = rt.GAPLoss(3)
        third.load_state_dict(torch.load(path))
    assert torch.equal(third.counts, mod.counts)
    # a checkpoint of the earlier float64 buffer loads exactly
    legacy = rt.GAPLoss(3)
    legacy.load_state_dict({"counts": torch.tensor([5.0, 0.0, 2.0**50], dtype=torch.float64)})
    assert legacy.counts.tolist() == [5, 0, 2**50]


@pytest.mark.parametrize("bad", [torch.tensor([1.0, -1.0, 0.0]), torch.tensor([0.5, 1.0, 0.0]),
                                 torch.tensor([float("nan"), 0.0, 0.0]),
                                 torch.tensor([2.0**60, 0.0, 0.0]), torch.ones(4),
                                 torch.ones(3, dtype=torch.complex64)])
def test_bad_state_dict_is_refused_and_changes_nothing(bad):
    mod = rt.GAPLoss(3)
    mod.load_state_dict({"counts": torch.tensor([1, 2, 3])})
    with pytest.raises(ValueError, match="counts"):
        mod.load_state_dict({"counts": bad})
    assert mod.counts.tolist() == [1, 2, 3]


def test_rejected_calls_change_nothing():
    mod = rt.GAPLoss(3)
    scores, labels = _batch()
    before = mod.counts.clone()
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        rt.GAPLoss(3)(torch.zeros(2, 3), torch.tensor([0.7, 1.9]))
    bad_labels = labels.clone()
    bad_labels[4] = 9
    nan_scores = scores.clone()
    nan_scores[3, 1] = float("nan")
    for s, y, match in [(scores, bad_labels, "labels"), (nan_scores, labels, "scores"),
                        (scores[:, :2], labels, "columns"), (scores, labels[:-1], "labels"),
                        (scores.to(torch.complex64), labels, "scores"),
                        (scores, labels.to(torch.uint32), "labels")]:
        with pytest.raises(ValueError, match=match):
            mod(s, y)
        assert torch.equal(mod.counts, before)
    with pytest.raises(ValueError, match="weight"):
        mod(scores, labels, weight=torch.full((40,), 0.5))
    assert torch.equal(mod.counts, before)
    assert mod.last_ranking_error is None
    with pytest.raises(ValueError, match="labels"):
        mod.update_counts(bad_labels)
    assert torch.equal(mod.counts, before)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, True, 1 + 2j, "1", None])
@pytest.mark.parametrize("make", [
    lambda v: rt.RankSortLoss(loss_weight=v), lambda v: rt.RankSortLoss(delta=v),
    lambda v: rt.APLoss(loss_weight=v), lambda v: rt.APLoss(delta=v),
    lambda v: rt.GAPLoss(3, loss_weight=v), lambda v: rt.GAPLoss(3, gamma=v),
    lambda v: rt.GAPLoss(3, delta=v), lambda v: rt.BalancedL1Loss(alpha=v),
    lambda v: rt.BalancedL1Loss(loss_weight=v), lambda v: rt.LGRCrossEntropyLoss(gamma=v),
])
def test_module_settings_are_checked(make, value):
    with pytest.raises(ValueError):
        make(value)


def test_settings_are_checked_on_assignment_too():
    loss = rt.RankSortLoss()
    with pytest.raises(ValueError, match="loss_weight"):
        loss.loss_weight = float("nan")
    with pytest.raises(ValueError, match="delta"):
        loss.delta = -0.5
    with pytest.raises(ValueError, match="method"):
        loss.method = "fast"
    with pytest.raises(ValueError, match="gather"):
        loss.gather = 1
    assert (loss.loss_weight, loss.delta, loss.method, loss.gather) == (1.0, 0.5, "bucketed",
                                                                        False)
    loss.loss_weight = 2  # a valid assignment is stored as a float
    assert loss.loss_weight == 2.0 and isinstance(loss.loss_weight, float)


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, True, "3", 2**63, None])
def test_gap_num_classes(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        rt.GAPLoss(num_classes)


def test_bad_tensors_name_the_argument():
    x = torch.zeros(3)
    meta = torch.empty(3, device="meta")
    with pytest.raises(ValueError, match="logits is on the meta device"):
        rt.rank_sort_loss(meta, meta)
    with pytest.raises(ValueError, match="targets is on the meta device"):
        rt.ap_loss(x, meta)
    with pytest.raises(ValueError, match="pred is on the meta device"):
        rt.RankSortLoss()(torch.empty(3, 2, device="meta"), (torch.zeros(3, dtype=torch.int64),
                                                            torch.zeros(3)))
    with pytest.raises(ValueError, match="scores is on the meta device"):
        rt.gap_loss(torch.empty(2, 2, device="meta"), torch.zeros(2, dtype=torch.int64),
                    None, weights=np.ones(2))
    with pytest.raises(TypeError, match="logits must be a torch.Tensor"):
        rt.rank_sort_loss(np.zeros(3), x)
    with pytest.raises(ValueError, match="logits must be a floating-point tensor"):
        rt.rank_sort_loss(torch.zeros(3, dtype=torch.complex64), x)
    with pytest.raises(ValueError, match="logits must be a floating-point tensor"):
        rt.rank_sort_loss(torch.zeros(3, dtype=torch.int64), x)
    for dtype in (torch.complex128, torch.uint16, torch.uint32, torch.uint64):
        with pytest.raises(ValueError, match="targets must be a real tensor"):
            rt.rank_sort_loss(x, torch.zeros(3, dtype=dtype))
    with pytest.raises(ValueError, match="targets has shape"):
        rt.rank_sort_loss(x, torch.zeros(4))
    with pytest.raises(ValueError, match=r"targets must be .* flat entry 1 is 2.0"):
        rt.rank_sort_loss(x, torch.tensor([0.0, 2.0, 0.5]))
    with pytest.raises(ValueError, match=r"flat entry 0 is nan"):
        rt.rank_sort_loss(torch.tensor([float("nan"), 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="delta"):
        rt.rank_sort_loss(x, x, delta=float("nan"))
    with pytest.raises(ValueError, match="method"):
        rt.ap_loss(x, x, method="brs")
    with pytest.raises(ValueError, match="gather"):
        rt.rank_sort_loss(x, x, gather="yes")
    with pytest.raises(ValueError, match="interpolate"):
        rt.ap_loss(x, x, interpolate=None)
    with pytest.raises(ValueError, match="alpha"):
        rt.balanced_l1_loss(x, x, alpha=0.0)
    with pytest.raises(ValueError, match="counts"):
        rt.gap_loss(torch.zeros(2, 2), torch.zeros(2, dtype=torch.int64), np.ones(3))
    with pytest.raises(ValueError, match="counts"):
        rt.gap_loss(torch.zeros(2, 2), torch.zeros(2, dtype=torch.int64), ["a", "b"])
    with pytest.raises(ValueError, match="weights"):
        rt.gap_loss(torch.zeros(2, 2), torch.zeros(2, dtype=torch.int64), None,
                    weights=np.array([1 + 5j, 1]))
    with pytest.raises(ValueError, match="counts is required"):
        rt.gap_loss(torch.zeros(2, 2), torch.zeros(2, dtype=torch.int64), None)
    with pytest.raises(ValueError, match="gamma"):
        rt.gap_loss(torch.zeros(2, 2), torch.zeros(2, dtype=torch.int64), np.ones(2),
                    gamma=-1.0)


def test_counts_of_a_class_counts_object_are_not_changed_by_the_function():
    scores, labels = _batch()
    counts = rr.ClassCounts(3).update(labels.numpy())
    before = counts.counts.copy()
    rt.gap_loss(scores, labels, counts)
    assert_array_equal(counts.counts, before)


def test_scalars_beyond_the_float_range_and_degenerate_slopes():
    x = torch.zeros(3)
    for kw in (dict(delta=10**400), dict(gather=False, delta=-10**400)):
        with pytest.raises(ValueError, match="delta"):
            rt.rank_sort_loss(x, x, **kw)
    with pytest.raises(ValueError, match="loss_weight"):
        rt.RankSortLoss(loss_weight=10**400)
    # balanced L1 and LGR are exact for every alpha, gamma > 0 (b = exp(gamma / alpha) - 1 may
    # overflow or be 0 in float64): the tensors match rankref
    p64 = torch.tensor([0.0, 0.3, 2.0], dtype=torch.float64)
    z64 = torch.tensor([[0.0, 1.0, -2.0], [3.0, 0.5, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    for alpha, gamma in ((5e-324, 1.5), (1e-3, 1.0), (1.0, 1e-300)):
        loss = rt.balanced_l1_loss(p64, torch.zeros(3, dtype=torch.float64), alpha=alpha,
                                   gamma=gamma)
        ref, _ = rr.balanced_l1_loss(p64.numpy(), np.zeros(3), alpha=alpha, gamma=gamma)
        assert_allclose(loss.numpy(), ref, rtol=1e-15)
        assert np.isfinite(ref).all()
        loss = rt.lgr_cross_entropy(z64, y, alpha=alpha, gamma=gamma)
        ref, _ = rr.lgr_cross_entropy(z64.numpy(), y.numpy(), alpha=alpha, gamma=gamma)
        assert_allclose(loss.numpy(), ref, rtol=1e-15)
        assert np.isfinite(ref).all()
        rt.BalancedL1Loss(alpha=alpha, gamma=gamma)