r"""Neural networks as plain nests of arrays: dense layers, activations, MLPs, a trunk with several heads,
and networks on two inputs.

Klushyn, "A brief introduction to (variational) autoencoders": an MLP is h_l = a(h_{l−1} W_l + b_l), the
last layer linear, trained by the chain rule. Rows are examples: ``x`` is ``(N, D_in)`` (or ``(..., D_in)``).

The layers and activations are autograd primitives whose gradient is written by hand, as in HIPS autograd's
``examples/define_gradient.py``: the function computes its formula, the one named gradient function right below
it (``relu_vjp``, ``dense_vjp``, ...) maps g = ∂L/∂out to ∂L/∂in with the derivative as a comment above each
line, and ``defvjp`` (one argument) or ``defvjp_argnum`` (several: the gradient for the argument autograd asks
for) registers it. A vjp keeps the dtype of g (float32 stays float32) and allocates only through the arrays it
is given, so it runs unchanged on CuPy. ``f.fun`` is the same formula as autograd would trace it, which
``tests/test_nn.py`` differentiates to check each hand-written vjp.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import autograd.numpy as anp
import numpy
from autograd.extend import defvjp, defvjp_argnum, primitive

from minivae.checks import check_layer_memory, check_mlp_input

Params = list  # [(W, b), ...]: W has shape (fan_in, fan_out), b has shape (fan_out,)

# ---------------------------------------------------------------- activations


@primitive
def relu(a: Any) -> Any:
    r"""relu(a) = max(a, 0), elementwise: relu(−∞) = 0, and NaN stays NaN.

    Klushyn, "A brief introduction to (variational) autoencoders": the ReLU activation. Its derivative is
    [a > 0]; at the kink a = 0 this takes the subgradient 0, as PyTorch does, and it is 0 at a = −∞.
    """
    # max(a, 0) as clip(a, 0, ∞): a's dtype, 0 at −∞, NaN kept (an upper bound of ∞, not None: NumPy then runs its
    # clip loop, three times faster than the maximum it runs for None)
    return anp.clip(a, 0.0, anp.inf)


def relu_vjp(ans: Any, a: Any) -> Any:
    r"""g ↦ ∂L/∂a for h = relu(a), given g = ∂L/∂h."""

    def vjp(g: Any) -> Any:
        # ∂relu(a)/∂a = [a > 0]: the subgradient 0 at a = 0
        return g * (a > 0)

    return vjp


defvjp(relu, relu_vjp)


@primitive
def softplus(a: Any) -> Any:
    r"""softplus(a) = log(1 + e^a) = max(a, 0) + log(1 + e^{−|a|}), finite for any a: softplus(−∞) = 0.

    Shan, Variational Autoencoder: the log-normaliser of the Bernoulli P(X|z) from its logit. Its derivative
    is e^a / (1 + e^a) = σ(a), smooth everywhere: ½ at a = 0, 0 at a = −∞. (Traced op by op, the stable form
    would take the subgradient 0 of both max(a, 0) and |a| at a = 0 and give 0 there; the vjp below gives
    σ(0) = ½.)
    """
    # max(a, 0) + log(1 + e^{−|a|}): the exponent is never positive, so e^{−|a|} never overflows
    return relu(a) + anp.log1p(anp.exp(-anp.abs(a)))


def softplus_vjp(ans: Any, a: Any) -> Any:
    r"""g ↦ ∂L/∂a for s = softplus(a), given g = ∂L/∂s."""

    def vjp(g: Any) -> Any:
        # d softplus(a)/da = σ(a), ½ at the kink a = 0 of max(a, 0) and |a|
        return g * sigmoid(a)

    return vjp


defvjp(softplus, softplus_vjp)


@primitive
def sigmoid(a: Any) -> Any:
    r"""σ(a) = 1 / (1 + e^{−a}), which keeps the tail: σ(−20) = 2.1e-9 in float32.

    Shan, Variational Autoencoder: the mean p = σ(l) of the Bernoulli P(X|z) given the decoder's logits l.
    (½(1 + tanh(a/2)) is the same function, but rounds 1 + tanh(a/2) to exactly 0 below a ≈ −17 in float32.)
    Below a ≈ −88.7 in float32 (−709.8 in float64) e^{−a} overflows to inf and σ is 0, which is e^a to within
    the smallest normal number of the dtype. Its derivative is σ(a)(1 − σ(a)), 0 there rather than inf/inf.
    """
    # e^{−a} = inf for very negative a is expected, and 1/(1 + inf) = 0 is then the value
    with numpy.errstate(over="ignore"):
        return 1.0 / (1.0 + anp.exp(-a))


def sigmoid_vjp(ans: Any, a: Any) -> Any:
    r"""g ↦ ∂L/∂a for p = σ(a), given g = ∂L/∂p."""

    def vjp(g: Any) -> Any:
        # dσ(a)/da = σ(a)(1 − σ(a))
        return g * ans * (1.0 - ans)

    return vjp


defvjp(sigmoid, sigmoid_vjp)


ACTIVATIONS = {"relu": relu, "tanh": anp.tanh, "softplus": softplus}


def activation_fn(name: str) -> Any:
    r"""The activation function called ``name`` (relu, tanh or softplus)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}.")
    return ACTIVATIONS[name]


# ---------------------------------------------------------------- dense layers


@primitive
def dense(x: Any, W: Any, b: Any) -> Any:
    r"""a = x W + b, one affine layer: ``x`` ``(..., fan_in)``, ``W`` ``(fan_in, fan_out)``, ``b`` ``(fan_out,)``.

    Klushyn, "A brief introduction to (variational) autoencoders": one layer of an MLP before its activation.
    Backprop through it by the chain rule on a_{nj} = Σ_i x_{ni} W_{ij} + b_j, with g = ∂L/∂a:

        ∂L/∂x = g Wᵀ,   ∂L/∂W = xᵀ g,   ∂L/∂b_j = Σ_n g_{nj}

    (the leading axes of ``x`` are rows too). Returns ``(..., fan_out)``.
    """
    return x @ W + b


def dense_vjp(argnum: int, ans: Any, args: tuple, kwargs: dict) -> Any:
    r"""g ↦ ∂L/∂x, ∂L/∂W or ∂L/∂b (``argnum`` 0, 1, 2) for a = x W + b, given g = ∂L/∂a."""
    x, W, b = args

    def vjp(g: Any) -> Any:
        if argnum == 0:
            # ∂L/∂x = g Wᵀ
            return g @ W.T
        if argnum == 1:
            # ∂L/∂W = xᵀ g, over every row (the leading axes of x too)
            return _rows(x).T @ _rows(g)
        # ∂L/∂b_j = Σ_n g_{nj}
        return _rows(g).sum(axis=0)

    return vjp


defvjp_argnum(dense, dense_vjp)


def _rows(a: Any) -> Any:
    # (..., n) as a matrix of rows (..., n) → (M, n): a view, no copy
    return a.reshape(-1, a.shape[-1])


def hidden_layer(x: Any, W: Any, b: Any, activation: str = "relu") -> Any:
    r"""h = a(x W + b): the activation after :func:`dense`."""
    return activation_fn(activation)(dense(x, W, b))


# ---------------------------------------------------------------- initialisation


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
    check_layer_memory(sizes, numpy.dtype(dtype).itemsize)
    return [init_linear(m, n, rng, dtype) for m, n in zip(sizes[:-1], sizes[1:])]


# ---------------------------------------------------------------- MLPs


def hidden_features(params: Params, x: Any, activation: str = "relu") -> Any:
    r"""h_L after L layers h_l = a(h_{l−1} W_l + b_l), with the activation on every layer.

    Klushyn, "A brief introduction to (variational) autoencoders": the hidden layers of an MLP.
    """
    activation_fn(activation)  # a bad name fails even without hidden layers
    for W, b in params:
        x = hidden_layer(x, W, b, activation)
    return x


def mlp(params: Params, x: Any, activation: str = "relu") -> Any:
    r"""f(x) = h_{L−1} W_L + b_L with h_l = a(h_{l−1} W_l + b_l): the last layer has no activation.

    Klushyn, "A brief introduction to (variational) autoencoders": MLPs. ``x`` is ``(N, D_in)``; the
    result is ``(N, D_out)``. ``activation`` is ``"relu"``, ``"tanh"`` or ``"softplus"``.
    """
    check_mlp_input(params, x)
    # hidden layers h_l = a(h_{l−1} W_l + b_l)
    h = hidden_features(params[:-1], x, activation)
    # output layer, linear
    return dense(h, *params[-1])


# ---------------------------------------------------------------- a shared trunk with several heads


def init_trunk(sizes: Sequence[int], rng: numpy.random.Generator, dtype: Any) -> Params:
    r"""The hidden layers of widths ``sizes`` (an empty list when there is no hidden layer)."""
    return init_mlp(sizes, rng, dtype) if len(sizes) > 1 else []


def init_trunk_heads(sizes: Sequence[int], heads: Sequence[str], out_dim: int, rng: numpy.random.Generator,
                     dtype: Any) -> dict:
    r"""``{"hidden": init_trunk(sizes), <head>: (W, b), ...}``: a trunk, then a linear head of ``out_dim`` per name."""
    net = {"hidden": init_trunk(sizes, rng, dtype)}
    for name in heads:
        net[name] = init_linear(sizes[-1], out_dim, rng, dtype)
    return net


def trunk_heads(trunk: Params, x: Any, heads: dict, names: Sequence[str], activation: str) -> tuple:
    r"""h = a(... a(x W_1 + b_1) ...) through the shared ``trunk``, then one linear head h W + b per name.

    The encoder's μ and log σ² (Shan, Variational Autoencoder: Q(z|X) = N(μ(X), Σ(X))) share one trunk this way.
    """
    fan_in = anp.shape((trunk[0] if trunk else heads[names[0]])[0])[0]
    if anp.shape(x)[-1] != fan_in:
        raise ValueError(f"params do not fit this model: their first layer takes {fan_in} inputs but the input "
                         f"has {anp.shape(x)[-1]}; build params with this model's init.")
    # shared hidden layers h = a(... a(x W_1 + b_1) ...), then one linear head per output
    h = hidden_features(trunk, x, activation)
    return tuple(dense(h, *heads[name]) for name in names)


# ---------------------------------------------------------------- networks on two inputs


def init_joint_linear(a_dim: int, b_dim: int, width: int, rng: numpy.random.Generator,
                      dtype: Any = numpy.float32) -> dict:
    r"""A first layer on two inputs, ``{"W_a": (a_dim, width), "W_b": (b_dim, width), "b": (width,)}``.

    Drawn exactly as one ``init_linear(a_dim + b_dim, width)`` whose weight rows are split in two, so it
    is the layer a concatenated input [a, b] would get.
    """
    W, b = init_linear(a_dim + b_dim, width, rng, dtype)
    return {"W_a": W[:a_dim], "W_b": W[a_dim:], "b": b}


def joint_dense(layer: dict, a: Any, b: Any) -> Any:
    r"""[a, b] W + c = a W_a + b W_b + c, without concatenating a and b.

    Shan, Variational Autoencoder, conditional VAE: the networks of Q(z|Y, X) and P(Y|z, X) take two inputs.
    ``a`` is ``(..., a_dim)`` and ``b`` is ``(..., b_dim)``; their leading axes broadcast (an ``(N, ·)``
    input with a ``(k, N, ·)`` one gives ``(k, N, width)``). Never concatenating traced arrays keeps the
    backward pass on the device (the stock vjp of ``concatenate`` allocates on the host).
    """
    return a @ layer["W_a"] + b @ layer["W_b"] + layer["b"]


def init_two_input_net(a_dim: int, b_dim: int, hidden: Sequence[int], heads: Sequence[str], out_dim: int,
                       rng: numpy.random.Generator, dtype: Any) -> dict:
    r"""An MLP on two inputs: ``{"input": init_joint_linear(...), "hidden": [...], <head>: (W, b), ...}``.

    The first layer takes (a, b), the further hidden layers have the widths ``hidden``, and each name in
    ``heads`` gets a linear head of ``out_dim`` outputs.
    """
    return {"input": init_joint_linear(a_dim, b_dim, hidden[0], rng, dtype),
            **init_trunk_heads(list(hidden), heads, out_dim, rng, dtype)}


def two_input_net(net: dict, a: Any, b: Any, heads: Sequence[str], activation: str) -> tuple:
    r"""h_1 = act(a W_a + b W_b + c), h_l = act(h_{l−1} W_l + b_l), then one linear head per name in ``heads``."""
    # h_1 = act(a W_a + b W_b + c), the layer on both inputs
    h = activation_fn(activation)(joint_dense(net["input"], a, b))
    # further hidden layers, then one linear head per output
    return trunk_heads(net["hidden"], h, net, heads, activation)
