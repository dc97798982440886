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
# The data here come from exactly such a model with a known curve, a half circle walked at uniform speed:
#
#     z ~ N(0, 1),    x = (cos(pi Phi(z)), sin(pi Phi(z))) + 0.1 eps,    eps ~ N(0, I_2),
#
# (Phi is the standard normal CDF), so we can check what the VAE learns against the truth: its curve mu(z) should
# lie on the half circle (up to the direction it runs), its sigma(z) should be near 0.1, and its ELBO just below
# the true mean log-density E[log p(x)], computed here by quadrature over z. The VAE maximises (Zhu, Deep
# Generative Models II)
#
#     ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, 1)),    z = mu(x) + sigma(x) * eps,
#
# with a short KL warm-up (beta from 0.1 to 1 over the first half of training): without it the decoder often
# starts by explaining the data with a large variance and a straight line, and stays there. (The closed ring of
# walkthrough 01 is harder still for a 1-D latent: one line cannot go round a loop without a gap.)
#
# Saves in --out:
# - 02_one_d_latent.png  left: the curve mu(z) for z on a grid, coloured by z, with the +-sigma(z) ellipse of
#                        p(x|z) at every half unit of z, over the data; middle: mu_1(z) and mu_2(z) with their
#                        +-sigma bands against z, and the prior p(z); right: samples x ~ p(x) beside the data
#
# and reports the test ELBO (with its reconstruction and KL terms) beside the true E[log p(x)], the median
# sigma_d(z) for |z| <= 2 beside the true 0.1, and how far the learned curve mu(z), |z| <= 2, lies from the true
# half circle (median and largest distance).
#
# Run it (about twenty seconds; --quick takes about five):
#
#     python walkthroughs/02_one_d_latent.py
#     python walkthroughs/02_one_d_latent.py --quick --out /tmp/one_d
#
# Also saved in --out: params.npz (the trained VAE; load it with minivae.load_params) and metrics.json.

# %%
from __future__ import annotations

import math
import time

import numpy
from matplotlib.patches import Ellipse

from minivae.distributions import kl_standard_normal, sample_gaussian
from minivae.models import VAE
from minivae.objectives import kl_warmup, vae_objective
from minivae.optim import Adam
from minivae.plotting import plt, save_figure, scatter_panel
from minivae.train import Settings, evaluate, fit
from minivae.walkthrough import Run, finish, lesson, parse_flags, print_table, show_progress, walkthrough_parser

NOISE = 0.1  # the true sigma* of p(x|z)
XLIM, YLIM = (-1.5, 1.5), (-0.5, 1.5)  # the plane panels' window onto the half circle

# %% [markdown]
# ## Settings
#
# (quick, full) for each setting. The quick run (30 epochs on 1,500 points) already finds the curve and
# its width; the full run follows it more closely.

# %%
OUT = "figures/02_one_d_latent"
SETTINGS = {  # name: (quick, full)
    "n_train": (1500, 10000),  # training points near the half circle
    "epochs": (30, 60),
    "hidden": (64, 128),  # width of both hidden layers of encoder and decoder
    "batch_size": (50, 100),
    "lr": (3e-3, 3e-3),
    "n_test": (2000, 2000),
    "n_samples": (3000, 3000),  # samples of p(x) for the figure
}


# %%
def parse_args(argv: list[str] | None = None):
    """The flags (--quick, --seed, --out, --device), checked before anything runs; the settings above."""
    return parse_flags(walkthrough_parser(lesson(__name__), OUT), argv, SETTINGS)


# %% [markdown]
# ## The true model
#
# The curve, the data drawn from it, and its exact log-density (by quadrature over z).

# %%
def true_curve(z: numpy.ndarray) -> numpy.ndarray:
    r"""mu*(z) = (cos(pi Phi(z)), sin(pi Phi(z))): the half circle, walked at uniform speed when z ~ N(0, 1)."""
    # Phi(z) = (1 + erf(z / sqrt 2)) / 2, uniform on (0, 1) for z ~ N(0, 1)
    phi = 0.5 * (1.0 + numpy.vectorize(math.erf)(numpy.asarray(z, dtype=numpy.float64) / math.sqrt(2.0)))
    return numpy.stack([numpy.cos(numpy.pi * phi), numpy.sin(numpy.pi * phi)], axis=-1)


# %%
def half_circle(n: int, rng: numpy.random.Generator) -> numpy.ndarray:
    r"""n draws of x = mu*(z) + 0.1 eps with z ~ N(0, 1), eps ~ N(0, I_2): float32 (n, 2)."""
    z = rng.standard_normal(n)
    return (true_curve(z) + NOISE * rng.standard_normal((n, 2))).astype(numpy.float32)


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


# %% [markdown]
# ## How far the learned curve lies from the true one

# %%
def distance_to_true_curve(points: numpy.ndarray) -> numpy.ndarray:
    """For each row of ``points``, its distance to the nearest point of the true half circle mu*(z)."""
    curve = true_curve(numpy.linspace(-5.0, 5.0, 4001))
    return numpy.sqrt(((points[:, None, :] - curve[None]) ** 2).sum(-1)).min(axis=1)


# %% [markdown]
# ## The figure

# %%
def plot_curve(x: numpy.ndarray, z: numpy.ndarray, mean: numpy.ndarray, sigma: numpy.ndarray,
               samples: numpy.ndarray, path, title: str):
    """The decoder's curve mu(z) with +-sigma(z) ellipses, mu_d(z) +- sigma_d(z) against z, and samples of p(x)."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), gridspec_kw={"wspace": 0.35})
    ax = axes[0]
    scatter_panel(ax, x, r"$\mu(z)$ and $\pm\sigma(z)$ ellipses (data grey)", XLIM, YLIM, color="0.75", alpha=1.0)
    # +-sigma(z) ellipses of p(x|z) (axis-aligned: the covariance is diagonal) at every half unit of z
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
    # the prior p(z), drawn along the bottom of the panel
    floor = min(float((mean - sigma).min()), 0.0) - 0.6
    ax.fill_between(z, floor, floor + numpy.exp(-0.5 * z * z) / math.sqrt(2 * math.pi), color="0.6", alpha=0.5,
                    label="p(z) = N(0, 1)")
    ax.set_xlabel("z")
    ax.set_ylabel("x coordinate")
    ax.set_title("the decoder, one coordinate at a time", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    scatter_panel(axes[2], x, r"samples: $z \sim N(0,1)$, $x = \mu(z) + \sigma(z) \odot \varepsilon$", XLIM, YLIM,
                  color="0.75", alpha=1.0, label="data")
    axes[2].scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5, color="C3", label=r"$x \sim p(x)$")
    axes[2].legend(fontsize=8, markerscale=4, loc="lower center")
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


# %% [markdown]
# ## The run
#
# Train with a KL warm-up, then read the decoder's mu(z) and sigma(z) off a grid of z, and sample p(x).

# %%
def main(argv: list[str] | None = None) -> Run:
    started = time.perf_counter()
    args = parse_args(argv)
    rng = numpy.random.default_rng(args.seed)

    # fit p(z) p(x|z) with a 1-D z to 2-D data drawn from a model of the same form: the ELBO_beta, beta rising
    # linearly 0.1 -> 1 over the first half of the epochs (KL warm-up)
    x_train, x_test = half_circle(args.n_train, rng), half_circle(args.n_test, rng)
    vae = VAE(2, [args.hidden, args.hidden], 1, likelihood="gaussian")
    result = fit(kl_warmup(vae, args.epochs // 2), vae.init(numpy.random.default_rng(args.seed)), x_train,
                 optimizer=Adam(args.lr),
                 settings=Settings(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, device=args.device,
                                   progress=show_progress()))
    params = result.params
    test_elbo = evaluate(vae_objective(vae), params, x_test, rng)
    test_kl = float(numpy.mean(kl_standard_normal(*vae.encode(params, x_test))))
    true_ll = float(numpy.mean(true_log_density(x_test)))

    # the decoder on a grid of z: mean mu(z) and standard deviation sigma(z) = exp(log sigma^2 / 2)
    z = numpy.linspace(-3.0, 3.0, 601, dtype=numpy.float32)
    mean, log_var = vae.decode(params, z[:, None])
    sigma = numpy.exp(0.5 * log_var)
    # samples of p(x): z ~ N(0, 1), then x ~ N(mu(z), diag sigma^2(z))
    zs = rng.standard_normal((args.n_samples, 1)).astype(numpy.float32)
    m, lv = vae.decode(params, zs)
    samples = sample_gaussian(m, lv, rng)
    figures = [plot_curve(x_train[:args.n_samples], z, mean, sigma, samples, args.out / "02_one_d_latent.png",
                          f"VAE 2-{args.hidden}-{args.hidden}-1, {args.epochs} epochs on {args.n_train:,} points")]

    inner = numpy.abs(z) <= 2.0
    sigma_median = float(numpy.median(sigma[inner]))
    distance = distance_to_true_curve(mean[inner])
    rows = [{"quantity": "test ELBO (sampled z), nats", "learned": test_elbo, "true": true_ll},
            {"quantity": "  reconstruction E_q[log p(x|z)]", "learned": test_elbo + test_kl, "true": ""},
            {"quantity": "  KL(q(z|x) || N(0, 1))", "learned": test_kl, "true": ""},
            {"quantity": "median sigma_d(z), |z| <= 2", "learned": sigma_median, "true": NOISE},
            {"quantity": "mu(z) to true curve: median", "learned": float(numpy.median(distance)), "true": 0.0},
            {"quantity": "mu(z) to true curve: largest", "learned": float(distance.max()), "true": 0.0}]
    print_table(rows, title="1-D latent VAE on a noisy half circle (true column: the model that made the data; "
                            "for the ELBO, E[log p(x)])")
    metrics = {"test_elbo": test_elbo, "test_reconstruction": test_elbo + test_kl, "test_kl": test_kl,
               "true_mean_log_density": true_ll, "sigma_median": sigma_median, "true_sigma": NOISE,
               "curve_distance_median": float(numpy.median(distance)), "curve_distance_max": float(distance.max()),
               "curve_z": z[::50], "curve_mean": mean[::50], "curve_sigma": sigma[::50],
               "n_train": args.n_train, "epochs": args.epochs, "hidden": [args.hidden, args.hidden],
               "history": result.history, "seed": args.seed, "quick": args.quick,
               "wall_seconds": time.perf_counter() - started}
    return finish(args.out, params, metrics, figures,
                  "walkthroughs/03_bottleneck_1d.py: squeeze two clusters through a 1-D code, AE against VAE.")


# %%
if __name__ == "__main__":
    run = main()


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
