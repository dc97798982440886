r"""Every argument check of minivae, one message per kind of mistake, so that the lesson modules stay formulas.

Each check raises one ``ValueError`` whose sentence says what was wrong and how to fix it, and returns nothing
(or the value it validated). Traced values (autograd ``Box``es) pass the data checks untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import autograd.numpy as anp
import numpy
from autograd.extend import Box


def _shape(a: Any) -> tuple[int, ...]:
    return tuple(anp.shape(a))


def check_broadcasts(name: str, a: Any, target: tuple[int, ...], target_name: str) -> None:
    r"""Raise a ``ValueError`` unless ``a`` broadcasts to exactly the shape ``target``."""
    try:
        ok = numpy.broadcast_shapes(_shape(a), target) == target
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} has shape {_shape(a)}, which does not broadcast to the shape "
                         f"{target} of {target_name}.")


def check_broadcast_together(*named: tuple[str, Any]) -> tuple[int, ...]:
    r"""Raise a ``ValueError`` unless the ``(name, array)`` pairs broadcast together; return the joint shape."""
    try:
        return tuple(numpy.broadcast_shapes(*(_shape(a) for _, a in named)))
    except ValueError:
        shapes = ", ".join(f"{name} {_shape(a)}" for name, a in named)
        raise ValueError(f"the shapes {shapes} do not broadcast together; they must share the last "
                         "axis D and broadcast over the leading ones.") from None


def check_same_shape(name: str, a: Any, other_name: str, other: Any) -> None:
    r"""Raise a ``ValueError`` unless ``a`` and ``other`` have the same shape."""
    if _shape(a) != _shape(other):
        raise ValueError(f"{name} has shape {_shape(a)} but {other_name} has shape {_shape(other)}; "
                         "they must match.")


def check_unit_interval(name: str, x: Any) -> None:
    r"""Raise a ``ValueError`` unless every entry of the data ``x`` lies in [0, 1]; traced and empty values pass."""
    if isinstance(x, Box) or anp.size(x) == 0:
        return
    low, high = float(x.min()), float(x.max())
    if not (0.0 <= low and high <= 1.0):
        raise ValueError(f"{name} must hold Bernoulli targets in [0, 1], but its values range over "
                         f"[{low:g}, {high:g}]; scale pixels to [0, 1] (divide by 255) or binarize them.")


def check_generator(rng: Any) -> None:
    r"""Raise a ``ValueError`` unless ``rng`` is a ``numpy.random.Generator``."""
    if not isinstance(rng, numpy.random.Generator):
        raise ValueError(f"rng must be a seeded numpy.random.Generator such as numpy.random.default_rng(0), "
                         f"got {type(rng).__name__}.")


def check_count(name: str, value: Any, what: str = "", minimum: int = 1) -> None:
    r"""Raise a ``ValueError`` unless ``value`` is an int (or NumPy integer, never a bool or a float such as 2.0)
    of at least ``minimum`` (1: positive, 0: non-negative), a number of ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        counted = f" number of {what}" if what else ""
        raise ValueError(f"{name} must be a {kind} integer{counted}, got {value!r}.")


def check_sizes(x_dim: int, hidden: Sequence[int], z_dim: int) -> tuple[int, ...]:
    r"""Validate a model's sizes (positive x_dim, z_dim and hidden widths); return ``hidden`` as a tuple."""
    for name, value in (("x_dim", x_dim), ("z_dim", z_dim)):
        if int(value) != value or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    try:
        hidden = tuple(int(h) for h in hidden)
    except TypeError:
        raise ValueError(f"hidden must be a sequence of layer widths such as [400] (or [] for none), "
                         f"got {hidden!r}.") from None
    if any(h <= 0 for h in hidden):
        raise ValueError(f"hidden must list positive layer widths, got {hidden}.")
    return hidden


def check_rows(name: str, x: Any, width: int, what: str) -> None:
    r"""Raise a ``ValueError`` unless ``x`` is ``(N, width)``: one ``what`` per row."""
    if anp.ndim(x) != 2 or anp.shape(x)[1] != width:
        raise ValueError(f"{name} has shape {anp.shape(x)}, but this model expects (N, {width}): "
                         f"one {what} of {width} values per row.")


def check_mlp_input(params: Any, x: Any) -> None:
    r"""Raise a ``ValueError`` unless ``params`` has a layer and ``x``'s last axis fits its first one."""
    if not params:
        raise ValueError("params is empty; build it with init_mlp(sizes, rng) for at least one layer.")
    fan_in = params[0][0].shape[0]
    if anp.ndim(x) < 1 or anp.shape(x)[-1] != fan_in:
        raise ValueError(f"x has shape {anp.shape(x)} but the first layer expects {fan_in} features "
                         "in its last axis.")


def check_data(x: Any, likelihood: str | None = None, width: int | None = None, name: str = "x") -> None:
    r"""Refuse data that would train on garbage: raise one ``ValueError`` before any training starts.

    ``x`` must be a 2-D float array ``(N, D)`` with N ≥ 1 (``D == width`` when given), with no NaN or inf;
    for ``likelihood="bernoulli"`` every value must lie in [0, 1], since log Bern(x; p) needs x ∈ [0, 1].
    """
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] == 0:
        raise ValueError(f"{name} must be a 2-D array (N, D) with one example per row, got shape {shape}; "
                         "flatten images with x.reshape(len(x), -1).")
    if width is not None and shape[1] != width:
        raise ValueError(f"{name} has {shape[1]} values per row but the model expects {width}; pass data of "
                         f"shape (N, {width}).")
    if getattr(x, "dtype", None) is None or x.dtype.kind != "f":
        raise ValueError(f"{name} has dtype {getattr(x, 'dtype', None)}; convert it to float32, e.g. "
                         "x.astype(numpy.float32) / 255 for 8-bit images.")
    bad = int(numpy.size(x) - numpy.count_nonzero(numpy.isfinite(x)))
    if bad:
        raise ValueError(f"{name} holds {bad} NaN or infinite values; clean or drop those rows before training.")
    if likelihood == "bernoulli":
        low, high = float(numpy.min(x)), float(numpy.max(x))
        if low < 0.0 or high > 1.0:
            raise ValueError(f"{name} has values in [{low:g}, {high:g}], but a Bernoulli likelihood needs "
                             "values in [0, 1]; divide 8-bit pixels by 255 or use likelihood='gaussian'.")


def check_eps(eps: Any, mean: Any, samples: str = "one") -> None:
    r"""Raise a ``ValueError`` unless the standard-normal noise ``eps`` fits ``mean`` of shape ``(N, D)``.

    ``samples="one"``: ``eps`` is ``(N, D)``, one draw per row; ``"k"``: ``(k, N, D)``, k draws per row;
    ``"any"``: either.
    """
    shape, want = _shape(eps), _shape(mean)
    one, k = shape == want, len(shape) == len(want) + 1 and shape[1:] == want
    if {"one": one, "k": k, "any": one or k}[samples]:
        return
    form = {"one": f"{want}", "k": f"(k, *{want})", "any": f"{want} or (k, *{want})"}[samples]
    raise ValueError(f"eps has shape {shape} but must be {form} to match mean {want}: standard-normal draws, "
                     "one per entry of mean (k per entry for a k-sample bound).")
