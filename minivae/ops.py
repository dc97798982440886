r"""Device-safe primitives: reductions, ReLU, ``where``, ``concatenate`` and slicing whose gradients stay on
the value's device and in its dtype.

autograd's stock vjps allocate on the host in a few places, and CuPy refuses to mix host and device arrays:

- ``sum`` and ``mean`` rebuild the input's shape with ``onp.zeros(shape)`` (``repeat_to_match_shape``);
- ``where`` fills the other branch with ``anp.zeros(g.shape)``, a host float64 array;
- ``concatenate`` returns ``.view(numpy.ndarray)``, and ``x[key]``'s vjp scatters with ``onp.add.at``;
- ``dot`` casts with ``onp.asarray`` (use ``@``), and ``maximum``'s vjp turns float32 into float64, so a
  ReLU written with ``np.maximum`` would make the whole backward pass run in float64.

The primitives here allocate only through the value's own array (``broadcast_to``, ``zeros_like``,
comparisons), so they work for NumPy, CuPy, and any type registered with
:func:`minivae.backend.register_array_type`. They are new primitives: autograd's own gradients are left
untouched, so ``autograd.numpy`` keeps behaving as documented everywhere else.
"""

from __future__ import annotations

import builtins
from typing import Any

import autograd.numpy as anp
import numpy
from autograd.extend import defvjp, defvjp_argnum, primitive
from autograd.numpy.numpy_vjps import unbroadcast_f


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
    start = builtins.sum(widths[:argnum - 1])
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
