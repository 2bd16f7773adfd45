import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr

CONFIGS = [
    dict(num_bins=3, floor_thr=-1.0, floor_fraction=0.0),
    dict(num_bins=3, floor_thr=0.0, floor_fraction=0.0),
    dict(num_bins=3, floor_thr=0.0, floor_fraction=0.5),
    dict(num_bins=4, floor_thr=0.1, floor_fraction=0.25, max_iou=0.5),
    dict(num_bins=1, floor_thr=0.05, floor_fraction=0.0),
    dict(num_bins=3, floor_thr=-1.0, floor_fraction=0.0, max_iou=1.0),
]


def _candidates(seed=0, n=120):
    rng = np.random.default_rng(seed)
    iou = np.concatenate([np.zeros(n // 3), rng.uniform(0, 0.5, n - n // 3) ** 2])
    iou[:4] = [0.5, 0.5, 0.02, -1.0]  # the max (in no bin), and a candidate in neither set
    return iou


@pytest.mark.parametrize("cfg", CONFIGS)
def test_exact_probabilities_match_sampler_frequencies(cfg):
    iou = _candidates()
    E = 30
    p = rr.iou_balanced_neg_probabilities(iou, E, **cfg)
    assert_allclose(p.sum(), E)
    assert ((p >= 0) & (p <= 1)).all()
    rng = np.random.default_rng(2024)
    T = 20_000
    counts = np.zeros(iou.size)
    for _ in range(T):
        s = rr.iou_balanced_neg_sample(iou, E, rng=rng, **cfg)
        assert s.size == E and np.unique(s).size == E
        counts[s] += 1
    # per-candidate chi-square: each term has expectation 1
    mid = (p > 0) & (p < 1)
    z2 = (counts[mid] - T * p[mid]) ** 2 / (T * p[mid] * (1 - p[mid]))
    m = mid.sum()
    assert abs(z2.sum() - m) < 5 * np.sqrt(2 * m), (z2.sum(), m)
    assert z2.max() < 30
    assert_array_equal(counts[p == 1], T)
    assert_array_equal(counts[p == 0], 0)


def test_eq2_full_bins():
    # three bins with plenty of candidates: p_k = (N/K) / M_k
    iou = np.concatenate([np.full(50, 0.05), np.full(20, 0.25), np.full(10, 0.45), [0.6]])
    p = rr.iou_balanced_neg_probabilities(iou, 15, num_bins=3, max_iou=0.6)
    assert_allclose(p[:50], 5 / 50)
    assert_allclose(p[50:70], 5 / 20)
    assert_allclose(p[70:80], 5 / 10)
    assert p[80] == 0.0  # equal to max_iou: in no bin, and the fill is not needed


def test_hand_small_bins():
    # 2 bins over [0, 1) (max_iou = the largest IoU): bin0 = {.1, .2, 0}, bin1 = {.6}, and 1.0
    # is in no bin.  E=3, q=1: one of bin0 (1/3 each), the .6, then a fill of 1 from the 3 left
    iou = np.array([0.1, 0.2, 0.6, 1.0, 0.0])
    p = rr.iou_balanced_neg_probabilities(iou, 3, num_bins=2)
    assert_allclose(p, [5 / 9, 5 / 9, 1.0, 1 / 3, 5 / 9])
    assert_allclose(p.sum(), 3)


def test_edge_cases():
    rng = np.random.default_rng(0)
    iou = np.array([0.1, 0.2, 0.3])
    assert_array_equal(rr.iou_balanced_neg_sample(iou, 5, rng=rng), [0, 1, 2])  # fewer than E
    assert_array_equal(rr.iou_balanced_neg_sample(iou, 0, rng=rng), [])
    assert_array_equal(rr.iou_balanced_neg_probabilities(iou, 0), 0.0)
    # empty bins: every candidate in the lowest bin
    iou = np.concatenate([np.full(10, 0.01), [0.9]])
    s = rr.iou_balanced_neg_sample(iou, 4, num_bins=3, rng=rng)
    assert s.size == 4
    assert_allclose(rr.iou_balanced_neg_probabilities(iou, 4, num_bins=3).sum(), 4)
    assert rr.iou_balanced_neg_sample(np.zeros(0), 3, rng=rng).size == 0


def test_reproducible():
    iou = _candidates(3, 500)
    a = rr.iou_balanced_neg_sample(iou, 64, rng=np.random.default_rng(7))
    b = rr.iou_balanced_neg_sample(iou, 64, rng=np.random.default_rng(7))
    assert_array_equal(a, b)
    g = np.repeat(np.arange(6), 20)
    a = rr.instance_balanced_pos_sample(g, 25, rng=np.random.default_rng(7))
    b = rr.instance_balanced_pos_sample(g, 25, rng=np.random.default_rng(7))
    assert_array_equal(a, b)


def test_instance_balanced():
    rng = np.random.default_rng(0)
    g = np.array([0] * 5 + [1] * 40 + [2] * 3 + [3] * 2 + [-1] * 3)
    s = rr.instance_balanced_pos_sample(g, 12, rng=rng)
    # G = 3, quota int(round(4) + 1) = 5: gt1 gives 5, gt2 3, gt3 2 -> 10, fill 2 from gt1
    assert s.size == 12 and np.unique(s).size == 12 and (g[s] > 0).all()
    assert_array_equal(np.bincount(g[s], minlength=4)[1:], [7, 3, 2])
    # trim: quota 3 per gt over 4 gts = 12 > E=10
    g = np.repeat(np.arange(1, 5), 10)
    s = rr.instance_balanced_pos_sample(g, 10, rng=rng)
    assert s.size == 10 and (np.bincount(g[s])[1:] <= 4).all()
    # half to even: E=10, G=4 -> round(2.5)=2 -> quota 3
    g = np.repeat(np.arange(1, 5), 3)
    assert rr.instance_balanced_pos_sample(g, 10, rng=rng).size == 10
    # one gt, all fewer than E
    assert_array_equal(rr.instance_balanced_pos_sample([0, 1, 1], 5, rng=rng), [1, 2])
    assert rr.instance_balanced_pos_sample(np.ones(30, int), 0, rng=rng).size == 0


def test_class_balanced():
    rng = np.random.default_rng(1)
    labels = np.array([0] * 60 + [1] * 6 + [2] * 4)
    g = np.concatenate([np.repeat([1, 2, 3], 20), [4] * 6, [5] * 4])
    s = rr.class_balanced_pos_sample(labels, g, 15, rng=rng)
    # K=3, quota int(round(5)+1) = 6: class 0 gives 6 (2 per gt), class 1 gives 6, class 2 its 4
    # -> 16 > 15: trimmed to 15
    assert s.size == 15 and np.unique(s).size == 15
    per_class = np.bincount(labels[s], minlength=3)
    assert per_class[2] <= 4 and per_class[1] <= 6 and per_class[0] <= 6
    with pytest.raises(ValueError, match="labels has shape"):
        rr.class_balanced_pos_sample(labels[:3], g, 5, rng=rng)


@pytest.mark.parametrize("call, match", [
    (lambda r: rr.iou_balanced_neg_sample([0.1, 1.5], 1, rng=r), "max_overlaps"),
    (lambda r: rr.iou_balanced_neg_sample([0.1, np.nan], 1, rng=r), "max_overlaps"),
    (lambda r: rr.iou_balanced_neg_sample([0.1, 0.2], -1, rng=r), "num_expected"),
    (lambda r: rr.iou_balanced_neg_sample([0.1, 0.2], 1, num_bins=0, rng=r), "num_bins"),
    (lambda r: rr.iou_balanced_neg_sample([0.1, 0.2], 1, floor_fraction=1.5, rng=r),
     "floor_fraction"),
    (lambda r: rr.iou_balanced_neg_sample([0.1, 0.2], 1, floor_thr=-0.5, rng=r), "floor_thr"),
    (lambda r: rr.iou_balanced_neg_sample([[0.1, 0.2]], 1, rng=r), "1-D"),
    (lambda r: rr.iou_balanced_neg_sample([0.1, 0.2], 1, rng=np.random.RandomState(0)), "rng"),
    (lambda r: rr.instance_balanced_pos_sample([0.0, 1.0], 1, rng=r), "integer"),
    (lambda r: rr.class_balanced_pos_sample([0.5, 1], [1, 1], 1, rng=r), "integer"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call(np.random.default_rng(0))
