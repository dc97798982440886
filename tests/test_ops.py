r"""minivae.ops: device-safe sum and mean; and where, concatenate and getitem written the same way.

minivae needs only ``sum`` and ``mean`` (the models never select, join or index traced arrays), so the
device-safe ``where``, ``concatenate`` and ``getitem`` live here, as worked examples of the technique for a
reader who needs them. Each primitive is checked three ways: its value against NumPy, its gradient against
the exact answer or finite differences (float64), and on the strict stand-in for CuPy (gradients stay
stand-ins, in their dtype). For every primitive a test also shows that autograd's stock version fails on the
stand-in, so the device-safe one is not tested vacuously.
"""

from __future__ import annotations

from typing import Any, Callable

import autograd
import autograd.numpy as anp
import numpy
import pytest
import strict_array
from autograd.extend import defvjp, defvjp_argnum, primitive
from autograd.numpy.numpy_vjps import unbroadcast_f
from strict_array import StrictArray

from minivae import ops
from minivae.backend import register_array_type, to_numpy
from minivae.gradcheck import check_grad

register_array_type(StrictArray, strict_array.xp, strict_array.to_numpy)

AXES = [None, 0, 1, -1, (0, 2), (-1, 0)]


# ----- device-safe where, concatenate and getitem (minivae itself does not need them) -----

@primitive
def where(condition: Any, x: Any, y: Any) -> Any:
    r"""x where ``condition`` holds, else y, like ``numpy.where``; its vjps send g to the chosen branch.

    ``x`` and ``y`` are arrays or Python numbers that broadcast against ``condition``.
    """
    return anp.where(condition, x, y)


def _masked(g: Any, keep: Any) -> Any:
    # g where keep holds, else 0, allocated like g (on its device, in its dtype)
    return anp.where(keep, g, anp.zeros_like(g))


defvjp(where, None,
       lambda ans, c, x, y: unbroadcast_f(x, lambda g: _masked(g, c)),
       lambda ans, c, x, y: unbroadcast_f(y, lambda g: _masked(g, anp.logical_not(c))))


def concatenate(arrays: Any, axis: int = 0) -> Any:
    r"""[a_1, a_2, ...] joined along ``axis``, like ``numpy.concatenate``; each a_i gets back its slice of g."""
    return _concatenate(axis, *arrays)


@primitive
def _concatenate(axis: int, *arrays: Any) -> Any:
    # numpy.concatenate dispatches to the arrays' own module (autograd's wrapper would make a host view)
    return numpy.concatenate(arrays, axis=axis)


def _concatenate_vjp(argnum: int, ans: Any, args: tuple, kwargs: dict) -> Any:
    # argument argnum is a_{argnum}; its slice of g starts after the widths of the arrays before it
    axis, arrays = args[0], args[1:]
    widths = [anp.shape(a)[axis] for a in arrays]
    start = sum(widths[:argnum - 1])
    key = [slice(None)] * anp.ndim(ans)
    key[axis] = slice(start, start + widths[argnum - 1])
    return lambda g: g[tuple(key)]


defvjp_argnum(_concatenate, _concatenate_vjp)


def _check_basic_key(key: Any) -> tuple:
    key = key if isinstance(key, tuple) else (key,)
    for part in key:
        if not (part is None or part is Ellipsis or isinstance(part, (int, slice))):
            raise ValueError(f"getitem takes ints, slices, None and ... only, got {type(part).__name__}; "
                             "index with arrays outside the traced computation instead.")
    return key


@primitive
def getitem(x: Any, key: Any) -> Any:
    r"""x[key] for a basic ``key`` (ints, slices, ``None``, ``...``); its vjp writes g into zeros shaped like x.

    Basic indexing never selects an entry twice, so writing g (instead of adding it) is exact.
    """
    return x[_check_basic_key(key)]


def _getitem_vjp(ans: Any, x: Any, key: Any) -> Any:
    def vjp(g: Any) -> Any:
        # zeros like x, on x's device, with g written into the selected entries
        out = anp.zeros_like(x)
        out[_check_basic_key(key)] = g
        return out

    return vjp


defvjp(getitem, _getitem_vjp)


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
    f = lambda v: ops.sum(v) + ops.mean(v * v) + getitem(ops.sum(v, axis=0), (1, 2))  # noqa: E731
    g = autograd.grad(lambda v: f(v) + ops.sum(v * 2.0))(_on_stand_in(x))
    numpy.testing.assert_array_equal(to_numpy(g), autograd.grad(lambda v: f(v) + ops.sum(v * 2.0))(x))


# ----- where -----

def test_where_value_and_gradients() -> None:
    x, y = _x(seed=2), _x(seed=3)
    c = x > 0.2
    numpy.testing.assert_array_equal(where(c, x, y), numpy.where(c, x, y))
    gx, gy = autograd.grad(lambda a, b: ops.sum(where(c, a * a, b) * 3.0), argnum=(0, 1))(x, y)
    numpy.testing.assert_array_equal(gx, numpy.where(c, 6.0 * x, 0.0))
    numpy.testing.assert_array_equal(gy, numpy.where(c, 0.0, 3.0))


def test_where_broadcasts_and_passes_check_grad() -> None:
    # y of shape (4,) broadcasts over (2, 3, 4): its gradient sums over the broadcast axes
    x, y = _x(seed=4), _x(shape=(4,), seed=5)
    c = numpy.abs(x) > 0.5
    check_grad(lambda a, b: where(c, a * a, b * b), x, y)
    check_grad(lambda a: where(c, a, 0.0), x)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_where_on_the_stand_in(dtype: Any) -> None:
    x = _x(dtype, seed=6)
    f = lambda v: ops.sum(where(v > 0, v * v, -v))  # noqa: E731
    g = autograd.grad(f)(_on_stand_in(x))
    assert type(g) is StrictArray and g.dtype == dtype
    numpy.testing.assert_array_equal(to_numpy(g), autograd.grad(f)(x))
    with pytest.raises(TypeError, match="host NumPy array"):  # stock where fills the other side on the host
        autograd.grad(lambda v: ops.sum(anp.where(v > 0, v * v, -v)))(_on_stand_in(x))


# ----- concatenate -----

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_value_and_check_grad(axis: Any) -> None:
    parts = [_x(shape=(2, 3, 4), seed=s) for s in (7, 8, 9)]
    numpy.testing.assert_array_equal(concatenate(parts, axis=axis), numpy.concatenate(parts, axis=axis))
    check_grad(lambda a, b, c: concatenate([a * a, b, 2.0 * c], axis=axis), *parts)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_concatenate_on_the_stand_in(dtype: Any) -> None:
    a, b = _x(dtype, seed=10), _x(dtype, shape=(2, 3, 2), seed=11)
    w = _on_stand_in(_x(dtype, shape=(2, 3, 6), seed=12))
    f = lambda u, v: ops.sum(concatenate([u, v * v], axis=-1) * w)  # noqa: E731
    ga, gb = autograd.grad(f, argnum=(0, 1))(_on_stand_in(a), _on_stand_in(b))
    ea, eb = autograd.grad(lambda u, v: ops.sum(concatenate([u, v * v], axis=-1) * to_numpy(w)),
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
    numpy.testing.assert_array_equal(getitem(x, key), x[key])
    check_grad(lambda v: getitem(v * v, key), x)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_getitem_on_the_stand_in(dtype: Any) -> None:
    x = _x(dtype, seed=14)
    f = lambda v: ops.sum(getitem(v, (slice(None), 1)) * 2.0) + ops.sum(getitem(v * v, 0))  # noqa: E731
    g = autograd.grad(f)(_on_stand_in(x))
    assert type(g) is StrictArray and g.dtype == dtype
    numpy.testing.assert_array_equal(to_numpy(g), autograd.grad(f)(x))
    with pytest.raises(TypeError):  # stock indexing scatters its gradient with onp.add.at on the host
        autograd.grad(lambda v: ops.sum(v[:, 1]))(_on_stand_in(x))


@pytest.mark.parametrize("key", [numpy.array([0, 0]), [0, 1], (slice(None), numpy.array([True, False, True]))],
                         ids=["int_array", "list", "bool_mask"])
def test_getitem_refuses_advanced_indexing(key: Any) -> None:
    with pytest.raises(ValueError, match="getitem takes ints, slices, None and ... only"):
        getitem(_x(), key)


def test_dot_fails_on_the_stand_in_and_matmul_works() -> None:
    # why model code uses @: dot's vjp calls onp.asarray on the device array
    a, b = _x(shape=(3, 4), seed=15), _x(shape=(4, 2), seed=16)
    sa, sb = _on_stand_in(a), _on_stand_in(b)
    with pytest.raises(TypeError):
        autograd.grad(lambda u: ops.sum(anp.dot(u, sb)))(sa)
    g = autograd.grad(lambda u: ops.sum(u @ sb))(sa)
    numpy.testing.assert_array_equal(to_numpy(g), autograd.grad(lambda u: ops.sum(u @ b))(a))
