r"""The conditional VAE: a latent z makes P(Y|X) able to give many plausible outputs for one input.

Shan, Variational Autoencoder, "Conditional VAE [Sohn et al., 2015]": given an input X and an output Y,
model P(Y|X) with a latent z, and maximise

    log P(Y|X) ≥ E_{z~Q(z|Y,X)}[log P(Y|z,X)] − D[Q(z|Y,X) ‖ P(z|X)].

The slides' example is hole filling (also in Zhu, Deep Generative Models II, missing-value imputation):
X is the visible part of an image, Y the hidden part. A plain regression network X → Y can give only one
answer, the blurry mean of all plausible completions; the CVAE draws z and gives a sharp one per draw.

Networks that take two inputs (x and y, or x and z) are :func:`minivae.nn.two_input_net`: their first layer
``a W_a + b W_b + c`` equals a layer on the concatenation ``[a, b]``. Rows are examples: ``x`` is
``(N, x_dim)``, ``y`` is ``(N, y_dim)``, ``z`` is ``(N, z_dim)`` or ``(k, N, z_dim)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import autograd.numpy as anp
import numpy
from autograd.tracer import getval

from minivae.backend import array_module
from minivae.bounds import elbo, iwae_bound, log_likelihood_in_batches
from minivae.checks import (
    check_choice,
    check_codes,
    check_count,
    check_eps,
    check_rows,
    check_same_rows,
    check_sizes,
    check_two_input_hidden,
)
from minivae.distributions import (
    decoder_heads_for,
    decoder_log_prob,
    decoder_mean,
    decoder_out,
    gaussian_log_prob,
    kl_diag_gaussians,
    kl_standard_normal,
    reparameterize,
    standard_normal_log_prob,
    standard_normal_noise,
)
from minivae.nn import (
    activation_fn,
    init_trunk_heads,
    init_two_input_net,
    trunk_heads,
    two_input_net,
)

PRIORS = ("learned", "standard")


@dataclass(frozen=True)
class CVAE:
    r"""Conditional VAE: q_φ(z|x,y), a prior p_ψ(z|x), and a decoder p_θ(y|x,z), Bernoulli or Gaussian.

    Shan, Variational Autoencoder, conditional VAE (Sohn et al., 2015). Three networks, each an MLP with
    the widths ``hidden`` (at least one hidden layer, since the first one takes two inputs):

    - recognition q_φ(z|x, y) = N(μ_φ(x, y), diag σ²_φ(x, y)), used for training;
    - prior p_ψ(z|x): with ``prior="learned"`` (the default) N(μ_ψ(x), diag σ²_ψ(x)), with
      ``prior="standard"`` the slides' N(0, I);
    - generation p_θ(y|x, z): Bernoulli logits, or a Gaussian mean and log σ².

    Why a learned prior by default: at test time z must come from the prior, since y is unknown. With
    N(0, I) the KL term pulls q(z|x, y) towards one fixed Gaussian for every x, so whatever z encodes must
    look the same for every input; a learned p(z|x) lets the spread of plausible completions depend on
    what is visible (a clear stroke leaves little to choose, an ambiguous one much), and it makes the
    training-time and test-time distributions of z match. Sohn et al. use it for the same reason. The KL
    between the two diagonal Gaussians is in closed form (``kl_diag_gaussians``).
    """

    x_dim: int
    y_dim: int
    hidden: Sequence[int]
    z_dim: int
    likelihood: str = "bernoulli"
    prior: str = "learned"
    activation: str = "relu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", check_sizes(self.x_dim, self.hidden, self.z_dim))
        check_count("y_dim", self.y_dim, "output values")
        check_two_input_hidden(self.hidden)
        decoder_heads_for(self.likelihood)
        check_choice("prior", self.prior, PRIORS)
        activation_fn(self.activation)

    def init(self, rng: numpy.random.Generator, dtype: Any = numpy.float32) -> dict:
        r"""Fresh parameters ``{"encoder", "decoder"[, "prior"]}`` drawn with ``rng``."""
        heads = ("mean", "log_var")
        params = {
            "encoder": init_two_input_net(self.x_dim, self.y_dim, self.hidden, heads, self.z_dim, rng, dtype),
            "decoder": init_two_input_net(self.x_dim, self.z_dim, self.hidden[::-1], decoder_heads_for(self.likelihood),
                                          self.y_dim, rng, dtype),
        }
        if self.prior == "learned":
            params["prior"] = init_trunk_heads([self.x_dim, *self.hidden], heads, self.z_dim, rng, dtype)
        return params

    def encode(self, params: dict, x: Any, y: Any) -> tuple[Any, Any]:
        r"""q_φ(z|x, y) = N(μ_φ(x, y), diag exp(log σ²_φ(x, y))): ``(mean, log_var)``, each ``(N, z_dim)``."""
        check_rows("x", x, self.x_dim, "input")
        check_rows("y", y, self.y_dim, "output")
        check_same_rows("y", y, "x", x)
        return two_input_net(params["encoder"], x, y, ("mean", "log_var"), self.activation)

    def prior_params(self, params: dict, x: Any) -> tuple[Any, Any]:
        r"""p_ψ(z|x) = N(μ_ψ(x), diag exp(log σ²_ψ(x))): ``(mean, log_var)``, each ``(N, z_dim)``.

        For ``prior="standard"`` these are zeros: N(0, I) whatever x is.
        """
        check_rows("x", x, self.x_dim, "input")
        if self.prior == "standard":
            # zeros on the device of the input x
            like = getval(x)
            zeros = array_module(like).zeros((anp.shape(x)[0], self.z_dim), dtype=like.dtype)
            return zeros, zeros
        net = params["prior"]
        return trunk_heads(net["hidden"], x, net, ("mean", "log_var"), self.activation)

    def decode(self, params: dict, x: Any, z: Any) -> Any:
        r"""p_θ(y|x, z): Bernoulli logits ``(..., y_dim)``, or the Gaussian ``(mean, log_var)``.

        ``x`` is ``(N, x_dim)``; ``z`` is ``(N, z_dim)`` or ``(k, N, z_dim)``, and the leading axes are kept.
        """
        check_rows("x", x, self.x_dim, "input")
        check_codes(z, self.z_dim, anp.shape(x)[0])
        heads = two_input_net(params["decoder"], x, z, decoder_heads_for(self.likelihood), self.activation)
        return decoder_out(self.likelihood, heads)

    def log_py_given_xz(self, params: dict, x: Any, y: Any, z: Any) -> Any:
        r"""log p_θ(y|x, z), summed over the outputs: ``(N,)``, or ``(k, N)`` for z of shape ``(k, N, z_dim)``."""
        out = self.decode(params, x, z)
        return decoder_log_prob(self.likelihood, y, out)

    def elbo(self, params: dict, x: Any, y: Any, eps: Any) -> Any:
        r"""log p(y|x) ≥ E_{q(z|x,y)}[log p_θ(y|x, z)] − KL(q_φ(z|x, y) ‖ p_ψ(z|x)), per example, ``(N,)``.

        Shan, Variational Autoencoder, conditional VAE. One reparameterized sample z = μ + σ ε per row
        (``eps`` is ``(N, z_dim)``) for the first term; the KL between two diagonal Gaussians in closed form.
        """
        mean, log_var = self.encode(params, x, y)
        check_eps(eps, mean)
        # z = μ_φ(x, y) + σ_φ(x, y) ε
        z = reparameterize(mean, log_var, eps)
        # log p(y|x,z), one sample
        log_py = self.log_py_given_xz(params, x, y, z)
        # KL(q(z|x,y) ‖ p(z|x)) in closed form
        if self.prior == "learned":
            prior_mean, prior_log_var = self.prior_params(params, x)
            kl = kl_diag_gaussians(mean, log_var, prior_mean, prior_log_var)
        else:
            kl = kl_standard_normal(mean, log_var)
        # log p(y|x,z) − KL
        return elbo(log_py, kl)

    def log_weights(self, params: dict, x: Any, y: Any, eps: Any) -> Any:
        r"""log w_i = log p(y|x, z_i) + log p(z_i|x) − log q(z_i|x, y), z_i = μ + σ ε_i, shape ``(k, N)``."""
        mean, log_var = self.encode(params, x, y)
        check_eps(eps, mean, "k")
        # z_i = μ + σ ε_i from q(z|x,y)
        z = reparameterize(mean, log_var, eps)
        # log p(z_i|x): the learned prior, or N(0, I)
        if self.prior == "learned":
            log_prior = gaussian_log_prob(z, *self.prior_params(params, x))
        else:
            log_prior = standard_normal_log_prob(z)
        # log p(y|x,z_i) + log p(z_i|x) − log q(z_i|x,y)
        return self.log_py_given_xz(params, x, y, z) + log_prior - gaussian_log_prob(z, mean, log_var)

    def iwae_bound(self, params: dict, x: Any, y: Any, eps: Any) -> Any:
        r"""L_k = log (1/k) Σ_i p(y, z_i|x) / q(z_i|x, y) per example, ``(N,)``; ``eps`` is ``(k, N, z_dim)``.

        Zhu, Deep Generative Models II: the IWAE bound, here on the conditional log p(y|x).
        """
        return iwae_bound(self.log_weights(params, x, y, eps))

    def log_likelihood(self, params: dict, x: Any, y: Any, k: int, rng: numpy.random.Generator,
                       batch_size: int = 100) -> numpy.ndarray:
        r"""log p(y|x) ≈ log (1/k) Σ_{i=1..k} p(y|x, z_i) p(z_i|x) / q(z_i|x, y), z_i ~ q(z|x, y): host ``(N,)``.

        The importance-sampled conditional log-likelihood in nats (Burda et al.'s estimator with fresh
        noise), taken ``batch_size`` rows and at most 100 samples at a time so memory stays bounded.
        """
        check_rows("x", x, self.x_dim, "input")
        check_rows("y", y, self.y_dim, "output")
        return log_likelihood_in_batches(lambda xb, yb, eps: self.log_weights(params, xb, yb, eps), (x, y),
                                         self.z_dim, k, rng, batch_size)

    def sample(self, params: dict, x: Any, n: int, rng: numpy.random.Generator) -> Any:
        r"""n completions per input: y ~ p_θ(y|x, z), z ~ p(z|x), as decoder means, shape ``(n, N, y_dim)``.

        Probabilities σ(l) for Bernoulli, the mean μ for Gaussian; y itself is never needed.
        """
        check_count("n", n, "samples", minimum=0)
        mean, log_var = self.prior_params(params, x)
        # z = μ_ψ(x) + σ_ψ(x) ε, n draws per row
        eps = standard_normal_noise((int(n),) + tuple(anp.shape(mean)), rng, x)
        z = reparameterize(mean, log_var, eps)
        return decoder_mean(self.likelihood, self.decode(params, x, z))


def pack_pairs(x: numpy.ndarray, y: numpy.ndarray) -> numpy.ndarray:
    r"""Host rows [x, y], ``(N, x_dim + y_dim)``, so :func:`minivae.train.fit` can shuffle pairs together."""
    check_same_rows("y", y, "x", x)
    return numpy.concatenate([numpy.asarray(x), numpy.asarray(y)], axis=1)
