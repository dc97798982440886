"""minivae.grad.value_and_grad: autograd's gradients bit for bit, traced leaf by leaf; float32 kept; devices."""

from __future__ import annotations

import autograd
import numpy as np
import pytest
import strict_array

from minivae import grad, ops
from minivae.backend import register_array_type
from minivae.models import AE, VAE
from minivae.objectives import ae_objective, iwae_objective, vae_objective
from minivae.tree import tree_leaves, tree_map

N, K = 4, 3


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


def test_value_and_grad_refuses_a_non_scalar_loss():
    with pytest.raises(ValueError, match="scalar loss"):
        grad.value_and_grad(lambda p: p["w"] * 2.0)({"w": np.ones(3)})


def test_float32_vae_step_gradients_stay_float32():
    vae = VAE(784, [40], 20)
    rng = np.random.default_rng(7)
    params = vae.init(rng)
    x = (rng.random((8, 784)) < 0.3).astype(np.float32)
    eps = rng.standard_normal((8, 20)).astype(np.float32)
    value, grads = grad.value_and_grad(vae_objective(vae).loss)(params, x, eps)
    assert value.dtype == np.float32
    assert all(g.dtype == np.float32 for g in tree_leaves(grads))


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
