"""Planted mistakes for tests/test_exercises.py: each a small function written as a learner would, with the phrase
of the FAIL line that must name it.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from autograd import make_vjp
from autograd.tracer import getval

from minivae import distributions as dist
from minivae import estimators, nn
from minivae.gradcheck import numerical_grad

L2PI = np.log(2 * np.pi)


def vjp_of(f, n):
    def vjp(g, *args):
        return tuple(make_vjp(f, argnum=i)(*args)[0](g) for i in range(n))
    return vjp


def own_unlabelled_bound(log_q_y, L):
    return np.sum(np.exp(log_q_y) * (L - log_q_y), axis=-1)


def gauss_log_sigma(x, m, lv):  # log σ used as log σ²
    return -0.5 * np.sum(L2PI + 2 * lv + (x - m) ** 2 * np.exp(-2 * lv), axis=-1)


def gauss_constant_twice(x, m, lv):  # get_ELBO: const_term added again
    return -0.5 * np.sum(L2PI + lv + (x - m) ** 2 / np.exp(lv), axis=-1) - x.shape[-1] / 2 * L2PI


def gauss_quadratic(x, m, lv):  # get_ELBO: 1/(2σ²) + (x − μ)²
    return -0.5 * np.sum(L2PI + lv + 1 / (2 * np.exp(lv)) + (x - m) ** 2, axis=-1)


def gauss_abs(x, m, lv):  # get_ELBO: σ made positive with abs
    sigma = np.abs(lv)
    return -0.5 * np.sum(L2PI + 2 * np.log(sigma) + (x - m) ** 2 / sigma ** 2, axis=-1)


def gauss_no_sum(x, m, lv):
    return -0.5 * (L2PI + lv + (x - m) ** 2 / np.exp(lv))


def elbo_likelihood(rec, kl, beta=1.0):  # get_ELBO: returns the likelihood term
    return rec


def elbo_kl_sign(rec, kl, beta=1.0):
    return rec + beta * kl


def elbo_batch_mean(rec, kl, beta=1.0):
    return np.mean(rec - beta * kl)


def reparam_log_sigma(m, lv, eps):
    return m + np.exp(lv) * eps


def reparam_abs(m, lv, eps):
    return m + np.abs(lv) * eps


def reinforce_pathwise(f, m, lv, eps, baseline=None):  # no getval: the reparameterization gradient
    z = m + anp.exp(0.5 * lv) * eps
    fz = f(z)
    log_q = dist.gaussian_log_prob(z, m, lv)
    return anp.mean(fz + (fz - (0.0 if baseline is None else baseline)) * (log_q - getval(log_q)), axis=0)


def reinforce_no_baseline(f, m, lv, eps, baseline=None):
    return estimators.reinforce_surrogate(f, m, lv, eps, None)


def reinforce_sum(f, m, lv, eps, baseline=None):
    return eps.shape[0] * estimators.reinforce_surrogate(f, m, lv, eps, baseline)


def bern_log_sigmoid(x, logits):
    s = 1 / (1 + np.exp(-logits))
    return np.sum(x * np.log(s) + (1 - x) * np.log(1 - s), axis=-1)


def bern_bce(x, logits):
    return -dist.bernoulli_log_prob(x, logits)


def bern_swapped(x, logits):
    return np.sum((1 - x) * logits - np.logaddexp(0, logits), axis=-1)


def kl_sign(m, lv):
    return 0.5 * np.sum(1 + lv - m ** 2 - np.exp(lv), axis=-1)


def kl_log_sigma(m, lv):
    return -0.5 * np.sum(1 + 2 * lv - m ** 2 - np.exp(2 * lv), axis=-1)


def kl_no_half(m, lv):
    return -np.sum(1 + lv - m ** 2 - np.exp(lv), axis=-1)


def kl_mean(m, lv):
    return -0.5 * np.mean(1 + lv - m ** 2 - np.exp(lv), axis=-1)


def adam_no_correction(theta, g, m, v, t, lr, b1, b2, eps):
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    return theta - lr * m / (np.sqrt(v) + eps), m, v


def adam_eps_inside(theta, g, m, v, t, lr, b1, b2, eps):
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    return theta - lr * (m / (1 - b1 ** t)) / np.sqrt(v / (1 - b2 ** t) + eps), m, v


def adam_in_place(theta, g, m, v, t, lr, b1, b2, eps):
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    return theta - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps), m, v


def dense_b_mean(g, x, W, b):
    return g @ W.T, x.reshape(-1, x.shape[-1]).T @ g.reshape(-1, g.shape[-1]), g.reshape(-1, g.shape[-1]).mean(0)


def dense_w_transposed(g, x, W, b):
    return g @ W.T, g.T @ x, g.sum(0)


def dense_x_sign(g, x, W, b):
    gx, gW, gb = vjp_of(nn.dense, 3)(g, x, W, b)
    return -gx, gW, gb


def gauss_vjp_no_half(g, x, m, lv):
    gx, gm, glv = vjp_of(dist.gaussian_log_prob, 3)(g, x, m, lv)
    return gx, gm, 2 * glv


def gauss_vjp_mu_sign(g, x, m, lv):
    gx, gm, glv = vjp_of(dist.gaussian_log_prob, 3)(g, x, m, lv)
    return gx, -gm, glv


def gauss_vjp_no_broadcast_sum(g, x, m, lv):
    r = (x - m) * np.exp(-0.5 * lv)
    g = g[..., None]
    return -g * r * np.exp(-0.5 * lv), g * r * np.exp(-0.5 * lv), 0.5 * g * (r * r - 1)


def bern_vjp_sign(g, x, logits):
    gx, gl = vjp_of(dist.bernoulli_log_prob, 2)(g, x, logits)
    return gx, -gl


def bern_vjp_no_x(g, x, logits):
    gx, gl = vjp_of(dist.bernoulli_log_prob, 2)(g, x, logits)
    return np.zeros_like(x), gl


def numgrad_forward(f, x, eps=1e-6):
    out, base = np.zeros_like(x), f(x)
    for j in np.ndindex(*x.shape):
        p = x.copy()
        p[j] += eps
        out[j] = (f(p) - base) / eps
    return out


def numgrad_over_h(f, x, eps=1e-6):
    return 2 * numerical_grad(f, x, eps)


def numgrad_mutates(f, x, eps=1e-6):
    out = np.zeros_like(x)
    for j in np.ndindex(*x.shape):
        x[j] += eps
        up = f(x)
        x[j] -= 2 * eps
        out[j] = (up - f(x)) / (2 * eps)
    return out


def lme_naive(a, axis=0):
    return np.log(np.mean(np.exp(a), axis=axis))


def lme_sum(a, axis=0):
    m = a.max(axis=axis, keepdims=True)
    return np.log(np.sum(np.exp(a - m), axis=axis)) + np.squeeze(m, axis)


def iwae_mean_log(lw):
    return lw.mean(axis=0)


def iwae_sum(lw):
    return lme_sum(lw, 0)


def iwae_naive(lw):
    return lme_naive(lw, 0)


def kld_swapped(mq, lq, mp, lp):
    return dist.kl_diag_gaussians(mp + 0 * mq, lp + 0 * lq, mq, lq)


def kld_no_minus_one(mq, lq, mp, lp):
    return 0.5 * np.sum(lp - lq + (np.exp(lq) + (mq - mp) ** 2) / np.exp(lp), axis=-1)


def u_no_entropy(log_q, L):
    return np.sum(np.exp(log_q) * L, axis=-1)


def u_entropy_sign(log_q, L):
    return np.sum(np.exp(log_q) * (L + log_q), axis=-1)


PLANTED = [
    ("gaussian_log_prob", gauss_log_sigma, "log σ used as log σ²"),
    ("gaussian_log_prob", gauss_constant_twice, "the constant log 2π counted twice (as in the get_ELBO code"),
    ("gaussian_log_prob", gauss_quadratic, "the quadratic term adds 1/(2σ²) to (x − μ)²"),
    ("gaussian_log_prob", gauss_abs, "σ from abs (as in the get_ELBO code"),
    ("gaussian_log_prob", gauss_no_sum, "has shape (3, 2), expected (3,): one value per row"),
    ("elbo", elbo_likelihood, "you return the likelihood term E_q[log p(x|z)] instead of the ELBO"),
    ("elbo", elbo_kl_sign, "the sign of the KL"),
    ("elbo", elbo_batch_mean, "has shape (), expected (3,)"),
    ("reparameterize", reparam_log_sigma, "at log σ² = 0.3; it must move by σ = exp(½ log σ²) = 1.162: log σ used"),
    ("reparameterize", reparam_abs, "σ from abs"),
    ("reinforce_surrogate", reinforce_pathwise, "your gradient flows through z"),
    ("reinforce_surrogate", reinforce_no_baseline, "your gradient ignores the baseline"),
    ("reinforce_surrogate", reinforce_sum, "a sum over the k samples where a mean belongs"),
    ("bernoulli_log_prob", bern_log_sigmoid, "log(sigmoid) overflow"),
    ("bernoulli_log_prob", bern_bce, "the sign: you return the binary cross-entropy"),
    ("bernoulli_log_prob", bern_swapped, "x and 1 − x swapped"),
    ("bernoulli_log_prob_vjp", bern_vjp_sign, "your ∂/∂logits has the wrong sign at logits = 0: you give 0.375, "
                                              "finite differences give -0.375"),
    ("bernoulli_log_prob_vjp", bern_vjp_no_x, "your ∂/∂x is zero"),
    ("kl_standard_normal", kl_sign, "your KL is negative for μ = 0, log σ² = 1 (-0.3591; a KL is never negative): "
                                    "the sign of the KL is flipped"),
    ("kl_standard_normal", kl_log_sigma, "log σ used as log σ²"),
    ("kl_standard_normal", kl_no_half, "the missing ½"),
    ("kl_standard_normal", kl_mean, "a mean over the D latent coordinates where a sum belongs"),
    ("adam_step", adam_no_correction, "the bias correction m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ) is missing"),
    ("adam_step", adam_eps_inside, "ε inside the square root"),
    ("adam_step", adam_in_place, "changed an array the caller holds"),
    ("dense_vjp", dense_b_mean, "your ∂/∂b is 1/4 of the answer (a mean over the rows where a sum belongs)"),
    ("dense_vjp", dense_w_transposed, "your ∂/∂W has shape (2, 3), expected (3, 2)"),
    ("dense_vjp", dense_x_sign, "your ∂/∂x has the wrong sign"),
    ("gaussian_log_prob_vjp", gauss_vjp_no_half, "your ∂/∂log σ² is off by a factor of 2 (twice too large) at "
                                                 "log σ² = 0.3"),
    ("gaussian_log_prob_vjp", gauss_vjp_mu_sign, "your ∂/∂μ has the wrong sign"),
    ("gaussian_log_prob_vjp", gauss_vjp_no_broadcast_sum, "your ∂/∂x has shape (2, 3, 2), expected (3, 2)"),
    ("numerical_grad", numgrad_forward, "forward differences"),
    ("numerical_grad", numgrad_over_h, "you divide by h where 2h belongs"),
    ("numerical_grad", numgrad_mutates, "changed the caller's x"),
    ("log_mean_exp", lme_naive, "exp overflows; subtract the max first"),
    ("log_mean_exp", lme_sum, "a sum where a mean belongs"),
    ("iwae_bound", iwae_mean_log, "you return the mean of log w_i, the ELBO's estimate"),
    ("iwae_bound", iwae_sum, "a sum where a mean belongs"),
    ("iwae_bound", iwae_naive, "exp underflows to 0"),
    ("kl_diag_gaussians", kld_swapped, "q and p swapped"),
    ("kl_diag_gaussians", kld_no_minus_one, "must be 0: the −1 per coordinate"),
    ("unlabelled_bound", u_no_entropy, "the entropy H(q(y|x)) = −Σ_y q log q is missing"),
    ("unlabelled_bound", u_entropy_sign, "the sign of the entropy"),
]
