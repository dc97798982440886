r"""Array backends: NumPy on the CPU, CuPy on a GPU, and how autograd learns about a foreign array type.

autograd only knows ``numpy.ndarray``. To differentiate through another array type it needs two things:
an ``ArrayBox`` registration (so traced values of that type are boxed) and a ``VSpace`` that allocates
zeros and ones *through the value's own array module*. autograd's ``ArrayVSpace`` calls ``np.asarray`` on
the value, which CuPy forbids, so :func:`register_array_type` installs :class:`ForeignArrayVSpace` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

import numpy
from autograd.extend import VSpace
from autograd.numpy.numpy_boxes import ArrayBox
from autograd.tracer import getval

# array type -> (array module, function that copies one array to a host numpy array)
_ARRAY_MODULES: dict[type, tuple[Any, Callable[[Any], numpy.ndarray]]] = {
    numpy.ndarray: (numpy, numpy.asarray),
}


class ForeignArrayVSpace(VSpace):
    """The vector space of a foreign array value: shape and dtype from the value, memory from its ``xp``."""

    def __init__(self, value: Any, xp: Any) -> None:
        self.shape = value.shape
        self.dtype = value.dtype
        self.xp = xp

    @property
    def size(self) -> int:
        return int(numpy.prod(self.shape))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def zeros(self) -> Any:
        return self.xp.zeros(self.shape, dtype=self.dtype)

    def ones(self) -> Any:
        return self.xp.ones(self.shape, dtype=self.dtype)

    def standard_basis(self) -> Iterator[Any]:
        for index in numpy.ndindex(*self.shape):
            basis = numpy.zeros(self.shape, dtype=self.dtype)
            basis[index] = 1
            yield self.xp.asarray(basis)

    def randn(self) -> Any:
        return self.xp.asarray(numpy.random.randn(*self.shape).astype(self.dtype))

    def _inner_prod(self, x: Any, y: Any) -> Any:
        return (x * y).sum()


def register_array_type(
    array_type: type, xp: Any, to_numpy: Callable[[Any], numpy.ndarray] | None = None
) -> None:
    r"""Teach autograd to differentiate through ``array_type``, whose array module is ``xp``.

    Registers the type with ``ArrayBox`` (so autograd boxes traced values of it) and with a
    :class:`ForeignArrayVSpace` (so gradients are allocated by ``xp``, on the value's own device).
    ``to_numpy`` copies one array to the host; CuPy's is ``cupy.asnumpy``. Registering twice is harmless.
    """
    if array_type in _ARRAY_MODULES and array_type is not numpy.ndarray:
        return
    if array_type is numpy.ndarray:
        raise ValueError("numpy.ndarray is autograd's own array type; it needs no registration.")
    ArrayBox.register(array_type)
    VSpace.register(array_type, lambda value: ForeignArrayVSpace(value, xp))
    _ARRAY_MODULES[array_type] = (xp, to_numpy or xp.asnumpy)


def array_module(x: Any) -> Any:
    r"""The array module (``numpy``, ``cupy``, ...) that owns ``x``; boxes are looked through."""
    value = getval(x)
    entry = _ARRAY_MODULES.get(type(value))
    if entry is not None:
        return entry[0]
    if isinstance(value, (numpy.generic, float, int)):
        return numpy
    raise TypeError(f"minivae does not know the array type {type(value).__name__}; "
                    "register it with minivae.backend.register_array_type.")


def to_numpy(x: Any) -> numpy.ndarray:
    r"""``x`` on the host as a ``numpy.ndarray``, whichever registered backend holds it: a copy of a device
    array, ``x`` itself (no copy) if it already is a NumPy array."""
    value = getval(x)
    entry = _ARRAY_MODULES.get(type(value))
    if entry is None:
        return numpy.asarray(value)
    return entry[1](value)


def asarray_like(host: Any, like: Any) -> Any:
    r"""Move the host array ``host`` to the device of ``like`` and give it ``like``'s dtype."""
    value = getval(like)
    xp = array_module(value)
    return xp.asarray(numpy.asarray(host, dtype=value.dtype))


@dataclass(frozen=True)
class Backend:
    """An array backend: its ``name``, its array module ``xp``, and transfers to and from the host."""

    name: str
    xp: Any  # a module (numpy, cupy) or any namespace with the same creation functions

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        r"""Copy ``x`` (host or device) onto this backend's device, optionally casting to ``dtype``."""
        return self.xp.asarray(x, dtype=dtype)

    def to_numpy(self, x: Any) -> numpy.ndarray:
        r"""``x`` as a host ``numpy.ndarray`` (see :func:`to_numpy`: no copy of a NumPy array)."""
        return to_numpy(x)


NUMPY = Backend("numpy", numpy)
_ALIASES = {"auto": "auto", "numpy": "numpy", "cpu": "numpy", "cupy": "cupy", "gpu": "cupy"}


def _cupy_backend(strict: bool) -> Backend | None:
    # import and probe CuPy; any failure means "no usable GPU": None for auto, one clear sentence otherwise
    try:
        import cupy
    except Exception as error:  # ImportError, or a CUDA library that fails to load at import
        if strict:
            raise RuntimeError(f"CuPy could not be imported ({type(error).__name__}), so the GPU backend is "
                               "unavailable: install it with pip install 'minivae[gpu]', or use NumPy with "
                               "--device cpu.") from None
        return None
    try:
        usable = bool(cupy.is_available())
    except Exception:  # a broken CUDA install reports itself in many ways; all mean "not usable"
        usable = False
    if not usable:
        if strict:
            raise RuntimeError("CuPy is installed but no CUDA device is usable, so the GPU backend is "
                               "unavailable: use NumPy with --device cpu.")
        return None
    register_array_type(cupy.ndarray, cupy, cupy.asnumpy)
    return Backend("cupy", cupy)


def get_backend(name: str | Backend = "auto") -> Backend:
    r"""The array backend called ``name``: ``"numpy"``/``"cpu"``, ``"cupy"``/``"gpu"``, or ``"auto"``.

    ``"auto"`` picks CuPy only when ``cupy.is_available()`` is true and never raises; ``"cupy"`` without a
    usable GPU raises a ``RuntimeError`` saying so. CuPy is imported only when asked for. A
    :class:`Backend` is returned as it is (tests pass one built on a stand-in array type).
    """
    if isinstance(name, Backend):
        return name
    key = _ALIASES.get(str(name).lower())
    if key is None:
        raise ValueError(f"device must be one of 'auto', 'cpu' (numpy) or 'gpu' (cupy), got {name!r}.")
    if key == "numpy":
        return NUMPY
    if key == "cupy":
        return _cupy_backend(strict=True)
    return _cupy_backend(strict=False) or NUMPY
