r"""A strict CPU stand-in for a GPU array type (CuPy), to test the device discipline without a GPU.

:class:`StrictArray` wraps a ``numpy.ndarray`` and behaves like ``cupy.ndarray`` where it matters:

- ufuncs (``__array_ufunc__``, ``out=`` included, so in-place updates work) and NumPy functions
  (``__array_function__``) return ``StrictArray``; reductions return 0-d ``StrictArray``, never a NumPy scalar;
- implicit conversion to NumPy (``numpy.asarray(x)``, ``__array__``) raises ``TypeError``;
- any operation that mixes it with a host ``numpy.ndarray`` raises ``TypeError``;
- Python and NumPy scalars mix freely, and ``float(x)`` works on a size-1 array, as in CuPy;
- ``reshape`` with ``order=None`` raises ``TypeError``, as CuPy's ``reshape`` does.

``xp`` is its array module (``zeros``, ``ones``, ``asarray``, ``zeros_like``, ...) and ``to_numpy`` its
explicit copy to the host, the two things :func:`minivae.backend.register_array_type` needs.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin


class StrictArray(NDArrayOperatorsMixin):
    """A ``numpy.ndarray`` that refuses, like a device array, to meet host arrays or to become one."""

    __slots__ = ("data",)
    __array_priority__ = 0.0  # below autograd's ArrayBox (100), as CuPy's ndarray is
    __hash__ = None

    def __init__(self, data: numpy.ndarray) -> None:
        if not isinstance(data, numpy.ndarray):
            raise TypeError(f"StrictArray wraps a numpy.ndarray, got {type(data).__name__}")
        self.data = data

    # ----- what a device array refuses -----
    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        raise TypeError("Implicit conversion of a StrictArray to a NumPy array is not allowed; "
                        "use strict_array.to_numpy(x) explicitly.")

    # ----- attributes -----
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    T = property(lambda self: StrictArray(self.data.T))

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"StrictArray({self.data!r})"

    # scalar conversions of size-1 arrays, as CuPy allows (each one is a device sync there)
    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __bool__(self) -> bool:
        return bool(self.data)

    def item(self) -> Any:
        return self.data.item()

    # ----- indexing -----
    def __getitem__(self, index: Any) -> StrictArray:
        return _wrap(self.data[_unwrap_index(index)])

    def __setitem__(self, index: Any, value: Any) -> None:
        self.data[_unwrap_index(index)] = _unwrap(value)

    def __iter__(self):
        return (StrictArray(numpy.asarray(row)) for row in self.data)

    # ----- methods (each goes through the same strict unwrapping) -----
    def astype(self, dtype: Any, copy: bool = True) -> StrictArray:
        return StrictArray(self.data.astype(dtype, copy=copy))

    def view(self, dtype: Any = None) -> StrictArray:
        if isinstance(dtype, type) and issubclass(dtype, numpy.ndarray):
            raise TypeError("a StrictArray cannot be viewed as a host numpy.ndarray")
        return StrictArray(self.data.view() if dtype is None else self.data.view(dtype))

    def copy(self) -> StrictArray:
        return StrictArray(self.data.copy())

    def reshape(self, *shape: Any, order: str = "C") -> StrictArray:
        return numpy.reshape(self, shape[0] if len(shape) == 1 else shape, order=order)

    def ravel(self) -> StrictArray:
        return numpy.ravel(self)

    def transpose(self, *axes: Any) -> StrictArray:
        return numpy.transpose(self, axes or None)

    def sum(self, *args: Any, **kwargs: Any) -> StrictArray:
        return numpy.sum(self, *args, **kwargs)

    def mean(self, *args: Any, **kwargs: Any) -> StrictArray:
        return numpy.mean(self, *args, **kwargs)

    def max(self, *args: Any, **kwargs: Any) -> StrictArray:
        return numpy.max(self, *args, **kwargs)

    def min(self, *args: Any, **kwargs: Any) -> StrictArray:
        return numpy.min(self, *args, **kwargs)

    def all(self, *args: Any, **kwargs: Any) -> StrictArray:
        return numpy.all(self, *args, **kwargs)

    def any(self, *args: Any, **kwargs: Any) -> StrictArray:
        return numpy.any(self, *args, **kwargs)

    def get(self) -> numpy.ndarray:
        """An explicit host copy, like ``cupy.ndarray.get``."""
        return self.data.copy()

    # ----- the two NumPy protocols -----
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if any(_foreign(a) for a in inputs + tuple(kwargs.get("out", ()))):
            return NotImplemented  # e.g. an autograd ArrayBox: let its own __array_ufunc__ handle it
        out = kwargs.pop("out", None)
        kwargs = _unwrap(kwargs)
        if out is not None:
            kwargs["out"] = _unwrap(tuple(out))
        result = getattr(ufunc, method)(*_unwrap(inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        if not all(issubclass(t, (StrictArray, numpy.ndarray)) for t in types) or _any_foreign(args, kwargs):
            return NotImplemented
        if func is numpy.reshape and kwargs.get("order", "C") is None:
            raise TypeError("order not understood (CuPy's reshape needs order='C', not None)")
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))


def _foreign(a: Any) -> bool:
    """An operand that is neither ours, nor a host array, nor a scalar: defer to its own protocol."""
    return not isinstance(a, (StrictArray, numpy.ndarray, numpy.generic, numbers.Number, str, type(None)))


def _any_foreign(*values: Any) -> bool:
    for value in values:
        if isinstance(value, (list, tuple)):
            if _any_foreign(*value):
                return True
        elif isinstance(value, dict):
            if _any_foreign(*value.values()):
                return True
        elif _foreign(value) and not isinstance(value, (type, numpy.dtype, slice)) and not callable(value):
            return True
    return False


def _unwrap(value: Any) -> Any:
    """The wrapped arrays inside ``value``; a host ``numpy.ndarray`` anywhere raises ``TypeError``."""
    if isinstance(value, StrictArray):
        return value.data
    if isinstance(value, numpy.ndarray):
        raise TypeError("Unsupported type <class 'numpy.ndarray'>: a StrictArray cannot be mixed with a "
                        "host NumPy array (move it with xp.asarray first)")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _unwrap_index(index: Any) -> Any:
    # host integer/boolean index arrays are allowed, as CuPy allows them; StrictArray indices are unwrapped
    if isinstance(index, tuple):
        return tuple(_unwrap_index(i) for i in index)
    return index.data if isinstance(index, StrictArray) else index


def _wrap(value: Any) -> Any:
    """NumPy results back into ``StrictArray``: arrays and NumPy scalars (as 0-d arrays, like CuPy)."""
    if isinstance(value, numpy.ndarray):
        return StrictArray(value)
    if isinstance(value, numpy.generic) and not isinstance(value, (numpy.str_, numpy.bytes_)):
        return StrictArray(numpy.asarray(value))
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def to_numpy(x: StrictArray) -> numpy.ndarray:
    """The explicit host copy of ``x`` (CuPy's ``cupy.asnumpy``)."""
    if not isinstance(x, StrictArray):
        raise TypeError(f"to_numpy expects a StrictArray, got {type(x).__name__}")
    return x.data.copy()


class _StrictNamespace:
    """The array module of :class:`StrictArray`: creation functions allocate stand-ins; the rest is NumPy's.

    NumPy's functions work on stand-ins through ``__array_function__``, so only creation functions (which have
    no array argument to dispatch on) need wrapping here.
    """

    ndarray = StrictArray

    def __init__(self) -> None:
        for name in ("zeros", "ones", "empty", "full", "arange", "eye", "linspace"):
            setattr(self, name, self._creator(getattr(numpy, name)))

    @staticmethod
    def _creator(make: Any) -> Any:
        return lambda *args, **kwargs: StrictArray(make(*args, **kwargs))

    def asarray(self, x: Any, dtype: Any = None) -> StrictArray:
        """Move ``x`` (host array, scalar, list or stand-in) to the "device", optionally casting to ``dtype``."""
        if isinstance(x, StrictArray):
            return x if dtype is None or x.dtype == dtype else x.astype(dtype)
        return StrictArray(numpy.array(x, dtype=dtype))

    array = asarray

    def zeros_like(self, x: StrictArray, dtype: Any = None) -> StrictArray:
        return StrictArray(numpy.zeros(x.shape, dtype=dtype or x.dtype))

    def ones_like(self, x: StrictArray, dtype: Any = None) -> StrictArray:
        return StrictArray(numpy.ones(x.shape, dtype=dtype or x.dtype))

    def asnumpy(self, x: StrictArray) -> numpy.ndarray:
        return to_numpy(x)

    def __getattr__(self, name: str) -> Any:
        return getattr(numpy, name)


xp = _StrictNamespace()
