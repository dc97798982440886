r"""Multilayer perceptrons as plain lists of ``(W, b)`` tuples.

Klushyn, "A brief introduction to (variational) autoencoders": an MLP is h_l = a(h_{l-1} W_l + b_l), the
last layer linear, trained by the chain rule (here: autograd). Rows are examples: ``x`` is ``(N, D_in)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import autograd.numpy as anp
import numpy

from minivae.ops import relu

Params = list  # [(W, b), ...]: W has shape (fan_in, fan_out), b has shape (fan_out,)


def softplus(x: Any) -> Any:
    r"""softplus(x) = log(1 + e^x), computed stably as max(x, 0) + log1p(e^{-|x|})."""
    return relu(x) + anp.log1p(anp.exp(-anp.abs(x)))


ACTIVATIONS = {"relu": relu, "tanh": anp.tanh, "softplus": softplus}


def activation_fn(name: str) -> Any:
    r"""The activation function called ``name`` (relu, tanh or softplus)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}.")
    return ACTIVATIONS[name]


def init_linear(fan_in: int, fan_out: int, rng: numpy.random.Generator, dtype: Any = numpy.float32) -> tuple:
    r"""One layer (W, b) with W, b ~ U(−1/√fan_in, 1/√fan_in), PyTorch's ``nn.Linear`` default.

    W has shape ``(fan_in, fan_out)`` and b ``(fan_out,)``; both are host NumPy arrays of ``dtype``.
    """
    bound = 1.0 / numpy.sqrt(fan_in)
    W = rng.uniform(-bound, bound, size=(fan_in, fan_out)).astype(dtype)
    b = rng.uniform(-bound, bound, size=(fan_out,)).astype(dtype)
    return (W, b)


def init_mlp(sizes: Sequence[int], rng: numpy.random.Generator, dtype: Any = numpy.float32) -> Params:
    r"""Parameters of an MLP with layer widths ``sizes`` = [D_in, H_1, ..., D_out].

    Initialisation: PyTorch's ``nn.Linear`` default, W, b ~ U(−1/√fan_in, 1/√fan_in), which keeps the
    pre-activations of a ReLU net at a stable scale. Returns ``[(W_1, b_1), ...]``, one tuple per layer.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) <= 0:
        raise ValueError(f"sizes must list at least two positive layer widths, got {list(sizes)}.")
    return [init_linear(m, n, rng, dtype) for m, n in zip(sizes[:-1], sizes[1:])]


def dense(layer: tuple, x: Any) -> Any:
    r"""One affine layer: x W + b, for ``x`` of shape ``(N, fan_in)`` → ``(N, fan_out)``.

    Klushyn, "A brief introduction to (variational) autoencoders": one layer of an MLP before its activation.
    """
    W, b = layer
    return x @ W + b


def hidden_features(params: Params, x: Any, activation: str = "relu") -> Any:
    r"""h_L after L layers h_l = a(h_{l-1} W_l + b_l), with the activation on every layer.

    Klushyn, "A brief introduction to (variational) autoencoders": the hidden layers of an MLP.
    """
    act = activation_fn(activation)
    for layer in params:
        x = act(dense(layer, x))
    return x


def check_mlp_input(params: Params, x: Any) -> None:
    r"""Raise a ``ValueError`` unless ``params`` has a layer and ``x``'s last axis fits its first one."""
    if not params:
        raise ValueError("params is empty; build it with init_mlp(sizes, rng) for at least one layer.")
    fan_in = params[0][0].shape[0]
    if anp.ndim(x) < 1 or anp.shape(x)[-1] != fan_in:
        raise ValueError(f"x has shape {anp.shape(x)} but the first layer expects {fan_in} features "
                         "in its last axis.")


def mlp(params: Params, x: Any, activation: str = "relu") -> Any:
    r"""f(x) = h_{L-1} W_L + b_L with h_l = a(h_{l-1} W_l + b_l): the last layer has no activation.

    Klushyn, "A brief introduction to (variational) autoencoders": MLPs. ``x`` is ``(N, D_in)``; the
    result is ``(N, D_out)``. ``activation`` is ``"relu"``, ``"tanh"`` or ``"softplus"``.
    """
    check_mlp_input(params, x)
    # hidden layers h_l = a(h_{l-1} W_l + b_l)
    h = hidden_features(params[:-1], x, activation)
    # output layer, linear
    return dense(params[-1], h)
