"""Adam against autograd's reference adam; SGD with momentum by hand; dtypes; the fast Adam to rounding; bad input."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import strict_array
from autograd.misc.optimizers import adam as reference_adam

from minivae.backend import register_array_type
from minivae.fast import adam as fast_adam
from minivae.fast.adam import Adam as FastAdam
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
            # bit for bit: autograd computes the same terms in the same order ((1 − b1) g + b1 m is b1 m +
            # (1 − b1) g in IEEE arithmetic; g**2 is g * g), so any difference would be a different formula
            np.testing.assert_array_equal(x, y, err_msg=f"step {t}")
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


@pytest.mark.parametrize("make", [lambda lr: Adam(lr=lr), lambda lr: FastAdam(lr=lr), lambda lr: SGD(lr=lr)],
                         ids=["adam", "fast adam", "sgd"])
@pytest.mark.parametrize("lr", [0.0, -1e-3, float("nan"), float("inf"), -float("inf")])
def test_bad_learning_rate(make, lr):
    with pytest.raises(ValueError, match="lr must be a positive learning rate"):
        make(lr)


BAD_HYPERPARAMETERS = [
    # (optimizer, keyword arguments, the words the one sentence must contain)
    (Adam, {"lr": "1e-3"}, r"lr must be a number, got '1e-3' \(str\); pass for example lr=1e-3"),
    (Adam, {"lr": None}, "lr must be a number, got None"),
    (Adam, {"lr": True}, r"lr must be a number, got True \(bool\)"),
    (Adam, {"b1": 1.0}, r"b1 must be a finite number in \[0, 1\), got 1.0"),
    (Adam, {"b1": -0.1}, "b1 must be a finite number in"),
    (Adam, {"b1": float("nan")}, "b1 must be a finite number in"),
    (Adam, {"b1": "0.9"}, "b1 must be a number, got '0.9'"),
    (Adam, {"b2": 1.5}, "b2 must be a finite number in"),
    (Adam, {"b2": float("inf")}, "b2 must be a finite number in"),
    (Adam, {"eps": 0.0}, "eps must be a small positive number"),
    (Adam, {"eps": -1e-8}, "eps must be a small positive number"),
    (Adam, {"eps": float("inf")}, "eps must be a small positive number"),
    (Adam, {"eps": float("nan")}, "eps must be a small positive number"),
    (Adam, {"eps": "1e-8"}, "eps must be a number"),
    (SGD, {"lr": "0.1"}, "lr must be a number, got '0.1'"),
    (SGD, {"lr": 0.1, "momentum": 1.0}, r"momentum must be a finite number in \[0, 1\), got 1.0"),
    (SGD, {"lr": 0.1, "momentum": -0.5}, "momentum must be a finite number in"),
    (SGD, {"lr": 0.1, "momentum": float("nan")}, "momentum must be a finite number in"),
    (SGD, {"lr": 0.1, "momentum": "0.9"}, "momentum must be a number"),
]


@pytest.mark.parametrize("make, kwargs, message", BAD_HYPERPARAMETERS,
                         ids=[f"{m.__name__}-{k}" for m, k, _ in BAD_HYPERPARAMETERS])
def test_bad_hyperparameters_get_one_sentence(make, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_good_hyperparameters_of_any_real_type_are_kept_as_floats():
    opt = Adam(lr=np.float32(0.5), b1=0, b2=np.float64(0.5), eps=1)
    assert (opt.lr, opt.b1, opt.b2, opt.eps) == (0.5, 0.0, 0.5, 1.0)
    assert all(type(h) is float for h in (opt.lr, opt.b1, opt.b2, opt.eps))
    assert SGD(1, momentum=0).momentum == 0.0


@pytest.mark.parametrize("opt", [Adam(), FastAdam(), SGD(0.1, momentum=0.5)], ids=["adam", "fast adam", "sgd"])
def test_params_and_grads_of_different_structure(opt):
    params = {"w": np.ones(3), "b": [np.ones(2)]}
    with pytest.raises(ValueError, match=r"params and grads have different structures at \['b'\]"):
        opt.step(params, {"w": np.ones(3), "b": (np.ones(2),)})
    with pytest.raises(ValueError, match="params and grads have different structures"):
        opt.step(params, {"w": np.ones(3)})
    with pytest.raises(ValueError, match=r"grads has an array of shape \(4,\) where params has \(3,\)"):
        opt.step(params, {"w": np.ones(4), "b": [np.ones(2)]})


OPTIMIZERS = {"adam": lambda: Adam(0.1), "fast adam": lambda: FastAdam(0.1), "sgd": lambda: SGD(0.1, momentum=0.9)}


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_no_array_a_caller_holds_is_ever_changed(make):
    opt = make()
    start = {"w": np.array([1.0, -2.0, 0.5]), "b": [np.zeros(2)]}
    kept = tree_map(np.copy, start)
    grads = {"w": np.array([0.3, -0.1, 0.2]), "b": [np.array([1.0, -1.0])]}
    first = opt.step(start, grads)
    tree_map(np.testing.assert_array_equal, start, kept)
    assert not np.array_equal(first["w"], kept["w"])
    # a snapshot taken as `snapshot = params` after a step stays what it was through later steps
    snapshot, copied, state = first, tree_map(np.copy, first), opt.state()
    saved = tree_map(np.copy, state)
    params = first
    for _ in range(3):
        params = opt.step(params, grads)
    tree_map(np.testing.assert_array_equal, snapshot, copied)
    assert not np.array_equal(params["w"], copied["w"])
    # state() is a copy that later steps leave alone, and load_state copies what it is given
    tree_map(np.testing.assert_array_equal, state, saved)
    opt.load_state(state)
    opt.step(params, grads)
    tree_map(np.testing.assert_array_equal, state, saved)


@pytest.mark.parametrize("make", [Adam, FastAdam], ids=["adam", "fast adam"])
def test_a_caller_may_edit_the_returned_params_and_the_next_step_sees_it(make):
    opt = make(0.1, b1=0.0)  # no momentum: a zero gradient leaves θ where it is
    params = opt.step({"w": np.ones(3)}, {"w": np.ones(3)})
    params["w"][0] = 5.0
    edited = params["w"].copy()
    # the edit is the caller's own array, so the next step starts from it
    np.testing.assert_array_equal(opt.step(params, {"w": np.zeros(3)})["w"], edited)


# ---------------------------------------------------------------- the fast Adam: flat buffers, the same numbers

def _mixed_nest(rng):
    # a large array, two small float32 arrays updated together, a float64 array (a buffer of its own)
    big = rng.standard_normal((300, 250)).astype(np.float32)
    assert big.size > fast_adam.SMALL > 12
    return {"big": big, "small": [rng.standard_normal(7).astype(np.float32),
                                  rng.standard_normal((3, 4)).astype(np.float32)],
            "wide": rng.standard_normal((2, 5)), "mid": rng.standard_normal(fast_adam.SMALL).astype(np.float32)}


def _within_steps_of_rounding(a, b, steps: int, lr: float, where: str) -> None:
    # Algorithm 1's last lines and Section 2's order are equal in real numbers; each step rounds the update
    # (at most about lr · (1 − b1)/√(1 − b2) ≈ 3.2 lr in size) and then θ minus it, so the two θ drift apart by
    # at most a few half-ulps per step: one ulp of |θ| + 4 lr per step is the bound, over `steps` steps
    spacing = np.spacing((np.abs(a) + 4 * lr).astype(a.dtype))
    assert np.all(np.abs(a.astype(np.float64) - b) <= steps * spacing), where


def test_the_fast_adam_follows_the_lessons_adam_to_rounding_for_100_steps():
    rng = np.random.default_rng(3)
    params = _mixed_nest(rng)
    lesson, fast = Adam(lr=1e-2), FastAdam(lr=1e-2)
    ours, theirs = params, params
    differ = 0
    for step in range(100):
        grads = tree_map(lambda p: rng.standard_normal(p.shape).astype(p.dtype), params)
        ours, theirs = lesson.step(ours, grads), fast.step(theirs, grads)
        for a, b in zip(tree_leaves(ours), tree_leaves(theirs)):
            assert a.dtype == b.dtype and a.shape == b.shape
            _within_steps_of_rounding(a, b, step + 1, 1e-2, f"step {step + 1}")
            differ += int(np.count_nonzero(a != b))
    moved = np.abs(ours["big"] - params["big"]).max()
    assert moved > 0.2  # 100 steps of lr 1e-2 went somewhere (0.43 here), so agreeing is not vacuous
    assert differ > 0  # the orders do round differently, so the bound is what is tested, not equality
    # m and v are computed in the same order by both: bit for bit
    for key in ("m", "v"):
        for a, b in zip(tree_leaves(lesson.state()[key]), tree_leaves(fast.state()[key])):
            np.testing.assert_array_equal(a, b)
    # the state of one loads into the other, and they go on together
    swapped, back = Adam(lr=1e-2), FastAdam(lr=1e-2)
    swapped.load_state(fast.state())
    back.load_state(lesson.state())
    grads = tree_map(np.ones_like, params)
    for a, b in zip(tree_leaves(swapped.step(theirs, grads)), tree_leaves(back.step(ours, grads))):
        _within_steps_of_rounding(a, b, 101, 1e-2, "after swapping states")


def test_the_fast_adam_is_kingma_and_bas_section_2_order_bit_for_bit():
    # the reference, array by array with the same ufuncs: θ ← θ − lr_t · m / (√v + eps_t)
    rng = np.random.default_rng(4)
    params = _mixed_nest(rng)
    fast, lr, b1, b2, eps = FastAdam(lr=1e-2), 1e-2, 0.9, 0.999, 1e-8
    theta = params
    m, v = tree_map(np.zeros_like, params), tree_map(np.zeros_like, params)
    for t in range(1, 31):
        grads = tree_map(lambda p: rng.standard_normal(p.shape).astype(p.dtype), params)
        c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        lr_t, eps_t = lr * c2 ** 0.5 / c1, eps * c2 ** 0.5
        m = tree_map(lambda m, g: b1 * m + g * (1.0 - b1), m, grads)
        v = tree_map(lambda v, g: b2 * v + (g * g) * (1.0 - b2), v, grads)
        want = tree_map(lambda p, m, v, e=eps_t, a=lr_t: p - (m / (np.sqrt(v) + e)) * a, theta, m, v)
        theta = fast.step(theta, grads)
        tree_map(np.testing.assert_array_equal, theta, want)


def test_the_fast_adam_copies_an_array_the_caller_swapped_in_and_refuses_another_model():
    rng = np.random.default_rng(4)
    params = _mixed_nest(rng)
    grads = tree_map(lambda p: np.ones_like(p), params)
    opt = FastAdam(lr=0.1)
    first = opt.step(params, grads)
    swapped = dict(first, wide=np.zeros((2, 5)))
    second = opt.step(swapped, grads)
    # the swapped-in zeros were read, not changed; the step went on from them
    np.testing.assert_array_equal(swapped["wide"], np.zeros((2, 5)))
    assert np.all(second["wide"] < 0)
    with pytest.raises(ValueError, match="params are not built like the params of this optimizer's first step"):
        opt.step({**first, "mid": np.ones(3, np.float32)}, {**grads, "mid": np.ones(3, np.float32)})
    with pytest.raises(ValueError, match="params are not built like"):
        opt.step(tree_map(lambda a: a.astype(np.float64), first), tree_map(lambda a: a.astype(np.float64), grads))
    # a params array that would broadcast into the buffer is refused, not silently spread
    with pytest.raises(ValueError, match="params are not built like"):
        opt.step({**first, "mid": np.ones(1, np.float32)}, {**grads, "mid": np.ones(1, np.float32)})


@pytest.mark.parametrize("make", [Adam, FastAdam], ids=["adam", "fast adam"])
def test_adam_load_state_refuses_a_moment_of_the_wrong_shape(make):
    params = {"w": np.ones((2, 3), np.float32)}
    opt = make()
    opt.step(params, {"w": np.ones((2, 3), np.float32)})
    state = opt.state()
    state["m"]["w"] = np.zeros((3, 2), np.float32)
    opt.load_state(state)
    with pytest.raises(ValueError, match=r"the optimizer's m has an array of shape \(3, 2\) where params has "
                                         r"\(2, 3\); load a state saved for this model"):
        opt.step(params, {"w": np.ones((2, 3), np.float32)})


@pytest.mark.parametrize("make", [Adam, FastAdam], ids=["adam", "fast adam"])
def test_adam_on_the_strict_device_array_equals_numpy_bit_for_bit(make):
    register_array_type(strict_array.StrictArray, strict_array.xp, strict_array.to_numpy)
    rng = np.random.default_rng(5)
    params = _mixed_nest(rng)
    grads = tree_map(lambda p: rng.standard_normal(p.shape).astype(p.dtype), params)
    on_host, on_device = make(lr=1e-2), make(lr=1e-2)
    host, device = params, tree_map(strict_array.xp.asarray, params)
    for _ in range(3):
        host = on_host.step(host, grads)
        device = on_device.step(device, tree_map(strict_array.xp.asarray, grads))
    for a, b in zip(tree_leaves(device), tree_leaves(host)):
        assert isinstance(a, strict_array.StrictArray)
        np.testing.assert_array_equal(strict_array.to_numpy(a), b)


def test_the_fast_adam_reuses_a_buffer_nobody_holds_and_never_one_a_snapshot_holds():
    params = {"w": np.ones((200, 100), np.float32), "b": np.zeros(3, np.float32)}
    grads = tree_map(np.ones_like, params)
    opt = FastAdam(1e-2)
    params = opt.step(params, grads)
    params = opt.step(params, grads)
    spare = id(opt._spares[0])
    params = opt.step(params, grads)
    assert id(opt._buffers[0]) == spare  # the buffer of two steps ago, written again
    kept = params
    snapshot = [a.copy() for a in tree_leaves(kept)]
    for _ in range(3):
        params = opt.step(params, grads)
    for a, b in zip(tree_leaves(kept), snapshot):
        np.testing.assert_array_equal(a, b)  # the kept nest's buffer was never written
