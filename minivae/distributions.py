r"""Log-densities, closed-form KL divergences, reparameterization and sampling.

Every density is summed over the last axis, so ``(N, D)`` arrays give one value per row, ``(N,)``, and
``(k, N, D)`` arrays give ``(k, N)``. ``log_var`` is always log σ², never log σ.

The terms of a VAE's loss (the Bernoulli and Gaussian log-likelihoods, the closed-form KL, the
reparameterization) are autograd primitives with their gradient written by hand, as the layers of
:mod:`minivae.nn` are (HIPS autograd's ``examples/define_gradient.py``): each function computes its formula,
and the one named gradient function right below it (``gaussian_log_prob_vjp``, ...) maps g = ∂L/∂out (one
value per row) to ∂L/∂in for the argument autograd asks for, with the derivative as a comment above each line;
``defvjp_argnum`` registers it. Each vjp keeps the dtype of g, allocates only through the arrays it is given
(so it runs on CuPy), and sums over the axes an argument was broadcast along. ``f.fun`` is the formula as
autograd would trace it, which ``tests/test_distributions.py`` differentiates to check each vjp.
"""

from __future__ import annotations

from typing import Any

import autograd.numpy as anp
import numpy
from autograd.extend import defvjp_argnum, primitive
from autograd.tracer import getval

from minivae import ops
from minivae.backend import array_module, asarray_like, to_numpy
from minivae.checks import (
    check_broadcast_together,
    check_broadcasts,
    check_eps,
    check_generator,
    check_labels,
    check_same_shape,
    check_unit_interval,
)
from minivae.nn import sigmoid, softplus

LOG_2PI = float(numpy.log(2.0 * numpy.pi))
LIKELIHOODS = ("bernoulli", "gaussian")


def _sum_to_shape(g: Any, shape: tuple[int, ...]) -> Any:
    # the vjp of broadcasting: sum g over the axes that broadcasting added or stretched to size > 1
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=stretched, keepdims=True) if stretched else g


def _shape(a: Any) -> tuple[int, ...]:
    return tuple(anp.shape(a))


def _inv_sigma(log_var: Any, diff: Any) -> Any:
    # 1/σ = exp(−½ log σ²), taken as 1 where diff = 0: diff/σ is 0 there for any σ, and a tiny σ² (log σ² < −177 in
    # float32, where exp(−½ log σ²) overflows) must not give 0 · inf = NaN
    return anp.exp(-0.5 * log_var * (diff != 0))


def decoder_heads_for(likelihood: str) -> tuple[str, ...]:
    r"""The parameters a decoder outputs for ``likelihood``: ``("logits",)`` (Bernoulli) or ``("mean", "log_var")``.

    Raises a ``ValueError`` for any other likelihood.
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}.")
    return ("logits",) if likelihood == "bernoulli" else ("mean", "log_var")


@primitive
def gaussian_log_prob(x: Any, mean: Any, log_var: Any) -> Any:
    r"""log N(x; μ, diag(σ²)) = −½ Σ_d [log 2π + log σ²_d + r_d²], with r_d = (x_d − μ_d)/σ_d.

    Zhu, Deep Generative Models II: the Gaussian −log p(x|z). ``x``, ``mean`` and ``log_var``
    (log σ²) are ``(..., D)`` and broadcast together (x ``(N, D)`` against a decoder's ``(k, N, D)``, or
    z ``(k, N, D)`` against an encoder's ``(N, D)``). Returns the broadcast ``(...)``: one value per row.
    The residual r = (x − μ) exp(−½ log σ²) is formed before squaring, and is 0 at x = μ, so a tiny σ²
    gives the finite value, never inf · 0 = NaN: at x = μ for any log σ², and elsewhere wherever the value
    and exp(−½ log σ²) fit (log σ² > −177 in float32, far below the smallest float32 σ², e^{−103}).
    With g = ∂L/∂out (smooth everywhere; at x = μ the x and μ gradients are 0),

        ∂/∂x = −g r/σ,   ∂/∂μ = g r/σ,   ∂/∂log σ² = ½ g (r² − 1).
    """
    check_broadcast_together(("x", x), ("mean", mean), ("log_var", log_var))
    # the standardized residual r = (x − μ)/σ, with 1/σ = exp(−½ log σ²)
    diff = x - mean
    r = diff * _inv_sigma(log_var, diff)
    # −½ Σ_d [log 2π + log σ²_d + r_d²]
    return -0.5 * ops.sum(LOG_2PI + log_var + r * r, axis=-1)


def gaussian_log_prob_vjp(argnum: int, ans: Any, args: tuple, kwargs: dict) -> Any:
    r"""g ↦ ∂L/∂x, ∂L/∂μ or ∂L/∂log σ² (``argnum`` 0, 1, 2) of :func:`gaussian_log_prob`."""
    x, mean, log_var = args

    def vjp(g: Any) -> Any:
        g = g[..., None]
        # 1/σ = exp(−½ log σ²) and r = (x − μ)/σ, as in the forward pass
        diff = x - mean
        inv_sigma = _inv_sigma(log_var, diff)
        r = diff * inv_sigma
        if argnum == 0:
            # ∂/∂x = −g r/σ, summed over the axes x was broadcast along
            return _sum_to_shape(-g * r * inv_sigma, _shape(x))
        if argnum == 1:
            # ∂/∂μ = g r/σ
            return _sum_to_shape(g * r * inv_sigma, _shape(mean))
        # ∂/∂log σ² = ½ g (r² − 1)
        return _sum_to_shape(0.5 * g * (r * r - 1.0), _shape(log_var))

    return vjp


defvjp_argnum(gaussian_log_prob, gaussian_log_prob_vjp)


def standard_normal_log_prob(z: Any) -> Any:
    r"""log N(z; 0, I) = −½ Σ_d [log 2π + z_d²], the prior p(z) of the VAE (Shan, Variational Autoencoder).

    ``z`` is ``(..., D)``; returns ``(...)``.
    """
    return -0.5 * ops.sum(LOG_2PI + z * z, axis=-1)


@primitive
def bernoulli_log_prob(x: Any, logits: Any) -> Any:
    r"""log Bern(x; σ(l)) = Σ_d [x_d l_d − softplus(l_d)], softplus(l) = log(1 + e^l).

    Shan, Variational Autoencoder: Bernoulli P(X|z) and the BCE loss of the PyTorch example, written from
    the logits l so it is finite for any l (±1e4 included): never log(sigmoid(l)). ``x`` holds targets in
    [0, 1] and broadcasts to the shape of ``logits``, ``(..., D)`` (an IWAE passes x ``(N, D)`` with logits
    ``(k, N, D)``); returns ``(...)``, empty for zero rows. Since d softplus(l)/dl = σ(l), with g = ∂L/∂out
    of the row,

        ∂/∂l_d = g (x_d − σ(l_d)),   ∂/∂x_d = g l_d,

    smooth at l = 0, where ∂/∂l = x − ½.
    """
    check_broadcasts("x", x, _shape(logits), "logits")
    check_unit_interval("x", x)
    # −BCE(x, l) = x l − softplus(l)
    return ops.sum(x * logits - softplus(logits), axis=-1)


def bernoulli_log_prob_vjp(argnum: int, ans: Any, args: tuple, kwargs: dict) -> Any:
    r"""g ↦ ∂L/∂x or ∂L/∂l (``argnum`` 0, 1) of :func:`bernoulli_log_prob`."""
    x, logits = args

    def vjp(g: Any) -> Any:
        g = g[..., None]
        if argnum == 0:
            # ∂/∂x = g l, summed over the k samples x was broadcast along
            return _sum_to_shape(g * logits, _shape(x))
        # ∂/∂l = g (x − σ(l)): g (x − ½) at l = 0
        return g * (x - sigmoid(logits))

    return vjp


defvjp_argnum(bernoulli_log_prob, bernoulli_log_prob_vjp)


@primitive
def kl_standard_normal(mean: Any, log_var: Any) -> Any:
    r"""KL(N(μ, diag σ²) ‖ N(0, I)) = −½ Σ_d (1 + log σ²_d − μ_d² − σ²_d).

    Zhu, Deep Generative Models II, and Shan, Variational Autoencoder: the closed-form KL of the ELBO
    (the ``KLD`` of the PyTorch example). ``mean`` and ``log_var`` are ``(..., D)``; returns ``(...)``.
    Differentiating each term of the sum, with g = ∂L/∂KL of the row,

        ∂KL/∂μ_d = g μ_d,   ∂KL/∂log σ²_d = ½ g (σ²_d − 1).
    """
    check_same_shape("log_var", log_var, "mean", mean)
    # −½ Σ (1 + log σ² − μ² − σ²)
    return -0.5 * ops.sum(1.0 + log_var - mean * mean - anp.exp(log_var), axis=-1)


def kl_standard_normal_vjp(argnum: int, ans: Any, args: tuple, kwargs: dict) -> Any:
    r"""g ↦ ∂L/∂μ or ∂L/∂log σ² (``argnum`` 0, 1) of :func:`kl_standard_normal`."""
    mean, log_var = args

    def vjp(g: Any) -> Any:
        g = g[..., None]
        if argnum == 0:
            # ∂KL/∂μ = g μ
            return g * mean
        # ∂KL/∂log σ² = ½ g (σ² − 1)
        return (anp.exp(log_var) - 1.0) * (0.5 * g)

    return vjp


defvjp_argnum(kl_standard_normal, kl_standard_normal_vjp)


def kl_diag_gaussians(mean_q: Any, log_var_q: Any, mean_p: Any, log_var_p: Any) -> Any:
    r"""KL(N(μ_q, Σ_q) ‖ N(μ_p, Σ_p)) for diagonal Σ = diag(σ²):

    ½ Σ_d [log σ²_{p,d} − log σ²_{q,d} + σ²_{q,d}/σ²_{p,d} + r_d² − 1],   r_d = (μ_{q,d} − μ_{p,d})/σ_{p,d}.

    Shan, Variational Autoencoder: the general KL between two Gaussians,
    ½(tr(Σ_p⁻¹Σ_q) + (μ_p − μ_q)ᵀΣ_p⁻¹(μ_p − μ_q) − k + log det Σ_p / det Σ_q), for diagonal covariances.
    With μ_p = 0 and log σ²_p = 0 it equals :func:`kl_standard_normal`. Arguments are ``(..., D)`` (the
    prior's may broadcast); returns ``(...)``. Both terms are formed as ratios before anything is squared,
    σ²_q/σ²_p = exp(log σ²_q − log σ²_p) and r = (μ_q − μ_p) exp(−½ log σ²_p), with r = 0 at μ_q = μ_p, so a
    tiny σ²_p gives the finite value and gradient, never inf · 0 = NaN (as in :func:`gaussian_log_prob`).
    autograd differentiates it op by op; it is smooth everywhere.
    """
    check_same_shape("log_var_q", log_var_q, "mean_q", mean_q)
    check_broadcasts("mean_p", mean_p, _shape(mean_q), "mean_q")
    check_broadcasts("log_var_p", log_var_p, _shape(mean_q), "mean_q")
    # the Mahalanobis term r = (μ_q − μ_p)/σ_p, then the trace term σ_q²/σ_p² plus r²
    diff = mean_q - mean_p
    r = diff * _inv_sigma(log_var_p, diff)
    ratio = anp.exp(log_var_q - log_var_p) + r * r
    # ½ Σ [log σ_p² − log σ_q² + ratio − 1]
    return 0.5 * ops.sum(log_var_p - log_var_q + ratio - 1.0, axis=-1)


@primitive
def reparameterize(mean: Any, log_var: Any, eps: Any) -> Any:
    r"""z = μ + σ ⊙ ε with σ = exp(½ log σ²) and ε ~ N(0, I): the reparameterization trick.

    Shan, Variational Autoencoder, and Zhu, Deep Generative Models II. ``mean`` and ``log_var`` are
    ``(N, D)``; ``eps`` is ``(N, D)`` or ``(k, N, D)`` for k samples per row. Returns the shape of ``eps``.
    z is linear in μ and in ε, and dσ/d log σ² = ½ σ, so with g = ∂L/∂z

        ∂L/∂μ = Σ_k g,   ∂L/∂log σ² = Σ_k ½ g ⊙ σ ⊙ ε,   ∂L/∂ε = g ⊙ σ,

    where Σ_k sums over the leading sample axis of a ``(k, N, D)`` ``eps`` (and is absent for ``(N, D)``).
    """
    check_same_shape("log_var", log_var, "mean", mean)
    check_eps(eps, mean, "any")
    # z = μ + exp(½ log σ²) ε
    return mean + anp.exp(0.5 * log_var) * eps


def reparameterize_vjp(argnum: int, ans: Any, args: tuple, kwargs: dict) -> Any:
    r"""g ↦ ∂L/∂μ, ∂L/∂log σ² or ∂L/∂ε (``argnum`` 0, 1, 2) of :func:`reparameterize`, given g = ∂L/∂z."""
    mean, log_var, eps = args

    def vjp(g: Any) -> Any:
        if argnum == 0:
            # ∂z/∂μ = 1: Σ_k g over the k samples of a row
            return _sum_to_shape(g, _shape(mean))
        if argnum == 1:
            # ∂z/∂log σ² = ½ σ ε: Σ_k ½ g σ ε
            return _sum_to_shape(0.5 * g * anp.exp(0.5 * log_var) * eps, _shape(log_var))
        # ∂z/∂ε = σ
        return g * anp.exp(0.5 * log_var)

    return vjp


defvjp_argnum(reparameterize, reparameterize_vjp)


def standard_normal_noise(shape: tuple[int, ...], rng: numpy.random.Generator, like: Any) -> Any:
    r"""ε ~ N(0, I) of ``shape``, drawn on the host by ``rng`` and moved to the device and dtype of ``like``.

    Drawing on the host keeps CPU and GPU runs on the same noise for the same seed.
    """
    check_generator(rng)
    return asarray_like(rng.standard_normal(shape), like)


def sample_gaussian(mean: Any, log_var: Any, rng: numpy.random.Generator) -> Any:
    r"""A draw z = μ + σ ε from N(μ, diag σ²), with ε from ``rng``; same shape as ``mean``.

    Shan, Variational Autoencoder: sampling z by the reparameterization z = μ + σ ε, ε ~ N(0, I).
    """
    return reparameterize(mean, log_var, standard_normal_noise(_shape(mean), rng, mean))


def sample_bernoulli(probs: Any, rng: numpy.random.Generator) -> Any:
    r"""A draw x ~ Bern(p) elementwise (x = 1 where u < p, u ~ U(0, 1) from ``rng``); dtype of ``probs``.

    Shan, Variational Autoencoder: a sample from the Bernoulli P(X|z) of the decoder.
    """
    check_generator(rng)
    u = asarray_like(rng.random(_shape(probs)), probs)
    return (u < probs).astype(probs.dtype)


# ---------------------------------------------------------------- the decoder likelihood p_θ(x|z)


def decoder_log_prob(likelihood: str, x: Any, out: Any) -> Any:
    r"""log p_θ(x|z) = log Bern(x; σ(l)) for ``"bernoulli"``, or log N(x; μ, diag σ²) for ``"gaussian"``.

    Shan, Variational Autoencoder: P(X|z) is Bernoulli (binary pixels, the BCE of the PyTorch example) or
    Gaussian (real values, here with a learned diagonal variance). ``out`` is what the decoder returns: the
    logits l, or the pair ``(mean, log_var)``, each ``(..., D)``; ``x`` broadcasts to them. Returns ``(...)``.
    The one place where a model's choice of likelihood meets the data; every model scores x through it.
    """
    # log Bern(x; σ(l)) = Σ_d [x_d l_d − softplus(l_d)]
    if decoder_heads_for(likelihood) == ("logits",):
        return bernoulli_log_prob(x, out)
    # log N(x; μ, diag σ²)
    return gaussian_log_prob(x, *out)


def decoder_out(likelihood: str, heads: tuple) -> Any:
    r"""The decoder's parameters from its heads, in the order of :func:`decoder_heads_for`: l, or (μ, log σ²).

    A Bernoulli decoder has the one head, the logits l; a Gaussian one the pair (μ, log σ²).
    """
    return heads[0] if decoder_heads_for(likelihood) == ("logits",) else tuple(heads)


def decoder_mean(likelihood: str, out: Any) -> Any:
    r"""E_{p_θ(x|z)}[x] = σ(l) for ``"bernoulli"``, μ for ``"gaussian"``: what a model shows as its sample.

    Shan, Variational Autoencoder: a decoder's output is the mean of P(X|z); pictures show it rather than a
    noisy draw. ``out`` is the logits l or the pair ``(mean, log_var)``; returns ``(..., D)``.
    """
    # σ(l): the probability of each pixel being on
    if decoder_heads_for(likelihood) == ("logits",):
        return sigmoid(out)
    # μ: the Gaussian's mean
    return out[0]


# ---------------------------------------------------------------- the Categorical q(y|x) = Cat(y | π)


def log_softmax(logits: Any) -> Any:
    r"""log π_c = l_c − log Σ_j e^{l_j}, computed as (l_c − m) − log Σ_j e^{l_j − m} with m = max_j l_j.

    Shan, Variational Autoencoder, semi-supervised VAE: log q_φ(y|x) of the classifier Cat(π_φ(x)).
    ``logits`` is ``(..., C)``; returns log-probabilities of the same shape. The shift m is a constant for
    the gradient (the result does not depend on it), as in ``log_mean_exp``.
    """
    # m = max_j l_j, held constant
    shifted = logits - getval(logits).max(axis=-1, keepdims=True)
    # (l − m) − log Σ exp(l − m)
    return shifted - anp.log(ops.sum(anp.exp(shifted), axis=-1, keepdims=True))


def one_hot(labels: Any, n_classes: int, like: Any) -> Any:
    r"""Rows e_y, ``(N, n_classes)``: the Categorical's outcomes as vectors, on the device and in the dtype of ``like``.

    Shan, Variational Autoencoder, semi-supervised VAE: the label y enters the networks one-hot.
    ``labels`` are ints in [0, n_classes), ``(N,)``.
    """
    host = numpy.asarray(to_numpy(labels))
    check_labels(host, n_classes)
    value = getval(like)
    xp = array_module(value)
    # e_y: 1 in column y, 0 elsewhere
    return (xp.asarray(host)[:, None] == xp.arange(n_classes)[None, :]).astype(value.dtype)


def categorical_log_prob(labels: Any, log_probs: Any) -> Any:
    r"""log Cat(y | π) = Σ_c [y = c] log π_c, per row ``(N,)``; ``log_probs`` is ``(N, C)``, ``labels`` ints ``(N,)``.

    Shan, Variational Autoencoder, semi-supervised VAE: log q_φ(y|x) of a labelled digit, minus the
    cross-entropy of the classifier.
    """
    # Σ_c y_c log π_c with y one-hot
    return ops.sum(one_hot(labels, anp.shape(log_probs)[-1], log_probs) * log_probs, axis=-1)


def categorical_mode(log_probs: Any) -> numpy.ndarray:
    r"""argmax_c π_c: the most probable class of each row, host ints ``(N,)``; ``log_probs`` is ``(N, C)``.

    Shan, Variational Autoencoder, semi-supervised VAE: a classifier predicts the class q(y|x) finds likeliest.
    """
    return numpy.argmax(to_numpy(log_probs), axis=-1)
