# %% [markdown]
# # 02 - A 1-D latent z and a 2-D observation x: the decoder mean traces a curve, the variance makes it a band.
#
# Zhu, Deep Generative Models II, "an example with MLP": a 1-D latent variable z, a 2-D observation x, and "NN +
# Gaussian with a diagonal covariance",
#
#     z ~ N(0, 1),    p(x|z) = N(x; mu(z), diag(sigma_1^2(z), sigma_2^2(z))),    p(x) = integral p(z) p(x|z) dz,
#
# with mu(z) and log sigma^2(z) given by one MLP. As z runs over the real line, mu(z) draws a curve in the plane;
# p(x) is that curve thickened by Gaussian noise of width sigma(z), weighted by how often p(z) visits each point.
#
# The data here come from exactly such a model with a known curve, so we can check what the VAE learns against
# the truth: its curve mu(z) should lie on the true one, its sigma(z) should be near the true 0.1, and its ELBO
# just below the true mean log-density E[log p(x)]. **The lesson as a number:** the median distance from the
# learned curve mu(z), |z| <= 2, to the true one, below the noise 0.1 (the quick run: about 0.03; a decoder that
# ignores z puts mu(z) at one point, about 0.6 from the curve).
#
# Run it as a script (about twenty seconds; `--quick` takes a few and writes to `figures/02_one_d_latent_quick`):
#
#     python walkthroughs/02_one_d_latent.py
#     python walkthroughs/02_one_d_latent.py --quick --out /tmp/one_d
#
# As a notebook it runs quick, unless `MINIVAE_WALKTHROUGH_ARGS` holds other flags (`""` for the full run).

# %%
import math

import numpy

from minivae.walkthrough import epoch_bar, lesson_check, print_table, settings

S = settings(__name__, "02_one_d_latent", {  # name: (quick, full, what it is); a flag beats both: --epochs 40
    "n_train": (1500, 10000, "training points near the half circle"),
    "epochs": (30, 60, "passes over the training points"),
    "hidden": (64, 128, "width of both hidden layers of encoder and decoder"),
    "batch_size": (50, 100, "points per gradient step"),
    "lr": (3e-3, 3e-3, "Adam's learning rate"),
    "n_test": (2000, 2000, "test points for the ELBO"),
    "n_samples": (3000, 3000, "samples of p(x) for the figure"),
})

# %% [markdown]
# ## The data: a half circle walked at uniform speed, plus noise
#
#     z ~ N(0, 1),    x = mu*(z) + 0.1 eps,    mu*(z) = (cos(pi Phi(z)), sin(pi Phi(z))),    eps ~ N(0, I_2),
#
# where Phi is the standard normal CDF, so Phi(z) is uniform on (0, 1).

# %%
NOISE = 0.1  # the true sigma* of p(x|z)


def true_curve(z: numpy.ndarray) -> numpy.ndarray:
    r"""mu*(z) = (cos(pi Phi(z)), sin(pi Phi(z))): the half circle, walked at uniform speed when z ~ N(0, 1)."""
    # Phi(z) = (1 + erf(z / sqrt 2)) / 2, uniform on (0, 1) for z ~ N(0, 1)
    phi = 0.5 * (1.0 + numpy.vectorize(math.erf)(numpy.asarray(z, dtype=numpy.float64) / math.sqrt(2.0)))
    return numpy.stack([numpy.cos(numpy.pi * phi), numpy.sin(numpy.pi * phi)], axis=-1)


def half_circle(n: int, rng: numpy.random.Generator) -> numpy.ndarray:
    r"""n draws of x = mu*(z) + 0.1 eps with z ~ N(0, 1), eps ~ N(0, I_2): float32 (n, 2)."""
    z = rng.standard_normal(n)
    return (true_curve(z) + NOISE * rng.standard_normal((n, 2))).astype(numpy.float32)


rng = numpy.random.default_rng(S.seed)
x_train, x_test = half_circle(S.n_train, rng), half_circle(S.n_test, rng)
print(f"{len(x_train):,} training points, the first three (x_1, x_2):")
print(x_train[:3].round(3))

# %% [markdown]
# ## The true log-density, by quadrature over z: the ELBO's ceiling

# %%
def true_log_density(x: numpy.ndarray) -> numpy.ndarray:
    r"""log p*(x) = log integral N(z; 0, 1) N(x; mu*(z), 0.1^2 I) dz, by the midpoint rule on z in [-7, 7]."""
    z = numpy.linspace(-7.0, 7.0, 2801)
    # log [N(z_j; 0, 1) dz] for each grid point
    log_w = -0.5 * z * z - 0.5 * math.log(2 * math.pi) + math.log(z[1] - z[0])
    # log N(x_n; mu*(z_j), sigma*^2 I) for every pair (n, j)
    d2 = ((numpy.asarray(x, dtype=numpy.float64)[:, None, :] - true_curve(z)[None]) ** 2).sum(-1)
    log_lik = -0.5 * d2 / NOISE**2 - math.log(2 * math.pi * NOISE**2)
    return numpy.logaddexp.reduce(log_lik + log_w, axis=1)


true_ll = float(numpy.mean(true_log_density(x_test)))
print(f"true E[log p(x)] on the test points: {true_ll:.3f} nats")

# %% [markdown]
# ## The model and its training
#
# A VAE with a 1-D latent and a Gaussian decoder with learned variance, trained on the ELBO (Zhu, Deep
# Generative Models II), ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, 1)), z = mu(x) + sigma(x) * eps, with a
# short KL warm-up (beta from 0.1 to 1 over the first half of training): without it the decoder often starts
# by explaining the data with a large variance and a straight line, and stays there. (The closed ring of
# walkthrough 01 is harder still for a 1-D latent: one line cannot go round a loop without a gap.)

# %%
from minivae.distributions import kl_standard_normal
from minivae.models import VAE
from minivae.objectives import kl_warmup, vae_objective
from minivae.optim import Adam
from minivae.train import TrainSettings, evaluate, fit

vae = VAE(2, [S.hidden, S.hidden], 1, likelihood="gaussian")
result = fit(kl_warmup(vae, S.epochs // 2), vae.init(numpy.random.default_rng(S.seed)), x_train,
             optimizer=Adam(S.lr),
             settings=TrainSettings(S.epochs, S.batch_size, S.seed, device=S.device, progress=False),
             on_epoch=epoch_bar(S.epochs, "VAE, 1-D latent"))
params = result.params
test_elbo = evaluate(vae_objective(vae), params, x_test, rng)
test_kl = float(numpy.mean(kl_standard_normal(*vae.encode(params, x_test))))
print(f"test ELBO (sampled z): {test_elbo:.3f} nats (KL {test_kl:.2f}), below the ceiling {true_ll:.3f}")

# %% [markdown]
# ## The decoder, read off a grid of z
#
# Left: the curve mu(z), coloured by z, with the +-sigma(z) ellipse of p(x|z) at every half unit of z (axis
# aligned: the covariance is diagonal), over the data. Middle: mu_1(z) and mu_2(z) with their +-sigma bands
# against z, and the prior p(z). Right: samples x ~ p(x) beside the data.

# %%
from matplotlib.patches import Ellipse

from minivae.distributions import sample_gaussian
from minivae.plotting import plt, scatter_panel

XLIM, YLIM = (-1.5, 1.5), (-0.5, 1.5)  # the plane panels' window onto the half circle
# mu(z) and sigma(z) = exp(log sigma^2 / 2) on a grid of z; samples z ~ N(0, 1), x ~ N(mu(z), diag sigma^2(z))
z = numpy.linspace(-3.0, 3.0, 601, dtype=numpy.float32)
mean, log_var = vae.decode(params, z[:, None])
sigma = numpy.exp(0.5 * log_var)
samples = sample_gaussian(*vae.decode(params, rng.standard_normal((S.n_samples, 1)).astype(numpy.float32)), rng)

fig, axes = plt.subplots(1, 3, figsize=(14, 4.3), layout="constrained")
ax = axes[0]
scatter_panel(ax, x_train[:S.n_samples], r"$\mu(z)$ and $\pm\sigma(z)$ ellipses (data grey)", XLIM, YLIM,
              color="0.75", alpha=1.0)
for zi in numpy.arange(-2.0, 2.01, 0.5):
    i = int(numpy.argmin(numpy.abs(z - zi)))
    ax.add_patch(Ellipse(tuple(mean[i]), 2 * sigma[i, 0], 2 * sigma[i, 1], fill=False, lw=1.2,
                         color=plt.cm.viridis((zi + 3) / 6)))
points = ax.scatter(mean[:, 0], mean[:, 1], c=z, cmap="viridis", s=4, vmin=-3, vmax=3)
fig.colorbar(points, ax=ax, label="z", shrink=0.7, pad=0.02)
ax = axes[1]
for d, color in ((0, "C0"), (1, "C1")):
    ax.plot(z, mean[:, d], color=color, label=rf"$\mu_{d + 1}(z) \pm \sigma_{d + 1}(z)$")
    ax.fill_between(z, mean[:, d] - sigma[:, d], mean[:, d] + sigma[:, d], color=color, alpha=0.25)
floor = min(float((mean - sigma).min()), 0.0) - 0.6
ax.fill_between(z, floor, floor + numpy.exp(-0.5 * z * z) / math.sqrt(2 * math.pi), color="0.6", alpha=0.5,
                label="p(z) = N(0, 1)")
ax.set_xlabel("z")
ax.set_ylabel("x coordinate")
ax.set_title("the decoder, one coordinate at a time", fontsize=10)
ax.grid(alpha=0.3)
scatter_panel(axes[2], x_train[:S.n_samples], r"samples: $z \sim N(0,1)$, $x = \mu(z) + \sigma(z) \odot \varepsilon$",
              XLIM, YLIM, color="0.75", alpha=1.0, label="data")
axes[2].scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5, color="C3", label=r"$x \sim p(x)$")
# legends below their axes, never over the curves or the points
ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
axes[2].legend(fontsize=8, markerscale=4, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
fig.suptitle(f"VAE 2-{S.hidden}-{S.hidden}-1, {S.epochs} epochs on {S.n_train:,} points", fontsize=11)
S.figure(fig, "02_one_d_latent.png")

# %% [markdown]
# ## The numbers, and the lesson as a number
#
# The true column is the model that made the data (for the ELBO: E[log p(x)]).

# %%
def distance_to_true_curve(points: numpy.ndarray) -> numpy.ndarray:
    """For each row of ``points``, its distance to the nearest point of the true half circle mu*(z)."""
    curve = true_curve(numpy.linspace(-5.0, 5.0, 4001))
    return numpy.sqrt(((points[:, None, :] - curve[None]) ** 2).sum(-1)).min(axis=1)


inner = numpy.abs(z) <= 2.0
sigma_median = float(numpy.median(sigma[inner]))
distance = distance_to_true_curve(mean[inner])
print_table([{"quantity": "test ELBO (sampled z), nats", "learned": test_elbo, "true": true_ll},
             {"quantity": "  reconstruction E_q[log p(x|z)]", "learned": test_elbo + test_kl, "true": ""},
             {"quantity": "  KL(q(z|x) || N(0, 1))", "learned": test_kl, "true": ""},
             {"quantity": "median sigma_d(z), |z| <= 2", "learned": sigma_median, "true": NOISE},
             {"quantity": "mu(z) to true curve: median", "learned": float(numpy.median(distance)), "true": 0.0},
             {"quantity": "mu(z) to true curve: largest", "learned": float(distance.max()), "true": 0.0}],
            title="1-D latent VAE on a noisy half circle")
lesson = lesson_check("median distance from the learned curve mu(z), |z| <= 2, to the true half circle, below the "
                      "noise 0.1 (a decoder that ignores z: ~0.6)", float(numpy.median(distance)), NOISE, above=False)
metrics = {"lesson": lesson, "test_elbo": test_elbo, "test_reconstruction": test_elbo + test_kl, "test_kl": test_kl,
           "true_mean_log_density": true_ll, "sigma_median": sigma_median, "true_sigma": NOISE,
           "curve_distance_median": float(numpy.median(distance)), "curve_distance_max": float(distance.max()),
           "curve_z": z[::50], "curve_mean": mean[::50], "curve_sigma": sigma[::50], "hidden": [S.hidden, S.hidden],
           "history": result.history}

# %% [markdown]
# ## As a script: save and say what was written
#
# Only `python walkthroughs/02_one_d_latent.py` runs this cell (a notebook skips it): it saves the trained VAE
# (`params.npz`, for `minivae.load_params`) and the numbers (`metrics.json`) in `--out`, lists every file written,
# and names the next walkthrough.

# %%
if S.script:
    S.finish(params, metrics, "walkthroughs/03_bottleneck_1d.py: squeeze two clusters through a 1-D code, AE "
                              "against VAE.")


# %% [markdown]
# ## Try it yourself
#
# Write this lesson's formulas by hand and let the grader check them with the properties that test
# minivae. `python -m minivae.exercises start DIR` writes `DIR/my_vae.py`, one stub per exercise; fill in
# `gaussian_log_prob`, `gaussian_log_prob_vjp`, `elbo`, then run, in `DIR`:
#
#     python -m minivae.exercises check my_vae.py gaussian_log_prob
#     python -m minivae.exercises check my_vae.py gaussian_log_prob_vjp
#     python -m minivae.exercises check my_vae.py elbo
#
# Each prints PASS, TODO, or FAIL with the first property that fails and the mistake it recognises
# (docs/exercises.md lists every exercise).
