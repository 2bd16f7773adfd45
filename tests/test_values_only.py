"""compute_grad=False: the same loss values, no gradient arrays (rankref and rankref_gpu)."""
import numpy as np
import pytest
from numpy.testing import assert_allclose

import rankref as rr
import rankref_gpu as rg


@pytest.mark.parametrize("mod", [rr, rg], ids=["rankref", "rankref_gpu"])
@pytest.mark.parametrize("seed", range(3))
def test_values_only_match(mod, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 4))
    t = np.where(rng.random((300, 4)) < 0.1, rng.uniform(0.3, 1, (300, 4)), 0.0)
    for method in ("bucketed", "dense", "brs"):
        a = mod.rank_sort_loss(x, t, 0.5, method)
        b = mod.rank_sort_loss(x, t, 0.5, method, compute_grad=False)
        assert b.ranking_grad is None and b.sorting_grad is None and b.grad is None
        assert_allclose([b.ranking_loss, b.sorting_loss], [a.ranking_loss, a.sorting_loss],
                        rtol=1e-14, atol=0)
    tb = (t > 0).astype(np.int8)
    for method in ("bucketed", "dense"):
        a = mod.ap_loss(x, tb, 1.0, True, method)
        b = mod.ap_loss(x, tb, 1.0, True, method, compute_grad=False)
        assert b.grad is None
        assert_allclose(b.loss, a.loss, rtol=1e-14, atol=0)
    y = np.where(rng.random(300) < 0.3, rng.integers(0, 4, 300), 4)
    counts = rr.ClassCounts(4).update(y)
    for method in ("bucketed", "dense"):
        a = mod.gap_loss(x, y, counts, method=method)
        b = mod.gap_loss(x, y, counts, method=method, compute_grad=False)
        assert b.grad is None
        assert_allclose([b.loss, b.ranking_error], [a.loss, a.ranking_error], rtol=1e-14,
                        atol=0)


@pytest.mark.parametrize("mod", [rr, rg], ids=["rankref", "rankref_gpu"])
def test_values_only_without_positives(mod):
    res = mod.rank_sort_loss(np.zeros(4), np.zeros(4), compute_grad=False)
    assert (res.ranking_loss, res.sorting_loss, res.grad) == (0.0, 0.0, None)
    assert mod.ap_loss(np.zeros(4), np.zeros(4), compute_grad=False) == (0.0, None)
