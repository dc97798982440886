r"""Kingma et al.'s semi-supervised M2: the class label y is a latent variable when no label is given.

Shan, Variational Autoencoder, "Semi-supervised VAE [Kingma et al., 2014]", the generative model M2:

    p(y) = Cat(y|π),  p(z) = N(z|0, I),  p_θ(x|y, z) = f(x; y, z, θ),

with the inference networks q_φ(z|x, y) = N(μ_φ(x, y), diag σ²_φ(x, y)) and q_φ(y|x) = Cat(π_φ(x)).
For a labelled pair the bound is

    log p(x, y) ≥ L(x, y) = E_{q(z|x,y)}[log p_θ(x|y, z) + log p(y) + log p(z) − log q_φ(z|x, y)],

and for an unlabelled x the label is summed out under q_φ(y|x):

    log p(x) ≥ U(x) = Σ_y q_φ(y|x) L(x, y) + H(q_φ(y|x)).

The classifier q_φ(y|x) appears only in U, so Kingma et al. add a classification term weighted by α:
J^α = Σ_l −L(x, y) + Σ_u −U(x) + α E_{p̃_l}[−log q_φ(y|x)]. The one-hot y enters each network through
its own weight matrix (``x W_x + y W_y + c``), so no traced arrays are ever concatenated.

With ``likelihood="gaussian"`` (a learned diagonal variance) the same class is the top of Kingma et al.'s
stacked M1+M2, p(x, y, z₁, z₂) = p(y) p(z₂) p_θ(z₁|y, z₂) p_θ(x|z₁): its "x" is then the code
z₁ ~ q_φ(z₁|x) of a trained M1 (:mod:`minivae.m1`), its z is z₂, and p_θ(z₁|y, z₂) = N(μ(y, z₂), diag σ²(y, z₂)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import autograd.numpy as anp
import numpy
from autograd.tracer import getval

from minivae import distributions as dist
from minivae import ops
from minivae.backend import array_module, to_numpy
from minivae.checks import check_rows, check_sizes
from minivae.distributions import decoder_heads_for
from minivae.nn import activation_fn, init_mlp, init_two_input_net, mlp, two_input_net


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
    r"""Rows e_y, ``(N, n_classes)``, on the device and in the dtype of ``like``; ``labels`` are ints in [0, C)."""
    host = numpy.asarray(to_numpy(labels))
    if host.ndim != 1 or not numpy.issubdtype(host.dtype, numpy.integer):
        raise ValueError(f"labels must be a 1-D array of integer class indices, got shape {host.shape} and "
                         f"dtype {host.dtype}.")
    if host.size and (host.min() < 0 or host.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), but they range over [{host.min()}, {host.max()}].")
    value = getval(like)
    xp = array_module(value)
    return (xp.asarray(host)[:, None] == xp.arange(n_classes)[None, :]).astype(value.dtype)


@dataclass(frozen=True)
class M2:
    r"""Kingma et al.'s M2: p(y) uniform, p(z) = N(0, I), p_θ(x|y, z); q_φ(z|x, y) and q_φ(y|x).

    Shan, Variational Autoencoder, semi-supervised VAE. Three MLPs with the widths ``hidden``: the
    classifier ``[x_dim, *hidden, n_classes]`` (logits of q(y|x)), the encoder on (x, y) with heads μ and
    log σ², and the decoder on (y, z) with Bernoulli logits (or a Gaussian mean and log σ²) for x.
    """

    x_dim: int
    hidden: Sequence[int]
    z_dim: int
    n_classes: int = 10
    likelihood: str = "bernoulli"
    activation: str = "relu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", check_sizes(self.x_dim, self.hidden, self.z_dim))
        if int(self.n_classes) != self.n_classes or self.n_classes < 2:
            raise ValueError(f"n_classes must be an integer of at least 2, got {self.n_classes!r}.")
        if not self.hidden:
            raise ValueError("hidden must list at least one layer width: the first layer takes two inputs.")
        decoder_heads_for(self.likelihood)
        activation_fn(self.activation)

    def init(self, rng: numpy.random.Generator, dtype: Any = numpy.float32) -> dict:
        r"""Fresh parameters ``{"classifier", "encoder", "decoder"}`` drawn with ``rng``."""
        C = self.n_classes
        return {
            "classifier": init_mlp([self.x_dim, *self.hidden, C], rng, dtype),
            "encoder": init_two_input_net(self.x_dim, C, self.hidden, ("mean", "log_var"), self.z_dim, rng, dtype),
            "decoder": init_two_input_net(C, self.z_dim, self.hidden[::-1], decoder_heads_for(self.likelihood),
                                          self.x_dim, rng, dtype),
        }

    def classify(self, params: dict, x: Any) -> Any:
        r"""log q_φ(y|x) = log softmax(π-logits(x)) for every class: ``(N, n_classes)``."""
        check_rows("x", x, self.x_dim, "example")
        return log_softmax(mlp(params["classifier"], x, self.activation))

    def predict(self, params: dict, x: Any) -> numpy.ndarray:
        r"""argmax_y q_φ(y|x): host int labels ``(N,)``."""
        return numpy.argmax(to_numpy(self.classify(params, x)), axis=-1)

    def encode(self, params: dict, x: Any, y: Any) -> tuple[Any, Any]:
        r"""q_φ(z|x, y): ``(mean, log_var)``; ``y`` is one-hot ``(N, C)``, or ``(C, 1, C)`` for every class at once.

        Returns ``(N, z_dim)`` each, or ``(C, N, z_dim)`` for the all-classes form.
        """
        check_rows("x", x, self.x_dim, "example")
        return two_input_net(params["encoder"], x, y, ("mean", "log_var"), self.activation)

    def decode(self, params: dict, y: Any, z: Any) -> Any:
        r"""p_θ(x|y, z): Bernoulli logits ``(..., x_dim)`` (or the Gaussian ``(mean, log_var)``); y is one-hot."""
        if anp.shape(z)[-1] != self.z_dim or anp.shape(y)[-1] != self.n_classes:
            raise ValueError(f"y has shape {anp.shape(y)} and z {anp.shape(z)}, but this model expects one-hot "
                             f"y of {self.n_classes} columns and z of {self.z_dim}.")
        outs = two_input_net(params["decoder"], y, z, decoder_heads_for(self.likelihood), self.activation)
        return outs[0] if self.likelihood == "bernoulli" else outs

    def _log_px_given_yz(self, params: dict, x: Any, y: Any, z: Any) -> Any:
        if self.likelihood == "bernoulli":
            return dist.bernoulli_log_prob(x, self.decode(params, y, z))
        mean, log_var = self.decode(params, y, z)
        return dist.gaussian_log_prob(x, mean, log_var)

    def _bound(self, params: dict, x: Any, y: Any, eps: Any) -> Any:
        # z = μ_φ(x, y) + σ_φ(x, y) ε
        mean, log_var = self.encode(params, x, y)
        if anp.shape(eps) != anp.shape(mean):
            raise ValueError(f"eps has shape {anp.shape(eps)} but must be {anp.shape(mean)}: one "
                             "standard-normal draw of z per example (and per class, for the unlabelled bound).")
        z = dist.reparameterize(mean, log_var, eps)
        # log p(y) = −log C, the uniform prior over classes
        log_py = -float(numpy.log(self.n_classes))
        # log p(x|y,z) + log p(y) − KL(q(z|x,y) ‖ N(0, I))
        return self._log_px_given_yz(params, x, y, z) + log_py - dist.kl_standard_normal(mean, log_var)

    def labelled_bound(self, params: dict, x: Any, labels: Any, eps: Any) -> Any:
        r"""L(x, y) = E_{q(z|x,y)}[log p_θ(x|y, z)] + log p(y) − KL(q_φ(z|x, y) ‖ N(0, I)) ≤ log p(x, y), ``(N,)``.

        Shan, Variational Autoencoder, semi-supervised VAE (Kingma et al., 2014, eq. 6 as a bound rather than
        a loss). ``labels`` are int classes ``(N,)``; ``eps`` is ``(N, z_dim)``: one reparameterized z per row.
        """
        check_rows("x", x, self.x_dim, "example")
        y = one_hot(labels, self.n_classes, x)
        if anp.shape(y)[0] != anp.shape(x)[0]:
            raise ValueError(f"labels has {anp.shape(y)[0]} entries but x has {anp.shape(x)[0]} rows.")
        return self._bound(params, x, y, eps)

    def bounds_for_every_class(self, params: dict, x: Any, eps: Any) -> Any:
        r"""L(x, y) for y = 0, ..., C−1: ``(C, N)``, with ``eps`` of shape ``(C, N, z_dim)`` (one z per class)."""
        check_rows("x", x, self.x_dim, "example")
        like = getval(x)
        # every one-hot e_y at once, (C, 1, C), broadcast against the N rows of x
        every_y = array_module(like).eye(self.n_classes, dtype=like.dtype)[:, None, :]
        return self._bound(params, x, every_y, eps)

    def unlabelled_bound(self, params: dict, x: Any, eps: Any) -> Any:
        r"""U(x) = Σ_y q_φ(y|x) L(x, y) + H(q_φ(y|x)) ≤ log p(x), per example, ``(N,)``.

        Shan, Variational Autoencoder, semi-supervised VAE (Kingma et al., 2014, eq. 7). The sum runs over
        every class exactly (no sampling of y); ``eps`` is ``(C, N, z_dim)``, the z noise for each class.
        """
        # L(x, y) for every class, (N, C)
        bounds = anp.transpose(self.bounds_for_every_class(params, x, eps))
        # q(y|x) and log q(y|x), (N, C)
        log_q = self.classify(params, x)
        # Σ_y q(y|x) [L(x, y) − log q(y|x)] = E_q[L] + H(q)
        return ops.sum(anp.exp(log_q) * (bounds - log_q), axis=-1)

    def objective(self, params: dict, x_l: Any, labels: Any, x_u: Any, eps_l: Any, eps_u: Any,
                  alpha: float) -> Any:
        r"""J^α per example: mean_l −L(x, y) + mean_u −U(x) + α mean_l −log q_φ(y|x), a scalar to minimise.

        Kingma et al. (2014), eq. 9, with each sum replaced by the mean over its minibatch, so the labelled
        and unlabelled batches count equally whatever their sizes. ``eps_l`` is ``(N_l, z_dim)`` and
        ``eps_u`` is ``(C, N_u, z_dim)``.
        """
        if not float(alpha) >= 0.0:
            raise ValueError(f"alpha must be a non-negative weight of the classification term, got {alpha!r}.")
        # −log q(y|x) on the labelled batch: the cross-entropy of the classifier
        y = one_hot(labels, self.n_classes, x_l)
        cross_entropy = -ops.sum(y * self.classify(params, x_l), axis=-1)
        # −L(x, y) on the labelled batch, −U(x) on the unlabelled batch
        labelled = ops.mean(self.labelled_bound(params, x_l, labels, eps_l))
        unlabelled = ops.mean(self.unlabelled_bound(params, x_u, eps_u))
        return -labelled - unlabelled + alpha * ops.mean(cross_entropy)

    def generate(self, params: dict, labels: Any, z: Any) -> Any:
        r"""Decoder means of p_θ(x|y, z) for given classes ``(N,)`` and codes z ``(N, z_dim)``: ``(N, x_dim)``.

        "Handwriting styles" (Shan, semi-supervised VAE): fix y and vary z, or fix z and vary y.
        """
        y = one_hot(labels, self.n_classes, z)
        out = self.decode(params, y, z)
        return dist.sigmoid(out) if self.likelihood == "bernoulli" else out[0]
