r"""The deterministic autoencoder and the VAE: frozen dataclasses of hyperparameters plus pure functions.

A model object holds only its sizes; its parameters are a plain nest of dicts, lists and tuples of arrays
that the caller owns, so ``autograd.grad(lambda p: ...)(params)`` works directly (the stax/Haiku split of
"model = config + pure functions"). Rows are examples: ``x`` is ``(N, x_dim)``, ``z`` is ``(N, z_dim)``.
The networks come from :mod:`minivae.nn`, the densities and the KL from :mod:`minivae.distributions`, the
bounds from :mod:`minivae.bounds`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import autograd.numpy as anp
import numpy

from minivae import ops
from minivae.backend import to_numpy
from minivae.bounds import elbo, iwae_bound, log_likelihood_in_batches
from minivae.checks import (
    check_codes,
    check_count,
    check_eps,
    check_keys,
    check_noise_memory,
    check_rows,
    check_sizes,
)
from minivae.distributions import (
    decoder_heads_for,
    decoder_log_prob,
    decoder_mean,
    decoder_out,
    gaussian_log_prob,
    kl_standard_normal,
    reparameterize,
    standard_normal_log_prob,
    standard_normal_noise,
)
from minivae.nn import activation_fn, init_mlp, init_trunk_heads, mlp, trunk_heads


def unit_activity(mean: Any) -> numpy.ndarray:
    r"""A_j = Cov_x(E_q[z_j | x]) = Var_x(μ_j(x)): the activity of each latent unit, host ``(z_dim,)``.

    Burda et al. (IWAE), active units. ``mean`` is the encoder mean μ(x) of a set of examples, ``(N, z_dim)``.
    """
    return numpy.var(to_numpy(mean), axis=0)


def active_units(mean: Any, threshold: float = 0.01) -> int:
    r"""#{j : A_j > threshold} with A_j = Var_x(μ_j(x)): Burda et al.'s count of active latent units."""
    return int(numpy.sum(unit_activity(mean) > threshold))


@dataclass(frozen=True)
class VAE:
    r"""A VAE: q_φ(z|x) = N(μ_φ(x), diag σ²_φ(x)), p(z) = N(0, I), and p_θ(x|z) Bernoulli or Gaussian.

    Shan, Variational Autoencoder (after Doersch), and the 784-400-20 PyTorch example it quotes:
    ``VAE(784, [400], 20)``. The encoder is an MLP trunk ``[x_dim, *hidden]`` with two linear heads, the
    mean μ and log σ² (``log_var``). The decoder is the trunk ``[z_dim, *reversed(hidden)]`` with a
    ``logits`` head (``likelihood="bernoulli"``) or ``mean`` and ``log_var`` heads
    (``likelihood="gaussian"``, a learned diagonal variance that depends on z).
    """

    x_dim: int
    hidden: Sequence[int]
    z_dim: int
    likelihood: str = "bernoulli"
    activation: str = "relu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", check_sizes(self.x_dim, self.hidden, self.z_dim))
        decoder_heads_for(self.likelihood)
        activation_fn(self.activation)

    @property
    def decoder_heads(self) -> tuple[str, ...]:
        r"""Names of the decoder's output heads: ``("logits",)`` or ``("mean", "log_var")``."""
        return decoder_heads_for(self.likelihood)

    def init(self, rng: numpy.random.Generator, dtype: Any = numpy.float32) -> dict:
        r"""Fresh parameters ``{"encoder": {...}, "decoder": {...}}`` drawn with ``rng`` (see ``init_mlp``)."""
        encoder = init_trunk_heads([self.x_dim, *self.hidden], ("mean", "log_var"), self.z_dim, rng, dtype)
        decoder = init_trunk_heads([self.z_dim, *reversed(self.hidden)], self.decoder_heads, self.x_dim, rng, dtype)
        return {"encoder": encoder, "decoder": decoder}

    def encode(self, params: dict, x: Any) -> tuple[Any, Any]:
        r"""q_φ(z|x) = N(μ_φ(x), diag exp(log σ²_φ(x))): returns ``(mean, log_var)``, each ``(N, z_dim)``."""
        check_rows("x", x, self.x_dim, "example")
        check_keys(params, {"encoder": ("hidden", "mean", "log_var")}, "VAE")
        enc = params["encoder"]
        return trunk_heads(enc["hidden"], x, enc, ("mean", "log_var"), self.activation)

    def decode(self, params: dict, z: Any) -> Any:
        r"""p_θ(x|z): Bernoulli logits ``(..., x_dim)``, or the Gaussian ``(mean, log_var)``.

        ``z`` is ``(N, z_dim)`` or ``(k, N, z_dim)``; the leading axes are kept.
        """
        check_codes(z, self.z_dim)
        check_keys(params, {"decoder": ("hidden", *self.decoder_heads)}, f"VAE with a {self.likelihood} decoder")
        lead = anp.shape(z)[:-1]
        flat = anp.reshape(z, (-1, self.z_dim), order="C")
        dec = params["decoder"]
        outs = trunk_heads(dec["hidden"], flat, dec, self.decoder_heads, self.activation)
        return decoder_out(self.likelihood, tuple(anp.reshape(o, lead + (self.x_dim,), order="C") for o in outs))

    def log_px_given_z(self, params: dict, x: Any, z: Any) -> Any:
        r"""log p_θ(x|z), summed over pixels: ``(N,)`` for z ``(N, z_dim)``, ``(k, N)`` for ``(k, N, z_dim)``."""
        out = self.decode(params, z)
        return decoder_log_prob(self.likelihood, x, out)

    def elbo(self, params: dict, x: Any, eps: Any, beta: float = 1.0) -> Any:
        r"""ELBO = log p_θ(x|z) − β KL(q_φ(z|x) ‖ N(0, I)) with z = μ + σ ε, per example in nats, ``(N,)``.

        Zhu, Deep Generative Models II: one reparameterized sample per row for the reconstruction term
        and the KL in closed form. ``eps`` is ``(N, z_dim)`` standard-normal noise drawn by the caller.
        """
        mean, log_var = self.encode(params, x)
        check_eps(eps, mean)
        # z = μ + σ ε
        z = reparameterize(mean, log_var, eps)
        # log p(x|z), one sample, and KL(q(z|x) ‖ N(0, I)) in closed form
        log_px = self.log_px_given_z(params, x, z)
        kl = kl_standard_normal(mean, log_var)
        # log p(x|z) − β KL(q ‖ p)
        return elbo(log_px, kl, beta)

    def log_weights(self, params: dict, x: Any, eps: Any) -> Any:
        r"""log w_i = log p(x|z_i) + log p(z_i) − log q(z_i|x), z_i = μ + σ ε_i, shape ``(k, N)``."""
        check_noise_memory(anp.shape(eps), (*self.hidden, self.x_dim), f"the IWAE bound for eps {anp.shape(eps)}")
        mean, log_var = self.encode(params, x)
        check_eps(eps, mean, "k")
        # z_i = μ + σ ε_i
        z = reparameterize(mean, log_var, eps)
        # log p(x|z_i) + log p(z_i) − log q(z_i|x)
        return self.log_px_given_z(params, x, z) + standard_normal_log_prob(z) - gaussian_log_prob(z, mean, log_var)

    def iwae_bound(self, params: dict, x: Any, eps: Any) -> Any:
        r"""L_k = log (1/k) Σ_i p(x, z_i) / q(z_i|x), per example, ``(N,)``, with ``eps`` of shape ``(k, N, z_dim)``.

        Zhu, Deep Generative Models II: the IWAE bound. At k = 1 its expectation equals that of ``elbo``.
        """
        return iwae_bound(self.log_weights(params, x, eps))

    def log_likelihood(self, params: dict, x: Any, k: int, rng: numpy.random.Generator,
                       batch_size: int = 100) -> numpy.ndarray:
        r"""log p(x) ≈ log (1/k) Σ_{i=1..k} p(x, z_i)/q(z_i|x), z_i ~ q(z|x): host ``(N,)`` in nats.

        Zhu, Deep Generative Models, Part 2: the MNIST density table ("Importance Weighted Auto-Encoder
        (IWAE)"). The importance-sampled estimate of Burda et al. (L_k with fresh noise), taken ``batch_size`` rows
        and at most 100 samples at a time so memory stays bounded whatever k is (see
        :func:`minivae.bounds.log_likelihood_in_batches`).
        """
        check_rows("x", x, self.x_dim, "example")
        return log_likelihood_in_batches(lambda xb, eps: self.log_weights(params, xb, eps), (x,), self.z_dim, k,
                                         rng, batch_size)

    def sample(self, params: dict, n: int, rng: numpy.random.Generator) -> Any:
        r"""x ~ p_θ(x|z), z ~ N(0, I), returned as decoder means: probabilities σ(l) for Bernoulli, μ for Gaussian."""
        check_count("n", n, "samples", minimum=0)
        check_noise_memory((n, self.z_dim), (*self.hidden, self.x_dim), f"sample(n={n:,})")
        z = standard_normal_noise((int(n), self.z_dim), rng, params["encoder"]["mean"][0])
        return decoder_mean(self.likelihood, self.decode(params, z))


@dataclass(frozen=True)
class AE:
    r"""The deterministic autoencoder: z = f_φ(x), x̂ = g_θ(z), trained on the squared error ‖x − x̂‖².

    Klushyn, "A brief introduction to (variational) autoencoders": the deterministic AE, whose loss is the
    Gaussian case ½‖x − μ_θ(z)‖² up to the factor ½. Encoder MLP ``[x_dim, *hidden, z_dim]``, decoder MLP
    ``[z_dim, *reversed(hidden), x_dim]``, both linear at the output.
    """

    x_dim: int
    hidden: Sequence[int]
    z_dim: int
    activation: str = "relu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", check_sizes(self.x_dim, self.hidden, self.z_dim))
        activation_fn(self.activation)

    def init(self, rng: numpy.random.Generator, dtype: Any = numpy.float32) -> dict:
        r"""Fresh parameters ``{"encoder": [...], "decoder": [...]}`` drawn with ``rng``."""
        return {"encoder": init_mlp([self.x_dim, *self.hidden, self.z_dim], rng, dtype),
                "decoder": init_mlp([self.z_dim, *reversed(self.hidden), self.x_dim], rng, dtype)}

    def encode(self, params: dict, x: Any) -> Any:
        r"""z = f_φ(x), ``(N, z_dim)``."""
        check_rows("x", x, self.x_dim, "example")
        check_keys(params, {"encoder": list, "decoder": list}, "AE")
        return mlp(params["encoder"], x, self.activation)

    def decode(self, params: dict, z: Any) -> Any:
        r"""x̂ = g_θ(z), ``(N, x_dim)``."""
        check_rows("z", z, self.z_dim, "code")
        return mlp(params["decoder"], z, self.activation)

    def loss(self, params: dict, x: Any) -> Any:
        r"""‖x − g_θ(f_φ(x))‖² summed over the features, one value per example, ``(N,)``.

        Klushyn, A brief introduction to (variational) autoencoders ("Autoencoder networks"): the deterministic
        autoencoder, trained to reproduce its input through the code f_φ(x); no prior, so nothing to sample.
        """
        # reconstruction x̂ = g(f(x))
        diff = x - self.decode(params, self.encode(params, x))
        # squared error Σ_d (x_d − x̂_d)²
        return ops.sum(diff * diff, axis=-1)
