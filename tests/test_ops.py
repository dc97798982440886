r"""minivae.ops: device-safe sum, mean, relu, where, concatenate and getitem.

Each primitive is checked three ways: its value against NumPy, its gradient against the exact answer or
finite differences (float64), and on the strict stand-in for CuPy (gradients stay stand-ins, in their dtype).
For every primitive a test also shows that autograd's stock version fails on the stand-in, so the
device-safe one is not tested vacuously.
"""

from __future__ import annotations

from typing import Any, Callable

import autograd
import autograd.numpy as anp
import numpy
import pytest
import strict_array
from strict_array import StrictArray

from minivae import ops
from minivae.backend import register_array_type, to_numpy
from minivae.gradcheck import check_grad

register_array_type(StrictArray, strict_array.xp, strict_array.to_numpy)

AXES = [None, 0, 1, -1, (0, 2), (-1, 0)]


def _x(dtype: Any = numpy.float64, shape: tuple = (2, 3, 4), seed: int = 0) -> numpy.ndarray:
    return numpy.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _on_stand_in(x: numpy.ndarray) -> StrictArray:
    return strict_array.xp.asarray(x)


# ----- sum and mean -----

@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES)
def test_sum_and_mean_values_match_numpy(axis: Any, keepdims: bool) -> None:
    x = _x()
    numpy.testing.assert_array_equal(ops.sum(x, axis=axis, keepdims=keepdims), x.sum(axis=axis, keepdims=keepdims))
    numpy.testing.assert_array_equal(ops.mean(x, axis=axis, keepdims=keepdims),
                                     x.mean(axis=axis, keepdims=keepdims))


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES)
def test_sum_and_mean_gradients_are_exact(axis: Any, keepdims: bool) -> None:
    # d/dx Σ_axis w·(Σ x) = w broadcast back; for the mean, divided by the number of entries reduced
    x = _x()
    w = _x(shape=numpy.shape(x.sum(axis=axis, keepdims=keepdims)), seed=1)
    expected = numpy.broadcast_to(w if keepdims or axis is None else numpy.expand_dims(w, axis), x.shape)
    count = x.size // numpy.asarray(x.sum(axis=axis)).size
    g_sum = autograd.grad(lambda v: ops.sum(ops.sum(v, axis=axis, keepdims=keepdims) * w))(x)
    g_mean = autograd.grad(lambda v: ops.sum(ops.mean(v, axis=axis, keepdims=keepdims) * w))(x)
    numpy.testing.assert_array_equal(g_sum, expected)
    numpy.testing.assert_allclose(g_mean, expected / count, rtol=1e-15)


@pytest.mark.parametrize("op", [ops.sum, ops.mean], ids=["sum", "mean"])
@pytest.mark.parametrize("axis", AXES)
def test_sum_and_mean_pass_check_grad(op: Callable, axis: Any) -> None:
    check_grad(lambda v: op(v * v, axis=axis), _x())


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("op", [ops.sum, ops.mean], ids=["sum", "mean"])
def test_sum_and_mean_gradients_stay_on_the_stand_in(op: Callable, dtype: Any) -> None:
    x = _x(dtype)
    f = lambda v: op(op(v * v, axis=1) * 3.0)  # noqa: E731
    g = autograd.grad(f)(_on_stand_in(x))
    assert type(g) is StrictArray and g.dtype == dtype
    numpy.testing.assert_array_equal(to_numpy(g), autograd.grad(f)(x))


@pytest.mark.parametrize("stock", [anp.sum, anp.mean], ids=["sum", "mean"])
def test_stock_sum_and_mean_fail_on_the_stand_in(stock: Callable) -> None:
    # autograd's own vjp adds onp.zeros(shape), a host array, to g: exactly what CuPy refuses
    x = _on_stand_in(_x())
    assert type(stock(x)) is StrictArray  # the forward pass is fine; only the backward pass allocates on the host
    with pytest.raises(TypeError, match="host NumPy array"):
        autograd.grad(lambda v: stock(v * v))(x)


def test_sum_and_mean_accumulate_gradients_in_place_on_the_stand_in() -> None:
    # three uses of x: autograd adds the third gradient in place (vspace.mut_add), through out=
    x = _x()
    f = lambda v: ops.sum(v) + ops.mean(v * v) + ops.getitem(ops.sum(v, axis=0), (1, 2))  # noqa: E731
    g = autograd.grad(lambda v: f(v) + ops.sum(v * 2.0))(_on_stand_in(x))
    numpy.testing.assert_array_equal(to_numpy(g), autograd.grad(lambda v: f(v) + ops.sum(v * 2.0))(x))


# ----- relu -----

@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_relu_value_gradient_and_dtype(dtype: Any) -> None:
    x = numpy.array([-2.0, -0.5, 0.5, 3.0], dtype=dtype)
    numpy.testing.assert_array_equal(ops.relu(x), [0.0, 0.0, 0.5, 3.0])
    for v in (x, _on_stand_in(x)):
        g = autograd.grad(lambda u: ops.sum(ops.relu(u) * 2.0))(v)
        assert g.dtype == dtype
        numpy.testing.assert_array_equal(to_numpy(g), [0.0, 0.0, 2.0, 2.0])
    check_grad(lambda u: ops.relu(u * u - 0.3), _x())


def test_stock_maximum_relu_loses_float32() -> None:
    # why ops.relu exists: the vjp of np.maximum(x, 0) returns float64 gradients for float32 inputs
    x = numpy.array([-1.0, 2.0], dtype=numpy.float32)
    assert autograd.grad(lambda u: ops.sum(anp.maximum(u, 0.0)))(x).dtype == numpy.float64
    assert autograd.grad(lambda u: ops.sum(ops.relu(u)))(x).dtype == numpy.float32


# ----- where -----

def test_where_value_and_gradients() -> None:
    x, y = _x(seed=2), _x(seed=3)
    c = x > 0.2
    numpy.testing.assert_array_equal(ops.where(c, x, y), numpy.where(c, x, y))
    gx, gy = autograd.grad(lambda a, b: ops.sum(ops.where(c, a * a, b) * 3.0), argnum=(0, 1))(x, y)
    numpy.testing.assert_array_equal(gx, numpy.where(c, 6.0 * x, 0.0))
    numpy.testing.assert_array_equal(gy, numpy.where(c, 0.0, 3.0))


def test_where_broadcasts_and_passes_check_grad() -> None:
    # y of shape (4,) broadcasts over (2, 3, 4): its gradient sums over the broadcast axes
    x, y = _x(seed=4), _x(shape=(4,), seed=5)
    c = numpy.abs(x) > 0.5
    check_grad(lambda a, b: ops.where(c, a * a, b * b), x, y)
    check_grad(lambda a: ops.where(c, a, 0.0), x)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_where_on_the_stand_in(dtype: Any) -> None:
    x = _x(dtype, seed=6)
    f = lambda v: ops.sum(ops.where(v > 0, v * v, -v))  # noqa: E731
    g = autograd.grad(f)(_on_stand_in(x))
    assert type(g) is StrictArray and g.dtype == dtype
    numpy.testing.assert_array_equal(to_numpy(g), autograd.grad(f)(x))
    with pytest.raises(TypeError, match="host NumPy array"):  # stock where fills the other side on the host
        autograd.grad(lambda v: ops.sum(anp.where(v > 0, v * v, -v)))(_on_stand_in(x))


# ----- concatenate -----

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_value_and_check_grad(axis: Any) -> None:
    parts = [_x(shape=(2, 3, 4), seed=s) for s in (7, 8, 9)]
    numpy.testing.assert_array_equal(ops.concatenate(parts, axis=axis), numpy.concatenate(parts, axis=axis))
    check_grad(lambda a, b, c: ops.concatenate([a * a, b, 2.0 * c], axis=axis), *parts)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_concatenate_on_the_stand_in(dtype: Any) -> None:
    a, b = _x(dtype, seed=10), _x(dtype, shape=(2, 3, 2), seed=11)
    w = _on_stand_in(_x(dtype, shape=(2, 3, 6), seed=12))
    f = lambda u, v: ops.sum(ops.concatenate([u, v * v], axis=-1) * w)  # noqa: E731
    ga, gb = autograd.grad(f, argnum=(0, 1))(_on_stand_in(a), _on_stand_in(b))
    ea, eb = autograd.grad(lambda u, v: ops.sum(ops.concatenate([u, v * v], axis=-1) * to_numpy(w)),
                           argnum=(0, 1))(a, b)
    for g, e in ((ga, ea), (gb, eb)):
        assert type(g) is StrictArray and g.dtype == dtype
        numpy.testing.assert_array_equal(to_numpy(g), e)
    with pytest.raises(TypeError, match="host numpy.ndarray"):  # stock concatenate views its result as one
        anp.concatenate([_on_stand_in(a), _on_stand_in(a)])


# ----- getitem -----

KEYS = [0, -1, slice(1, None), (slice(None), 1), (Ellipsis, slice(0, 3, 2)), (None, 1, slice(None, 2))]


@pytest.mark.parametrize("key", KEYS, ids=str)
def test_getitem_value_and_check_grad(key: Any) -> None:
    x = _x(seed=13)
    numpy.testing.assert_array_equal(ops.getitem(x, key), x[key])
    check_grad(lambda v: ops.getitem(v * v, key), x)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_getitem_on_the_stand_in(dtype: Any) -> None:
    x = _x(dtype, seed=14)
    f = lambda v: ops.sum(ops.getitem(v, (slice(None), 1)) * 2.0) + ops.sum(ops.getitem(v * v, 0))  # noqa: E731
    g = autograd.grad(f)(_on_stand_in(x))
    assert type(g) is StrictArray and g.dtype == dtype
    numpy.testing.assert_array_equal(to_numpy(g), autograd.grad(f)(x))
    with pytest.raises(TypeError):  # stock indexing scatters its gradient with onp.add.at on the host
        autograd.grad(lambda v: ops.sum(v[:, 1]))(_on_stand_in(x))


@pytest.mark.parametrize("key", [numpy.array([0, 0]), [0, 1], (slice(None), numpy.array([True, False, True]))],
                         ids=["int_array", "list", "bool_mask"])
def test_getitem_refuses_advanced_indexing(key: Any) -> None:
    with pytest.raises(ValueError, match="getitem takes ints, slices, None and ... only"):
        ops.getitem(_x(), key)


def test_dot_fails_on_the_stand_in_and_matmul_works() -> None:
    # why model code uses @: dot's vjp calls onp.asarray on the device array
    a, b = _x(shape=(3, 4), seed=15), _x(shape=(4, 2), seed=16)
    sa, sb = _on_stand_in(a), _on_stand_in(b)
    with pytest.raises(TypeError):
        autograd.grad(lambda u: ops.sum(anp.dot(u, sb)))(sa)
    g = autograd.grad(lambda u: ops.sum(u @ sb))(sa)
    numpy.testing.assert_array_equal(to_numpy(g), autograd.grad(lambda u: ops.sum(u @ b))(a))
