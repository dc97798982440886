r"""Toy data sets of the lectures: two Gaussian clusters and a Gaussian pushed onto a ring.

Each takes a seeded ``numpy.random.Generator``, so the same seed gives the same points; rows are examples.
"""

from __future__ import annotations

import numpy


def two_gaussians(n: int, rng: numpy.random.Generator) -> tuple[numpy.ndarray, numpy.ndarray]:
    r"""Two 2-D Gaussian clusters x ~ N((±2, 0), I), the data of the 1-D-bottleneck toy.

    Notes on "Auto-Encoding Variational Bayes": an autoencoder with a 1-D bottleneck maps each point near the
    closest cluster mean, while a VAE learns to generate both clusters. Each point picks its cluster with
    probability ½. Returns ``x`` float32 ``(n, 2)`` and the cluster ``labels`` int64 ``(n,)`` (0 left, 1 right).
    """
    n = _count(n)
    # cluster c ~ Bernoulli(½), mean (−2, 0) for c = 0 and (2, 0) for c = 1
    labels = rng.integers(0, 2, size=n).astype(numpy.int64)
    means = numpy.stack([4.0 * labels - 2.0, numpy.zeros(n)], axis=1)
    # x = mean_c + ε, ε ~ N(0, I)
    x = means + rng.standard_normal((n, 2))
    return x.astype(numpy.float32), labels


def ring(n: int, rng: numpy.random.Generator) -> numpy.ndarray:
    r"""x = g(z) = z/10 + z/‖z‖ with z ~ N(0, I₂): a Gaussian pushed onto a ring of radius ≈ 1.

    Shan, Variational Autoencoder (after Doersch): a simple decoder g turns N(0, I) into a very
    non-Gaussian distribution. Returns float32 ``(n, 2)``.
    """
    n = _count(n)
    # z ~ N(0, I₂)
    z = rng.standard_normal((n, 2))
    # g(z) = z/10 + z/‖z‖
    x = z / 10.0 + z / numpy.linalg.norm(z, axis=1, keepdims=True)
    return x.astype(numpy.float32)


def _count(n: int) -> int:
    """``n`` as an int, or one ValueError (a whole float such as 2.0 is accepted, as before)."""
    if int(n) != n or n <= 0:
        raise ValueError(f"n must be a positive integer number of points, got {n!r}.")
    return int(n)
