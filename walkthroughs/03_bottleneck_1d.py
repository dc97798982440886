# %% [markdown]
# # 03 - Two clusters through a 1-D bottleneck: the autoencoder collapses them onto a curve, the VAE still generates.
#
# Notes on "Auto-Encoding Variational Bayes" (the toy of "How autoencoders fail"): 2-D data from two Gaussian
# clusters, x ~ 1/2 N((-2, 0), I) + 1/2 N((2, 0), I), squeezed through a 1-D code.
#
# 1. The deterministic autoencoder (Klushyn, deterministic AE) z = f(x), x_hat = g(z), trained on ||x - x_hat||^2.
#    One number per point cannot hold two coordinates, so every reconstruction lands on the curve g(R), and its
#    codes follow no known distribution: decoding z ~ N(0, 1) gives points on that curve, not the data.
# 2. The VAE with a 1-D latent and a Gaussian decoder with learned variance, p(x|z) = N(mu(z), diag sigma^2(z)),
#    trained on the ELBO (Zhu, Deep Generative Models II), here the Gaussian case written out:
#
#        ELBO(x) = E_q[ -1/2 sum_d (log 2 pi + log sigma_d^2(z) + (x_d - mu_d(z))^2 / sigma_d^2(z)) ]
#                  - KL(q(z|x) || N(0, 1)),      z = mu(x) + sigma(x) * eps.
#
#    The variance soaks up what one code cannot say, and the KL term keeps the codes close to N(0, 1), so
#    z ~ N(0, 1), x ~ N(mu(z), diag sigma^2(z)) reproduces both clusters. Trained on the ELBO alone from the
#    start, this small VAE often settles on ignoring z (KL = 0, one broad Gaussian over both clusters); a
#    short KL warm-up (beta from 0.1 to 1 over the first half of training) avoids that.
#
# The notes' own get_ELBO code gets that Gaussian term wrong: it adds 1/(2 sigma^2) to (x - mu)^2 instead of
# multiplying, counts the constant -D/2 log 2 pi twice, makes sigma positive with abs, and returns the likelihood
# term instead of the ELBO. minivae's gaussian_log_prob (minivae.distributions) implements the formula above, with
# log sigma^2 as the network output; the table shows what the notes' formula would have reported for the same
# trained model. tests/test_distributions.py compares gaussian_log_prob with the density written out term by term,
# -1/2 log(2 pi sigma^2) - (x - mu)^2 / (2 sigma^2), which fails on either of the first two mistakes.
#
# Numbers: the per-example negative ELBO (nats) beside the true entropy -E[log p(x)] of the mixture (no model
# can beat it on average), the AE's squared error, and two sample-quality scores for 2,000 draws (1,000 with
# --quick) of each generator, with as many fresh data points as the reference:
#
# - "log p_true(samples)": the mean log-density of the samples under the true mixture (the obvious first try). It is
#   one-sided: points bunched on the cluster axis score *higher* than real data, so it cannot tell a collapsed
#   generator from a good one by itself.
# - "Parzen log-lik": the mean log-density of held-out data under a Gaussian kernel density estimate built on the
#   samples (Breuleux et al. 2011), with one bandwidth for every generator: the one under which real data best
#   predict a validation split. It is high only if the samples cover the data, so collapse is punished. The
#   VAE's samples beat the AE's decoded prior codes on this score.
#
# Saves in --out:
# - 03_bottleneck.png  data; AE reconstructions; VAE reconstructions (decoder mean at z = mu(x)); VAE samples
#                      z ~ N(0, 1), x = mu(z) + sigma(z) eps; the AE decoding of z ~ N(0, 1)
# - 03_codes.png       the learned 1-D codes by cluster: AE codes f(x), VAE posterior means mu(x) beside N(0, 1)
#
# Run it (about twenty-five seconds; --quick takes under ten):
#
#     python walkthroughs/03_bottleneck_1d.py
#     python walkthroughs/03_bottleneck_1d.py --quick --out /tmp/bottleneck
#
# Also saved in --out: params.npz (both models, {"ae": ..., "vae": ...}; load it with minivae.load_params)
# and metrics.json.

# %%
from __future__ import annotations

import math
import time

import numpy

from minivae.data import two_gaussians
from minivae.distributions import kl_standard_normal, sample_gaussian
from minivae.models import AE, VAE
from minivae.objectives import ae_objective, kl_warmup, vae_objective
from minivae.optim import Adam
from minivae.plotting import plt, save_figure, scatter_panel
from minivae.train import Settings, evaluate, fit
from minivae.walkthrough import Run, finish, lesson, parse_flags, print_table, show_progress, walkthrough_parser

BANDWIDTHS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8)
WINDOW = {"xlim": (-6, 6), "ylim": (-4.5, 4.5)}  # the common axes of the scatter panels

# %% [markdown]
# ## Settings
#
# (quick, full) for each setting. The quick run (60 epochs on 2,000 points) already shows the AE's
# collapse and the VAE's two clusters.

# %%
OUT = "figures/03_bottleneck_1d"
SETTINGS = {  # name: (quick, full)
    "n_train": (2000, 10000),  # training points from the two clusters
    "epochs": (60, 80),
    "hidden": (64, 64),  # width of both hidden layers of every network
    "batch_size": (50, 100),
    "lr": (3e-3, 3e-3),
    "n_eval": (1000, 2000),  # test points, and samples drawn from each generator
}


# %%
def parse_args(argv: list[str] | None = None):
    """The flags (--quick, --seed, --out, --device), checked before anything runs; the settings above."""
    return parse_flags(walkthrough_parser(lesson(__name__), OUT), argv, SETTINGS)


# %% [markdown]
# ## The true density, and a Parzen window to score samples

# %%
def mixture_log_density(x: numpy.ndarray) -> numpy.ndarray:
    r"""log p_true(x) = log [1/2 N(x; (-2, 0), I) + 1/2 N(x; (2, 0), I)], one value per row."""
    x = numpy.asarray(x, dtype=numpy.float64)
    left = -0.5 * ((x[:, 0] + 2.0) ** 2 + x[:, 1] ** 2)
    right = -0.5 * ((x[:, 0] - 2.0) ** 2 + x[:, 1] ** 2)
    return numpy.logaddexp(left, right) - math.log(2.0) - math.log(2.0 * math.pi)


# %%
def squared_distances(x: numpy.ndarray, samples: numpy.ndarray) -> numpy.ndarray:
    r"""||x_n - s_m||^2 for every row x_n of ``x`` and s_m of ``samples``: shape (N, M), float64."""
    x, samples = numpy.asarray(x, dtype=numpy.float64), numpy.asarray(samples, dtype=numpy.float64)
    d2 = (x * x).sum(1)[:, None] + (samples * samples).sum(1)[None, :] - 2.0 * x @ samples.T
    return numpy.maximum(d2, 0.0)


# %%
def kde_log_density(d2: numpy.ndarray, h: float) -> numpy.ndarray:
    r"""log (1/M) sum_m N(x_n; s_m, h^2 I) from the squared distances ``d2`` (N, M): a Gaussian KDE on M samples."""
    # log sum_m exp(-d2/(2h^2)), with the smallest distance of each row taken out first
    nearest = d2.min(axis=1, keepdims=True)
    log_sum = numpy.log(numpy.exp(-0.5 * (d2 - nearest) / h**2).sum(axis=1)) - 0.5 * nearest[:, 0] / h**2
    return log_sum - math.log(d2.shape[1]) - math.log(2 * math.pi * h * h)


# %%
def parzen_bandwidth(x_ref: numpy.ndarray, x_val: numpy.ndarray) -> float:
    """The bandwidth from BANDWIDTHS under which a KDE on real data ``x_ref`` best predicts ``x_val``."""
    d2 = squared_distances(x_val, x_ref)
    return max(BANDWIDTHS, key=lambda h: float(kde_log_density(d2, h).mean()))


# %%
def parzen_score(samples: numpy.ndarray, x_test: numpy.ndarray, h: float) -> float:
    """Mean log-density of ``x_test`` under a Gaussian KDE of bandwidth ``h`` on ``samples`` (Parzen window)."""
    return float(kde_log_density(squared_distances(x_test, samples), h).mean())


# %% [markdown]
# ## The notes' get_ELBO, kept only to compare
#
# DELIBERATELY WRONG: what the notes' formula would report for the same trained model.

# %%
def notes_get_elbo(x: numpy.ndarray, mean: numpy.ndarray, sigma: numpy.ndarray) -> float:
    r"""DELIBERATELY WRONG: the value the notes' ``get_ELBO`` returns, kept only to compare with the right one.

    It returns const - sum log|sigma| - 1/2 sum [1/(2 sigma^2) + (x - mu)^2] (the likelihood term with the
    1/(2 sigma^2) added instead of multiplied), and no KL. Never use it.
    """
    const = -x.shape[1] / 2 * math.log(2 * math.pi)
    quadratic = -0.5 * (1.0 / (2.0 * sigma**2) + (x - mean) ** 2).sum(-1)
    return float(numpy.mean(const - numpy.log(numpy.abs(sigma)).sum(-1) + quadratic))


# %% [markdown]
# ## The codes figure

# %%
def plot_codes(ae_codes: numpy.ndarray, vae_codes: numpy.ndarray, labels: numpy.ndarray, path):
    """Histograms of the 1-D codes per cluster: AE codes f(x), and VAE means mu(x) beside the prior N(0, 1)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.3))
    for ax, codes, title in ((axes[0], ae_codes, "AE codes f(x)"), (axes[1], vae_codes, r"VAE codes $\mu(x)$")):
        bins = numpy.linspace(codes.min(), codes.max(), 60)
        for c, color in ((0, "C0"), (1, "C3")):
            ax.hist(codes[labels == c], bins=bins, density=True, alpha=0.5, color=color,
                    label=f"cluster {'left' if c == 0 else 'right'}")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("z")
    grid = numpy.linspace(-3.5, 3.5, 200)
    axes[1].plot(grid, 2 * numpy.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi), "k--", lw=1,
                 label="2 x N(0, 1) (each cluster holds half)")
    for ax in axes:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


# %% [markdown]
# ## The run
#
# Train the AE and the VAE (with a KL warm-up) on the same points, then reconstruct, generate and score.

# %%
def main(argv: list[str] | None = None) -> Run:
    started = time.perf_counter()
    args = parse_args(argv)
    rng = numpy.random.default_rng(args.seed)
    x_train, _ = two_gaussians(args.n_train, rng)
    x_test, y_test = two_gaussians(args.n_eval, rng)
    x_val, _ = two_gaussians(args.n_eval, rng)
    x_fresh, _ = two_gaussians(args.n_eval, rng)

    # 1. the deterministic AE with a 1-D bottleneck, trained on the squared error
    ae = AE(2, [args.hidden, args.hidden], 1)
    ae_params = fit(ae_objective(ae), ae.init(numpy.random.default_rng(args.seed)), x_train, optimizer=Adam(args.lr),
                    settings=Settings(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                      device=args.device, progress=show_progress())).params
    # 2. the VAE with a 1-D latent and a Gaussian decoder with learned variance, trained on the ELBO_beta with
    # beta rising linearly 0.1 -> 1 over the first half of the epochs (KL warm-up)
    vae = VAE(2, [args.hidden, args.hidden], 1, likelihood="gaussian")
    vae_params = fit(kl_warmup(vae, args.epochs // 2), vae.init(numpy.random.default_rng(args.seed + 1)), x_train,
                     optimizer=Adam(args.lr),
                     settings=Settings(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                       device=args.device, progress=show_progress())).params

    # reconstructions: g(f(x)) for the AE, the decoder mean at z = mu(x) for the VAE
    ae_codes = ae.encode(ae_params, x_test)
    ae_recon = ae.decode(ae_params, ae_codes)
    vae_codes, _ = vae.encode(vae_params, x_test)
    vae_recon, _ = vae.decode(vae_params, vae_codes)
    # generation: z ~ N(0, 1) through the VAE decoder (with its noise) and through the AE decoder
    z = rng.standard_normal((args.n_eval, 1)).astype(numpy.float32)
    dec_mean, dec_log_var = vae.decode(vae_params, z)
    vae_samples = sample_gaussian(dec_mean, dec_log_var, rng)
    ae_samples = ae.decode(ae_params, z)

    # per-example negative ELBO (sampled z), its KL term, and what the notes' formula would report
    neg_elbo = -evaluate(vae_objective(vae), vae_params, x_test, rng)
    kl = float(numpy.mean(kl_standard_normal(*vae.encode(vae_params, x_test))))
    eps = rng.standard_normal(vae_codes.shape).astype(numpy.float32)
    q_mean, q_log_var = vae.encode(vae_params, x_test)
    rec_mean, rec_log_var = vae.decode(vae_params, q_mean + numpy.exp(0.5 * q_log_var) * eps)
    notes_value = notes_get_elbo(x_test, rec_mean, numpy.exp(0.5 * rec_log_var))
    entropy = -float(numpy.mean(mixture_log_density(x_test)))
    ae_mse = float(numpy.mean(ae.loss(ae_params, x_test)))

    # one kernel for every generator: the bandwidth that suits real data best
    h = parzen_bandwidth(x_fresh, x_val)
    scores = {}
    for name, s in (("data", x_fresh), ("vae", vae_samples), ("vae_means", dec_mean), ("ae_prior", ae_samples)):
        scores[name] = {"true_log_density": float(numpy.mean(mixture_log_density(s))),
                        "parzen": parzen_score(s, x_test, h), "right_cluster_fraction": float(numpy.mean(s[:, 0] > 0)),
                        "x2_std": float(numpy.std(s[:, 1]))}

    fig, axes = plt.subplots(1, 5, figsize=(20, 3.6))
    by_cluster = {"c": y_test, "cmap": "coolwarm", **WINDOW}
    scatter_panel(axes[0], x_test, "data (colour = cluster)", **by_cluster)
    scatter_panel(axes[1], ae_recon, "AE reconstructions g(f(x))", **by_cluster)
    scatter_panel(axes[2], vae_recon, r"VAE reconstructions $\mu_x(\mu_z(x))$", **by_cluster)
    scatter_panel(axes[3], vae_samples, r"VAE samples: $z \sim N(0,1)$, $\mu(z) + \sigma(z)\varepsilon$", color="C2",
                  **WINDOW)
    scatter_panel(axes[4], ae_samples, r"AE decoder g(z), $z \sim N(0,1)$", color="C1", **WINDOW)
    fig.suptitle(f"AE 2-{args.hidden}-{args.hidden}-1 and VAE with a 1-D latent, {args.epochs} epochs on "
                 f"{args.n_train:,} points; {args.n_eval:,} test points and samples", fontsize=11)
    figures = [save_figure(fig, args.out / "03_bottleneck.png"),
               plot_codes(numpy.ravel(ae_codes), numpy.ravel(vae_codes), y_test, args.out / "03_codes.png")]

    print_table([{"quantity": "VAE negative ELBO per example (nats)", "value": neg_elbo},
                 {"quantity": "  of which KL(q(z|x) || N(0, 1))", "value": kl},
                 {"quantity": "true entropy -E[log p(x)] (the floor)", "value": entropy},
                 {"quantity": "AE squared error per example", "value": ae_mse},
                 {"quantity": "notes' get_ELBO on the same model (wrong)", "value": notes_value}],
                title=f"1-D bottleneck on two clusters ({args.n_eval} test points)")
    names = {"data": "fresh data (reference)", "vae": "VAE samples", "vae_means": "VAE decoder means mu(z)",
             "ae_prior": "AE decoder g(z), z ~ N(0,1)"}
    print_table([{"generator": names[k], "log p_true(samples)": v["true_log_density"], "Parzen log-lik": v["parzen"],
                  "right cluster": v["right_cluster_fraction"], "std x2": v["x2_std"]}
                 for k, v in scores.items()],
                title=f"sample quality, higher is better, data row = target (Parzen bandwidth {h})")
    metrics = {"vae_neg_elbo": neg_elbo, "vae_kl": kl, "true_entropy": entropy, "ae_mse": ae_mse,
               "notes_get_elbo_value": notes_value, "scores": scores, "parzen_bandwidth": h,
               "vae_parzen": scores["vae"]["parzen"], "ae_prior_parzen": scores["ae_prior"]["parzen"],
               "data_parzen": scores["data"]["parzen"], "vae_true_log_density": scores["vae"]["true_log_density"],
               "ae_prior_true_log_density": scores["ae_prior"]["true_log_density"],
               "data_true_log_density": scores["data"]["true_log_density"], "n_train": args.n_train,
               "epochs": args.epochs, "hidden": [args.hidden, args.hidden], "seed": args.seed, "quick": args.quick,
               "wall_seconds": time.perf_counter() - started}
    return finish(args.out, {"ae": ae_params, "vae": vae_params}, metrics, figures,
                  "walkthroughs/04_reinforce_vs_reparam.py: two gradient estimators through sampling, and their "
                  "variance.")


# %%
if __name__ == "__main__":
    run = main()
