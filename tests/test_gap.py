import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import rankref as rr


@st.composite
def gap_problems(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    C = draw(st.integers(1, 60))
    n = draw(st.integers(1, 120))
    mode = draw(st.sampled_from(["long_tail", "one_class", "uniform"]))
    ties = draw(st.sampled_from(["none", "float16", "grid"]))
    spread = draw(st.sampled_from([0.5, 3.0, 50.0]))
    delta = draw(st.sampled_from([0.0, 0.25, 0.5, 1.0]))
    new_class = draw(st.booleans())
    rng = np.random.default_rng(seed)
    y = np.full(n, C)
    fg = rng.random(n) < draw(st.sampled_from([0.1, 0.4, 0.9]))
    if mode == "one_class":
        y[fg] = rng.integers(0, C)
    elif mode == "long_tail":
        p = 1.0 / np.arange(1, C + 1) ** 1.5
        y[fg] = rng.choice(C, fg.sum(), p=p / p.sum())
    else:
        y[fg] = rng.integers(0, C, fg.sum())
    y[rng.random(n) < 0.05] = -1
    s = rng.uniform(-spread, spread, (n, C))
    if ties == "float16":
        s = s.astype(np.float16).astype(np.float64)
    elif ties == "grid":
        s = np.round(s * 2) / 2  # ties within and across classes
    prior = rng.integers(0, 50, C).astype(np.float64)
    if new_class and (y[(y >= 0) & (y < C)]).size:
        prior[y[(y >= 0) & (y < C)][0]] = 0.0  # a class seen for the first time
    counts = rr.ClassCounts(C)
    counts.load_state_dict({"num_classes": C, "counts": prior})
    counts.update(y)
    return s, y, counts, delta


@given(gap_problems(), st.booleans())
def test_bucketed_matches_dense(problem, exclude_fg):
    s, y, counts, delta = problem
    a = rr.gap_loss(s, y, counts, delta, exclude_foreground=exclude_fg)
    b = rr.gap_loss(s, y, counts, delta, method="dense", exclude_foreground=exclude_fg)
    assert_allclose(a.loss, b.loss, rtol=1e-9, atol=1e-15)
    assert_allclose(a.ranking_error, b.ranking_error, rtol=1e-9, atol=1e-15)
    assert_allclose(a.grad, b.grad, rtol=1e-9, atol=1e-12)
    assert_array_equal(a.weights, b.weights)
    assert_array_equal(a.grad[y < 0], 0.0)


@given(gap_problems(), st.booleans())
def test_per_class_gradient_balance(problem, exclude_fg):
    s, y, _, delta = problem
    C = s.shape[1]
    for m in np.unique(y[(y >= 0) & (y < C)])[:5]:
        w = np.zeros(C)
        w[m] = 1.0  # only class m's terms
        g = rr.gap_loss(s, y, None, delta, weights=w, exclude_foreground=exclude_fg).grad
        pos_part = g[y == m, m].sum()
        assert abs(g.sum()) <= 1e-12 * (np.abs(g).sum() + 1)
        if exclude_fg:
            assert_allclose(pos_part, -(g.sum() - pos_part), rtol=1e-9, atol=1e-14)


def test_hand_computed():
    s = np.array([[1.0, 0.0], [0.5, 2.0]])
    y = np.array([0, 2])
    res = rr.gap_loss(s, y, None, delta=0.0, weights=[1.0, 1.0])
    # FP = 1 (the 2.0 entry), rank_pos = 1, R = 2, l = 1/2, A = 1
    assert_allclose(res.loss, 0.5)
    assert_allclose(res.ranking_error, 0.5)
    assert_allclose(res.grad, [[-0.5, 0.0], [0.0, 0.5]])
    counts = rr.ClassCounts(2).update(y)
    res = rr.gap_loss(s, y, counts, delta=0.0)
    w0 = 2 * 1.0 / (2.0 + 1e-9)
    assert_allclose(res.weights, [w0, w0])
    assert_allclose(res.loss, 0.5 * w0)
    # two classes present, relaxed step: entry (1,0) is class 1? no: build a 2-class case
    s = np.array([[0.0, 0.2], [0.1, 0.6]])
    y = np.array([0, 1])
    res = rr.gap_loss(s, y, None, delta=0.5, weights=[1.0, 1.0])
    # class 0 positive x=0: Nhat = {0.2, 0.1}: FP = .7 + .6 = 1.3, R = .5 + 1.3, l = 1.3/1.8
    # class 1 positive x=.6: FP = H(-.4) + H(-.5) = .1 + 0 = .1, R = .6, l = 1/6
    assert_allclose(res.loss, 0.5 * (1.3 / 1.8) + 0.5 * (0.1 / 0.6))
    assert_allclose(res.grad[0, 0], -0.5 * 1.3 / 1.8)
    assert_allclose(res.grad[1, 1], -0.5 * 0.1 / 0.6)
    assert_allclose(res.grad[0, 1], 0.5 * 0.7 / 1.8 + 0.5 * 0.1 / 0.6)
    assert_allclose(res.grad[1, 0], 0.5 * 0.6 / 1.8)


def test_one_class_equals_rs_ranking(rng):
    n = 500
    s = rng.normal(size=(n, 1))
    y = np.where(rng.random(n) < 0.1, 0, 1)
    y[:3] = -1
    res = rr.gap_loss(s, y, None, delta=0.5, weights=[1.0])
    t = np.where(y == 0, 1.0, 0.0)
    t[y < 0] = -1
    rs = rr.rank_sort_loss(s[:, 0], t, delta=0.5)
    assert_allclose(res.loss, rs.ranking_loss, rtol=1e-12)
    assert_allclose(res.ranking_error, rs.ranking_loss, rtol=1e-12)
    assert_allclose(res.grad[:, 0], rs.ranking_grad, rtol=1e-12, atol=1e-15)


def test_no_foreground_gives_zero(rng):
    res = rr.gap_loss(rng.normal(size=(5, 3)), np.array([3, 3, -1, 3, 3]), rr.ClassCounts(3))
    assert res.loss == 0.0 and res.ranking_error == 0.0
    assert_array_equal(res.grad, 0.0)


def test_class_counts():
    y = np.array([0, 2, 2, 3, -1, 1, 2])
    c = rr.ClassCounts(3).update(y)
    assert_array_equal(c.counts, [1, 1, 3])
    a = rr.ClassCounts(3).update(y[:3])
    b = rr.ClassCounts(3).update(y[3:])
    assert a.merge(b) == c and a + b == c
    state = c.state_dict()
    d = rr.ClassCounts(3).load_state_dict(state)
    assert d == c
    state["counts"][0] = 99  # the state is a copy
    assert d.counts[0] == 1
    inv = np.array([1, 1, 1 / 3])
    assert_allclose(c.weights(1.0), 3 * inv / (inv.sum() + 1e-9))
    assert_allclose(c.weights(0.0), 3 / (3 + 1e-9))
    assert_array_equal(c.reset().counts, 0)
    with pytest.raises(ValueError, match="merge"):
        c.merge(rr.ClassCounts(4))
    with pytest.raises(ValueError, match="num_classes"):
        rr.ClassCounts(0)
    with pytest.raises(ValueError, match="labels"):
        c.update([0, 5])


@pytest.mark.parametrize("kwargs, match", [
    (dict(labels=np.array([0, 4])), "labels must be in"),
    (dict(labels=np.array([0.0, 1.0])), "integer"),
    (dict(labels=np.array([0, 1, 2])), "shape"),
    (dict(scores=np.zeros(6)), "2-D"),
    (dict(counts=np.ones(4)), "counts"),
    (dict(counts=rr.ClassCounts(4)), "ClassCounts of 4"),
    (dict(gamma=-1.0), "gamma"),
    (dict(delta=-0.5), "delta"),
    (dict(scores=np.array([[0.0, np.nan, 1.0], [0.0, 0.0, 0.0]])), "scores must be finite"),
    (dict(scores=np.array([[np.inf, 0, 1.0], [0.0, 0.0, 0.0]])), "scores must be finite"),
    (dict(weights=np.ones(2)), "weights"),
    (dict(method="brs"), "method"),
])
def test_bad_input(kwargs, match):
    args = dict(scores=np.zeros((2, 3)), labels=np.array([0, 3]), counts=rr.ClassCounts(3))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        rr.gap_loss(**args)
