"""Hand-written Adam against autograd's reference adam; SGD with momentum by hand; dtypes; bad input."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.misc.optimizers import adam as reference_adam

from minivae.optim import SGD, Adam
from minivae.tree import tree_leaves, tree_map

A = np.random.default_rng(0).standard_normal((4, 3))
C = np.random.default_rng(1).standard_normal((4,))


def quadratic(params):
    """½‖A w − c‖² + ½ Σ (s_j − j)²: a nest with a dict, a list and a tuple."""
    r = A @ params["w"] - C
    s = params["rest"][0][1]
    return 0.5 * anp.sum(r * r) + 0.5 * anp.sum((s - anp.arange(2.0)) ** 2) + 0.5 * anp.sum(params["rest"][0][0] ** 2)


def start(dtype=np.float64):
    return {"w": np.array([1.0, -2.0, 0.5], dtype=dtype),
            "rest": [(np.array([[3.0, -1.0]], dtype=dtype), np.array([-4.0, 2.5], dtype=dtype))]}


def copy(tree):
    return tree_map(np.array, tree)


def test_adam_follows_autograds_adam_step_for_step():
    steps, lr = 60, 0.1
    grad = autograd.grad(quadratic)
    reference = []
    # autograd's adam flattens the nest, counts steps from i = 0 with bias correction 1 − b^(i+1), and
    # calls back with x *before* step i; record those iterates and the final one
    final = reference_adam(lambda p, i: grad(p), start(), num_iters=steps, step_size=lr,
                           callback=lambda p, i, g: reference.append(copy(p)))
    reference.append(copy(final))
    opt = Adam(lr=lr)
    params = start()
    ours = [copy(params)]
    for _ in range(steps):
        params = opt.step(params, grad(params))
        ours.append(copy(params))
    assert len(ours) == len(reference) == steps + 1
    moved = max(np.abs(a - b).max() for a, b in zip(tree_leaves(ours[-1]), tree_leaves(ours[0])))
    assert moved > 1.0  # the trajectory goes somewhere, so agreeing is not vacuous
    for t, (a, b) in enumerate(zip(ours, reference)):
        for x, y in zip(tree_leaves(a), tree_leaves(b)):
            # float64: the two orderings of the update differ only by rounding (4e-16 measured over the
            # 60 steps), so 1e-12 leaves room for another BLAS but would catch any wrong formula
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12, err_msg=f"step {t}")
    assert isinstance(params["rest"], list) and isinstance(params["rest"][0], tuple)


def test_adam_keeps_float32_parameters_and_moments():
    grad = autograd.grad(quadratic)
    opt = Adam(lr=0.05)
    params = start(np.float32)
    for _ in range(5):
        g = tree_map(lambda a: a.astype(np.float32), grad(params))
        params = opt.step(params, g)
    state = opt.state()
    assert state["t"] == 5
    for tree in (params, state["m"], state["v"]):
        assert all(a.dtype == np.float32 for a in tree_leaves(tree))
    assert quadratic(params) < quadratic(start())


def test_sgd_with_momentum_two_steps_by_hand():
    opt = SGD(lr=0.1, momentum=0.9)
    p = {"a": np.array([1.0, -2.0])}
    # v1 = g1 = (0.5, 1); θ1 = θ0 − 0.1 v1 = (0.95, −2.1)
    p = opt.step(p, {"a": np.array([0.5, 1.0])})
    np.testing.assert_allclose(p["a"], [0.95, -2.1], rtol=1e-15)
    # v2 = 0.9 v1 + g2 = (0.65, −0.1); θ2 = θ1 − 0.1 v2 = (0.885, −2.09)
    p = opt.step(p, {"a": np.array([0.2, -1.0])})
    np.testing.assert_allclose(p["a"], [0.885, -2.09], rtol=1e-15)


def test_plain_sgd_and_float32():
    opt = SGD(lr=0.5)
    p = opt.step([np.ones(2, np.float32)], [np.array([1.0, -2.0], np.float32)])
    assert p[0].dtype == np.float32
    np.testing.assert_array_equal(p[0], [0.5, 2.0])


@pytest.mark.parametrize("make", [lambda lr: Adam(lr=lr), lambda lr: SGD(lr=lr)])
@pytest.mark.parametrize("lr", [0.0, -1e-3, float("nan")])
def test_bad_learning_rate(make, lr):
    with pytest.raises(ValueError, match="lr must be a positive learning rate"):
        make(lr)


@pytest.mark.parametrize("opt", [Adam(), SGD(0.1, momentum=0.5)])
def test_params_and_grads_of_different_structure(opt):
    params = {"w": np.ones(3), "b": [np.ones(2)]}
    with pytest.raises(ValueError, match=r"params and grads have different structures at \['b'\]"):
        opt.step(params, {"w": np.ones(3), "b": (np.ones(2),)})
    with pytest.raises(ValueError, match="params and grads have different structures"):
        opt.step(params, {"w": np.ones(3)})
    with pytest.raises(ValueError, match=r"grads has an array of shape \(4,\) where params has \(3,\)"):
        opt.step(params, {"w": np.ones(4), "b": [np.ones(2)]})


def test_bad_hyperparameters():
    for kwargs, name in (({"b1": 1.0}, "b1"), ({"b2": -0.1}, "b2"), ({"eps": 0.0}, "eps")):
        with pytest.raises(ValueError, match=name):
            Adam(**kwargs)
    with pytest.raises(ValueError, match="momentum"):
        SGD(0.1, momentum=1.0)


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
