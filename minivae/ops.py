r"""Device-safe primitives: reductions and ReLU whose gradients stay on the value's device and dtype.

autograd's stock vjps for ``sum`` and ``mean`` rebuild the input's shape with ``onp.zeros(shape)``, a
host NumPy array, so they fail on CuPy; its vjp of ``maximum`` returns float64 for float32 inputs, so a
ReLU written with ``np.maximum`` makes the whole backward pass run in float64. The primitives here
allocate only through the value's own array (``broadcast_to``, comparisons), so they work for NumPy,
CuPy, and any type registered with :func:`minivae.backend.register_array_type`. They are defined as new
primitives: autograd's own gradients are left untouched.
"""

from __future__ import annotations

from typing import Any

import autograd.numpy as anp
from autograd.extend import defvjp, primitive


def _normal_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a % ndim for a in axes)


def _count(shape: tuple[int, ...], axis: Any) -> int:
    count = 1
    for a in _normal_axes(axis, len(shape)):
        count *= shape[a]
    return count


@primitive
def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001 - mirrors numpy.sum
    r"""Σ over ``axis`` of ``x``, like ``numpy.sum``; its gradient broadcasts g back on x's device."""
    return x.sum(axis=axis, keepdims=keepdims)


@primitive
def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    r"""(1/n) Σ over ``axis`` of ``x``, like ``numpy.mean``; its gradient is g/n broadcast on x's device."""
    return x.mean(axis=axis, keepdims=keepdims)


def _spread(g: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    # put the reduced axes back as size-1 axes, then broadcast g over them (a view: no host allocation)
    if not keepdims:
        g = anp.reshape(g, tuple(1 if a in _normal_axes(axis, x.ndim) else n for a, n in enumerate(x.shape)))
    return anp.broadcast_to(g, x.shape)


defvjp(sum, lambda ans, x, axis=None, keepdims=False: lambda g: _spread(g, x, axis, keepdims))
defvjp(mean, lambda ans, x, axis=None, keepdims=False:
       lambda g: _spread(g, x, axis, keepdims) / _count(x.shape, axis))


@primitive
def relu(x: Any) -> Any:
    r"""relu(x) = max(x, 0); its vjp g·[x > 0] keeps the dtype of g (float32 stays float32)."""
    return x * (x > 0)


defvjp(relu, lambda ans, x: lambda g: g * (ans > 0))
