r"""minivae.backend: choosing NumPy or CuPy, and registering a foreign array type with autograd.

Also checks the strict stand-in (tests/strict_array.py) itself: the parity tests are only as strict as it is,
so it must refuse exactly what CuPy refuses.
"""

from __future__ import annotations

import sys
import types

import autograd
import numpy
import pytest
import strict_array
from autograd.core import vspace
from autograd.numpy.numpy_boxes import ArrayBox
from strict_array import StrictArray

from minivae import ops
from minivae.backend import (
    NUMPY,
    Backend,
    ForeignArrayVSpace,
    array_module,
    asarray_like,
    get_backend,
    register_array_type,
    to_numpy,
)

register_array_type(StrictArray, strict_array.xp, strict_array.to_numpy)


def _cupy_usable() -> bool:
    try:
        import cupy
        return bool(cupy.is_available())
    except Exception:
        return False


def _fake_cupy(monkeypatch: pytest.MonkeyPatch, is_available: object) -> None:
    # a module named cupy whose is_available answers False or raises, as on a machine without a usable GPU
    fake = types.ModuleType("cupy")
    fake.is_available = is_available
    monkeypatch.setitem(sys.modules, "cupy", fake)


def _one_sentence(message: str) -> bool:
    return message.endswith(".") and ". " not in message


# ----- get_backend -----

@pytest.mark.skipif(_cupy_usable(), reason="a usable GPU is present: auto picks CuPy there")
def test_auto_is_numpy_without_a_gpu() -> None:
    assert get_backend("auto").name == "numpy"
    assert get_backend().xp is numpy


@pytest.mark.parametrize("name", ["cpu", "numpy", "CPU"])
def test_cpu_names_give_numpy(name: str) -> None:
    assert get_backend(name) is NUMPY


def test_a_backend_instance_is_returned_as_it_is() -> None:
    stand_in = Backend("strict", strict_array.xp)
    assert get_backend(stand_in) is stand_in


def test_unknown_device_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="device must be one of 'auto', 'cpu' .* got 'tpu'"):
        get_backend("tpu")


@pytest.mark.parametrize("name", ["cupy", "gpu"])
def test_gpu_without_cupy_raises_one_clear_sentence(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    with pytest.raises(RuntimeError) as info:
        get_backend(name)
    message = str(info.value)
    assert "pip install 'minivae[gpu]'" in message and "--device cpu" in message
    assert _one_sentence(message), message


@pytest.mark.parametrize("name", ["cupy", "gpu"])
def test_gpu_without_a_device_raises_one_clear_sentence(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    _fake_cupy(monkeypatch, lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA device is usable") as info:
        get_backend(name)
    assert "--device cpu" in str(info.value) and _one_sentence(str(info.value))


def _broken() -> bool:
    raise OSError("libcuda.so.1: cannot open shared object file")


@pytest.mark.parametrize("is_available", [lambda: False, _broken], ids=["no_device", "broken_cuda"])
def test_auto_never_raises(monkeypatch: pytest.MonkeyPatch, is_available: object) -> None:
    _fake_cupy(monkeypatch, is_available)
    assert get_backend("auto") is NUMPY
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert get_backend("auto") is NUMPY


def test_a_broken_cuda_install_is_reported_as_no_usable_device(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cupy(monkeypatch, _broken)
    with pytest.raises(RuntimeError, match="no CUDA device is usable"):
        get_backend("gpu")


def test_numpy_backend_moves_arrays() -> None:
    host = numpy.arange(6, dtype=numpy.float64).reshape(2, 3)
    moved = NUMPY.asarray(host, dtype=numpy.float32)
    assert moved.dtype == numpy.float32 and numpy.array_equal(moved, host)
    assert type(NUMPY.to_numpy(moved)) is numpy.ndarray


# ----- register_array_type and the helpers that follow the registration -----

def test_registration_gives_a_foreign_vspace_that_allocates_on_the_device() -> None:
    a = strict_array.xp.asarray(numpy.ones((2, 3), dtype=numpy.float32))
    space = vspace(a)
    assert isinstance(space, ForeignArrayVSpace)
    assert (space.shape, space.dtype, space.size, space.ndim) == ((2, 3), numpy.float32, 6, 2)
    for made in (space.zeros(), space.ones(), space.randn(), *space.standard_basis()):
        assert type(made) is StrictArray and made.dtype == numpy.float32 and made.shape == (2, 3)
    assert numpy.array_equal(to_numpy(space.ones()), numpy.ones((2, 3)))
    assert float(space.inner_prod(a, 2 * a)) == 12.0
    assert len(list(space.standard_basis())) == 6


def test_vspace_mut_add_updates_in_place_on_the_device() -> None:
    # autograd accumulates a node's third and later gradients with mut_add (x += y): a ufunc with out=
    a = strict_array.xp.asarray(numpy.array([1.0, 2.0]))
    result = vspace(a).mut_add(a, strict_array.xp.asarray(numpy.array([10.0, 20.0])))
    assert result is a and numpy.array_equal(to_numpy(a), [11.0, 22.0])


def test_registering_again_is_harmless_and_numpy_is_refused() -> None:
    register_array_type(StrictArray, strict_array.xp, strict_array.to_numpy)
    assert isinstance(vspace(strict_array.xp.zeros(2)), ForeignArrayVSpace)
    with pytest.raises(ValueError, match="autograd's own array type"):
        register_array_type(numpy.ndarray, numpy)


def test_array_module_looks_through_boxes() -> None:
    seen = []

    def f(x: StrictArray) -> object:
        seen.append((type(x), array_module(x)))
        return ops.sum(x * x)

    autograd.grad(f)(strict_array.xp.ones(3))
    assert seen == [(ArrayBox, strict_array.xp)]
    assert array_module(numpy.zeros(3)) is numpy and array_module(numpy.float32(1.0)) is numpy
    with pytest.raises(TypeError, match="register it with minivae.backend.register_array_type"):
        array_module([1.0, 2.0])


def test_to_numpy_and_asarray_like_cross_the_boundary_explicitly() -> None:
    like = strict_array.xp.zeros((2,), dtype=numpy.float32)
    moved = asarray_like(numpy.array([1.5, 2.5]), like)
    assert type(moved) is StrictArray and moved.dtype == numpy.float32
    back = to_numpy(moved)
    assert type(back) is numpy.ndarray and numpy.array_equal(back, [1.5, 2.5])
    assert to_numpy([1, 2]).tolist() == [1, 2]


def test_cupy_is_not_imported_for_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    # asking for the CPU must never touch CuPy (importing it can take seconds, or fail on a broken install)
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    get_backend("cpu")
    assert "cupy" not in sys.modules


# ----- the stand-in refuses what CuPy refuses -----

def test_stand_in_refuses_implicit_conversion() -> None:
    a = strict_array.xp.ones(3)
    with pytest.raises(TypeError, match="Implicit conversion"):
        numpy.asarray(a)


@pytest.mark.parametrize("mix", [
    lambda a, h: a + h, lambda a, h: h + a, lambda a, h: a * h, lambda a, h: h @ a,
    lambda a, h: numpy.where(a > 0, a, h), lambda a, h: numpy.concatenate([a, h]),
    lambda a, h: numpy.add(a, 1.0, out=h),
], ids=["add", "radd", "mul", "rmatmul", "where", "concatenate", "out"])
def test_stand_in_refuses_mixing_with_host_arrays(mix: object) -> None:
    a, h = strict_array.xp.ones(3), numpy.ones(3)
    with pytest.raises(TypeError):
        mix(a, h)


def test_stand_in_allows_scalars_and_returns_stand_ins() -> None:
    a = strict_array.xp.asarray(numpy.array([1.0, -2.0, 3.0], dtype=numpy.float32))
    for result in (a + 1, 2.0 * a, a * numpy.float32(2), numpy.exp(a), numpy.where(a > 0, a, 0.0),
                   a.sum(), numpy.sum(a, axis=0), a.max(), a[1:], a.reshape(3, 1)):
        assert type(result) is StrictArray and result.dtype == numpy.float32
    assert a.sum().shape == ()  # reductions give 0-d arrays, never NumPy scalars, as in CuPy
    assert float(a.sum()) == 2.0


def test_stand_in_updates_in_place_through_out() -> None:
    a = strict_array.xp.asarray(numpy.array([1.0, 2.0]))
    alias = a
    a *= 3.0
    numpy.subtract(a, 1.0, out=a)
    assert a is alias and numpy.array_equal(strict_array.to_numpy(a), [2.0, 5.0])


def test_stand_in_refuses_reshape_with_order_none() -> None:
    # autograd's reshape vjp passes the forward call's order on; CuPy's reshape rejects order=None
    with pytest.raises(TypeError, match="order"):
        numpy.reshape(strict_array.xp.ones(4), (2, 2), order=None)
    assert numpy.reshape(strict_array.xp.ones(4), (2, 2), order="C").shape == (2, 2)
