"""MLPs: gradients for every activation, the documented initialisation, shapes and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from minivae import nn
from minivae.gradcheck import check_grad

SIZES = [3, 5, 4, 2]


def params64(seed=0):
    return nn.init_mlp(SIZES, np.random.default_rng(seed), np.float64)


@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus"])
def test_mlp_gradients(activation):
    x = np.random.default_rng(1).standard_normal((6, 3))
    check_grad(lambda p, x: nn.mlp(p, x, activation), params64(), x)


@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus"])
def test_mlp_matches_a_hand_written_forward_pass(activation):
    act = {"relu": lambda a: np.maximum(a, 0), "tanh": np.tanh, "softplus": lambda a: np.log1p(np.exp(a))}
    params = params64()
    x = np.random.default_rng(2).standard_normal((6, 3))
    h = x
    for W, b in params[:-1]:
        h = act[activation](h @ W + b)
    want = h @ params[-1][0] + params[-1][1]  # the last layer is linear
    np.testing.assert_allclose(nn.mlp(params, x, activation), want, rtol=1e-13)


def test_softplus_is_stable_and_exact():
    x = np.array([-1e4, -30.0, 0.0, 30.0, 1e4])
    got = nn.softplus(x)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, [0.0, np.log1p(np.exp(-30.0)), np.log(2.0), 30.0 + np.log1p(np.exp(-30.0)),
                                     1e4], rtol=1e-15, atol=1e-300)


def test_init_mlp_shapes_dtype_and_bounds():
    params = nn.init_mlp([784, 400, 20], np.random.default_rng(0))
    assert [(W.shape, b.shape) for W, b in params] == [((784, 400), (400,)), ((400, 20), (20,))]
    assert all(a.dtype == np.float32 for layer in params for a in layer)
    for (W, b), fan_in in zip(params, (784, 400)):
        bound = 1 / np.sqrt(fan_in)
        # U(−1/√fan_in, 1/√fan_in): inside the bound, and W (≥ 8,000 draws) fills it to within 1 %
        assert np.abs(b).max() <= bound
        assert bound >= np.abs(W).max() > 0.99 * bound
        # variance of U(−c, c) is c²/3; 313,600 draws give the weights' variance to ~0.5 %
        assert abs(W.var() / (bound ** 2 / 3) - 1) < 0.02
    again = nn.init_mlp([784, 400, 20], np.random.default_rng(0))
    np.testing.assert_array_equal(params[0][0], again[0][0])


def test_bad_input():
    with pytest.raises(ValueError, match="sizes"):
        nn.init_mlp([3], np.random.default_rng(0))
    with pytest.raises(ValueError, match="sizes"):
        nn.init_mlp([3, 0, 2], np.random.default_rng(0))
    with pytest.raises(ValueError, match="activation"):
        nn.mlp(params64(), np.zeros((2, 3)), "sigmoid")
    with pytest.raises(ValueError, match="x has shape"):
        nn.mlp(params64(), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="params is empty"):
        nn.mlp([], np.zeros((2, 3)))
