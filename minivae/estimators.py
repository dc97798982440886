r"""Gradient estimators of ∇_φ E_{q_φ(z)}[f(z)] for a diagonal Gaussian q_φ = N(μ, diag σ²).

Notes on Auto-Encoding Variational Bayes (Kingma & Welling), REINFORCE vs reparameterization: the
gradient of an expectation under q_φ can be taken two ways.

* Reparameterization (pathwise): z = μ + σ ε with ε ~ N(0, I), so
  ∇_φ E_q[f(z)] = E_ε[∇_φ f(μ + σ ε)]. It needs f differentiable in z and has low variance.
* REINFORCE (score function): ∇_φ E_q[f(z)] = ∫ ∇_φ q_φ(z) f(z) dz = E_q[f(z) ∇_φ log q_φ(z)].
  It needs only the values f(z), and has high variance; subtracting a baseline b that does not depend on
  the sample, E_q[(f(z) − b) ∇_φ log q_φ(z)], keeps it unbiased (E_q[∇_φ log q_φ] = 0) and lowers it.

Each estimator is written as a *surrogate*: a function of (μ, log σ²) whose value is the Monte Carlo
estimate (1/k) Σ_i f(z_i) of E_q[f] and whose autograd gradient is the estimator. ``f`` maps z of shape
``(k, N, D)`` to ``(k, N)``; ``eps`` is ``(k, N, D)`` standard-normal noise drawn by the caller; every
surrogate returns ``(N,)``, one value per example, so it can stand in for the reconstruction term of a
VAE with f(z) = log p_θ(x|z) (the decoder's parameters then still get their ordinary gradient).
"""

from __future__ import annotations

from typing import Any, Callable

import autograd.numpy as anp
from autograd.tracer import getval

from minivae import ops
from minivae.checks import check_choice, check_eps, check_interval, check_k_samples, check_per_sample
from minivae.distributions import gaussian_log_prob, reparameterize

Integrand = Callable[[Any], Any]  # z of shape (k, N, D) -> f(z) of shape (k, N)


def _evaluate(f: Integrand, z: Any) -> Any:
    fz = f(z)
    check_per_sample(fz, z)
    return fz


def reparameterization_surrogate(f: Integrand, mean: Any, log_var: Any, eps: Any) -> Any:
    r"""(1/k) Σ_i f(μ + σ ε_i): value and pathwise gradient E_ε[∇_φ f(μ + σ ε)] of E_q[f(z)].

    Notes on Auto-Encoding Variational Bayes, the reparameterization trick (also Shan, Variational
    Autoencoder; Zhu, Deep Generative Models II). ``mean``, ``log_var`` (log σ²) are ``(N, D)``, ``eps`` is
    ``(k, N, D)``; returns ``(N,)``. Its gradient flows through z into ``f``.
    """
    check_eps(eps, mean, "k")
    # z_i = μ + σ ε_i, differentiable in (μ, log σ²)
    z = reparameterize(mean, log_var, eps)
    # (1/k) Σ_i f(z_i)
    return ops.mean(_evaluate(f, z), axis=0)


def leave_one_out_baseline(fz: Any) -> Any:
    r"""b_i = (1/(k−1)) Σ_{j≠i} f(z_j): for sample i, the mean of f over the other k − 1 samples.

    Notes on Auto-Encoding Variational Bayes, REINFORCE with a baseline: b_i does not depend on z_i, so
    E[(f(z_i) − b_i) ∇ log q(z_i)] = E[f(z_i) ∇ log q(z_i)]: no bias.
    ``fz`` is ``(k, N)`` with k ≥ 2; returns ``(k, N)``, held constant (no gradient).
    """
    fz = getval(fz)
    check_k_samples(fz)
    # (Σ_j f_j − f_i) / (k − 1)
    k = anp.shape(fz)[0]
    return (fz.sum(axis=0, keepdims=True) - fz) / (k - 1)


def reinforce_surrogate(f: Integrand, mean: Any, log_var: Any, eps: Any, baseline: Any = None) -> Any:
    r"""(1/k) Σ_i [f(z_i) + (f(z_i) − b_i) (log q(z_i) − ⊥log q(z_i))] with z_i = ⊥(μ + σ ε_i).

    The notes on "Auto-Encoding Variational Bayes" (Kingma & Welling), REINFORCE against the
    reparameterization trick: the score-function estimator
    ∇_φ E_q[f(z)] = E_q[(f(z) − b) ∇_φ log q_φ(z)]. ⊥ is the stop-gradient ``autograd.tracer.getval``:
    z is a constant sample, so no gradient flows through it into φ, and log q − ⊥log q is zero in value
    but has gradient ∇_φ log q_φ(z). The value of the surrogate is therefore (1/k) Σ_i f(z_i), the Monte
    Carlo estimate of E_q[f]. f is evaluated at the constant z, so parameters inside f (a decoder) still
    get their ordinary gradient (1/k) Σ_i ∇_θ f(z_i); the weight f − b is held constant.

    ``baseline`` b: ``None`` (b = 0, plain REINFORCE), a constant broadcasting to ``(k, N)`` (a number,
    ``(N,)`` values as ``(1, N)``, or :attr:`RunningMeanBaseline.value`), or ``"leave_one_out"``
    (:func:`leave_one_out_baseline`, k ≥ 2). ``mean``, ``log_var`` are ``(N, D)``, ``eps`` ``(k, N, D)``;
    returns ``(N,)``.
    """
    check_eps(eps, mean, "k")
    # z_i = ⊥(μ + σ ε_i): a sample from q, constant for the gradient
    z = getval(reparameterize(mean, log_var, eps))
    # f(z_i), differentiable in f's own parameters only
    fz = _evaluate(f, z)
    # b_i: none, a constant, or the mean of the other samples
    if baseline is None:
        b = 0.0
    elif isinstance(baseline, str):
        check_choice("baseline", baseline, ("leave_one_out",))
        b = leave_one_out_baseline(fz)
    else:
        b = getval(baseline)
    # log q_φ(z_i) − ⊥log q_φ(z_i): value 0, gradient ∇_φ log q_φ(z_i)
    log_q = gaussian_log_prob(z, mean, log_var)
    score = log_q - getval(log_q)
    # (1/k) Σ_i [f(z_i) + ⊥(f(z_i) − b_i) · score_i]
    return ops.mean(fz + getval(fz - b) * score, axis=0)


class RunningMeanBaseline:
    r"""b ← decay · b + (1 − decay) · mean f: a running mean of f over past steps, as a REINFORCE baseline.

    Explicit state, one number: ``value`` (0 before the first update). Pass ``baseline=rm.value`` to
    :func:`reinforce_surrogate` *before* calling ``rm.update(fz)`` with this step's values, so the baseline
    never depends on the samples it multiplies.
    """

    def __init__(self, decay: float = 0.9) -> None:
        check_interval("decay", decay, 0.0, 1.0, high_open=True)
        self.decay = float(decay)
        self.value = 0.0
        self.steps = 0

    def update(self, fz: Any) -> float:
        r"""Fold the mean of this step's values ``fz`` into b; the first update sets b to it. Returns b."""
        # mean f over the step's samples (any shape, any registered array type), held constant
        values = getval(fz)
        m = float(values.sum()) / max(int(values.size), 1)
        # b ← decay · b + (1 − decay) · m, or b ← m at the first step
        self.value = m if self.steps == 0 else self.decay * self.value + (1.0 - self.decay) * m
        self.steps += 1
        return self.value
