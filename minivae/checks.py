r"""Every argument check of minivae, one message per kind of mistake, so that the lesson modules stay formulas.

Each check raises one ``ValueError`` whose sentence says what was wrong and how to fix it, and returns nothing
(or the value it validated). Traced values (autograd ``Box``es) pass the data checks untouched.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from typing import Any

import autograd.numpy as anp
import numpy
from autograd.extend import Box
from autograd.tracer import getval

from minivae.tree import tree_map


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
    check_layer_memory([int(x_dim), *hidden, int(z_dim)], 4, "hidden")
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


# ------------------------------------------------------------------------ optimizer hyperparameters

def _check_hyper(name: str, value: Any, rule: str, ok: Any, example: str) -> float:
    # one sentence per bad hyperparameter: a string, a bool, NaN, inf or a value outside its range
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__}); pass for example "
                         f"{name}={example}.")
    value = float(value)
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"{name} must be {rule}, got {value!r}; pass for example {name}={example}.")
    return value


def check_lr(lr: Any) -> float:
    r"""``lr`` as a float, after refusing anything but a finite positive number."""
    return _check_hyper("lr", lr, "a positive learning rate (finite and > 0)", lambda v: v > 0, "1e-3")


def check_unit(name: str, value: Any, example: str) -> float:
    r"""A decay rate (b1, b2, momentum) as a float, after refusing anything outside [0, 1)."""
    return _check_hyper(name, value, "a finite number in [0, 1)", lambda v: 0.0 <= v < 1.0, example)


def check_adam_eps(eps: Any) -> float:
    r"""Adam's ``eps`` as a float, after refusing anything but a finite positive number."""
    return _check_hyper("eps", eps, "a small positive number (finite and > 0)", lambda v: v > 0, "1e-8")


def check_like(params: Any, tree: Any, name: str, fix: str, dtype: bool = False) -> None:
    r"""Refuse a nest ``name`` (the gradients, a moment, a checkpoint's params) not built like ``params``:
    structure, then shapes, then (with ``dtype=True``) dtypes."""
    def same(p: Any, a: Any) -> None:
        if tuple(p.shape) != tuple(a.shape) or (dtype and p.dtype != a.dtype):
            kind = f" and dtype {a.dtype}" if dtype else ""
            has = f"{tuple(p.shape)} and {p.dtype}" if dtype else f"{tuple(p.shape)}"
            raise ValueError(f"{name} has an array of shape {tuple(a.shape)}{kind} where params has {has}; {fix}.")

    tree_map(same, params, tree, name=f"params and {name}")


def check_step_args(params: Any, grads: Any, *moments: tuple[str, Any]) -> None:
    r"""Refuse ``grads``, or an optimizer's moments (name, nest), not built like ``params``."""
    check_like(params, grads, "grads", "pass the gradient of the loss with respect to these params")
    for name, tree in moments:
        if tree is not None:
            check_like(params, tree, f"the optimizer's {name}", "load a state saved for this model")


# ---------------------------------------------------------------- the models' own checks


def check_classes(n_classes: Any) -> None:
    r"""Raise a ``ValueError`` unless ``n_classes`` is an integer of at least 2 (a Categorical needs two)."""
    if isinstance(n_classes, bool) or int(n_classes) != n_classes or n_classes < 2:
        raise ValueError(f"n_classes must be an integer of at least 2, got {n_classes!r}.")


def check_two_input_hidden(hidden: tuple[int, ...]) -> None:
    r"""Raise a ``ValueError`` unless a two-input network has a hidden layer for its inputs to meet in."""
    if not hidden:
        raise ValueError("hidden must list at least one layer width: the first layer takes two inputs.")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    r"""Raise a ``ValueError`` unless ``value`` is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be {' or '.join(map(repr, choices))}, got {value!r}.")


def check_interval(name: str, value: Any, low: float, high: float = float("inf"), high_open: bool = False) -> None:
    r"""Raise a ``ValueError`` unless the number ``value`` lies in [low, high] (or [low, high) when ``high_open``)."""
    below_high = value < high if high_open else value <= high
    if not (low <= value and below_high):
        where = f"at least {low:g}" if high == float("inf") else f"in [{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a number {where}, got {value!r}.")


def check_same_rows(name: str, a: Any, other_name: str, other: Any) -> None:
    r"""Raise a ``ValueError`` unless ``a`` has one entry per row of ``other`` (the same leading length N)."""
    if anp.shape(a)[0] != anp.shape(other)[0]:
        raise ValueError(f"{name} has {anp.shape(a)[0]} entries but {other_name} has {anp.shape(other)[0]} rows; "
                         "pass exactly one per row.")


def check_labels(labels: numpy.ndarray, n_classes: int) -> None:
    r"""Raise a ``ValueError`` unless the host ``labels`` are a 1-D integer array of classes in [0, n_classes)."""
    if labels.ndim != 1 or not numpy.issubdtype(labels.dtype, numpy.integer):
        raise ValueError(f"labels must be a 1-D array of integer class indices, got shape {labels.shape} and "
                         f"dtype {labels.dtype}.")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), but they range over [{labels.min()}, {labels.max()}].")


def check_codes(z: Any, z_dim: int, rows: int | None = None) -> None:
    r"""Raise a ``ValueError`` unless the codes ``z`` are ``(N, z_dim)`` or ``(k, N, z_dim)``, N = ``rows`` if given."""
    want = (z_dim,) if rows is None else (rows, z_dim)
    if anp.ndim(z) not in (2, 3) or tuple(anp.shape(z)[-len(want):]) != want:
        of_x = "" if rows is None else f" with N = {rows} rows of x"
        raise ValueError(f"z has shape {anp.shape(z)}, but this model expects (N, {z_dim}) or "
                         f"(k, N, {z_dim}){of_x}.")


def check_width(name: str, a: Any, width: int, what: str) -> None:
    r"""Raise a ``ValueError`` unless the last axis of ``a`` holds ``width`` values (one ``what``)."""
    if anp.ndim(a) < 1 or anp.shape(a)[-1] != width:
        raise ValueError(f"{name} has shape {anp.shape(a)}, but this model expects {width} values in its last "
                         f"axis: {what}.")


def check_per_sample(fz: Any, z: Any) -> None:
    r"""Raise a ``ValueError`` unless an integrand returned one value per sample: ``f(z)`` of shape ``z.shape[:-1]``."""
    if anp.shape(fz) != anp.shape(z)[:-1]:
        raise ValueError(f"f returned shape {anp.shape(fz)} for z of shape {anp.shape(z)}; it must "
                         f"return one value per sample, shape {anp.shape(z)[:-1]}.")


def check_k_samples(fz: Any) -> None:
    r"""Raise a ``ValueError`` unless ``fz`` is ``(k, N)`` with k ≥ 2, as a leave-one-out baseline needs."""
    if anp.ndim(fz) != 2 or anp.shape(fz)[0] < 2:
        raise ValueError(f"fz has shape {anp.shape(fz)}; a leave-one-out baseline needs (k, N) with k ≥ 2 "
                         "samples per example.")


# ------------------------------------------------------------------------------ caps, with their reasons

# the cap where the machine's memory cannot be asked (1 TiB), and on importance samples per row for log p(x)
MEMORY_CAP = 1 << 40
MAX_IMPORTANCE_SAMPLES = 10**6


def machine_memory() -> int:
    r"""This machine's physical memory in bytes (``os.sysconf``), or :data:`MEMORY_CAP` where it cannot be asked."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return MEMORY_CAP


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB"


def check_memory(what: str, n_bytes: int, formula: str, fix: str) -> None:
    r"""Raise a ``ValueError`` when ``what`` needs more than the machine's memory: one sentence naming the bytes."""
    if n_bytes > machine_memory():
        raise ValueError(f"{what} would need at least {_gib(n_bytes)} ({formula}), more than this machine's "
                         f"{_gib(machine_memory())} of memory; {fix}.")


def check_layer_memory(sizes: Sequence[int], itemsize: int, name: str = "sizes") -> None:
    r"""Refuse layer widths whose weights Σ_l (n_{l-1} + 1) n_l alone would not fit in memory (``itemsize`` bytes
    each), instead of a ``MemoryError`` while they are drawn."""
    count = sum((m + 1) * n for m, n in zip(sizes[:-1], sizes[1:]))
    check_memory(f"layers of widths {list(sizes)}", count * itemsize, f"{count:,} weights of {itemsize} bytes",
                 f"lower the widths in {name}")


def check_noise_memory(shape: Sequence[int], widths: Sequence[int], what: str, itemsize: int = 4) -> tuple:
    r"""Return ``shape`` = (..., z_dim) after refusing noise whose rows, passed through layers of ``widths``, would
    hold more values (rows · Σ widths of ``itemsize`` bytes, a lower bound) than fit in memory."""
    rows, width = math.prod(int(n) for n in shape[:-1]), sum(int(w) for w in widths)
    check_memory(what, rows * width * itemsize, f"{rows:,} rows x {width:,} values x {itemsize} bytes",
                 "ask for fewer at a time")
    return tuple(shape)


def check_importance_samples(k: int) -> None:
    r"""Refuse more than :data:`MAX_IMPORTANCE_SAMPLES` importance samples per row: k decoder passes per row."""
    check_count("k", k, "importance samples")
    if k > MAX_IMPORTANCE_SAMPLES:
        raise ValueError(f"k={k:,} importance samples would take {k:,} decoder passes per row (days for a test "
                         f"set), for an estimate that changes by far less than its noise beyond a few thousand "
                         f"(Burda et al. use k = 5000); use k <= {MAX_IMPORTANCE_SAMPLES:,}.")


def check_keys(params: Any, keys: Any, model: str, where: str = "params") -> None:
    r"""Raise a ``ValueError`` unless ``params`` has the structure ``keys``: a type, keys a dict must hold, or a
    dict of key → inner structure. The params of another kind of model (an AE's for a VAE, a Gaussian decoder's
    for a Bernoulli one) are one sentence, not a ``KeyError`` deep inside."""
    # a nest that autograd traces as a whole (a DictBox) is checked by its value
    params = getval(params)
    if isinstance(keys, type):
        fits, wanted = isinstance(params, (list, tuple) if keys is list else keys), f"a {keys.__name__}"
    else:
        fits, wanted = isinstance(params, dict) and all(key in params for key in keys), f"the keys {sorted(keys)}"
    if not fits:
        found = f"the keys {sorted(map(str, params))}" if isinstance(params, dict) else f"a {type(params).__name__}"
        raise ValueError(f"{where} has {found} where a {model} keeps {wanted}: these are the params of another "
                         "kind of model; pass params made by this model's init(rng), or check them with "
                         "load_params(path, like=model.init(rng)).")
    for key, inner in keys.items() if isinstance(keys, dict) else ():
        check_keys(params[key], inner, model, f"{where}[{key!r}]")


def check_finite_input(name: str, x: Any) -> None:
    r"""Raise a ``ValueError`` when the data ``x`` hold NaN or inf (a prediction from them would be noise)."""
    if isinstance(x, Box) or anp.size(x) == 0:
        return
    bad = int(anp.size(x)) - int(numpy.count_nonzero(numpy.isfinite(x)))
    if bad:
        raise ValueError(f"{name} holds {bad} NaN or infinite values, so no prediction from it would mean "
                         "anything; clean or drop those rows first.")
