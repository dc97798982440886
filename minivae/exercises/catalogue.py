r"""The exercises, in course order: each with its lecture, the walkthrough it feeds, its signature and its grader.

The signatures are minivae's own lesson functions (``minivae.distributions``, ``bounds``, ``estimators``,
``gradcheck``), so a learner's answer can stand in for them; a vjp exercise ``name_vjp(g, *args)`` returns
the gradient of each argument, and ``adam_step`` and ``unlabelled_bound`` are the pure functions behind
``minivae.optim.Adam`` and ``minivae.m2.M2.unlabelled_bound``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from minivae.exercises import check_bounds, check_densities, check_gradients, check_training


@dataclass(frozen=True)
class Exercise:
    r"""One exercise: what to write, where it comes from, and the grader that checks it."""

    name: str
    signature: str
    formula: str
    lecture: str
    walkthrough: str
    hint: str
    grade: Callable[[Callable], None]


EXERCISES: tuple[Exercise, ...] = (
    Exercise("gaussian_log_prob", "x, mean, log_var",
             "log N(x; μ, diag σ²) = −½ Σ_d [log 2π + log σ²_d + (x_d − μ_d)²/σ²_d]\n\n"
             "x, mean and log_var (log σ², never log σ) are (..., D) and broadcast together (x (N, D) against\n"
             "mean, log_var (k, N, D)); return (...): one value per row, summed over the last axis.",
             "Zhu, Deep Generative Models II: the Gaussian −log p(x|z)", "02_one_d_latent.py",
             "σ² = np.exp(log_var); sum the three terms over axis=-1", check_densities.grade_gaussian_log_prob),
    Exercise("gaussian_log_prob_vjp", "g, x, mean, log_var",
             "The vjp of gaussian_log_prob: given g = ∂L/∂out, shape (...), return (∂L/∂x, ∂L/∂mean, ∂L/∂log_var),\n"
             "each of the shape of its argument: with r = (x − μ)/σ,\n\n"
             "    ∂/∂x = −g r/σ,   ∂/∂μ = g r/σ,   ∂/∂log σ² = ½ g (r² − 1),\n\n"
             "and a gradient is summed over the axes along which its argument was broadcast.",
             "Zhu, Deep Generative Models II, differentiated by hand (Klushyn: backprop by the chain rule)",
             "02_one_d_latent.py", "g[..., None] broadcasts g over D; sum back to each argument's shape",
             check_gradients.grade_gaussian_log_prob_vjp),
    Exercise("elbo", "log_px_given_z, kl, beta=1.0",
             "ELBO_β = E_q[log p(x|z)] − β KL(q(z|x) ‖ p(z)), per example in nats.\n\n"
             "log_px_given_z (one reparameterized sample) and kl (closed form) are (N,); return (N,).",
             "Zhu, Deep Generative Models II: the ELBO (β: Barra, Variational Autoencoders, the β-VAE)",
             "02_one_d_latent.py", "one line: the reconstruction term minus β times the KL", check_bounds.grade_elbo),
    Exercise("reparameterize", "mean, log_var, eps",
             "z = μ + σ ⊙ ε with σ = exp(½ log σ²) and ε ~ N(0, I).\n\n"
             "mean and log_var are (N, D); eps is (N, D) or (k, N, D); return the shape of eps.",
             "Shan, Variational Autoencoder, and Zhu, Deep Generative Models II: the reparameterization trick",
             "04_reinforce_vs_reparam.py", "σ = np.exp(0.5 * log_var)", check_densities.grade_reparameterize),
    Exercise("reinforce_surrogate", "f, mean, log_var, eps, baseline=None",
             "(1/k) Σ_i [f(z_i) + (f(z_i) − b)(log q(z_i) − ⊥log q(z_i))] with z_i = ⊥(μ + σ ε_i):\n"
             "its value is (1/k) Σ_i f(z_i) and its autograd gradient the REINFORCE estimate\n"
             "(1/k) Σ_i (f(z_i) − b) ∇ log q(z_i). ⊥ is getval (the stop-gradient); f maps z (k, N, D) to\n"
             "(k, N); mean, log_var are (N, D), eps (k, N, D); baseline b is None (b = 0) or an array that\n"
             "broadcasts to (k, N). Return (N,). (minivae's own also takes baseline='leave_one_out'.)",
             "The notes on Auto-Encoding Variational Bayes: REINFORCE vs reparameterization",
             "04_reinforce_vs_reparam.py",
             "z = getval(...); log q from your gaussian_log_prob; score = log_q - getval(log_q)",
             check_training.grade_reinforce_surrogate),
    Exercise("bernoulli_log_prob", "x, logits",
             "log Bern(x; σ(l)) = Σ_d [x_d l_d − softplus(l_d)], softplus(l) = log(1 + e^l).\n\n"
             "x holds targets in [0, 1] and broadcasts to logits (..., D); return (...). Finite for any l\n"
             "(±800 included): never log(sigmoid(l)).",
             "Shan, Variational Autoencoder: Bernoulli P(X|z) and the BCE loss", "05_mnist_vae.py",
             "softplus(l) = np.maximum(l, 0) + np.log1p(np.exp(-np.abs(l)))", check_densities.grade_bernoulli_log_prob),
    Exercise("bernoulli_log_prob_vjp", "g, x, logits",
             "The vjp of bernoulli_log_prob: given g = ∂L/∂out, shape (...), return (∂L/∂x, ∂L/∂logits):\n\n"
             "    ∂/∂x_d = g l_d,   ∂/∂l_d = g (x_d − σ(l_d)),\n\n"
             "smooth at l = 0, where ∂/∂l = x − ½; ∂L/∂x is summed over the samples x was broadcast along.",
             "Shan, Variational Autoencoder: the BCE loss, differentiated by hand", "05_mnist_vae.py",
             "σ(l) = 1 / (1 + np.exp(-l)); d softplus(l)/dl = σ(l)", check_gradients.grade_bernoulli_log_prob_vjp),
    Exercise("kl_standard_normal", "mean, log_var",
             "KL(N(μ, diag σ²) ‖ N(0, I)) = −½ Σ_d (1 + log σ²_d − μ_d² − σ²_d).\n\n"
             "mean and log_var are (..., D); return (...).",
             "Zhu, Deep Generative Models II, and Shan, Variational Autoencoder: the closed-form KL",
             "05_mnist_vae.py", "σ² = np.exp(log_var); a KL is never negative",
             check_densities.grade_kl_standard_normal),
    Exercise("adam_step", "theta, g, m, v, t, lr, b1, b2, eps",
             "One Adam step at step number t = 1, 2, ... (Kingma & Ba, Algorithm 1):\n\n"
             "    m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,\n"
             "    m̂ = m/(1 − β₁ᵗ),   v̂ = v/(1 − β₂ᵗ),   θ ← θ − α m̂/(√v̂ + ε).\n\n"
             "Return new arrays (theta, m, v); never change the arrays you are given.",
             "Kingma & Ba's Adam, the optimizer of Shan's PyTorch VAE example", "05_mnist_vae.py",
             "five lines, one per formula; no in-place updates", check_training.grade_adam_step),
    Exercise("dense_vjp", "g, x, W, b",
             "The vjp of a = x W + b (x (..., fan_in), W (fan_in, fan_out), b (fan_out,)): given g = ∂L/∂a,\n"
             "return (∂L/∂x, ∂L/∂W, ∂L/∂b) = (g Wᵀ, xᵀ g, Σ_n g_n), the leading axes of x being rows too.",
             "Klushyn, A brief introduction to (variational) autoencoders: backprop by the chain rule",
             "06_mnist_latent_2d.py", "reshape x and g to rows (-1, width) for ∂L/∂W and ∂L/∂b",
             check_gradients.grade_dense_vjp),
    Exercise("numerical_grad", "f, x, eps=1e-6",
             "∂f/∂x_j ≈ [f(x + h e_j) − f(x − h e_j)] / 2h for every entry j of the float64 array x\n"
             "(h = eps), f scalar; return an array of the shape of x. Central differences: error O(h²).",
             "Klushyn, A brief introduction to (variational) autoencoders: checking backprop",
             "06_mnist_latent_2d.py", "loop over np.ndindex(*x.shape), perturbing a copy of x",
             check_gradients.grade_numerical_grad),
    Exercise("log_mean_exp", "a, axis=0",
             "log (1/k) Σ_i exp(a_i) over axis, as m + log (1/k) Σ_i exp(a_i − m) with m = max_i a_i.",
             "Zhu, Deep Generative Models II: the IWAE bound's log-mean of weights (Burda et al.)", "10_iwae.py",
             "m = np.max(a, axis=axis, keepdims=True)", check_bounds.grade_log_mean_exp),
    Exercise("iwae_bound", "log_weights",
             "L_k = log (1/k) Σ_i w_i, log w_i = log p(x, z_i) − log q(z_i|x): log_weights is (k, N);\n"
             "return (N,). L_1 is the ELBO's estimate, and L_k ≥ (1/k) Σ_i log w_i (Jensen).",
             "Zhu, Deep Generative Models II: the IWAE bound L_k (Burda et al.)", "10_iwae.py",
             "your log_mean_exp over axis 0", check_bounds.grade_iwae_bound),
    Exercise("kl_diag_gaussians", "mean_q, log_var_q, mean_p, log_var_p",
             "KL(q ‖ p) = ½ Σ_d [log σ²_p − log σ²_q + (σ²_q + (μ_q − μ_p)²)/σ²_p − 1] for diagonal Gaussians.\n\n"
             "q's arguments are (N, D); p's broadcast to them; return (N,).",
             "Shan, Variational Autoencoder: the KL between two Gaussians", "11_cvae_hole_filling.py",
             "KL(q ‖ q) = 0; with μ_p = 0, log σ²_p = 0 it is kl_standard_normal",
             check_densities.grade_kl_diag_gaussians),
    Exercise("unlabelled_bound", "log_q_y, bounds",
             "M2's U(x) = Σ_y q(y|x) L(x, y) + H(q(y|x)) = Σ_y q(y|x) [L(x, y) − log q(y|x)].\n\n"
             "log_q_y = log q(y|x) and bounds = L(x, y) are (N, C), one column per class; return (N,).",
             "Shan, Variational Autoencoder: semi-supervised M2 (Kingma et al., 2014)", "12_semi_supervised_m2.py",
             "q = np.exp(log_q_y); sum over the classes, axis=-1", check_bounds.grade_unlabelled_bound),
)

BY_NAME = {e.name: e for e in EXERCISES}
