r"""The bounds a VAE maximises: the (β-weighted) ELBO, the IWAE bound L_k, and importance-sampled log p(x).

Zhu, Deep Generative Models II: log p(x) ≥ L_k ≥ L_1 = ELBO, with L_k = E[log (1/k) Σ_i w_i] and
w_i = p(x, z_i) / q(z_i | x). Every function here works on per-example values, ``(N,)`` or ``(k, N)``.
"""

from __future__ import annotations

from typing import Any, Callable

import autograd.numpy as anp
import numpy
from autograd.tracer import getval

from minivae import ops
from minivae.backend import to_numpy
from minivae.checks import check_count, check_importance_samples
from minivae.distributions import standard_normal_noise


def log_mean_exp(a: Any, axis: int = 0) -> Any:
    r"""log (1/k) Σ_i exp(a_i) over ``axis``, computed as m + log (1/k) Σ_i exp(a_i − m) with m = max_i a_i.

    Zhu, Deep Generative Models, Part 2 ("Importance Weighted Auto-Encoder (IWAE)"): the bound
    L_k = log (1/k) Σ_i w_i is this of a_i = log w_i (Burda et al.). Subtracting the maximum keeps exp from
    overflowing or underflowing to 0.
    m is held constant for the gradient: the result does not depend on it.
    """
    # m = max_i a_i, a constant shift (rows that are all −inf shift by 0 and stay −inf)
    m = getval(a).max(axis=axis, keepdims=True)
    m = numpy.where(numpy.isfinite(m), m, 0.0).astype(m.dtype)
    # log mean exp(a − m) + m
    return anp.log(ops.mean(anp.exp(a - m), axis=axis)) + anp.squeeze(m, axis=axis)


def elbo(log_px_given_z: Any, kl: Any, beta: float = 1.0) -> Any:
    r"""ELBO_β = E_q[log p(x|z)] − β KL(q(z|x) ‖ p(z)), per example in nats.

    Zhu, Deep Generative Models II, the ELBO; β = 1 is the bound on log p(x), β ≠ 1 the β-VAE objective
    (Barra, Variational Autoencoders). ``log_px_given_z`` is the one-sample Monte Carlo estimate of the
    reconstruction term and ``kl`` the closed-form KL, both ``(N,)``.
    """
    if anp.shape(log_px_given_z) != anp.shape(kl):
        raise ValueError(f"log_px_given_z has shape {anp.shape(log_px_given_z)} but kl has shape "
                         f"{anp.shape(kl)}; both must be one value per example, (N,).")
    # reconstruction − β · KL
    return log_px_given_z - beta * kl


def iwae_bound(log_weights: Any) -> Any:
    r"""L_k = log (1/k) Σ_{i=1..k} w_i, with log w_i = log p(x, z_i) − log q(z_i|x) and z_i ~ q(z|x).

    Zhu, Deep Generative Models II: the IWAE bound (Burda et al.), monotone in k and → log p(x) as k → ∞.
    ``log_weights`` is ``(k, N)``; returns ``(N,)``.
    """
    if anp.ndim(log_weights) != 2:
        raise ValueError(f"log_weights has shape {anp.shape(log_weights)}; it must be (k, N), one row per "
                         "importance sample.")
    # log mean_i w_i over the k samples
    return log_mean_exp(log_weights, axis=0)


def importance_sampled_log_likelihood(
    log_weights: Callable[[Any], Any], draw_noise: Callable[[int], Any], k: int, chunk: int = 100
) -> numpy.ndarray:
    r"""log p(x) ≈ log (1/k) Σ_{i=1..k} w_i, accumulated over chunks of samples so memory stays bounded.

    Zhu, Deep Generative Models II: the IWAE bound L_k, used as an estimate of log p(x) (the MNIST density
    table). ``draw_noise(m)`` returns noise for m samples, ``log_weights(noise)`` their ``(m, N)`` log weights.
    The chunks are merged by a running log-sum-exp; returns a host ``(N,)`` array in nats.
    """
    if int(k) < 1:
        raise ValueError(f"k must be a positive number of importance samples, got {k}.")
    total = None
    done = 0
    while done < k:
        m = min(chunk, k - done)
        lw = numpy.asarray(to_numpy(log_weights(draw_noise(m))), dtype=numpy.float64)
        # log Σ_i w_i over this chunk, merged with the running log Σ
        chunk_lse = numpy.logaddexp.reduce(lw, axis=0)
        total = chunk_lse if total is None else numpy.logaddexp(total, chunk_lse)
        done += m
    # log (1/k) Σ_i w_i
    return total - numpy.log(k)


def log_likelihood_in_batches(log_weights: Callable[..., Any], data: tuple, z_dim: int, k: int,
                              rng: numpy.random.Generator, batch_size: int = 100) -> numpy.ndarray:
    r"""log p(x) ≈ log (1/k) Σ_{i=1..k} w_i, z_i ~ q(z|x), for every row of ``data``: host ``(N,)`` in nats.

    Zhu, Deep Generative Models II: the importance-sampled estimate of Burda et al. (L_k with fresh noise),
    for any model whose ``log_weights(*rows, eps)`` gives the ``(m, n)`` log weights log p(x, z_i) − log q(z_i|x)
    of n rows for noise ``eps`` of shape ``(m, n, z_dim)``. ``data`` is a tuple of arrays with N rows each
    (``(x,)`` for a VAE, ``(x, y)`` for a CVAE), taken ``batch_size`` rows and at most 100 samples at a time
    so memory stays bounded whatever k is. No rows give an empty ``(0,)``.
    """
    check_importance_samples(k)
    check_count("batch_size", batch_size, "rows")

    def one_batch(rows: tuple) -> numpy.ndarray:
        n = anp.shape(rows[0])[0]
        # the noise goes to the device of the data
        return importance_sampled_log_likelihood(lambda eps: log_weights(*rows, eps),
                                                 lambda m: standard_normal_noise((m, n, z_dim), rng, rows[0]), k)

    starts = range(0, anp.shape(data[0])[0], batch_size)
    batches = [tuple(a[start:start + batch_size] for a in data) for start in starts]
    # the rows' estimates, in order (none for no rows)
    return numpy.concatenate([numpy.zeros(0), *(one_batch(rows) for rows in batches)])
