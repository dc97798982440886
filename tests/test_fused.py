"""Each fused primitive against its plain lesson version (value and gradient), finite differences, dtypes.

The plain functions in nn/distributions/ops are the reference: autograd differentiates them op by op, so
their gradients are the chain rule done by machine. A fused vjp written by hand must give the same numbers:
to float64 rounding (rtol 1e-12) in float64, to float32 rounding in float32, and finite differences agree.
"""

from __future__ import annotations

import autograd
import numpy as np
import pytest
import strict_array

from minivae import distributions as dist
from minivae import fused, grad, nn, ops
from minivae.backend import register_array_type
from minivae.gradcheck import check_grad
from minivae.models import AE, VAE
from minivae.objectives import ae_objective, iwae_objective, vae_objective
from minivae.optim import SGD, Adam
from minivae.tree import tree_leaves, tree_map

N, D, H, K = 4, 5, 3, 3


def _unit(rng, *shape):
    # Bernoulli targets strictly inside (0, 1), so finite differences in x stay in range
    return rng.uniform(0.05, 0.95, size=shape)


def _cases(rng):
    """name -> (fused function, plain function, float64 arguments)."""
    W, b = rng.standard_normal((D, H)), rng.standard_normal(H)
    x = rng.standard_normal((N, D))
    mean, log_var = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    return {
        "linear": (fused.linear, lambda x, W, b: nn.dense((W, b), x), (x, W, b)),
        "linear_relu": (fused.linear_relu, lambda x, W, b: ops.relu(nn.dense((W, b), x)), (x, W, b)),
        "bernoulli_log_prob": (fused.bernoulli_log_prob, dist.bernoulli_log_prob,
                               (_unit(rng, N, D), 3 * rng.standard_normal((N, D)))),
        "bernoulli_log_prob k samples": (fused.bernoulli_log_prob, dist.bernoulli_log_prob,
                                         (_unit(rng, N, D), 3 * rng.standard_normal((K, N, D)))),
        "kl_standard_normal": (fused.kl_standard_normal, dist.kl_standard_normal, (mean, log_var)),
        "reparameterize": (fused.reparameterize, dist.reparameterize,
                           (mean, log_var, rng.standard_normal((N, H)))),
        "reparameterize k samples": (fused.reparameterize, dist.reparameterize,
                                     (mean, log_var, rng.standard_normal((K, N, H)))),
        "mlp relu": (fused.mlp, nn.mlp, (nn.init_mlp([D, 4, 3, 2], rng, np.float64), x)),
    }


CASES = sorted(_cases(np.random.default_rng(0)))


def _grad(f, args, argnum, put=lambda host: host):
    # the gradient of r · f(...) for a fixed random r (moved to the arguments' device by `put`)
    out = f(*args)
    r = put(np.random.default_rng(7).standard_normal(np.shape(out)).astype(out.dtype))

    def scalar(a):
        return ops.sum(f(*args[:argnum], a, *args[argnum + 1:]) * r)

    return autograd.grad(scalar)(args[argnum])


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_matches_plain_in_value_and_gradient(name, dtype):
    f, plain, args = _cases(np.random.default_rng(1))[name]
    args = tree_map(lambda a: a.astype(dtype), args)
    # float64: both are the same formula up to rounding order; float32: ~1e-7 relative per op, a few ops deep
    rtol, atol = (1e-12, 1e-13) if dtype == np.float64 else (2e-6, 1e-6)
    value, expected = f(*args), plain(*args)
    assert value.dtype == dtype and value.shape == expected.shape
    np.testing.assert_allclose(value, expected, rtol=rtol, atol=atol)
    for argnum in range(len(args)):
        got, want = _grad(f, args, argnum), _grad(plain, args, argnum)
        for g, w in zip(tree_leaves(got), tree_leaves(want)):
            assert g.dtype == dtype and g.shape == w.shape, (name, argnum)
            assert np.abs(w).max() > 0  # not vacuous: the gradient flows
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{name}, argument {argnum}")


@pytest.mark.parametrize("name", CASES)
def test_check_grad_covers_every_fused_vjp(name):
    f, _, args = _cases(np.random.default_rng(2))[name]
    check_grad(f, *args)


def test_fused_values_equal_plain_values_bit_for_bit_in_float32():
    # the forward passes do the same operations in the same order, so a model's loss does not change
    for name in CASES:
        f, plain, args = _cases(np.random.default_rng(3))[name]
        args = tree_map(lambda a: a.astype(np.float32), args)
        np.testing.assert_array_equal(f(*args), plain(*args), err_msg=name)


def test_bernoulli_is_finite_for_huge_logits_with_the_right_gradient():
    x = np.array([[0.0, 1.0, 1.0, 0.0]])
    logits = np.array([[1e4, 1e4, -1e4, -1e4]])
    # log-probabilities: −1e4 (wrong and sure), 0 (right), −1e4, 0
    assert fused.bernoulli_log_prob(x, logits)[0] == pytest.approx(-2e4, rel=1e-15)
    # x − σ(l): −1, 0, 1, 0 exactly
    g = autograd.grad(lambda lg: ops.sum(fused.bernoulli_log_prob(x, lg)))(logits)
    np.testing.assert_array_equal(g, [[-1.0, 0.0, 1.0, 0.0]])


def test_plain_fallbacks_for_other_shapes_and_activations():
    rng = np.random.default_rng(4)
    params = nn.init_mlp([D, 4, 2], rng, np.float64)
    x3 = rng.standard_normal((K, N, D))
    np.testing.assert_array_equal(fused.linear(x3, *params[0]), nn.dense(params[0], x3))
    np.testing.assert_array_equal(fused.linear_relu(x3, *params[0]), ops.relu(nn.dense(params[0], x3)))
    for act in ("tanh", "softplus"):
        np.testing.assert_array_equal(fused.mlp(params, x3[0], act), nn.mlp(params, x3[0], act))


def test_bad_input_names_the_argument():
    x, logits = np.full((N, D), 0.5), np.zeros((N, D))
    with pytest.raises(ValueError, match="x must hold Bernoulli targets in"):
        fused.bernoulli_log_prob(x + 1.0, logits)
    with pytest.raises(ValueError, match="x has shape"):
        fused.bernoulli_log_prob(np.full((N, D + 1), 0.5), logits)
    with pytest.raises(ValueError, match="log_var has shape"):
        fused.kl_standard_normal(np.zeros((N, H)), np.zeros((N, H + 1)))
    with pytest.raises(ValueError, match="eps has shape"):
        fused.reparameterize(np.zeros((N, H)), np.zeros((N, H)), np.zeros((N + 1, H)))
    with pytest.raises(ValueError, match="params is empty"):
        fused.mlp([], x)
    with pytest.raises(ValueError, match="scalar loss"):
        grad.value_and_grad(lambda p: p["w"] * 2.0)({"w": np.ones(3)})


# ---------------------------------------------------------------- the trainer's value_and_grad

def _models():
    vae, ae = VAE(6, [5, 4], 2), AE(6, [5], 2)
    rng = np.random.default_rng(5)
    x = (rng.random((N, 6)) < 0.4).astype(np.float32)
    eps = rng.standard_normal((N, 2)).astype(np.float32)
    eps_k = rng.standard_normal((K, N, 2)).astype(np.float32)
    return [(vae_objective(vae).loss, vae.init(rng), x, eps), (iwae_objective(vae, K).loss, vae.init(rng), x, eps_k),
            (ae_objective(ae).loss, ae.init(rng), x, None)]


@pytest.mark.parametrize("case", range(3), ids=["elbo", "iwae", "ae"])
def test_value_and_grad_equals_autograds_bit_for_bit(case):
    loss, params, x, eps = _models()[case]
    value, grads = grad.value_and_grad(loss)(params, x, eps)
    want_value, want_grads = autograd.value_and_grad(loss)(params, x, eps)
    assert value == want_value and value.dtype == np.float32
    tree_map(lambda a, b: np.testing.assert_array_equal(a, b), grads, want_grads)  # same nest structure too
    assert all(g.dtype == np.float32 and np.abs(g).max() > 0 for g in tree_leaves(grads))


def test_value_and_grad_gives_zeros_for_unused_arrays_and_sums_shared_ones():
    params = {"used": np.array([1.0, 2.0]), "unused": [np.ones((2, 2))]}
    value, grads = grad.value_and_grad(lambda p, c: ops.sum(p["used"] * p["used"]) * c)(params, 3.0)
    assert value == 15.0
    np.testing.assert_array_equal(grads["used"], [6.0, 12.0])
    np.testing.assert_array_equal(grads["unused"][0], np.zeros((2, 2)))
    value, grads = grad.value_and_grad(lambda p: ops.sum(p["used"] * 0.0) + 1.0)(params)
    np.testing.assert_array_equal(grads["used"], [0.0, 0.0])


def test_float32_vae_step_gradients_stay_float32_in_every_fused_vjp():
    # each fused vjp, fed a float32 gradient, returns float32 (no float64 leaks into the backward matmuls)
    for name in CASES:
        f, _, args = _cases(np.random.default_rng(6))[name]
        args = tree_map(lambda a: a.astype(np.float32), args)
        for argnum in range(len(args)):
            assert all(g.dtype == np.float32 for g in tree_leaves(_grad(f, args, argnum))), (name, argnum)
    vae = VAE(784, [40], 20)
    rng = np.random.default_rng(7)
    params = vae.init(rng)
    x = (rng.random((8, 784)) < 0.3).astype(np.float32)
    eps = rng.standard_normal((8, 20)).astype(np.float32)
    value, grads = grad.value_and_grad(vae_objective(vae).loss)(params, x, eps)
    assert value.dtype == np.float32
    assert all(g.dtype == np.float32 for g in tree_leaves(grads))


# ---------------------------------------------------------------- device discipline (strict stand-in for CuPy)

@pytest.mark.parametrize("name", CASES)
def test_fused_on_the_strict_device_array_equals_numpy_bit_for_bit(name):
    register_array_type(strict_array.StrictArray, strict_array.xp, strict_array.to_numpy)
    f, _, args = _cases(np.random.default_rng(8))[name]
    args = tree_map(lambda a: a.astype(np.float32), args)
    moved = tree_map(strict_array.xp.asarray, args)
    value = f(*moved)
    assert isinstance(value, strict_array.StrictArray)
    np.testing.assert_array_equal(strict_array.to_numpy(value), f(*args))
    for argnum in range(len(args)):
        got, want = _grad(f, moved, argnum, strict_array.xp.asarray), _grad(f, args, argnum)
        for g, w in zip(tree_leaves(got), tree_leaves(want)):
            assert isinstance(g, strict_array.StrictArray) and g.dtype == np.float32
            np.testing.assert_array_equal(strict_array.to_numpy(g), w)


def test_value_and_grad_on_the_strict_device_array():
    register_array_type(strict_array.StrictArray, strict_array.xp, strict_array.to_numpy)
    loss, params, x, eps = _models()[0]
    want_value, want = grad.value_and_grad(loss)(params, x, eps)
    value, got = grad.value_and_grad(loss)(tree_map(strict_array.xp.asarray, params), strict_array.xp.asarray(x),
                                            strict_array.xp.asarray(eps))
    assert float(value) == float(want_value)
    for g, w in zip(tree_leaves(got), tree_leaves(want)):
        assert isinstance(g, strict_array.StrictArray)
        np.testing.assert_array_equal(strict_array.to_numpy(g), w)



# ---------------------------------------------------------------- the in-place optimizer contract (optim.py)

@pytest.mark.parametrize("make", [lambda: Adam(0.1), lambda: SGD(0.1, momentum=0.9)], ids=["adam", "sgd"])
def test_optimizers_update_in_place_but_never_the_callers_arrays(make):
    opt = make()
    start = {"w": np.array([1.0, -2.0, 0.5]), "b": [np.zeros(2)]}
    kept = tree_map(np.copy, start)
    grads = {"w": np.array([0.3, -0.1, 0.2]), "b": [np.array([1.0, -1.0])]}
    first = opt.step(start, grads)
    # the caller's arrays are copied, not changed
    tree_map(np.testing.assert_array_equal, start, kept)
    assert first["w"] is not start["w"] and not np.array_equal(first["w"], kept["w"])
    # the arrays a step returned are updated in place by the next step
    snapshot, state = tree_map(np.copy, first), opt.state()
    saved = tree_map(np.copy, state)
    second = opt.step(first, grads)
    assert second["w"] is first["w"] and second["b"][0] is first["b"][0]
    assert not np.array_equal(second["w"], snapshot["w"])
    # state() is a copy that later steps leave alone, and load_state copies what it is given
    tree_map(lambda a, b: np.testing.assert_array_equal(a, b) if isinstance(a, np.ndarray) else None, state, saved)
    opt.load_state(state)
    opt.step(second, grads)
    tree_map(lambda a, b: np.testing.assert_array_equal(a, b) if isinstance(a, np.ndarray) else None, state, saved)
