r"""Device-safe reductions: ``sum`` and ``mean`` whose gradients stay on the value's device and in its dtype.

Model code reduces with ``ops.sum`` and ``ops.mean``. autograd's stock vjps of ``numpy.sum`` and
``numpy.mean`` rebuild the input's shape with ``onp.zeros(shape)`` (``repeat_to_match_shape``), a host
array, and CuPy refuses to mix host and device arrays. The primitives here allocate only through the value's
own array (``broadcast_to`` of g), so they work for NumPy, CuPy, and any type registered with
:func:`minivae.backend.register_array_type`. They are new primitives: autograd's own gradients are left
untouched, so ``autograd.numpy`` keeps behaving as documented everywhere else.

Other stock vjps that allocate on the host, and what minivae does instead: ``where`` (never used on traced
values), ``concatenate`` and ``x[key]`` (two-input layers use a W_a + b W_b instead of concatenating), ``dot``
(use ``@``), and ``maximum``, whose vjp also turns float32 into float64 (:func:`minivae.nn.relu` has
its own vjp). ``tests/test_ops.py`` shows device-safe ``where``, ``concatenate`` and ``getitem`` written the
same way.
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
