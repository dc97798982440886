# %% [markdown]
# # 04 - Two ways to differentiate through sampling: REINFORCE (score function) against the reparameterization.
#
# Notes on "Auto-Encoding Variational Bayes", REINFORCE vs the reparameterization trick: the encoder's gradient
# of the reconstruction term E_q[f(z)], f(z) = log p(x|z), can be estimated from k samples z_i ~ q_phi(z|x) as
#
#     REINFORCE:          grad_phi E_q[f(z)] ~ (1/k) sum_i f(z_i) grad_phi log q_phi(z_i|x)
#     with a baseline:    grad_phi E_q[f(z)] ~ (1/k) sum_i (f(z_i) - b_i) grad_phi log q_phi(z_i|x),
#                         b_i = mean of f over the other k - 1 samples (leave-one-out, still unbiased)
#     reparameterization: grad_phi E_q[f(z)] ~ (1/k) sum_i grad_phi f(mu_phi(x) + sigma_phi(x) eps_i)
#
# (Shan, Variational Autoencoder; Zhu, Deep Generative Models II: z = mu + sigma * eps). All three are unbiased;
# they differ in variance. minivae.estimators writes each one as a surrogate whose autograd gradient is the
# estimator; the KL term is in closed form and the same for all three.
#
# **The lesson as a number:** at one trained VAE, the total variance of REINFORCE's encoder gradient is more than
# 3 times the reparameterization's at every number of samples k (the quick run, seeds 0-4: 6.8 to 14 times).
#
# Run it as a script (about forty seconds; `--quick` takes a few and writes to
# `figures/04_reinforce_vs_reparam_quick`):
#
#     python walkthroughs/04_reinforce_vs_reparam.py
#     python walkthroughs/04_reinforce_vs_reparam.py --quick --out /tmp/reinforce
#
# As a notebook it runs quick, unless `MINIVAE_WALKTHROUGH_ARGS` holds other flags (`""` for the full run).

# %%
from minivae.walkthrough import epoch_bar, lesson_check, print_table, progress, settings

S = settings(__name__, "04_reinforce_vs_reparam", {  # name: (quick, full, what it is); a flag beats both
    "n_train": (2000, 5000, "training points from the two clusters of walkthrough 03"),
    "pre_epochs": (20, 60, "training of the VAE whose encoder gradient is measured"),
    "curve_epochs": (10, 40, "training of each estimator's VAE for the curves"),
    "repeats": (40, 300, "gradient draws per estimator and k"),
    "ks": ((1, 4, 16), (1, 2, 4, 8, 16, 32, 64), "samples per example at which the variance is measured"),
    "hidden": (32, 32, "width of both hidden layers of encoder and decoder"),
    "batch_size": (50, 50, "points per gradient step"),
    "lr": (3e-3, 3e-3, "Adam's learning rate"),
    "curve_k": (2, 2, "samples per example while training the curves"),
    "n_test": (1000, 1000, "test points for the curves"),
})

# %% [markdown]
# ## The data and the model
#
# The two-cluster toy data of walkthrough 03, and a VAE with a 2-D latent and a Gaussian decoder with learned
# variance.

# %%
import numpy

from minivae.data import two_gaussians
from minivae.models import VAE

rng = numpy.random.default_rng(S.seed)
x_train, _ = two_gaussians(S.n_train, rng)
x_test, _ = two_gaussians(S.n_test, rng)
print(f"{len(x_train):,} training points, the first three:\n{x_train[:3].round(3)}")
vae = VAE(2, [S.hidden, S.hidden], 2, likelihood="gaussian")
TRAINED = f"VAE 2-{S.hidden}-{S.hidden}-2, {S.n_train:,} points"

# %% [markdown]
# ## One ELBO, three gradient estimators
#
# The same value; its encoder gradient is the chosen estimator's. Training, here and below, uses a short KL
# warm-up (beta from 0.1 to 1 over the first half), and every run draws the same minibatches and noise from the
# same seed, so runs that differ only in the estimator are compared at common random numbers.

# %%
from minivae.distributions import kl_standard_normal
from minivae.estimators import reinforce_surrogate, reparameterization_surrogate
from minivae.objectives import Objective, kl_warmup, vae_objective
from minivae.ops import mean as vmean
from minivae.optim import Adam
from minivae.train import FitResult, TrainSettings, fit

ESTIMATORS = ("reparameterization", "reinforce", "reinforce_baseline")
LABELS = {"reparameterization": "reparameterization", "reinforce": "REINFORCE",
          "reinforce_baseline": "REINFORCE + leave-one-out baseline"}


def elbo_estimate(estimator: str, vae: VAE, params: dict, x, eps, beta: float = 1.0):
    r"""Per-example ELBO_beta = (1/k) sum_i log p(x|z_i) - beta KL, whose encoder gradient is ``estimator``'s.

    ``eps`` is ``(k, N, z_dim)``; returns ``(N,)``.
    """
    mean, log_var = vae.encode(params, x)

    # f(z) = log p(x|z) for z of shape (k, N, z_dim)
    def f(z):
        return vae.log_px_given_z(params, x, z)

    # the reconstruction term through the chosen estimator
    if estimator == "reparameterization":
        recon = reparameterization_surrogate(f, mean, log_var, eps)
    elif estimator == "reinforce":
        recon = reinforce_surrogate(f, mean, log_var, eps)
    else:
        recon = reinforce_surrogate(f, mean, log_var, eps, baseline="leave_one_out")
    # minus beta KL(q(z|x) || N(0, I)), in closed form
    return recon - beta * kl_standard_normal(mean, log_var)


def estimator_objective(estimator: str, vae: VAE, k: int, beta: float = 1.0) -> Objective:
    """Minimise minus the batch mean of :func:`elbo_estimate` with k samples per example."""
    return Objective(lambda p, x, eps: -vmean(elbo_estimate(estimator, vae, p, x, eps, beta)),
                     lambda n: (k, n, vae.z_dim), "elbo" if beta == 1.0 else f"elbo_beta{beta:g}")


def train(objective, epochs: int, init_seed: int, desc: str, x_test=None) -> FitResult:
    """Train ``vae`` from ``vae.init(init_seed)`` on ``objective(vae, beta)`` with the KL warm-up; with
    ``x_test``, the history holds the test ELBO (at beta = 1) after every epoch."""
    return fit(kl_warmup(vae, epochs // 2, objective=objective), vae.init(numpy.random.default_rng(init_seed)),
               x_train, x_test=x_test, optimizer=Adam(S.lr),
               settings=TrainSettings(epochs, S.batch_size, S.seed, device=S.device, progress=False),
               on_epoch=epoch_bar(epochs, desc))


# %% [markdown]
# ## 1. The variance of each estimator, at one trained VAE
#
# Train one VAE (reparameterization), then, at those parameters and on one fixed minibatch, draw the encoder
# gradient of the minibatch ELBO many times with fresh noise, for each estimator and each number of samples k,
# and report its total variance tr Cov[g] (summed over all encoder weights). Every estimator's variance falls
# like 1/k; the ratio between them is what the trick buys.

# %%
from autograd import grad
from matplotlib.ticker import NullLocator

from minivae.plotting import plt
from minivae.tree import tree_leaves

params = train(vae_objective, S.pre_epochs, S.seed, "VAE to measure").params


def encoder_gradient_variance(estimator: str, x, k: int) -> float:
    r"""tr Cov[g] of the encoder gradient g of the minibatch ELBO at ``params``, over S.repeats draws of eps."""
    def neg_elbo(encoder, eps):
        return -vmean(elbo_estimate(estimator, vae, {"encoder": encoder, "decoder": params["decoder"]}, x, eps))

    grad_encoder = grad(neg_elbo)
    draws = []
    for _ in range(S.repeats):
        eps = rng.standard_normal((k, len(x), vae.z_dim)).astype(x.dtype)
        draws.append(numpy.concatenate([numpy.ravel(g) for g in tree_leaves(grad_encoder(params["encoder"], eps))]))
    # sum over weights of the sample variance over draws
    return float(numpy.asarray(draws, dtype=numpy.float64).var(axis=0, ddof=1).sum())


batch = x_test[:100]
variance = {est: {} for est in ESTIMATORS}
for k in progress(S.ks, "gradient variance, each k", len(S.ks)):
    for est in ESTIMATORS:
        if est != "reinforce_baseline" or k >= 2:  # leave-one-out needs at least two samples
            variance[est][k] = encoder_gradient_variance(est, batch, k)

fig, ax = plt.subplots(figsize=(7.5, 3.8), layout="constrained")
for est, v in variance.items():
    ax.loglog(list(v), list(v.values()), marker="o", ms=4, label=LABELS[est])
ks = numpy.array(sorted(variance["reparameterization"]), dtype=float)
ax.loglog(ks, variance["reparameterization"][int(ks[0])] * ks[0] / ks, "k:", lw=1, label="1/k")
# whole-number ticks at the k that were measured
ax.set_xticks(ks, [f"{k:g}" for k in ks])
ax.xaxis.set_minor_locator(NullLocator())
ax.set_xlabel("samples k per example")
ax.set_ylabel("tr Cov of the encoder gradient")
ax.set_title(f"encoder gradient variance\n{TRAINED}, {S.pre_epochs} epochs; {S.repeats} draws per point",
             fontsize=10)
ax.grid(alpha=0.3, which="both")
# the legend right of the axes, never over the lines
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="leave-one-out needs k >= 2",
          title_fontsize=8)
S.figure(fig, "04_gradient_variance.png")

# %% [markdown]
# ## 2. Training with each estimator, at equal steps
#
# Three VAEs from the same initial weights, trained for the same number of steps with the same k samples per
# example, one per estimator (the decoder gets its ordinary gradient in all three); the test ELBO after every
# epoch is the mean over the same k sampled z per point, so the curves differ only through the estimator. On
# this small 2-D problem the ELBO is dominated by the decoder and Adam rescales every gradient, so the final gap
# is small (REINFORCE shows its noise mostly as dips early on): the variance ratio is the robust finding.
# REINFORCE weights each score by f(z) = log p(x|z), a sum over the dimensions of x, so on data with many more
# dimensions the ratio should be far larger (not measured here).

# %%
curves = {}
for est in ESTIMATORS:
    history = train(lambda v, beta, est=est: estimator_objective(est, v, S.curve_k, beta), S.curve_epochs,
                    S.seed + 1, LABELS[est], x_test).history
    curves[est] = [h["test_elbo"] for h in history]
fig, ax = plt.subplots(figsize=(7.5, 3.6), layout="constrained")
for est, c in curves.items():
    ax.plot(range(1, S.curve_epochs + 1), c, marker="o", ms=3, label=LABELS[est])
ax.set_xlabel("epoch")
ax.set_ylabel(f"ELBO on {S.n_test:,} test points\n(nats per point)")
ax.set_title(f"{TRAINED}: equal steps, k = {S.curve_k} samples per example", fontsize=10)
ax.grid(alpha=0.3)
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
S.figure(fig, "04_training_curves.png")

# %% [markdown]
# ## The numbers, and the lesson as a number

# %%
rows = [{"k": k, "reparam": variance["reparameterization"][k], "REINFORCE": variance["reinforce"][k],
         "REINFORCE+baseline": variance["reinforce_baseline"].get(k, "-"),
         "REINFORCE / reparam": variance["reinforce"][k] / variance["reparameterization"][k],
         "baseline / reparam": (variance["reinforce_baseline"][k] / variance["reparameterization"][k]
                                if k >= 2 else "-")} for k in S.ks]
print_table(rows, title=f"tr Cov of the encoder gradient ({S.repeats} draws, minibatch of {len(batch)}; "
                        "'-': leave-one-out needs k >= 2 samples)")
print_table([{"estimator": LABELS[est], "test ELBO after training": c[-1], "best epoch ELBO": max(c)}
             for est, c in curves.items()], title=f"{S.curve_epochs} epochs each, k = {S.curve_k}")
ratios = [r["REINFORCE / reparam"] for r in rows]
lesson = lesson_check("REINFORCE's encoder-gradient variance over the reparameterization's, the smallest ratio over "
                      "every k measured, above 3", min(ratios), 3.0)
metrics = {"lesson": lesson, "variance": {est: {str(k): v for k, v in d.items()} for est, d in variance.items()},
           "variance_ratio": {str(r["k"]): r["REINFORCE / reparam"] for r in rows},
           "baseline_ratio": {str(r["k"]): r["baseline / reparam"] for r in rows if r["k"] >= 2},
           "min_variance_ratio": min(ratios), "variance_ratio_k1": ratios[0], "curves": curves,
           "final_elbo": {est: c[-1] for est, c in curves.items()}}

# %% [markdown]
# ## As a script: save and say what was written
#
# Only `python walkthroughs/04_reinforce_vs_reparam.py` runs this cell (a notebook skips it): it saves the VAE
# whose gradients were measured (`params.npz`, for `minivae.load_params`) and the numbers (`metrics.json`) in
# `--out`, lists every file written, and names the next walkthrough.

# %%
if S.script:
    S.finish(params, metrics, "walkthroughs/05_mnist_vae.py: the main job, a VAE on MNIST digits.")


# %% [markdown]
# ## Try it yourself
#
# Write this lesson's formulas by hand and let the grader check them with the properties that test
# minivae. `python -m minivae.exercises start DIR` writes `DIR/my_vae.py`, one stub per exercise; fill in
# `reparameterize`, `reinforce_surrogate`, then run, in `DIR`:
#
#     python -m minivae.exercises check my_vae.py reparameterize
#     python -m minivae.exercises check my_vae.py reinforce_surrogate
#
# Each prints PASS, TODO, or FAIL with the first property that fails and the mistake it recognises
# (docs/exercises.md lists every exercise).
