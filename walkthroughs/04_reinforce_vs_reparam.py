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
# What it does, on the two-cluster toy data of walkthrough 03 with a VAE (2-D latent, Gaussian decoder with
# learned variance):
#
# 1. Trains one VAE (reparameterization, with a short KL warm-up), then, at those parameters and on one fixed
#    minibatch, draws the encoder gradient of the minibatch ELBO many times with fresh noise for each estimator
#    and each number of samples k, and reports its total variance tr Cov[g] (summed over all encoder weights).
#    Every estimator's variance falls like 1/k; the ratio between them is what the trick buys.
# 2. Trains three VAEs from the same initial weights for the same number of steps, with the same k = 2 samples
#    per example, one per estimator (the decoder gets its ordinary gradient in all three), and records the
#    test ELBO after every epoch (the mean over the same k = 2 sampled z per point: the three runs draw the
#    same noise, so the curves differ only through the estimator). On this small 2-D problem the ELBO is dominated by
#    the decoder and Adam rescales every gradient, so the final gap between the curves is small (REINFORCE
#    shows its noise mostly as dips early on): the variance ratio is the robust finding. REINFORCE weights each
#    score by f(z) = log p(x|z), a sum over the dimensions of x, so on data with many more dimensions the ratio
#    should be far larger (not measured here).
#
# Saves in --out:
# - 04_gradient_variance.png  tr Cov of the encoder gradient against k, per estimator (log-log)
# - 04_training_curves.png    test ELBO per epoch for each estimator, at equal steps
#
# Run it (about forty seconds; --quick takes a few):
#
#     python walkthroughs/04_reinforce_vs_reparam.py
#     python walkthroughs/04_reinforce_vs_reparam.py --quick --out /tmp/reinforce
#
# Also saved in --out: params.npz (the VAE whose gradients were measured; load it with minivae.load_params)
# and metrics.json.

# %%
from __future__ import annotations

import time

import numpy
from autograd import grad
from matplotlib.ticker import NullLocator

from minivae.data import two_gaussians
from minivae.distributions import kl_standard_normal
from minivae.estimators import reinforce_surrogate, reparameterization_surrogate
from minivae.models import VAE
from minivae.objectives import Objective, kl_warmup, vae_objective
from minivae.ops import mean as vmean
from minivae.optim import Adam
from minivae.plotting import plt, save_curves, save_figure
from minivae.train import FitResult, Settings, fit
from minivae.tree import tree_leaves
from minivae.walkthrough import (
    Run,
    finish,
    lesson,
    parse_flags,
    print_table,
    progress,
    show_progress,
    walkthrough_parser,
)

ESTIMATORS = ("reparameterization", "reinforce", "reinforce_baseline")
LABELS = {"reparameterization": "reparameterization", "reinforce": "REINFORCE",
          "reinforce_baseline": "REINFORCE + leave-one-out baseline"}
Z_DIM = 2

# %% [markdown]
# ## Settings
#
# (quick, full) for each setting. The quick run (k = 1, 4, 16; 40 draws each) already shows
# REINFORCE's variance far above the reparameterization's; the full run measures k = 1 ... 64 with 300 draws.

# %%
OUT = "figures/04_reinforce_vs_reparam"
SETTINGS = {  # name: (quick, full)
    "n_train": (2000, 5000),  # training points from the two clusters of walkthrough 03
    "pre_epochs": (20, 60),  # training of the VAE whose encoder gradient is measured
    "curve_epochs": (10, 40),  # training of each estimator's VAE for the curves
    "repeats": (40, 300),  # gradient draws per estimator and k
    "ks": ((1, 4, 16), (1, 2, 4, 8, 16, 32, 64)),  # samples per example
    "hidden": (32, 32),
    "batch_size": (50, 50),
    "lr": (3e-3, 3e-3),
    "curve_k": (2, 2),  # samples per example while training the curves
    "n_test": (1000, 1000),
}


# %%
def parse_args(argv: list[str] | None = None):
    """The flags (--quick, --seed, --out, --device), checked before anything runs; the settings above."""
    return parse_flags(walkthrough_parser(lesson(__name__), OUT), argv, SETTINGS)


# %% [markdown]
# ## One ELBO, three gradient estimators
#
# The same value; its encoder gradient is the chosen estimator's.

# %%
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


# %%
def estimator_objective(estimator: str, vae: VAE, k: int, beta: float = 1.0) -> Objective:
    """Minimise minus the batch mean of :func:`elbo_estimate` with k samples per example."""
    return Objective(lambda p, x, eps: -vmean(elbo_estimate(estimator, vae, p, x, eps, beta)),
                     lambda n: (k, n, vae.z_dim), "elbo" if beta == 1.0 else f"elbo_beta{beta:g}")


# %% [markdown]
# ## Training, at common random numbers

# %%
def train(objective, vae: VAE, x, x_test, epochs: int, args, init_seed: int) -> FitResult:
    """Train from ``vae.init(init_seed)`` on ``objective(vae, beta)``, beta rising 0.1 -> 1 over the first half.

    With ``x_test``, the history holds the test ELBO (at beta = 1) after every epoch. Every run draws the same
    minibatches and noise from the same seed, so runs that differ only in the estimator are compared at
    common random numbers.
    """
    return fit(kl_warmup(vae, epochs // 2, objective=objective), vae.init(numpy.random.default_rng(init_seed)), x,
               x_test=x_test, optimizer=Adam(args.lr),
               settings=Settings(epochs=epochs, batch_size=args.batch_size, seed=args.seed, device=args.device,
                                 progress=show_progress()))


# %% [markdown]
# ## The variance of an estimator

# %%
def encoder_gradient_variance(estimator: str, vae: VAE, params: dict, x, k: int, repeats: int,
                              rng: numpy.random.Generator) -> float:
    r"""tr Cov[g] of the encoder gradient g of the minibatch ELBO, over ``repeats`` fresh draws of eps."""
    def neg_elbo(encoder, eps):
        return -vmean(elbo_estimate(estimator, vae, {"encoder": encoder, "decoder": params["decoder"]}, x, eps))

    grad_encoder = grad(neg_elbo)
    draws = []
    for _ in range(repeats):
        eps = rng.standard_normal((k, len(x), vae.z_dim)).astype(x.dtype)
        draws.append(numpy.concatenate([numpy.ravel(g) for g in tree_leaves(grad_encoder(params["encoder"], eps))]))
    draws = numpy.asarray(draws, dtype=numpy.float64)
    # sum over weights of the sample variance over draws
    return float(draws.var(axis=0, ddof=1).sum())


# %% [markdown]
# ## The variance figure

# %%
def plot_variance(variance: dict, path, title: str):
    """tr Cov of the encoder gradient against k for each estimator, on log-log axes, with a 1/k guide."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for est, v in variance.items():
        ax.loglog(list(v), list(v.values()), marker="o", ms=4, label=LABELS[est])
    ks = numpy.array(sorted(variance["reparameterization"]), dtype=float)
    first = variance["reparameterization"][int(ks[0])]
    ax.loglog(ks, first * ks[0] / ks, "k:", lw=1, label="1/k")
    # whole-number ticks at the k that were measured
    ax.set_xticks(ks, [f"{k:g}" for k in ks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("samples k per example")
    ax.set_ylabel("tr Cov of the encoder gradient")
    ax.set_title(f"encoder gradient variance\n{title}\n(leave-one-out needs k >= 2)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return save_figure(fig, path)


# %% [markdown]
# ## The run
#
# 1. the variance of each estimator at one trained VAE; 2. one training run per estimator, at equal steps.

# %%
def main(argv: list[str] | None = None) -> Run:
    started = time.perf_counter()
    args = parse_args(argv)
    rng = numpy.random.default_rng(args.seed)
    x_train, _ = two_gaussians(args.n_train, rng)
    x_test, _ = two_gaussians(args.n_test, rng)
    vae = VAE(2, [args.hidden, args.hidden], Z_DIM, likelihood="gaussian")

    # 1. one trained VAE; the variance of each estimator of its encoder gradient on one minibatch
    params = train(vae_objective, vae, x_train, None, args.pre_epochs, args, args.seed).params
    batch = x_test[:100]
    variance = {est: {} for est in ESTIMATORS}
    for k in progress(args.ks, "gradient variance, each k", len(args.ks)):
        for est in ESTIMATORS:
            if est == "reinforce_baseline" and k < 2:
                continue  # leave-one-out needs at least two samples
            variance[est][k] = encoder_gradient_variance(est, vae, params, batch, k, args.repeats, rng)
    trained = f"VAE 2-{args.hidden}-{args.hidden}-{Z_DIM}, {args.n_train:,} points"
    figures = [plot_variance(variance, args.out / "04_gradient_variance.png",
                             f"{trained}, {args.pre_epochs} epochs; {args.repeats} draws per point")]

    # 2. training curves at equal steps, same initial weights, same k for every estimator
    curves = {}
    for est in ESTIMATORS:
        history = train(lambda v, beta, est=est: estimator_objective(est, v, args.curve_k, beta), vae, x_train,
                        x_test, args.curve_epochs, args, args.seed + 1).history
        curves[est] = [h["test_elbo"] for h in history]
    epochs = list(range(1, args.curve_epochs + 1))
    figures.append(save_curves({LABELS[est]: (epochs, c) for est, c in curves.items()},
                               args.out / "04_training_curves.png",
                               ylabel=f"ELBO on {args.n_test:,} test points (nats per point)",
                               title=f"{trained}: equal steps, k = {args.curve_k} samples per example"))

    rows = [{"k": k, "reparam": variance["reparameterization"][k], "REINFORCE": variance["reinforce"][k],
             "REINFORCE+baseline": variance["reinforce_baseline"].get(k, "-"),
             "REINFORCE / reparam": variance["reinforce"][k] / variance["reparameterization"][k],
             "baseline / reparam": (variance["reinforce_baseline"][k] / variance["reparameterization"][k]
                                    if k >= 2 else "-")} for k in args.ks]
    print_table(rows, title=f"tr Cov of the encoder gradient ({args.repeats} draws, minibatch of {len(batch)}; "
                            "'-': leave-one-out needs k >= 2 samples)")
    print_table([{"estimator": LABELS[est], "test ELBO after training": c[-1], "best epoch ELBO": max(c)}
                 for est, c in curves.items()], title=f"{args.curve_epochs} epochs each, k = {args.curve_k}")
    ratios = [r["REINFORCE / reparam"] for r in rows]
    metrics = {"variance": {est: {str(k): v for k, v in d.items()} for est, d in variance.items()},
               "variance_ratio": {str(r["k"]): r["REINFORCE / reparam"] for r in rows},
               "baseline_ratio": {str(r["k"]): r["baseline / reparam"] for r in rows if r["k"] >= 2},
               "min_variance_ratio": min(ratios), "variance_ratio_k1": rows[0]["REINFORCE / reparam"],
               "curves": curves, "final_elbo": {est: c[-1] for est, c in curves.items()},
               "ks": list(args.ks), "repeats": args.repeats, "curve_k": args.curve_k, "n_train": args.n_train,
               "seed": args.seed, "quick": args.quick, "wall_seconds": time.perf_counter() - started}
    return finish(args.out, params, metrics, figures,
                  "walkthroughs/05_mnist_vae.py: the main job, a VAE on MNIST digits.")


# %%
if __name__ == "__main__":
    run = main()


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
