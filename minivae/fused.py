r"""Fused primitives: the hot ops of a VAE step with hand-derived vector-Jacobian products (vjps).

Each function here computes exactly what a plain function elsewhere in minivae computes, and the plain one
is the lesson: read :func:`minivae.nn.dense`, :func:`minivae.distributions.bernoulli_log_prob`,
:func:`minivae.distributions.kl_standard_normal` and :func:`minivae.distributions.reparameterize` first.
autograd differentiates those by tracing every ``+``, ``*`` and ``exp`` and replaying them backwards, one
Python call and one temporary array per op. Here each function is a single autograd ``primitive`` whose vjp
is written out by the chain rule (Klushyn, "A brief introduction to (variational) autoencoders": backprop),
so the 784-400-20 VAE's loss is a graph of 14 nodes instead of 38. ``tests/test_fused.py`` checks every
one against its plain version, in value and in gradient, and with finite differences.

A vjp maps the gradient g = ∂L/∂out of the loss L with respect to the output to ∂L/∂input = gᵀ J. The rules
every vjp here follows: it keeps the dtype of g (float32 stays float32), and it allocates only through the
arrays it is given (their operators, methods and array module), never on the host, so it runs unchanged on
CuPy. Forward passes write into temporaries they own where NumPy allows it (``out=``), to save memory traffic.

:func:`value_and_grad` is the trainer's gradient: autograd's, but with every parameter array traced on its own.
"""

from __future__ import annotations

from typing import Any

import numpy
from autograd.extend import defvjp, defvjp_argnums, primitive

from minivae import distributions as dist
from minivae import nn
from minivae.backend import array_module
from minivae.ops import relu


def _in_place(name: str, a: Any) -> Any:
    # xp.<name>(a) for a temporary `a` that this module owns: written into a itself on NumPy, a new array otherwise
    fn = getattr(array_module(a), name)
    return fn(a, out=a) if isinstance(a, numpy.ndarray) else fn(a)


def _sum_to_shape(g: Any, shape: tuple[int, ...]) -> Any:
    # the vjp of broadcasting: sum g over the axes that broadcasting added or stretched to size > 1
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=stretched, keepdims=True) if stretched else g


def _affine_grads(argnums: tuple[int, ...], gz: Any, x: Any, W: Any) -> tuple:
    # ∂L/∂x = g Wᵀ, ∂L/∂W = xᵀ g, ∂L/∂b = Σ_n g_n, only for the arguments autograd asks for
    rules = {0: lambda: gz @ W.T, 1: lambda: x.T @ gz, 2: lambda: gz.sum(axis=0)}
    return tuple(rules[i]() for i in argnums)


# ---------------------------------------------------------------- linear layers


@primitive
def _linear(x: Any, W: Any, b: Any) -> Any:
    out = x @ W
    out += b
    return out


@primitive
def _linear_relu(x: Any, W: Any, b: Any) -> Any:
    out = x @ W
    out += b
    # relu(a) = a · [a > 0], the same expression as minivae.ops.relu
    out *= out > 0
    return out


defvjp_argnums(_linear, lambda argnums, ans, args, kwargs: lambda g: _affine_grads(argnums, g, args[0], args[1]))
defvjp_argnums(_linear_relu, lambda argnums, ans, args, kwargs:
               lambda g: _affine_grads(argnums, g * (ans > 0), args[0], args[1]))


def linear(x: Any, W: Any, b: Any) -> Any:
    r"""a = x W + b, one affine layer, for ``x`` ``(N, fan_in)``, ``W`` ``(fan_in, fan_out)``, ``b`` ``(fan_out,)``.

    The fused twin of :func:`minivae.nn.dense`. With g = ∂L/∂a of shape ``(N, fan_out)``, the chain rule on
    a_{nj} = Σ_i x_{ni} W_{ij} + b_j gives

        ∂L/∂x = g Wᵀ,   ∂L/∂W = xᵀ g,   ∂L/∂b_j = Σ_n g_{nj}

    (Klushyn, "A brief introduction to (variational) autoencoders": backprop through one layer). Three
    matrix products and one column sum, with no ``unbroadcast`` bookkeeping. ``x`` with more than two axes
    goes through the plain version.
    """
    if numpy.ndim(x) != 2:
        return nn.dense((W, b), x)
    return _linear(x, W, b)


def linear_relu(x: Any, W: Any, b: Any) -> Any:
    r"""h = relu(x W + b) = max(x W + b, 0), a hidden layer, ``(N, fan_in)`` → ``(N, fan_out)``.

    The fused twin of ``minivae.ops.relu(minivae.nn.dense((W, b), x))``. relu passes the gradient where its
    output is positive and blocks it elsewhere, so with the mask m = [h > 0] and g = ∂L/∂h,

        ∂L/∂a = g ⊙ m,   then ∂L/∂x = (g ⊙ m) Wᵀ,  ∂L/∂W = xᵀ (g ⊙ m),  ∂L/∂b = Σ_n (g ⊙ m)_n

    as in :func:`linear`. The masked gradient is computed once and shared by the three products.
    """
    if numpy.ndim(x) != 2:
        return relu(nn.dense((W, b), x))
    return _linear_relu(x, W, b)


def hidden_features(params: list, x: Any, activation: str = "relu") -> Any:
    r"""h_L after L layers h_l = a(h_{l−1} W_l + b_l): :func:`minivae.nn.hidden_features`, relu layers fused.

    Layers are fused only when the activation is :func:`minivae.ops.relu` itself; any other goes the plain way.
    """
    if nn.activation_fn(activation) is not relu:
        return nn.hidden_features(params, x, activation)
    for W, b in params:
        x = linear_relu(x, W, b)
    return x


def mlp(params: list, x: Any, activation: str = "relu") -> Any:
    r"""f(x) = h_{L−1} W_L + b_L with h_l = a(h_{l−1} W_l + b_l): :func:`minivae.nn.mlp` on fused layers."""
    nn.check_mlp_input(params, x)
    # hidden layers h_l = a(h_{l-1} W_l + b_l)
    h = hidden_features(params[:-1], x, activation)
    # output layer, linear
    return linear(h, *params[-1])


# ---------------------------------------------------------------- Bernoulli log-likelihood from logits


@primitive
def _bernoulli_log_prob(x: Any, logits: Any) -> Any:
    # x l − max(l, 0), then − log1p(e^{−|l|}); the same order of operations as the plain version
    terms = x * logits
    terms -= logits * (logits > 0)
    softplus_tail = _in_place("negative", array_module(logits).abs(logits))
    softplus_tail = _in_place("log1p", _in_place("exp", softplus_tail))
    terms -= softplus_tail
    return terms.sum(axis=-1)


def _bernoulli_grad_logits(ans: Any, x: Any, logits: Any) -> Any:
    def vjp(g: Any) -> Any:
        # σ(l) = ½ (1 + tanh(l/2)), as minivae.distributions.sigmoid
        s = _in_place("tanh", logits * 0.5)
        s *= 0.5
        s += 0.5
        # ∂/∂l [x l − softplus(l)] = x − σ(l), times g per row
        s -= x
        s *= -g[..., None]
        return s

    return vjp


def _bernoulli_grad_x(ans: Any, x: Any, logits: Any) -> Any:
    # ∂/∂x [x l − softplus(l)] = l, summed over the axes x was broadcast along
    return lambda g: _sum_to_shape(g[..., None] * logits, numpy.shape(x))


defvjp(_bernoulli_log_prob, _bernoulli_grad_x, _bernoulli_grad_logits)


def bernoulli_log_prob(x: Any, logits: Any) -> Any:
    r"""log Bern(x; σ(l)) = Σ_d [x_d l_d − softplus(l_d)], softplus(l) = max(l, 0) + log(1 + e^{−|l|}).

    The fused twin of :func:`minivae.distributions.bernoulli_log_prob` (Shan, Variational Autoencoder:
    Bernoulli P(X|z), the negative BCE). Its vjp comes from d softplus(l)/dl = e^l / (1 + e^l) = σ(l):

        ∂/∂l_d = x_d − σ(l_d),   ∂/∂x_d = l_d,

    each times the incoming gradient g of its row. The plain version replays nine elementwise ops backwards
    over the ``(N, D)`` image; this one does one σ and one multiply. ``x`` holds targets in [0, 1] and
    broadcasts to ``logits`` ``(..., D)`` (an IWAE passes x ``(N, D)`` with logits ``(k, N, D)``; the
    gradient for x is then summed over k). Returns ``(...)``.
    """
    dist.check_broadcasts("x", x, tuple(numpy.shape(logits)), "logits")
    dist.check_unit_interval("x", x)
    return _bernoulli_log_prob(x, logits)


# ---------------------------------------------------------------- closed-form KL to N(0, I)


@primitive
def _kl_standard_normal(mean: Any, log_var: Any) -> Any:
    # 1 + log σ² − μ² − σ², summed, times −½
    terms = 1.0 + log_var
    terms -= mean * mean
    terms -= array_module(log_var).exp(log_var)
    return terms.sum(axis=-1) * -0.5


def _kl_grad_log_var(ans: Any, mean: Any, log_var: Any) -> Any:
    def vjp(g: Any) -> Any:
        # ∂KL/∂log σ² = ½ (σ² − 1)
        half = array_module(log_var).exp(log_var)
        half -= 1.0
        half *= g[..., None] * 0.5
        return half

    return vjp


defvjp(_kl_standard_normal,
       # ∂KL/∂μ = μ
       lambda ans, mean, log_var: lambda g: g[..., None] * mean,
       _kl_grad_log_var)


def kl_standard_normal(mean: Any, log_var: Any) -> Any:
    r"""KL(N(μ, diag σ²) ‖ N(0, I)) = −½ Σ_d (1 + log σ²_d − μ_d² − σ²_d), with σ² = exp(log σ²).

    The fused twin of :func:`minivae.distributions.kl_standard_normal` (Zhu, Deep Generative Models II:
    closed-form KL). Differentiating each term of the sum,

        ∂KL/∂μ_d = −½ (−2 μ_d) = μ_d,   ∂KL/∂log σ²_d = −½ (1 − e^{log σ²_d}) = ½ (σ²_d − 1),

    each times the incoming gradient g of its row. ``mean`` and ``log_var`` are ``(..., D)``; returns ``(...)``.
    """
    dist.check_same_shape("log_var", log_var, "mean", mean)
    return _kl_standard_normal(mean, log_var)


# ---------------------------------------------------------------- reparameterization


@primitive
def _reparameterize(mean: Any, log_var: Any, eps: Any) -> Any:
    # z = exp(½ log σ²) ε + μ
    z = _in_place("exp", log_var * 0.5) * eps
    z += mean
    return z


def _reparam_grad_log_var(ans: Any, mean: Any, log_var: Any, eps: Any) -> Any:
    def vjp(g: Any) -> Any:
        # ∂z/∂log σ² = ½ σ ε, summed over the k samples of each row
        grad = _in_place("exp", log_var * 0.5) * eps
        grad *= g
        grad *= 0.5
        return _sum_to_shape(grad, numpy.shape(log_var))

    return vjp


defvjp(_reparameterize,
       # ∂z/∂μ = 1, summed over the k samples of each row
       lambda ans, mean, log_var, eps: lambda g: _sum_to_shape(g, numpy.shape(mean)),
       _reparam_grad_log_var,
       # ∂z/∂ε = σ
       lambda ans, mean, log_var, eps: lambda g: g * _in_place("exp", log_var * 0.5))


def reparameterize(mean: Any, log_var: Any, eps: Any) -> Any:
    r"""z = μ + σ ⊙ ε with σ = exp(½ log σ²): the reparameterization trick, fused.

    The fused twin of :func:`minivae.distributions.reparameterize` (Shan, Variational Autoencoder; Zhu, Deep
    Generative Models II). z is linear in μ and in ε, and dσ/d log σ² = ½ σ, so

        ∂L/∂μ = Σ_k g,   ∂L/∂log σ² = Σ_k ½ g ⊙ σ ⊙ ε,   ∂L/∂ε = g ⊙ σ,

    where Σ_k sums over the leading sample axis when ``eps`` is ``(k, N, D)`` (and is absent for ``(N, D)``).
    Returns the shape of ``eps``.
    """
    dist.check_same_shape("log_var", log_var, "mean", mean)
    shape, eps_shape = tuple(numpy.shape(mean)), tuple(numpy.shape(eps))
    if eps_shape[-len(shape):] != shape or len(eps_shape) > len(shape) + 1:
        raise ValueError(f"eps has shape {eps_shape} but mean has shape {shape}; eps must be "
                         "(N, D) or (k, N, D) with (N, D) the shape of mean.")
    return _reparameterize(mean, log_var, eps)
