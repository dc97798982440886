r"""Log-densities, closed-form KL divergences, reparameterization and sampling.

Every density is summed over the last axis, so ``(N, D)`` arrays give one value per row, ``(N,)``, and
``(k, N, D)`` arrays give ``(k, N)``. ``log_var`` is always log σ², never log σ.
"""

from __future__ import annotations

from typing import Any

import autograd.numpy as anp
import numpy
from autograd.extend import Box

from minivae.backend import asarray_like
from minivae.ops import relu
from minivae.ops import sum as vsum

LOG_2PI = float(numpy.log(2.0 * numpy.pi))


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
    r"""Raise a ``ValueError`` unless every entry of the data ``x`` lies in [0, 1]; traced values pass."""
    if isinstance(x, Box):
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


def gaussian_log_prob(x: Any, mean: Any, log_var: Any) -> Any:
    r"""log N(x; μ, diag(σ²)) = −½ Σ_d [log 2π + log σ²_d + (x_d − μ_d)² / σ²_d].

    Zhu, Deep Generative Models II: the Gaussian −log p(x|z). ``x``, ``mean`` and ``log_var``
    (log σ²) are ``(..., D)`` and broadcast together (x ``(N, D)`` against a decoder's ``(k, N, D)``, or
    z ``(k, N, D)`` against an encoder's ``(N, D)``). Returns the broadcast ``(...)``: one value per row.
    """
    check_broadcast_together(("x", x), ("mean", mean), ("log_var", log_var))
    # squared error (x − μ)², scaled by the precision 1/σ² = exp(−log σ²)
    diff = x - mean
    scaled = diff * diff * anp.exp(-log_var)
    # −½ Σ_d [log 2π + log σ²_d + (x_d − μ_d)²/σ²_d]
    return -0.5 * vsum(LOG_2PI + log_var + scaled, axis=-1)


def standard_normal_log_prob(z: Any) -> Any:
    r"""log N(z; 0, I) = −½ Σ_d [log 2π + z_d²], the prior p(z) of the VAE (Shan, Variational Autoencoder).

    ``z`` is ``(..., D)``; returns ``(...)``.
    """
    return -0.5 * vsum(LOG_2PI + z * z, axis=-1)


def bernoulli_log_prob(x: Any, logits: Any) -> Any:
    r"""log Bern(x; sigmoid(l)) = Σ_d [x_d l_d − max(l_d, 0) − log(1 + e^{−|l_d|})].

    Shan, Variational Autoencoder: Bernoulli P(X|z) and the BCE loss of the PyTorch example, written from
    the logits l so it is finite for any l (±1e4 included): never log(sigmoid(l)). ``x`` holds targets in
    [0, 1] and broadcasts to the shape of ``logits``, ``(..., D)``; returns ``(...)``.
    """
    check_broadcasts("x", x, _shape(logits), "logits")
    check_unit_interval("x", x)
    # −BCE(x, l) = x l − max(l, 0) − log1p(e^{−|l|})
    return vsum(x * logits - relu(logits) - anp.log1p(anp.exp(-anp.abs(logits))), axis=-1)


def kl_standard_normal(mean: Any, log_var: Any) -> Any:
    r"""KL(N(μ, diag σ²) ‖ N(0, I)) = −½ Σ_d (1 + log σ²_d − μ_d² − σ²_d).

    Zhu, Deep Generative Models II, and Shan, Variational Autoencoder: the closed-form KL of the ELBO
    (the ``KLD`` of the PyTorch example). ``mean`` and ``log_var`` are ``(..., D)``; returns ``(...)``.
    """
    check_same_shape("log_var", log_var, "mean", mean)
    # −½ Σ (1 + log σ² − μ² − σ²)
    return -0.5 * vsum(1.0 + log_var - mean * mean - anp.exp(log_var), axis=-1)


def kl_diag_gaussians(mean_q: Any, log_var_q: Any, mean_p: Any, log_var_p: Any) -> Any:
    r"""KL(N(μ_q, Σ_q) ‖ N(μ_p, Σ_p)) for diagonal Σ = diag(σ²):

    ½ Σ_d [log σ²_{p,d} − log σ²_{q,d} + (σ²_{q,d} + (μ_{q,d} − μ_{p,d})²) / σ²_{p,d} − 1].

    Shan, Variational Autoencoder: the general KL between two Gaussians,
    ½(tr(Σ_p⁻¹Σ_q) + (μ_p − μ_q)ᵀΣ_p⁻¹(μ_p − μ_q) − k + log det Σ_p / det Σ_q), for diagonal covariances.
    With μ_p = 0 and log σ²_p = 0 it equals :func:`kl_standard_normal`. Arguments are ``(..., D)`` (the
    prior's may broadcast); returns ``(...)``.
    """
    check_same_shape("log_var_q", log_var_q, "mean_q", mean_q)
    check_broadcasts("mean_p", mean_p, _shape(mean_q), "mean_q")
    check_broadcasts("log_var_p", log_var_p, _shape(mean_q), "mean_q")
    # (σ_q² + (μ_q − μ_p)²) / σ_p², the trace and Mahalanobis terms
    diff = mean_q - mean_p
    ratio = (anp.exp(log_var_q) + diff * diff) * anp.exp(-log_var_p)
    # ½ Σ [log σ_p² − log σ_q² + ratio − 1]
    return 0.5 * vsum(log_var_p - log_var_q + ratio - 1.0, axis=-1)


def reparameterize(mean: Any, log_var: Any, eps: Any) -> Any:
    r"""z = μ + σ ⊙ ε with σ = exp(½ log σ²) and ε ~ N(0, I): the reparameterization trick.

    Shan, Variational Autoencoder, and Zhu, Deep Generative Models II. ``mean`` and ``log_var`` are
    ``(N, D)``; ``eps`` is ``(N, D)`` or ``(k, N, D)`` for k samples per row. Returns the shape of ``eps``.
    """
    check_same_shape("log_var", log_var, "mean", mean)
    if _shape(eps)[-len(_shape(mean)):] != _shape(mean) or anp.ndim(eps) > anp.ndim(mean) + 1:
        raise ValueError(f"eps has shape {_shape(eps)} but mean has shape {_shape(mean)}; eps must be "
                         "(N, D) or (k, N, D) with (N, D) the shape of mean.")
    # z = μ + exp(½ log σ²) ε
    return mean + anp.exp(0.5 * log_var) * eps


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


def sigmoid(logits: Any) -> Any:
    r"""σ(l) = 1 / (1 + e^{−l}), written as ½(1 + tanh(l/2)) so it never overflows.

    Shan, Variational Autoencoder: the mean p = σ(l) of the Bernoulli P(X|z) given the decoder's logits l.
    """
    return 0.5 * (anp.tanh(0.5 * logits) + 1.0)
