# %% [markdown]
# # 14 - Digit fantasies: move the latent variables and watch the decoder draw.
#
# Shan, Variational Autoencoder: the demo slide "Digit Fantasies by a Deep Generative Model" (Kingma's
# interactive SGVB demo on MNIST). A decoder p(x|z) = Bern(sigmoid(f(z))) turns every point z of the latent
# space into a digit; the fastest way to feel what it learned is to move z and watch. This walkthrough trains
# the VAE of walkthrough 06 (``VAE(784, [400], 2)``, Bernoulli decoder, ELBO) and writes its decoder into one
# web page that opens from disk, with no network and no library: the weights are embedded (float32, base64)
# and the same MLP runs in plain JavaScript.
#
# On the page (minivae.fantasies): it opens on a digit, the encoder mean mu(x) of the first test digit (named
# on the page); a latent pad where you click or drag z, with the encoder means of the test digits behind it,
# coloured by label; with --z-dim above 2, sliders over the most active latent units (A_j = Var_x(mu_j(x)),
# Burda et al.); a "sample" button that draws z ~ N(0, I), as the samples figure of walkthrough 05 does. The
# testing hook `fantasies.html?z=v1,v2,...` sets z on load and writes the 784 probabilities into the element
# id="pixels" (docs/fantasies.md).
#
# **The lesson as a number:** where the dots of one colour lie, the decoder draws that digit, because the codes
# of one digit gather in one region. No label was used in training, yet the 5 nearest training codes name the
# label of a test digit's code far more often than chance (10 %): above 35 % (the quick run, seeds 0-4: 48 to
# 54 %).
#
# Run it as a script (the 2-D model; `--z-dim 20` gives the sliders; `--quick` takes seconds and writes to
# `figures/14_digit_fantasies_quick`; `--data-dir` or `MINIVAE_DATA` names the MNIST folder):
#
#     python walkthroughs/14_digit_fantasies.py --data-dir ~/mnist
#     python walkthroughs/14_digit_fantasies.py --quick --z-dim 20
#
# As a notebook it runs quick, unless `MINIVAE_WALKTHROUGH_ARGS` holds other flags (`""` for the full run).

# %%
from minivae.walkthrough import epoch_bar, lesson_check, print_table, settings

S = settings(__name__, "14_digit_fantasies", {  # name: (quick, full, what it is); a flag beats both
    "epochs": (15, 50, "passes over the training digits"),
    "n_train": (4000, None, "train on a random subset of this many digits"),
    "batch_size": (100, 100, "digits per gradient step"),
    "z_dim": (2, 2, "latent dimension (2: a pad; more: a pad and sliders)"),
    "hidden": (400, 400, "hidden units of encoder and decoder"),
    "lr": (3e-3, 1e-3, "Adam's learning rate"),
    "n_test": (1000, None, "test digits to evaluate and to scatter on the pad"),
    "sliders": (10, 10, "sliders over the most active units (z-dim > 2)"),
    "points": (5000, 5000, "most test codes drawn on the pad"),
}, mnist=True)

# %% [markdown]
# ## The digits
#
# A 2-D latent space needs more steps than walkthrough 05's 20-D one before the digits part on the pad: the
# quick run trains 15 epochs on 4,000 digits at a higher learning rate, the full run 50 epochs on all of them.

# %%
import numpy

from minivae.plotting import save_image_grid
from minivae.walkthrough_data import load_mnist_split

if S.z_dim < 2:
    raise SystemExit(f"--z-dim {S.z_dim}: the page's pad needs at least 2 latent dimensions; give --z-dim 2 or more.")
data = load_mnist_split(S, n_test=S.n_test)
rng = numpy.random.default_rng(S.seed)
S.written.append(save_image_grid(data.x_train[:32], S.out / "14_training_digits.png", ncols=16,
                                 title=f"the first 32 of {len(data.x_train):,} training digits"))

# %% [markdown]
# ## The model, trained on the ELBO
#
# The VAE of walkthrough 06: one hidden layer of 400 units each way, a Bernoulli decoder, the test ELBO after
# every epoch.

# %%
from minivae.models import VAE
from minivae.objectives import vae_objective
from minivae.optim import Adam
from minivae.train import TrainSettings, fit

vae = VAE(784, [S.hidden], S.z_dim)
RUN = f"784-{S.hidden}-{S.z_dim} VAE, {S.epochs} epochs on {len(data.x_train):,} digits"
result = fit(vae_objective(vae), vae.init(rng), data.x_train, x_test=data.x_test, optimizer=Adam(S.lr),
             settings=TrainSettings(epochs=S.epochs, batch_size=S.batch_size, seed=S.seed,
                                    binarize=data.fit_binarize, device=S.device, progress=False),
             on_epoch=epoch_bar(S.epochs, "VAE"))
params, history = result.params, result.history
train_seconds = sum(h["seconds"] for h in history)

# %% [markdown]
# ## What the page is given
#
# The decoder's weights, and the encoder means mu(x) of the test digits: they rank the latent units by their
# activity A_j = Var_x(mu_j(x)), and the pad scatters them behind the point you move. The page opens at the
# first code, mu(x_1): below, that test digit next to what the decoder draws there, the page's first sight.

# %%
from minivae.distributions import kl_standard_normal
from minivae.fantasies import start_code, write_fantasies
from minivae.models import active_units, unit_activity
from minivae.nn import sigmoid
from minivae.plotting import plt
from minivae.train import evaluate

test_elbo = evaluate(vae_objective(vae), params, data.x_test, rng)
test_kl = float(numpy.mean(kl_standard_normal(*vae.encode(params, data.x_test))))
codes = numpy.asarray(vae.encode(params, data.x_test)[0])
activity = unit_activity(codes)
page = write_fantasies(S.out / "fantasies.html", vae, params, codes, data.y_test, title=f"the decoder of a {RUN}",
                       n_sliders=S.sliders, max_points=S.points)
S.written.append(page)
start, start_note = start_code(S.z_dim, codes, data.y_test)
# what the decoder draws at the start code, p = σ(f(z)), (1, 784)
first_sight = sigmoid(numpy.asarray(vae.decode(params, numpy.array([start], dtype=codes.dtype))))
fig, axes = plt.subplots(1, 2, figsize=(4.2, 2.4), layout="constrained")
for ax, image, name in zip(axes, (data.x_test[0], first_sight[0]),
                           (f"test digit 1, label {data.y_test[0]}", "the page opens on\nσ(f(μ(x))), decoded")):
    ax.imshow(image.reshape(28, 28), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(name, fontsize=9)
    ax.set_axis_off()
S.figure(fig, "14_start.png")
print(f"the page opens on {start_note}: z = {numpy.round(start, 2).tolist()}")

# %% [markdown]
# ## The pad, and what the sample button draws
#
# The pad's background: the test digits' codes, coloured by label (with --z-dim above 2, the two most active
# units). Then 64 draws z ~ N(0, I) decoded, what the sample button shows one at a time.

# %%
from minivae.plotting import save_latent_scatter

top = [0, 1] if S.z_dim == 2 else [int(j) for j in numpy.argsort(-activity, kind="stable")[:2]]
S.written.append(save_latent_scatter(
    codes[:S.points][:, top], data.y_test[:S.points], S.out / "14_latent_pad.png",
    title=f"{RUN}\nthe pad: encoder means of {min(len(codes), S.points):,} {data.eval_name} digits, units "
          f"{top[0] + 1} and {top[1] + 1}"))
S.written.append(save_image_grid(vae.sample(params, 64, rng), S.out / "14_samples.png", ncols=8,
                                 title=f"{RUN}\n64 samples sigmoid(decoder(z)), z ~ N(0, I)"))

# %% [markdown]
# ## How well do the codes separate the digits?
#
# No label was used in training. A 5-nearest-neighbour vote among the codes of (at most 5,000) training digits
# labels each test digit's code; chance is 10 %.

# %%
def knn_accuracy(train_codes: numpy.ndarray, train_labels: numpy.ndarray, codes: numpy.ndarray,
                 labels: numpy.ndarray, k: int = 5) -> float:
    r"""The fraction of ``codes`` ``(N, z_dim)`` whose k nearest ``train_codes`` (Euclidean) vote for their label."""
    correct = 0
    for first in range(0, len(codes), 200):
        block = codes[first:first + 200]
        # squared distances ||c - t||^2, (200, M)
        dist = ((block[:, None, :] - train_codes[None, :, :]) ** 2).sum(-1)
        nearest = train_labels[numpy.argsort(dist, axis=1, kind="stable")[:, :k]]
        votes = numpy.array([numpy.bincount(row, minlength=10).argmax() for row in nearest])
        correct += int((votes == labels[first:first + 200]).sum())
    return correct / len(codes)


train_codes = numpy.asarray(vae.encode(params, data.x_train[:5000])[0])
accuracy = knn_accuracy(train_codes, data.y_train[:5000], codes, data.y_test)

# %% [markdown]
# ## The numbers, and the lesson as a number

# %%
print_table([{"quantity": "test ELBO (sampled z)", "value": test_elbo},
             {"quantity": "KL(q(z|x) || p(z))", "value": test_kl},
             {"quantity": f"active units (A_j > 0.01) of {S.z_dim}", "value": active_units(codes)},
             {"quantity": "5-NN accuracy of the codes", "value": accuracy},
             {"quantity": "fantasies.html (kB)", "value": page.stat().st_size / 1000}],
            title=f"{RUN}, {train_seconds:.0f} s of training")
lesson = lesson_check("5-NN accuracy of the test digits' codes (their 5 nearest training codes vote for the label, "
                      "no label used in training), above 0.35 (chance 0.10)", accuracy, 0.35)
metrics = {"lesson": lesson, "train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
           "n_test": len(data.x_test), "binarize": S.binarize, "test_elbo": test_elbo, "test_kl": test_kl,
           "unit_activity": activity, "active_units": active_units(codes), "latent_5nn_accuracy": accuracy,
           "page": page.name, "page_bytes": page.stat().st_size, "pad_units": top, "start": start,
           "start_note": start_note, "history": history, "train_seconds": train_seconds}
# the next step: play with this page first, then a 20-D model (sliders), or β and what it does to the units
PLAY = f"First open {page.resolve().as_uri()} in a browser and drag the point across the pad."
NEXT = ("walkthroughs/14_digit_fantasies.py --z-dim 20: the page of a 20-D model, with sliders. " if S.z_dim == 2
        else "walkthroughs/09_beta_vae.py: the KL weight β, and what it does to the latent units. ") + PLAY

# %% [markdown]
# ## As a script: save and say what was written
#
# Only `python walkthroughs/14_digit_fantasies.py` runs this cell (a notebook skips it): it saves the trained
# model (`params.npz`, for `minivae.load_params`; `minivae.fantasies.write_fantasies` turns any trained
# Bernoulli VAE into a page) and the numbers (`metrics.json`) in `--out`, lists every file written, and names
# the next step and the page's address.

# %%
if S.script:
    S.finish(params, metrics, NEXT)
