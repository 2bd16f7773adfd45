import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

import rankref as rr


def test_bucketed_class_weights_hand():
    f = np.exp([0.0, 1.0, 2.0, 3.0, 9.0])  # ln f spans [0, 9]
    # s = floor(10 * [0, 1/9, 2/9, 3/9, 1]) -> [0, 1, 2, 3, 10 -> 9]; x = s / 9
    x = np.array([0, 1, 2, 3, 9]) / 9
    assert_allclose(rr.bucketed_class_weights(f), 1 / (1 + np.exp(-(x - 0.5) / 0.025)))
    w = rr.bucketed_class_weights([1, 10, 100, 1000])
    assert_allclose(w, [1 / (1 + math.exp(20)), 1 / (1 + math.exp(0.5 / 0.075 * 1)),
                        1 / (1 + math.exp(-(2 / 3 - 0.5) / 0.025)), 1 / (1 + math.exp(-20))])
    # all equal: the top bucket for everyone
    assert_allclose(rr.bucketed_class_weights([5, 5, 5]), 1 / (1 + math.exp(-20)))
    for bad in ([1, 0], [1, -2], [1, np.nan]):
        with pytest.raises(ValueError, match="frequencies"):
            rr.bucketed_class_weights(bad)
    with pytest.raises(ValueError, match="num_buckets"):
        rr.bucketed_class_weights([1, 2], num_buckets=1)


def test_class_reweighted_targets():
    w = np.array([0.1, 0.5, 0.9])
    out = rr.class_reweighted_targets([1, 3, -1], w)
    assert_allclose(out, [[0.1, 1.0, 0.9, 1.0], [0.1, 0.5, 0.9, 1.0], [0, 0, 0, 0]])
    with pytest.raises(ValueError, match="labels"):
        rr.class_reweighted_targets([4], w)


def test_balanced_l1_values_and_gradient():
    a, g = 0.5, 1.5
    b = math.e ** (g / a) - 1
    x = np.array([0.0, 0.3, 0.99, 1.0, 2.0, -0.3])
    loss, grad = rr.balanced_l1_loss(x, np.zeros_like(x))
    ax = np.abs(x)
    ref = np.where(ax < 1, a / b * (b * ax + 1) * np.log(b * ax + 1) - a * ax, g * ax + g / b - a)
    assert_allclose(loss, ref)
    assert_allclose(grad, np.sign(x) * np.where(ax < 1, a * np.log(b * ax + 1), g))
    # finite differences
    for beta in (1.0, 0.5, 2.0):
        p = np.array([0.2, -0.7, 1.3, 3.0])
        eps = 1e-6
        lp, gp = rr.balanced_l1_loss(p, np.zeros(4), beta=beta)
        fd = (rr.balanced_l1_loss(p + eps, np.zeros(4), beta=beta)[0]
              - rr.balanced_l1_loss(p - eps, np.zeros(4), beta=beta)[0]) / (2 * eps)
        assert_allclose(gp, fd, rtol=1e-6)


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_balanced_l1_continuity_at_beta(beta):
    below = np.nextafter(beta, 0.0)
    lo, glo = rr.balanced_l1_loss([below], [0.0], beta=beta)
    hi, ghi = rr.balanced_l1_loss([beta], [0.0], beta=beta)
    assert_allclose(lo, hi, rtol=1e-12)  # the value is continuous for every beta
    if beta == 1.0:
        assert_allclose(glo, ghi, rtol=1e-12)  # and the derivative only at beta = 1
    else:
        b = math.e ** 3 - 1
        assert_allclose(glo - ghi, 0.5 * (1 - beta) / (beta * (b + 1)), rtol=1e-9)


def test_lgr_reproduces_balanced_l1_gradient():
    x = np.linspace(-3, 3, 601)
    smooth_grad = np.where(np.abs(x) < 1, x, np.sign(x))
    rho = rr.lgr_weights(np.abs(x))
    _, bl1_grad = rr.balanced_l1_loss(x, np.zeros_like(x))
    assert_allclose(rho * smooth_grad, bl1_grad, rtol=1e-12, atol=1e-15)
    assert_allclose(rr.lgr_weights([0.0]), 0.5 * (math.e ** 3 - 1))  # exact limit
    with pytest.raises(ValueError, match="base"):
        rr.lgr_weights([-0.1])


def test_lgr_cross_entropy():
    z = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    y = np.array([0, 2, -1])
    loss, grad = rr.lgr_cross_entropy(z, y)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    b = math.e ** 2 - 1
    for r in range(2):
        u = 1 - p[r, y[r]]
        rho = 0.5 * math.log(b * u + 1) / u
        assert_allclose(loss[r], -rho * math.log(p[r, y[r]]))
        expected = rho * (p[r] - np.eye(3)[y[r]])
        assert_allclose(grad[r], expected)
    assert loss[2] == 0 and (grad[2] == 0).all()
    # with rho detached, the gradient is rho times the CE gradient: check by finite differences
    eps = 1e-6
    zz = z[:1].copy()
    u = 1 - (np.exp(zz) / np.exp(zz).sum())[0, 0]
    rho = 0.5 * math.log(b * u + 1) / u
    for k in range(3):
        d = np.zeros_like(zz)
        d[0, k] = eps
        ce = lambda v: -(v[0, 0] - math.log(np.exp(v).sum()))  # noqa: E731
        assert_allclose(grad[0, k], rho * (ce(zz + d) - ce(zz - d)) / (2 * eps), rtol=1e-6)
    with pytest.raises(ValueError, match="labels"):
        rr.lgr_cross_entropy(z, np.array([0, 3, 1]))


def test_sampling_free():
    assert_allclose(rr.optimal_bias(1, 10**5), -math.log(10**5 - 1))
    assert_allclose(rr.optimal_bias(100, 10**4, num_classes=80), -math.log(10**4 * 80 / 100 - 1))
    with pytest.raises(ValueError, match="num_foreground"):
        rr.optimal_bias(0, 100)
    prior = rr.foreground_prior([np.array([0, 1, 2, -1]), np.array([0, 0, 1])])
    assert prior == (3, 6)
    assert_allclose(rr.optimal_bias(*prior), -math.log(6 / 3 - 1))
    assert rr.guided_scale(2.0, 0.5) == 4.0
    assert rr.guided_scale(2.0, 0.0) == 1.0
    for bad in ((np.nan, 1.0), (1.0, -1.0), ([1.0, 2.0], 1.0)):
        with pytest.raises(ValueError, match="loss"):
            rr.guided_scale(*bad)
    with pytest.raises(ValueError, match="integer"):
        rr.foreground_prior([np.array([0.5])])
