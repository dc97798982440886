r"""Kingma et al.'s semi-supervised M2: the class label y is a latent variable when no label is given.

Shan, Variational Autoencoder, "Semi-supervised VAE [Kingma et al., 2014]", the generative model M2:

    p(y) = Cat(y|π),  p(z) = N(z|0, I),  p_θ(x|y, z) = f(x; y, z, θ),

with the inference networks q_φ(z|x, y) = N(μ_φ(x, y), diag σ²_φ(x, y)) and q_φ(y|x) = Cat(π_φ(x)).
For a labelled pair the bound is

    log p(x, y) ≥ L(x, y) = E_{q(z|x,y)}[log p_θ(x|y, z) + log p(y) + log p(z) − log q_φ(z|x, y)],

and for an unlabelled x the label is summed out under q_φ(y|x):

    log p(x) ≥ U(x) = Σ_y q_φ(y|x) L(x, y) + H(q_φ(y|x)).

The classifier q_φ(y|x) appears only in U, so Kingma et al. add a classification term (their eq. 9):
J^α = Σ_l −L(x, y) + Σ_u −U(x) + α E_{p̃_l}[−log q_φ(y|x)], with α = 0.1·N. :meth:`M2.objective` offers
that weighting (``"paper"``) and one that weighs the labelled and unlabelled means equally
(``"equal_means"``). The one-hot y enters each network through its own weight matrix
(``x W_x + y W_y + c``), so no traced arrays are ever concatenated.

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

from minivae import ops
from minivae.backend import array_module
from minivae.checks import (
    check_classes,
    check_eps,
    check_interval,
    check_rows,
    check_same_rows,
    check_sizes,
    check_two_input_hidden,
    check_width,
)
from minivae.distributions import (
    categorical_log_prob,
    categorical_mode,
    decoder_heads_for,
    decoder_log_prob,
    decoder_mean,
    decoder_out,
    kl_standard_normal,
    log_softmax,
    one_hot,
    reparameterize,
)
from minivae.nn import activation_fn, init_mlp, init_two_input_net, mlp, two_input_net


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
        check_classes(self.n_classes)
        check_two_input_hidden(self.hidden)
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
        logits = mlp(params["classifier"], x, self.activation)
        return log_softmax(logits)

    def predict(self, params: dict, x: Any) -> numpy.ndarray:
        r"""argmax_y q_φ(y|x): host int labels ``(N,)``."""
        return categorical_mode(self.classify(params, x))

    def encode(self, params: dict, x: Any, y: Any) -> tuple[Any, Any]:
        r"""q_φ(z|x, y): ``(mean, log_var)``; ``y`` is one-hot ``(N, C)``, or ``(C, 1, C)`` for every class at once.

        Returns ``(N, z_dim)`` each, or ``(C, N, z_dim)`` for the all-classes form.
        """
        check_rows("x", x, self.x_dim, "example")
        return two_input_net(params["encoder"], x, y, ("mean", "log_var"), self.activation)

    def decode(self, params: dict, y: Any, z: Any) -> Any:
        r"""p_θ(x|y, z): Bernoulli logits ``(..., x_dim)`` (or the Gaussian ``(mean, log_var)``); y is one-hot."""
        check_width("y", y, self.n_classes, "a one-hot class")
        check_width("z", z, self.z_dim, "a code")
        heads = two_input_net(params["decoder"], y, z, decoder_heads_for(self.likelihood), self.activation)
        return decoder_out(self.likelihood, heads)

    def _bound(self, params: dict, x: Any, y: Any, eps: Any) -> Any:
        # z = μ_φ(x, y) + σ_φ(x, y) ε
        mean, log_var = self.encode(params, x, y)
        check_eps(eps, mean)
        z = reparameterize(mean, log_var, eps)
        # log p(y) = −log C, the uniform prior over classes
        log_py = -float(numpy.log(self.n_classes))
        # log p(x|y,z) + log p(y) − KL(q(z|x,y) ‖ N(0, I))
        out = self.decode(params, y, z)
        log_px = decoder_log_prob(self.likelihood, x, out)
        return log_px + log_py - kl_standard_normal(mean, log_var)

    def labelled_bound(self, params: dict, x: Any, labels: Any, eps: Any) -> Any:
        r"""L(x, y) = E_{q(z|x,y)}[log p_θ(x|y, z)] + log p(y) − KL(q_φ(z|x, y) ‖ N(0, I)) ≤ log p(x, y), ``(N,)``.

        Shan, Variational Autoencoder, semi-supervised VAE (Kingma et al., 2014, eq. 6 as a bound rather than
        a loss). ``labels`` are int classes ``(N,)``; ``eps`` is ``(N, z_dim)``: one reparameterized z per row.
        """
        check_rows("x", x, self.x_dim, "example")
        check_same_rows("labels", labels, "x", x)
        y = one_hot(labels, self.n_classes, x)
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
                  alpha: float, weighting: str = "equal_means", n_unlabelled: int | None = None) -> Any:
        r"""J^α per example, a scalar to minimise, with one of two weightings of its three terms.

        Kingma et al. (2014), eqs. 8-9: J^α = Σ_l −L(x, y) + Σ_u −U(x) + α' E_{p̃_l}[−log q_φ(y|x)].

        - ``weighting="paper"``: the paper's sums over all N = N_l + N_u digits, with α' = α·N (the paper and
          Kingma's released code use α = 0.1), divided by N so the value is per digit:
          (N_l/N) mean_l −L + (N_u/N) mean_u −U + α mean_l −log q. ``n_unlabelled`` is N_u, the size of the
          whole unlabelled set (the batch ``x_u`` estimates its mean); N_l is the size of ``x_l``, the whole
          labelled set.
        - ``weighting="equal_means"``: mean_l −L + mean_u −U + α mean_l −log q. The labelled and unlabelled
          terms count equally whatever the sizes of the sets (with 100 labels and 4,900 unlabelled digits each
          labelled digit weighs 49 times what it weighs in the paper's form).

        An empty batch adds nothing. ``eps_l`` is ``(N_l, z_dim)`` and ``eps_u`` is ``(C, N_u, z_dim)``.
        """
        check_interval("alpha", float(alpha), 0.0)
        w_l, w_u = _weights(weighting, anp.shape(x_l)[0], n_unlabelled)
        # −log q(y|x) on the labelled batch: the cross-entropy of the classifier
        log_q = self.classify(params, x_l)
        cross_entropy = -categorical_log_prob(labels, log_q)
        # −L(x, y) on the labelled batch, −U(x) on the unlabelled batch
        labelled = _batch_mean(self.labelled_bound(params, x_l, labels, eps_l))
        unlabelled = _batch_mean(self.unlabelled_bound(params, x_u, eps_u))
        return -w_l * labelled - w_u * unlabelled + alpha * _batch_mean(cross_entropy)

    def generate(self, params: dict, labels: Any, z: Any) -> Any:
        r"""Decoder means of p_θ(x|y, z) for given classes ``(N,)`` and codes z ``(N, z_dim)``: ``(N, x_dim)``.

        "Handwriting styles" (Shan, semi-supervised VAE): fix y and vary z, or fix z and vary y.
        """
        return decoder_mean(self.likelihood, self.decode(params, one_hot(labels, self.n_classes, z), z))


WEIGHTINGS = ("paper", "equal_means")


def _weights(weighting: str, n_l: int, n_unlabelled: int | None) -> tuple[float, float]:
    # the weights (w_l, w_u) of mean_l −L and mean_u −U: (N_l/N, N_u/N) for the paper's sums, (1, 1) for equal means
    if weighting == "equal_means":
        return 1.0, 1.0
    if weighting != "paper":
        raise ValueError(f"weighting is {weighting!r}; use one of {', '.join(map(repr, WEIGHTINGS))}.")
    if n_unlabelled is None or int(n_unlabelled) != n_unlabelled or n_unlabelled < 0 or n_l + n_unlabelled == 0:
        raise ValueError(f"weighting 'paper' needs n_unlabelled, the size of the whole unlabelled set (a whole "
                         f"number of at least 0, and some digit in all), got {n_unlabelled!r}.")
    n = n_l + n_unlabelled
    return n_l / n, n_unlabelled / n


def _batch_mean(values: Any) -> Any:
    # (1/N) Σ_n values_n over a batch of N ≥ 1 rows; a batch of no rows adds 0 to the objective, not NaN
    return ops.mean(values) if anp.shape(values)[0] else 0.0
