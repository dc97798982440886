r"""Training objectives: what a model minimises, and the noise each step needs.

An :class:`Objective` says what to minimise and which noise it needs: ``loss(params, x, eps)`` returns a
scalar (the mean over the batch of a negative bound) and ``noise_shape(n)`` the shape of ``eps`` for a
batch of n rows (or None for a deterministic loss). One function per model builds its objective from the
model's bound; :func:`kl_warmup` turns one into a schedule over epochs. The trainer (:mod:`minivae.train`)
only ever sees an Objective.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import autograd.numpy as anp
import numpy

from minivae import ops
from minivae.backend import asarray_like, to_numpy
from minivae.checks import check_count, check_interval, check_noise_memory, check_rows
from minivae.cvae import CVAE
from minivae.m1 import M1, Classifier
from minivae.m2 import M2, _weights


@dataclass(frozen=True)
class Objective:
    r"""A training objective: ``loss(params, x, eps)`` → scalar to minimise, and the noise it needs.

    ``bound`` names what ``−loss`` is (for example ``"elbo"``), so the trainer can report it in nats.
    The optional fields let :func:`minivae.train.fit` refuse mistakes before the first step:

    - ``likelihood`` (``"bernoulli"`` or ``"gaussian"``) and ``x_dim``: data the model cannot score (values
      outside [0, 1] for a Bernoulli decoder, rows of the wrong width);
    - ``init``: the model's ``init(rng)``, whose nest of shapes ``params`` must have (params of another model);
    - ``data_map``: for an objective that carries data of its own (M2's labelled digits), ``f ↦`` the same
      objective with ``f`` applied to that data, so the trainer binarizes it like ``x_train`` (see
      :meth:`map_data`).
    """

    loss: Callable[[Any, Any, Any], Any]
    noise_shape: Callable[[int], tuple] | None
    bound: str
    likelihood: str | None = None
    x_dim: int | None = None
    init: Callable[[numpy.random.Generator], Any] | None = None
    data_map: Callable[[Callable[[Any], Any]], Objective] | None = None

    def map_data(self, f: Callable[[Any], Any]) -> Objective:
        r"""This objective with ``f`` applied to the data it carries (M2's labelled digits); itself if none."""
        return self if self.data_map is None else self.data_map(f)


def vae_objective(vae: Any, beta: float = 1.0) -> Objective:
    r"""Minimise −(1/N) Σ_n ELBO_β(x_n): one reparameterized sample per example.

    Zhu, Deep Generative Models II: the ELBO; β ≠ 1 is Barra's β-VAE (Variational Autoencoders).
    """
    return Objective(lambda p, x, eps: -ops.mean(vae.elbo(p, x, eps, beta)), lambda n: (n, vae.z_dim),
                     "elbo" if beta == 1.0 else f"elbo_beta{beta:g}", vae.likelihood, vae.x_dim, vae.init)


def iwae_objective(vae: Any, k: int) -> Objective:
    r"""Minimise −(1/N) Σ_n L_k(x_n): k importance samples per example (Burda et al.)."""
    check_count("k", k, "importance samples")
    # k·n rows of noise through the networks: refused, naming the memory, when they cannot fit
    widths = (*vae.hidden, vae.x_dim)
    noise = lambda n: check_noise_memory((k, n, vae.z_dim), widths, f"iwae_objective(k={k:,}) on {n} rows")  # noqa: E731
    return Objective(lambda p, x, eps: -ops.mean(vae.iwae_bound(p, x, eps)), noise,
                     f"iwae_{k}", vae.likelihood, vae.x_dim, vae.init)


def ae_objective(ae: Any) -> Objective:
    r"""Minimise (1/N) Σ_n ‖x_n − x̂_n‖²: the deterministic autoencoder needs no noise.

    Klushyn, "A brief introduction to (variational) autoencoders": the deterministic AE's squared error.
    """
    return Objective(lambda p, x, eps: ops.mean(ae.loss(p, x)), None, "neg_squared_error", None, ae.x_dim, ae.init)


def kl_warmup(vae: Any, warmup_epochs: int, beta_start: float = 0.1,
              objective: Callable[[Any, float], Objective] = vae_objective) -> Callable[[int], Objective]:
    r"""A KL warm-up schedule for :func:`fit`: epoch e ↦ ``objective(vae, β_e)``, β rising linearly to 1.

    β_e = beta_start + (1 − beta_start)(e − 1)/warmup_epochs for e ≤ warmup_epochs, and 1 afterwards
    (Sønderby et al. 2016, "How to train deep variational autoencoders": the KL term is switched on slowly,
    so the decoder learns to use z before the prior pulls q(z|x) onto N(0, I)). ``objective(vae, beta)``
    builds one epoch's Objective, :func:`vae_objective` (the ELBO_β) by default.
    """
    check_count("warmup_epochs", warmup_epochs, "epochs")
    check_interval("beta_start", beta_start, 0.0, 1.0)

    def schedule(epoch: int) -> Objective:
        # β_e: linear from beta_start at epoch 1, exactly 1 from epoch warmup_epochs + 1 on
        beta = 1.0 if epoch > warmup_epochs else beta_start + (1.0 - beta_start) * (epoch - 1) / warmup_epochs
        return objective(vae, beta)

    return schedule


def cvae_objective(cvae: CVAE) -> Objective:
    r"""Minimise −(1/N) Σ_n ELBO(y_n|x_n) over rows packed by :func:`pack_pairs`; one z sample per row.

    The packed rows are data, not traced values, so slicing them apart inside the loss is device-safe.
    """
    def loss(params: dict, xy: Any, eps: Any) -> Any:
        check_rows("xy", xy, cvae.x_dim + cvae.y_dim, "pair [x, y] packed by pack_pairs(x, y)")
        return -ops.mean(cvae.elbo(params, xy[:, :cvae.x_dim], xy[:, cvae.x_dim:], eps))

    return Objective(loss, lambda n: (n, cvae.z_dim), "elbo", init=cvae.init)


def m2_objective(m2: M2, x_labelled: Any, labels: Any, alpha: float, weighting: str = "equal_means",
                 n_unlabelled: int | None = None) -> Objective:
    r"""J^α as an :class:`Objective` whose rows are the *unlabelled* examples.

    Kingma et al. (2014), eq. 9, per digit, weighted as ``weighting`` says (:meth:`minivae.m2.M2.objective`):
    ``"paper"`` (their sums over all digits, α = 0.1 in their runs; ``n_unlabelled`` is the size of the whole
    unlabelled set) or ``"equal_means"`` (the labelled and unlabelled means count equally). Every step uses the
    whole (small) labelled set ``x_labelled``, ``labels`` as its labelled batch. The noise of one step is one
    array of ``C·n + N_l`` rows of z noise, split inside the loss into ``eps_u``, ``(C, n, z_dim)``, and
    ``eps_l``, ``(N_l, z_dim)`` (noise is data, so slicing it is device-safe). The labelled digits are data
    the objective carries: with ``TrainSettings(binarize=...)`` they are binarized like the unlabelled ones, through
    :meth:`Objective.map_data` (a fresh draw every epoch for ``"stochastic"``).
    """
    n_l, C = len(labels), m2.n_classes
    # refuse a bad weighting here, in one sentence, rather than at the first step
    _weights(weighting, n_l, n_unlabelled)

    def loss(params: dict, x_u: Any, eps: Any) -> Any:
        n = anp.shape(x_u)[0]
        # the labelled set, moved to the device and dtype of the batch (a no-op on the CPU)
        x_l = asarray_like(to_numpy(x_labelled), x_u)
        eps_u = anp.reshape(eps[:C * n], (C, n, m2.z_dim))
        return m2.objective(params, x_l, labels, x_u, eps[C * n:], eps_u, alpha, weighting, n_unlabelled)

    return Objective(loss, lambda n: (C * n + n_l, m2.z_dim), "neg_j_alpha", init=m2.init,
                     data_map=lambda f: m2_objective(m2, f(x_labelled), labels, alpha, weighting, n_unlabelled))


def _labels(y: Any) -> numpy.ndarray:
    # the packed one-hot columns back to int classes (data, not traced: the labels carry no gradient)
    return numpy.argmax(to_numpy(y), axis=-1)


def classifier_objective(classifier: Classifier) -> Objective:
    r"""Minimise the mean cross-entropy −(1/N) Σ log q(y_n|x_n) over rows ``pack_labelled(y, C, x)``; no noise.

    Shan, Variational Autoencoder, semi-supervised VAE: the labels-only baseline, a classifier trained on
    the labelled digits alone.
    """
    d = classifier.x_dim

    def loss(params: list, rows: Any, eps: None) -> Any:
        return ops.mean(classifier.cross_entropy(params, rows[:, :d], _labels(rows[:, d:])))

    return Objective(loss, None, "neg_cross_entropy", None, d + classifier.n_classes)


def m1_objective(m1: M1) -> Objective:
    r"""Minimise (1/N) Σ −log q(y_n|z_n), z_n = μ_n + σ_n ε_n, over rows ``pack_labelled(y, C, μ, log σ²)``.

    Kingma et al. (2014), M1's classifier on sampled codes of the labelled digits: the rows hold each
    labelled digit's q_φ(z|x) (computed once by the trained, fixed VAE) and its label; the noise is one
    ``(N, z_dim)`` draw per step.
    """
    k = m1.vae.z_dim

    def loss(params: list, rows: Any, eps: Any) -> Any:
        return ops.mean(m1.sampled_cross_entropy(params, rows[:, :k], rows[:, k:2 * k], _labels(rows[:, 2 * k:]), eps))

    return Objective(loss, lambda n: (n, k), "neg_cross_entropy", None, 2 * k + m1.n_classes)
