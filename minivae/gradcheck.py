r"""Central finite differences, to check autograd's gradients the way a reader would by hand.

∂f/∂θ_j ≈ [f(θ + h e_j) − f(θ − h e_j)] / 2h, with error O(h²). Run it in float64: in float32 the
rounding error of f, about 1e-7 · |f| / h, swamps the derivative.
"""

from __future__ import annotations

from typing import Any, Callable

import autograd
import numpy

from minivae import ops
from minivae.backend import asarray_like, to_numpy
from minivae.tree import tree_items, tree_leaves, tree_unflatten


def _scalar_fn(f: Callable[..., Any], args: tuple, argnum: int) -> Callable[[Any], Any]:
    # non-scalar outputs are contracted with a fixed random vector r, so errors cannot cancel in a plain sum
    out = f(*args)
    shape = numpy.shape(out)
    r = None if shape == () else numpy.random.default_rng(1234).standard_normal(shape)

    def scalar(value: Any) -> Any:
        y = f(*args[:argnum], value, *args[argnum + 1:])
        return y if r is None else ops.sum(y * asarray_like(r, y))

    return scalar


def _is_float_nest(arg: Any) -> bool:
    leaves = tree_leaves(arg)
    return bool(leaves) and all(hasattr(a, "dtype") and numpy.issubdtype(a.dtype, numpy.floating)
                                for a in leaves)


def numerical_grad(f: Callable[[Any], Any], x: Any, eps: float = 1e-6) -> Any:
    r"""[f(x + h e_j) − f(x − h e_j)] / 2h for every entry j of the nest ``x``; scalar ``f``; same structure."""
    leaves = [to_numpy(a) for a in tree_leaves(x)]
    device = tree_leaves(x)

    def at(i: int, perturbed: numpy.ndarray) -> float:
        moved = [asarray_like(perturbed if j == i else a, device[j]) for j, a in enumerate(leaves)]
        return float(to_numpy(f(tree_unflatten(x, moved))))

    grads = []
    for i, leaf in enumerate(leaves):
        g = numpy.zeros(leaf.shape, dtype=numpy.float64)
        for index in numpy.ndindex(*leaf.shape):
            plus, minus = leaf.copy(), leaf.copy()
            plus[index] += eps
            minus[index] -= eps
            g[index] = (at(i, plus) - at(i, minus)) / (2 * eps)
        grads.append(g)
    return tree_unflatten(x, grads)


def check_grad(f: Callable[..., Any], *args: Any, eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-7) -> None:
    r"""Assert that ``autograd.grad`` of ``f`` matches central differences for every float argument.

    ∂f/∂θ_j ≈ [f(θ + h e_j) − f(θ − h e_j)] / 2h: the check on Klushyn's backprop by the chain rule (A brief
    introduction to (variational) autoencoders), and on every hand-written vjp of minivae.
    Each floating-point argument (an array or a nest of arrays) is checked in turn; others (ints, strings,
    None) are held fixed. A non-scalar ``f`` is contracted with a fixed random vector first. An entry
    passes when |analytic − numeric| ≤ atol + rtol·|numeric|. Raises ``AssertionError`` naming the worst
    entry: argument, path, index, analytic and numeric values, and relative error.
    """
    checked = 0
    for argnum, arg in enumerate(args):
        if not _is_float_nest(arg):
            continue
        if any(a.dtype != numpy.float64 for a in tree_leaves(arg)):
            raise ValueError(f"argument {argnum} of check_grad is not float64; finite differences need "
                             "float64 inputs (cast with .astype(numpy.float64)).")
        scalar = _scalar_fn(f, args, argnum)
        analytic = autograd.grad(scalar)(arg)
        numeric = numerical_grad(scalar, arg, eps)
        _compare(argnum, analytic, numeric, rtol, atol)
        checked += 1
    if checked == 0:
        raise ValueError("check_grad found no float64 array argument to differentiate.")


def _compare(argnum: int, analytic: Any, numeric: Any, rtol: float, atol: float) -> None:
    worst = None
    for (path, a), n in zip(tree_items(analytic), tree_leaves(numeric)):
        a = to_numpy(a).astype(numpy.float64)
        excess = numpy.abs(a - n) - (atol + rtol * numpy.abs(n))
        if excess.size and (worst is None or excess.max() > worst[0]):
            index = numpy.unravel_index(int(excess.argmax()), excess.shape)
            worst = (float(excess.max()), path, index, a[index], n[index])
    if worst is not None and worst[0] > 0:
        _, path, index, a, n = worst
        rel = abs(a - n) / max(abs(n), 1e-300)
        raise AssertionError(f"gradient of argument {argnum}{path} at index {tuple(int(i) for i in index)}: "
                             f"autograd gives {a:.10g}, finite differences give {n:.10g} "
                             f"(relative error {rel:.3g}, rtol {rtol:g}, atol {atol:g}).")
