"""check_grad must accept right gradients and reject a wrong one, naming the worst entry."""

from __future__ import annotations

import re

import autograd.numpy as anp
import numpy as np
import pytest
from autograd.extend import defvjp, primitive

from minivae.gradcheck import check_grad, numerical_grad


@primitive
def cube_with_wrong_grad(x):
    return x ** 3


# the true vjp is 3x²·g; this one is off by x·g at entry 2 only, so one entry is wrong
def _bad_vjp(ans, x):
    def vjp(g):
        wrong = 3 * x ** 2 * g
        wrong[..., 2] += x[..., 2] * g[..., 2]
        return wrong
    return vjp


defvjp(cube_with_wrong_grad, _bad_vjp)


def test_check_grad_rejects_a_wrong_vjp_and_names_the_worst_entry():
    x = np.array([[0.5, -1.0, 2.0, 1.5]])
    with pytest.raises(AssertionError) as info:
        check_grad(lambda x: cube_with_wrong_grad(x).sum(), x)
    msg = str(info.value)
    # index (0, 2), analytic 3·4 + 2 = 14, numeric 12, relative error 1/6
    assert "argument 0" in msg and "index (0, 2)" in msg, msg
    analytic, numeric, rel = (float(v) for v in re.search(
        r"autograd gives (\S+), finite differences give (\S+) \(relative error (\S+),", msg).groups())
    assert analytic == pytest.approx(14.0, rel=1e-12)
    assert numeric == pytest.approx(12.0, rel=1e-8)
    assert rel == pytest.approx(1 / 6, rel=1e-2)  # the message prints it to 3 digits: 0.167 is 2e-3 off


def test_check_grad_names_the_path_inside_a_nest():
    params = {"w": np.array([1.0, 2.0]), "v": [np.array([0.5, -0.5, 1.0])]}
    with pytest.raises(AssertionError, match=r"argument 0\['v'\]\[0\] at index \(2,\)"):
        check_grad(lambda p: cube_with_wrong_grad(p["v"][0]).sum() + anp.sum(p["w"] ** 2), params)


def test_check_grad_accepts_a_correct_gradient_and_contracts_vector_outputs():
    x = np.array([[0.5, -1.0, 2.0], [0.1, 0.2, -0.3]])
    check_grad(lambda x, w: anp.tanh(x @ w), x, np.ones((3, 2)))


def test_numerical_grad_is_second_order_accurate():
    x = np.array([0.3, -1.2])
    g = numerical_grad(lambda x: anp.sum(anp.sin(x)), x, eps=1e-5)
    np.testing.assert_allclose(g, np.cos(x), rtol=1e-9)


def test_check_grad_refuses_float32_and_no_arguments():
    with pytest.raises(ValueError, match="not float64"):
        check_grad(lambda x: anp.sum(x), np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match="no float64 array"):
        check_grad(lambda n: 1.0, 3)
