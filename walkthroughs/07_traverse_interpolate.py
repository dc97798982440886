# %% [markdown]
# # 07 - Walking in latent space: traversals of one coordinate, and interpolation in latent vs pixel space.
#
# Barra, Variational Autoencoders: latent traversal, and interpolation in the image space vs in the latent
# space. The model is walkthrough 05's ``VAE(784, [400], 20)`` (Bernoulli decoder, trained on the ELBO).
#
# - 07_traversal.png      start from the code mu(x) of one test digit; each row varies one latent coordinate
#                         z_j over -3 ... 3 (the prior's range) and keeps the others fixed, then decodes
#                         sigmoid(decoder(z)). Rows are the most *active* units, by Burda et al.'s measure
#                         A_j = Var_x(E_q[z_j | x]) over the test digits (active when A_j > 0.01); each row is
#                         labelled with its unit z_j and its activity A_j. Inactive coordinates change nothing,
#                         which is why they are not shown.
# - 07_interpolation.png  two test digits x_a, x_b of different labels (--pair, default a 7 and a 2), the first
#                         clear examples (all 10 nearest training digits share the label). Top: the decoded
#                         latent path sigmoid(decoder((1 - t) mu(x_a) + t mu(x_b))); bottom: the pixel
#                         path (1 - t) x_a + t x_b, for t = 0, 1/9, ..., 1. The latent path passes through
#                         digit-like images; the pixel path only fades one digit out and the other in.
#
# **The lesson as a number:** the latent path starts on the 7 and ends on the 2 that the caption names. Without
# a classifier: among the 10 training digits nearest (in pixels) to each decoded end point, the share that carry
# the named label; the smaller of the two shares is above 1/2 (a majority at both ends; the quick run, seeds 0-4:
# 0.8 to 1, with or without the official test set). It also prints the test ELBO, the number of active units,
# and the activity of the traversed units.
#
# Run it as a script (`--quick`, 20 epochs on 4,000 digits, takes seconds and writes to
# `figures/07_traverse_interpolate_quick`):
#
#     python walkthroughs/07_traverse_interpolate.py --data-dir ~/mnist
#     python walkthroughs/07_traverse_interpolate.py --quick
#
# (--data-dir, or the environment variable MINIVAE_DATA, names the folder with the MNIST files.) As a notebook it
# runs quick, unless `MINIVAE_WALKTHROUGH_ARGS` holds other flags (`""` for the full run).

# %%
from minivae.walkthrough import digit, epoch_bar, lesson_check, print_table, settings

S = settings(__name__, "07_traverse_interpolate", {  # name: (quick, full, what it is); a flag beats both
    "epochs": (20, 10, "passes over the training digits"),
    "n_train": (4000, None, "train on a random subset of this many digits"),
    "batch_size": (100, 100, "digits per gradient step"),
    "z_dim": (20, 20, "latent dimension"),
    "units": (8, 8, "rows of the traversal: the most active units"),
    "n_test": (2000, None, "evaluation digits (activity, ELBO, the pair)"),
    "pair": ((7, 2), (7, 2), "labels of the two test digits to interpolate between"),
}, types={"pair": digit}, mnist=True)
if len(S.pair) != 2:
    raise SystemExit(f"--pair takes two digits, e.g. --pair 7 2; it got {len(S.pair)}.")

# %% [markdown]
# ## The data
#
# The training digits, binarized at 1/2, and the evaluation digits (the official test set, or held-out training
# digits without it). A few of them, with their labels:

# %%
import numpy

from minivae.plotting import plt, tile_images
from minivae.walkthrough_data import load_mnist_split

data = load_mnist_split(S, n_test=S.n_test)
rng = numpy.random.default_rng(S.seed)


def image_rows(rows: dict, width: float = 0.65) -> plt.Figure:
    r"""One axes per ``{label: (n, 784) images}`` entry, the images in a row and the label on its left."""
    n = max(len(images) for images in rows.values())
    fig, axes = plt.subplots(len(rows), 1, squeeze=False, figsize=(n * width + 1.6, len(rows) * width + 0.5),
                             layout="constrained")
    for ax, (label, images) in zip(axes[:, 0], rows.items()):
        ax.imshow(tile_images(numpy.clip(images, 0.0, 1.0), n), cmap="gray_r", vmin=0.0, vmax=1.0,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    return fig


fig = image_rows({f"training, labels\n{' '.join(map(str, data.y_train[:12]))}": data.x_train[:12]})
S.figure(fig, "07_digits.png")

# %% [markdown]
# ## The model, trained on the ELBO
#
# Walkthrough 05's VAE: a 784-400-`z_dim` encoder for mu and log sigma^2, a `z_dim`-400-784 Bernoulli decoder.

# %%
from minivae.models import VAE
from minivae.objectives import vae_objective
from minivae.train import TrainSettings, evaluate, fit

vae = VAE(784, [400], S.z_dim)
RUN = f"784-400-{S.z_dim} VAE, {S.epochs} epochs on {len(data.x_train):,} digits"
result = fit(vae_objective(vae), vae.init(rng), data.x_train,
             settings=TrainSettings(epochs=S.epochs, batch_size=S.batch_size, seed=S.seed,
                                    binarize=data.fit_binarize, device=S.device, progress=False),
             on_epoch=epoch_bar(S.epochs, "VAE"))
params = result.params
test_elbo = evaluate(vae_objective(vae), params, data.x_test, rng)
print(f"{RUN}: test ELBO {test_elbo:.1f} nats")

# %% [markdown]
# ## Traversal: one coordinate at a time
#
# The activity A_j = Var_x(E_q[z_j | x]) of each unit over the evaluation digits; the most active units, each
# swept over -3 ... 3 from the code of the first evaluation digit while every other coordinate stays fixed.
# Block r of the codes is the start code with coordinate `units[r]` swept over the values.

# %%
from minivae.models import active_units, unit_activity
from minivae.nn import sigmoid


def traversal_codes(start: numpy.ndarray, units: list[int], values: numpy.ndarray) -> numpy.ndarray:
    """Codes ``(len(units) * len(values), z_dim)``: block r is ``start`` with coordinate ``units[r]`` swept."""
    codes = numpy.repeat(start[None, :], len(units) * len(values), axis=0)
    for r, j in enumerate(units):
        codes[r * len(values):(r + 1) * len(values), j] = values
    return codes


test_mean, _ = vae.encode(params, data.x_test)
activity = unit_activity(test_mean)
units = [int(j) for j in numpy.argsort(activity)[::-1][:S.units]]
values = numpy.linspace(-3.0, 3.0, 11, dtype=numpy.float32)
start, _ = vae.encode(params, data.x_test[:1])
traversal = sigmoid(vae.decode(params, traversal_codes(start[0], units, values))).reshape(len(units), len(values), -1)
fig = image_rows({f"z_{j}\nA = {activity[j]:.2f}": row for j, row in zip(units, traversal)})
axes = fig.axes
# the swept values under the last row
axes[-1].set_xticks(numpy.arange(len(values)) * 29 + 14.5, [f"{v:g}" for v in values], fontsize=7)
axes[-1].set_xlabel("value of the unit z_j (the other units stay at mu(x))", fontsize=8)
axes[0].set_title(f"{RUN}\nrows: the {len(units)} most active units z_j, A = Var_x E_q[z_j|x]", fontsize=9)
S.figure(fig, "07_traversal.png")

# %% [markdown]
# ## Which digit does an image show? A check without a classifier
#
# For an image, its 10 nearest training digits in pixel space (squared distance) and the share of them that carry
# a given label. A clear 2 has all ten; a blurred or wrong reconstruction (a 2 that decodes to a 3) loses its
# majority. The interpolation below starts from clear digits by this measure, and checks its decoded end points.

# %%
def nearest_label_share(images: numpy.ndarray, labels: list[int], x: numpy.ndarray, y: numpy.ndarray,
                        k: int = 10) -> numpy.ndarray:
    r"""For each image ``(n, 784)``, the share of its k nearest digits in ``x`` ``(N, 784)`` (by
    ||x - image||^2) whose label in ``y`` ``(N,)`` is ``labels[i]``: ``(n,)``."""
    x = numpy.asarray(x, dtype=numpy.float64)
    images = numpy.asarray(images, dtype=numpy.float64)
    # ||x||^2 - 2 x . image + ||image||^2 for every pair, (n, N)
    distance = (images**2).sum(1)[:, None] - 2.0 * images @ x.T + (x**2).sum(1)[None, :]
    nearest = numpy.argsort(distance, axis=1)[:, :k]
    return (y[nearest] == numpy.asarray(labels)[:, None]).mean(axis=1)


# %% [markdown]
# ## Interpolation: from a 7 to a 2, in latent space and in pixel space
#
# The first evaluation digits that carry the two labels of `--pair` and are clear examples of them (all 10
# nearest training digits share the label; else the clearest of the first 50); the latent path decodes
# (1 - t) mu(x_a) + t mu(x_b), the pixel path cross-fades (1 - t) x_a + t x_b.

# %%
def clear_example(x: numpy.ndarray, y: numpy.ndarray, label: int, x_train: numpy.ndarray,
                  y_train: numpy.ndarray) -> int:
    """Index of the first digit of ``x`` labelled ``label`` whose 10 nearest training digits all carry it (else
    the one with the largest share among the first 50 so labelled)."""
    candidates = numpy.flatnonzero(y == label)[:50]
    if not len(candidates):
        raise ValueError(f"--pair asks for digit {label}, but no evaluation digit has that label; "
                         "raise --n-test or pick another digit.")
    share = nearest_label_share(x[candidates], [label] * len(candidates), x_train, y_train)
    return int(candidates[numpy.argmax(share)])


ia, ib = (clear_example(data.x_test, data.y_test, label, data.x_train, data.y_train) for label in S.pair)
t = numpy.linspace(0.0, 1.0, 10, dtype=numpy.float32)[:, None]
(mu_a, mu_b), _ = vae.encode(params, data.x_test[[ia, ib]])
latent_path = sigmoid(vae.decode(params, (1 - t) * mu_a + t * mu_b))
pixel_path = (1 - t) * data.x_test[ia] + t * data.x_test[ib]
fig = image_rows({"latent space\ndecoder((1-t) mu(a)\n+ t mu(b))": latent_path,
                  "pixel space\n(1-t) a + t b": pixel_path})
fig.axes[-1].set_xticks(numpy.arange(len(t)) * 29 + 14.5, [f"{v:.2f}" for v in t[:, 0]], fontsize=7)
fig.axes[-1].set_xlabel("t", fontsize=8)
fig.axes[0].set_title(f"{RUN}\nfrom a {S.pair[0]} to a {S.pair[1]} ({data.eval_name} digits)", fontsize=9)
S.figure(fig, "07_interpolation.png")

# %% [markdown]
# ## The numbers, and the lesson as a number

# %%
ends = nearest_label_share(latent_path[[0, -1]], list(S.pair), data.x_train, data.y_train)
active = active_units(test_mean)
print_table([{"quantity": "test ELBO (sampled z), nats", "value": test_elbo},
             {"quantity": f"active units (Var_x mu_j > 0.01) of {S.z_dim}", "value": active},
             {"quantity": f"start (t = 0): share of 10 nearest training digits that are {S.pair[0]}s",
              "value": ends[0]},
             {"quantity": f"end (t = 1): share of 10 nearest training digits that are {S.pair[1]}s",
              "value": ends[1]}]
            + [{"quantity": f"  traversed unit z_{j}: Var_x mu_j", "value": float(activity[j])} for j in units],
            title=RUN)
lesson = lesson_check(f"the latent path's end points decode to the {S.pair[0]} and the {S.pair[1]} named: the "
                      "smaller share of the 10 nearest training digits with the named label, above 1/2",
                      float(ends.min()), 0.5)
metrics = {"lesson": lesson, "train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
           "n_test": len(data.x_test), "binarize": S.binarize, "test_elbo": test_elbo, "active_units": active,
           "unit_activity": activity, "traversed_units": units, "pair_labels": list(S.pair),
           "pair_indices": [ia, ib], "end_label_share": ends, "history": result.history,
           "train_seconds": sum(h["seconds"] for h in result.history)}

# %% [markdown]
# ## As a script: save and say what was written
#
# Only `python walkthroughs/07_traverse_interpolate.py` runs this cell (a notebook skips it): it saves the VAE
# (`params.npz`, for `minivae.load_params`) and the numbers (`metrics.json`) in `--out`, lists every file
# written, and names the next walkthrough.

# %%
if S.script:
    S.finish(params, metrics,
             "walkthroughs/08_ae_vs_vae_sampling.py: why an autoencoder cannot generate, and a VAE can.")
