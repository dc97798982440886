# %% [markdown]
# # 03 - Two clusters through a 1-D bottleneck: the autoencoder collapses them onto a curve, the VAE still generates.
#
# Notes on "Auto-Encoding Variational Bayes" (the toy of "How autoencoders fail"): 2-D data from two Gaussian
# clusters, x ~ 1/2 N((-2, 0), I) + 1/2 N((2, 0), I), squeezed through a 1-D code.
#
# 1. The deterministic autoencoder (Klushyn, deterministic AE) z = f(x), x_hat = g(z), trained on ||x - x_hat||^2.
#    One number per point cannot hold two coordinates, so every reconstruction lands on the curve g(R), and its
#    codes follow no known distribution: decoding z ~ N(0, 1) gives points on that curve, not the data.
# 2. The VAE with a 1-D latent and a Gaussian decoder with learned variance, p(x|z) = N(mu(z), diag sigma^2(z)).
#    The variance soaks up what one code cannot say, and the KL term keeps the codes close to N(0, 1), so
#    z ~ N(0, 1), x ~ N(mu(z), diag sigma^2(z)) reproduces both clusters.
#
# **The lesson as a number:** how much farther a held-out point lies from the AE's decoding of prior codes
# z ~ N(0, 1) than from the VAE's samples (mean distance to the nearest of as many samples): above 2 (the quick
# run over seeds 0-7: 4.4 to 8.6; fresh real data lie as close as the VAE's samples).
#
# Run it as a script (about twenty-five seconds; `--quick` takes a few and writes to
# `figures/03_bottleneck_1d_quick`):
#
#     python walkthroughs/03_bottleneck_1d.py
#     python walkthroughs/03_bottleneck_1d.py --quick --out /tmp/bottleneck
#
# As a notebook it runs quick, unless `MINIVAE_WALKTHROUGH_ARGS` holds other flags (`""` for the full run).

# %%
import math

import numpy

from minivae.walkthrough import epoch_bar, lesson_check, print_table, settings

S = settings(__name__, "03_bottleneck_1d", {  # name: (quick, full, what it is); a flag beats both: --epochs 80
    "n_train": (2000, 10000, "training points from the two clusters"),
    "epochs": (60, 80, "passes over the training points, for each model"),
    "hidden": (64, 64, "width of both hidden layers of every network"),
    "batch_size": (50, 100, "points per gradient step"),
    "lr": (3e-3, 3e-3, "Adam's learning rate"),
    "n_eval": (1000, 2000, "test points, and samples drawn from each generator"),
})

# %% [markdown]
# ## The data: two clusters
#
# Training points, test points (with their cluster), and two more fresh sets used only to score samples below.

# %%
from minivae.data import two_gaussians

rng = numpy.random.default_rng(S.seed)
x_train, _ = two_gaussians(S.n_train, rng)
x_test, y_test = two_gaussians(S.n_eval, rng)
x_val, _ = two_gaussians(S.n_eval, rng)
x_fresh, _ = two_gaussians(S.n_eval, rng)
print(f"{len(x_train):,} training points, the first three:\n{x_train[:3].round(3)}")

# %% [markdown]
# ## Two models through one number
#
# The AE minimises the squared error. The VAE maximises the ELBO (Zhu, Deep Generative Models II), here the
# Gaussian case written out:
#
#     ELBO(x) = E_q[ -1/2 sum_d (log 2 pi + log sigma_d^2(z) + (x_d - mu_d(z))^2 / sigma_d^2(z)) ]
#               - KL(q(z|x) || N(0, 1)),      z = mu(x) + sigma(x) * eps.
#
# Trained on the ELBO alone from the start, this small VAE often settles on ignoring z (KL = 0, one broad
# Gaussian over both clusters); a short KL warm-up (beta from 0.1 to 1 over the first half of training) avoids it.

# %%
from minivae.models import AE, VAE
from minivae.objectives import ae_objective, kl_warmup, vae_objective
from minivae.optim import Adam
from minivae.train import TrainSettings, fit

ae = AE(2, [S.hidden, S.hidden], 1)
ae_params = fit(ae_objective(ae), ae.init(numpy.random.default_rng(S.seed)), x_train, optimizer=Adam(S.lr),
                settings=TrainSettings(S.epochs, S.batch_size, S.seed, device=S.device, progress=False),
                on_epoch=epoch_bar(S.epochs, "AE, 1-D code")).params
vae = VAE(2, [S.hidden, S.hidden], 1, likelihood="gaussian")
vae_params = fit(kl_warmup(vae, S.epochs // 2), vae.init(numpy.random.default_rng(S.seed + 1)), x_train,
                 optimizer=Adam(S.lr),
                 settings=TrainSettings(S.epochs, S.batch_size, S.seed, device=S.device, progress=False),
                 on_epoch=epoch_bar(S.epochs, "VAE, 1-D latent")).params

# %% [markdown]
# ## Reconstructions and samples
#
# The data; the AE's reconstructions g(f(x)); the VAE's (decoder mean at z = mu(x)); the VAE's samples
# z ~ N(0, 1), x = mu(z) + sigma(z) eps; and the AE's decoder applied to the same kind of z.

# %%
from minivae.distributions import sample_gaussian
from minivae.plotting import plt, scatter_panel

ae_codes = ae.encode(ae_params, x_test)
ae_recon = ae.decode(ae_params, ae_codes)
vae_codes, _ = vae.encode(vae_params, x_test)
vae_recon, _ = vae.decode(vae_params, vae_codes)
z = rng.standard_normal((S.n_eval, 1)).astype(numpy.float32)
dec_mean, dec_log_var = vae.decode(vae_params, z)
vae_samples = sample_gaussian(dec_mean, dec_log_var, rng)
ae_samples = ae.decode(ae_params, z)

window = {"xlim": (-6, 6), "ylim": (-4.5, 4.5)}
by_cluster = {"c": y_test, "cmap": "coolwarm", **window}
fig, axes = plt.subplots(1, 5, figsize=(20, 3.8), layout="constrained")
scatter_panel(axes[0], x_test, "data (colour = cluster)", **by_cluster)
scatter_panel(axes[1], ae_recon, "AE reconstructions g(f(x))", **by_cluster)
scatter_panel(axes[2], vae_recon, r"VAE reconstructions $\mu_x(\mu_z(x))$", **by_cluster)
scatter_panel(axes[3], vae_samples, r"VAE samples: $z \sim N(0,1)$, $\mu(z) + \sigma(z)\varepsilon$", color="C2",
              **window)
scatter_panel(axes[4], ae_samples, r"AE decoder g(z), $z \sim N(0,1)$", color="C1", **window)
fig.suptitle(f"AE 2-{S.hidden}-{S.hidden}-1 and VAE with a 1-D latent, {S.epochs} epochs on {S.n_train:,} points; "
             f"{S.n_eval:,} test points and samples", fontsize=11)
S.figure(fig, "03_bottleneck.png")

# %% [markdown]
# ## The codes
#
# The AE's codes f(x) follow no known distribution; the VAE's posterior means mu(x) sit close to N(0, 1), each
# cluster on one side: that is why z ~ N(0, 1) through the VAE's decoder gives both clusters.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.3), layout="constrained")
for ax, codes, title in ((axes[0], numpy.ravel(ae_codes), "AE codes f(x)"),
                         (axes[1], numpy.ravel(vae_codes), r"VAE codes $\mu(x)$")):
    bins = numpy.linspace(codes.min(), codes.max(), 60)
    for c, color in ((0, "C0"), (1, "C3")):
        ax.hist(codes[y_test == c], bins=bins, density=True, alpha=0.5, color=color,
                label=f"cluster {'left' if c == 0 else 'right'}")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("z")
grid = numpy.linspace(-3.5, 3.5, 200)
axes[1].plot(grid, 2 * numpy.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi), "k--", lw=1,
             label="2 x N(0, 1) (each cluster holds half)")
# one legend for both panels, right of the axes, never over the histograms
fig.legend(*axes[1].get_legend_handles_labels(), fontsize=8, loc="outside right center")
S.figure(fig, "03_codes.png")

# %% [markdown]
# ## The ELBO, and the notes' get_ELBO
#
# The notes' own get_ELBO code gets the Gaussian term wrong: it adds 1/(2 sigma^2) to (x - mu)^2 instead of
# multiplying, counts the constant -D/2 log 2 pi twice, makes sigma positive with abs, and returns the likelihood
# term instead of the ELBO. minivae's gaussian_log_prob (minivae.distributions) implements the formula above, with
# log sigma^2 as the network output; the table shows what the notes' formula would report for the same trained
# model. tests/test_distributions.py compares gaussian_log_prob with the density written out term by term,
# -1/2 log(2 pi sigma^2) - (x - mu)^2 / (2 sigma^2), which fails on either of the first two mistakes.

# %%
from minivae.distributions import kl_standard_normal
from minivae.train import evaluate


def mixture_log_density(x: numpy.ndarray) -> numpy.ndarray:
    r"""log p_true(x) = log [1/2 N(x; (-2, 0), I) + 1/2 N(x; (2, 0), I)], one value per row."""
    x = numpy.asarray(x, dtype=numpy.float64)
    left = -0.5 * ((x[:, 0] + 2.0) ** 2 + x[:, 1] ** 2)
    right = -0.5 * ((x[:, 0] - 2.0) ** 2 + x[:, 1] ** 2)
    return numpy.logaddexp(left, right) - math.log(2.0) - math.log(2.0 * math.pi)


def notes_get_elbo(x: numpy.ndarray, mean: numpy.ndarray, sigma: numpy.ndarray) -> float:
    r"""DELIBERATELY WRONG: the value the notes' ``get_ELBO`` returns, kept only to compare with the right one.

    It returns const - sum log|sigma| - 1/2 sum [1/(2 sigma^2) + (x - mu)^2] (the likelihood term with the
    1/(2 sigma^2) added instead of multiplied), and no KL. Never use it.
    """
    const = -x.shape[1] / 2 * math.log(2 * math.pi)
    quadratic = -0.5 * (1.0 / (2.0 * sigma**2) + (x - mean) ** 2).sum(-1)
    return float(numpy.mean(const - numpy.log(numpy.abs(sigma)).sum(-1) + quadratic))


neg_elbo = -evaluate(vae_objective(vae), vae_params, x_test, rng)
q_mean, q_log_var = vae.encode(vae_params, x_test)
kl = float(numpy.mean(kl_standard_normal(q_mean, q_log_var)))
eps = rng.standard_normal(vae_codes.shape).astype(numpy.float32)
rec_mean, rec_log_var = vae.decode(vae_params, q_mean + numpy.exp(0.5 * q_log_var) * eps)
notes_value = notes_get_elbo(x_test, rec_mean, numpy.exp(0.5 * rec_log_var))
entropy = -float(numpy.mean(mixture_log_density(x_test)))
ae_mse = float(numpy.mean(ae.loss(ae_params, x_test)))
print_table([{"quantity": "VAE negative ELBO per example (nats)", "value": neg_elbo},
             {"quantity": "  of which KL(q(z|x) || N(0, 1))", "value": kl},
             {"quantity": "true entropy -E[log p(x)] (the floor)", "value": entropy},
             {"quantity": "AE squared error per example", "value": ae_mse},
             {"quantity": "notes' get_ELBO on the same model (wrong)", "value": notes_value}],
            title=f"1-D bottleneck on two clusters ({S.n_eval} test points)")

# %% [markdown]
# ## Scoring the samples
#
# Two scores for each generator, with as many fresh data points as the reference:
#
# - "log p_true(samples)": the mean log-density of the samples under the true mixture (the obvious first try).
#   It is one-sided: points bunched on the cluster axis score *higher* than real data, so it cannot tell a
#   collapsed generator from a good one by itself.
# - "Parzen log-lik": the mean log-density of held-out data under a Gaussian kernel density estimate built on
#   the samples (Breuleux et al. 2011), with one bandwidth for every generator: the one under which real data
#   best predict a validation split. It is high only if the samples cover the data, so collapse is punished;
#   but a wide kernel can smooth a winding curve into a fair density, so it does not always catch it.
# - "nearest": the mean distance from a held-out point to its nearest sample. Samples that fill the plane where
#   the data are lie as close as fresh data do; samples on a curve leave most points far from them.

# %%
BANDWIDTHS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8)


def squared_distances(x: numpy.ndarray, samples: numpy.ndarray) -> numpy.ndarray:
    r"""||x_n - s_m||^2 for every row x_n of ``x`` and s_m of ``samples``: shape (N, M), float64."""
    x, samples = numpy.asarray(x, dtype=numpy.float64), numpy.asarray(samples, dtype=numpy.float64)
    return numpy.maximum((x * x).sum(1)[:, None] + (samples * samples).sum(1)[None, :] - 2.0 * x @ samples.T, 0.0)


def kde_log_density(d2: numpy.ndarray, h: float) -> numpy.ndarray:
    r"""log (1/M) sum_m N(x_n; s_m, h^2 I) from the squared distances ``d2`` (N, M): a Gaussian KDE on M samples."""
    # log sum_m exp(-d2/(2h^2)), with the smallest distance of each row taken out first
    nearest = d2.min(axis=1, keepdims=True)
    log_sum = numpy.log(numpy.exp(-0.5 * (d2 - nearest) / h**2).sum(axis=1)) - 0.5 * nearest[:, 0] / h**2
    return log_sum - math.log(d2.shape[1]) - math.log(2 * math.pi * h * h)


# one kernel for every generator: the bandwidth under which real data best predict the validation points
h = max(BANDWIDTHS, key=lambda b: float(kde_log_density(squared_distances(x_val, x_fresh), b).mean()))
names = {"data": "fresh data (reference)", "vae": "VAE samples", "vae_means": "VAE decoder means mu(z)",
         "ae_prior": "AE decoder g(z), z ~ N(0,1)"}
scores = {}
for key, s in (("data", x_fresh), ("vae", vae_samples), ("vae_means", dec_mean), ("ae_prior", ae_samples)):
    scores[key] = {"true_log_density": float(numpy.mean(mixture_log_density(s))),
                   "parzen": float(kde_log_density(squared_distances(x_test, s), h).mean()),
                   "nearest": float(numpy.sqrt(squared_distances(x_test, s).min(axis=1)).mean()),
                   "right_cluster_fraction": float(numpy.mean(s[:, 0] > 0)), "x2_std": float(numpy.std(s[:, 1]))}
print_table([{"generator": names[k], "log p_true(samples)": v["true_log_density"], "Parzen log-lik": v["parzen"],
              "nearest": v["nearest"], "right cluster": v["right_cluster_fraction"], "std x2": v["x2_std"]}
             for k, v in scores.items()],
            title=f"sample quality, higher is better, data row = target (Parzen bandwidth {h})")

# %% [markdown]
# ## The lesson as a number

# %%
ratio = scores["ae_prior"]["nearest"] / scores["vae"]["nearest"]
lesson = lesson_check("mean distance from a test point to the nearest AE-decoded prior sample g(z), z ~ N(0, 1), "
                      "over that to the nearest VAE sample, above 2 (fresh data: ~1)", ratio, 2.0)
metrics = {"lesson": lesson, "vae_neg_elbo": neg_elbo, "vae_kl": kl, "true_entropy": entropy, "ae_mse": ae_mse,
           "notes_get_elbo_value": notes_value, "scores": scores, "parzen_bandwidth": h,
           "vae_parzen": scores["vae"]["parzen"], "ae_prior_parzen": scores["ae_prior"]["parzen"],
           "data_parzen": scores["data"]["parzen"], "vae_true_log_density": scores["vae"]["true_log_density"],
           "ae_prior_true_log_density": scores["ae_prior"]["true_log_density"], "nearest_ratio": ratio,
           "data_true_log_density": scores["data"]["true_log_density"], "hidden": [S.hidden, S.hidden]}

# %% [markdown]
# ## As a script: save and say what was written
#
# Only `python walkthroughs/03_bottleneck_1d.py` runs this cell (a notebook skips it): it saves both trained
# models (`params.npz`, `{"ae": ..., "vae": ...}`, for `minivae.load_params`) and the numbers (`metrics.json`) in
# `--out`, lists every file written, and names the next walkthrough.

# %%
if S.script:
    S.finish({"ae": ae_params, "vae": vae_params}, metrics,
             "walkthroughs/04_reinforce_vs_reparam.py: two gradient estimators through sampling, and their variance.")
