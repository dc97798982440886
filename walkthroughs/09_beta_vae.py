# %% [markdown]
# # 09 - The β-VAE trade-off: reconstruction against KL, and how many latent units stay in use.
#
# Barra, Variational Autoencoders: the β-VAE objective
#
#     L_beta(x) = E_q[log p(x|z)] - beta * KL(q(z|x) || N(0, I)),
#
# which is the ELBO at beta = 1. A larger beta pays more for information in z: the KL falls, the
# reconstruction gets worse, and latent units switch off. The same ``VAE(784, [400], 20)`` (same
# initialisation, data and noise) is trained once per beta (0.5, 1, 4, 16) and evaluated on the test digits:
# reconstruction E_q[log p(x|z)] (one sampled z per digit), the KL in closed form, the ELBO (their difference,
# the beta = 1 bound whatever beta was trained), and Burda et al.'s active units, the j with
# A_j = Var_x(E_q[z_j | x]) > 0.01.
#
# **The lesson as a number:** fewer active units at the largest beta than at beta = 1 (the quick run, seeds
# 0-4: 9 to 14 of 20 at beta = 16 against all 20 at beta = 1).
#
# Run it as a script (about twenty seconds; `--quick` takes about ten and writes to `figures/09_beta_vae_quick`):
#
#     python walkthroughs/09_beta_vae.py --data-dir ~/mnist
#     python walkthroughs/09_beta_vae.py --quick
#
# (--data-dir, or the environment variable MINIVAE_DATA, names the folder with the MNIST files.) As a notebook it
# runs quick, unless `MINIVAE_WALKTHROUGH_ARGS` holds other flags (`""` for the full run).

# %%
from minivae.walkthrough import epoch_bar, lesson_check, non_negative_float, print_table, settings

S = settings(__name__, "09_beta_vae", {  # name: (quick, full, what it is); a flag beats both: --epochs 20
    "epochs": (8, 10, "passes over the training digits"),
    "n_train": (3000, None, "training digits, a random subset"),
    "batch_size": (100, 100, "digits per gradient step"),
    "betas": ((0.5, 1.0, 4.0, 16.0), (0.5, 1.0, 4.0, 16.0), "the values of beta, one model trained for each"),
    "z_dim": (20, 20, "latent dimension"),
    "n_test": (1000, None, "test digits evaluated, a random subset"),
}, types={"betas": non_negative_float}, mnist=True)

# %% [markdown]
# ## The data
#
# The training and test digits (which ones, and from where, is printed), binarized as `--binarize` says.

# %%
import numpy

from minivae.plotting import digit_grid, image_panels, plt, whole_number_ticks
from minivae.walkthrough_data import load_mnist_split

data = load_mnist_split(S, n_test=S.n_test)
S.figure(digit_grid(data.x_test[:12], 12, f"the first 12 {data.eval_name} digits"), "09_digits.png")

# %% [markdown]
# ## The model and the terms of the bound on test digits
#
# One sampled z per digit for the ELBO, the KL in closed form, the reconstruction term as their sum, and
# the active units A_j = Var_x(mu_j(x)) > 0.01.

# %%
from minivae.distributions import kl_standard_normal
from minivae.models import VAE, active_units
from minivae.objectives import vae_objective
from minivae.train import evaluate

vae = VAE(784, [400], S.z_dim)


def test_terms(params: dict, x: numpy.ndarray, rng: numpy.random.Generator) -> dict:
    r"""Test reconstruction E_q[log p(x|z)], KL, ELBO (nats, means over ``x`` ``(N, 784)``) and active units."""
    # ELBO with one sampled z per digit, and the closed-form KL
    elbo = evaluate(vae_objective(vae), params, x, rng)
    mean, log_var = vae.encode(params, x)
    kl = float(numpy.mean(kl_standard_normal(mean, log_var)))
    # active units: A_j = Var_x(μ_j(x)) > 0.01
    return {"reconstruction": elbo + kl, "kl": kl, "elbo": elbo, "active_units": active_units(mean)}


# %% [markdown]
# ## Training: one model per beta
#
# From the same initialisation and with the same minibatch noise: only the weight of the KL changes. One
# progress bar per beta.

# %%
from minivae.nn import sigmoid
from minivae.train import TrainSettings, fit

z = numpy.random.default_rng(S.seed).standard_normal((36, S.z_dim)).astype(numpy.float32)
rows, samples, params = [], {}, {}
for beta in S.betas:
    # the same initialisation and minibatch noise for every β: only the weight of the KL changes
    result = fit(vae_objective(vae, beta), vae.init(numpy.random.default_rng(S.seed)), data.x_train,
                 settings=TrainSettings(S.epochs, S.batch_size, S.seed, data.fit_binarize, S.device, progress=False),
                 on_epoch=epoch_bar(S.epochs, f"beta = {beta:g}"))
    terms = test_terms(result.params, data.x_test, numpy.random.default_rng(S.seed + 1))
    rows.append({"beta": beta, **terms, "train_seconds": sum(h["seconds"] for h in result.history)})
    samples[f"beta = {beta:g}"] = sigmoid(vae.decode(result.params, z))
    params[f"beta={beta:g}"] = result.params
RUN = f"784-400-{S.z_dim} beta-VAE, {S.epochs} epochs on {len(data.x_train):,} digits"

# %% [markdown]
# ## The trade-off
#
# Left: the two terms and the ELBO against beta; right: the active units. As beta grows the KL falls towards
# 0, the reconstruction worsens, and units switch off.

# %%
betas = [r["beta"] for r in rows]
fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6), layout="constrained")
for name, key in (("reconstruction", "reconstruction"), ("KL", "kl"), ("ELBO", "elbo")):
    left.plot(betas, [r[key] for r in rows], marker="o", ms=4, label=name)
right.plot(betas, [r["active_units"] for r in rows], marker="o", ms=4, color="C3")
right.set_ylim(0, S.z_dim + 0.5)
whole_number_ticks(right.yaxis, [r["active_units"] for r in rows])
right.set_ylabel(f"active units (of {S.z_dim})")
left.set_ylabel(f"nats per {data.eval_name} digit")
left.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
for ax in (left, right):
    ax.set_xscale("log", base=2)
    ax.set_xticks(betas, [f"{b:g}" for b in betas])
    ax.minorticks_off()
    ax.set_xlabel("beta")
    ax.grid(alpha=0.3)
fig.suptitle(RUN, fontsize=10)
S.figure(fig, "09_beta_tradeoff.png")

# %% [markdown]
# ## Samples under each beta
#
# sigmoid(decoder(z)) for the same 36 draws z ~ N(0, I): a large beta keeps less of the digit in z, so its
# samples lose their detail.

# %%
S.figure(image_panels(samples, 6, f"{RUN}: sigmoid(decoder(z)), the same 36 z ~ N(0, I)", size=(2.4, 2.8)),
         "09_samples.png")

# %% [markdown]
# ## The numbers, and the lesson as a number

# %%
print_table([{k: v for k, v in r.items() if k != "train_seconds"} for r in rows],
            title=f"{RUN}; {data.eval_name} terms in nats per digit")
at_one = next((r for r in rows if r["beta"] == 1.0), rows[0])
largest = max(rows, key=lambda r: r["beta"])
lesson = lesson_check(f"active units at the largest beta ({largest['beta']:g}) below those at beta = "
                      f"{at_one['beta']:g}", largest["active_units"], at_one["active_units"], above=False)
metrics = {"lesson": lesson, "train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
           "n_test": len(data.x_test), "binarize": S.binarize, "betas": betas, "results": rows}

# %% [markdown]
# ## As a script: save and say what was written
#
# Only `python walkthroughs/09_beta_vae.py` runs this cell (a notebook skips it): it saves one model per beta
# (`params.npz`, keyed "beta=0.5", ...; for `minivae.load_params`) and the numbers (`metrics.json`) in `--out`,
# lists every file written, and names the next walkthrough.

# %%
if S.script:
    S.finish(params, metrics, "walkthroughs/10_iwae.py: a tighter bound than the ELBO trains a better density model.")
