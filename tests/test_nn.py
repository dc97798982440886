"""Layers and MLPs: each hand-written vjp against autograd's and finite differences, the kinks, every
activation, the documented initialisation, shapes and bad input."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import strict_array
from vjp_check import assert_vjp_matches_traced

from minivae import nn, ops
from minivae.backend import register_array_type, to_numpy
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


def _primitive_cases(rng, dtype):
    """name -> (primitive of nn, its arguments)."""
    x, x3 = rng.standard_normal((4, 5)), rng.standard_normal((3, 4, 5))
    W, b = rng.standard_normal((5, 6)), rng.standard_normal(6)
    cases = {"dense": (nn.dense, (x, W, b)), "dense k samples": (nn.dense, (x3, W, b)),
             "relu": (nn.relu, (x3,)), "softplus": (nn.softplus, (3 * x3,)), "sigmoid": (nn.sigmoid, (3 * x3,))}
    return {name: (f, tuple(a.astype(dtype) for a in args)) for name, (f, args) in cases.items()}


PRIMITIVES = sorted(_primitive_cases(np.random.default_rng(0), np.float64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", PRIMITIVES)
def test_each_vjp_by_hand_equals_autograds_gradient_of_the_formula(name, dtype):
    f, args = _primitive_cases(np.random.default_rng(1), dtype)[name]
    assert_vjp_matches_traced(f, args)


@pytest.mark.parametrize("name", PRIMITIVES)
def test_each_primitive_passes_check_grad(name):
    f, args = _primitive_cases(np.random.default_rng(2), np.float64)[name]
    check_grad(f, *args)


def test_dense_with_leading_sample_axes_is_the_layer_on_each_row():
    f, (x3, W, b) = _primitive_cases(np.random.default_rng(3), np.float64)["dense k samples"]
    np.testing.assert_array_equal(nn.dense(x3, W, b), x3 @ W + b)
    np.testing.assert_array_equal(nn.hidden_layer(x3, W, b), np.maximum(x3 @ W + b, 0.0))


def test_softplus_derivative_at_zero_is_one_half():
    # d softplus/da = σ(a), and σ(0) = ½ exactly; max(a, 0) + log1p(e^{−|a|}) traced op by op gives 0 there
    a = np.array([0.0, -0.0, 1e-300, -2.0, 2.0])
    g = autograd.grad(lambda v: ops.sum(nn.softplus(v)))(a)
    np.testing.assert_array_equal(g[:3], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(g[3:], 1.0 / (1.0 + np.exp(-a[3:])), rtol=1e-15)
    check_grad(nn.softplus, a)
    for dtype in (np.float32, np.float64):
        assert autograd.grad(lambda v: ops.sum(nn.softplus(v)))(np.zeros(3, dtype)).dtype == dtype


def test_relu_takes_the_subgradient_zero_at_a_pre_activation_of_exactly_zero():
    # as PyTorch: relu'(0) = 0, so a unit whose pre-activation is exactly 0 passes no gradient at all
    rng = np.random.default_rng(4)
    x, W = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    b = np.array([0.0, 1.0])
    W[:, 0] = 0.0  # unit 0: a = x W_0 + b_0 = 0 exactly for every row
    a = x @ W + b
    assert np.all(a[:, 0] == 0.0)
    gx, gW, gb = autograd.grad(lambda x, W, b: ops.sum(nn.hidden_layer(x, W, b) * 3.0), argnum=(0, 1, 2))(x, W, b)
    np.testing.assert_array_equal(gW[:, 0], 0.0)
    np.testing.assert_array_equal(gb, [0.0, 3.0 * np.sum(a[:, 1] > 0)])
    np.testing.assert_allclose(gx, 3.0 * np.outer(a[:, 1] > 0, W[:, 1]), rtol=1e-15)
    np.testing.assert_array_equal(autograd.grad(lambda v: ops.sum(nn.relu(v)))(np.array([-1.0, 0.0, 2.0])),
                                  [0.0, 0.0, 1.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_and_softplus_of_minus_infinity_are_zero_with_gradient_zero(dtype):
    # relu(−∞) = max(−∞, 0) = 0 and softplus(−∞) = log(1 + e^{−∞}) = 0; the derivatives [a > 0] and σ(a) are 0
    # there (a · [a > 0] gave −∞ · 0 = NaN); +∞ passes through, and NaN stays NaN
    a = np.array([-np.inf, np.inf, np.nan], dtype)
    with np.errstate(over="raise", invalid="raise"):
        for f in (nn.relu, nn.softplus):
            got = f(a)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, [0.0, np.inf, np.nan])
            g = autograd.grad(lambda v, f=f: ops.sum(f(v) * 2.0))(a[:1])
            assert g.dtype == dtype
            np.testing.assert_array_equal(g, [0.0])


def test_sigmoid_keeps_the_tail_in_float32():
    # ½(1 + tanh(l/2)) rounds to exactly 0 below l ≈ −17 in float32; 1/(1 + e^{−l}) keeps it
    logits = np.array([-80.0, -50.0, -20.0, -17.5, 0.0, 17.5, 80.0])
    want = 1.0 / (1.0 + np.exp(-logits))
    got = nn.sigmoid(logits.astype(np.float32))
    assert got.dtype == np.float32 and got[4] == 0.5
    # float32 rounding of e^{−l} (its argument l is exact) is a few 1e-8 relative
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.all(got[:4] > 0)
    # beyond the overflow of e^{−l}: 0 (e^l is below float32's smallest normal number), no warning, gradient 0
    with np.errstate(over="raise", invalid="raise"):
        for far in (np.array([-1e4, -100.0, 1e4], np.float32), np.array([-1e4, -800.0, 1e4])):
            np.testing.assert_array_equal(nn.sigmoid(far), [0.0, 0.0, 1.0])
            np.testing.assert_array_equal(autograd.grad(lambda v: ops.sum(nn.sigmoid(v)))(far), [0.0, 0.0, 0.0])
    check_grad(nn.sigmoid, np.array([-30.0, -3.0, 0.0, 2.0, 30.0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_value_gradient_and_dtype_on_the_strict_device_array(dtype):
    register_array_type(strict_array.StrictArray, strict_array.xp, strict_array.to_numpy)
    x = np.array([-np.inf, -2.0, -0.5, 0.5, 3.0], dtype=dtype)
    for v in (x, strict_array.xp.asarray(x)):
        np.testing.assert_array_equal(to_numpy(nn.relu(v)), [0.0, 0.0, 0.0, 0.5, 3.0])
        g = autograd.grad(lambda u: ops.sum(nn.relu(u) * 2.0))(v)
        assert g.dtype == dtype
        np.testing.assert_array_equal(to_numpy(g), [0.0, 0.0, 0.0, 2.0, 2.0])


def test_stock_maximum_relu_loses_float32():
    # why relu's gradient is written by hand: the vjp of np.maximum(x, 0) turns float32 into float64
    x = np.array([-1.0, 2.0], dtype=np.float32)
    assert autograd.grad(lambda u: ops.sum(anp.maximum(u, 0.0)))(x).dtype == np.float64
    assert autograd.grad(lambda u: ops.sum(nn.relu(u)))(x).dtype == np.float32


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
