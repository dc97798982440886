# %% [markdown]
# # 11 - Hole filling: a conditional VAE draws many sharp completions where regression gives one blurry mean.
#
# Shan, Variational Autoencoder, "Conditional VAE [Sohn et al., 2015]": X is the visible part of a digit,
# Y the hidden part, and the model P(Y|X) has a latent z:
#
#     log p(y|x) >= E_{q(z|x,y)}[log p(y|x, z)] - KL(q(z|x, y) || p(z|x)),
#
# with a learned Gaussian prior p(z|x) (see minivae.cvae.CVAE). Given x, each z ~ p(z|x) gives one
# completion. The baseline is a plain regression MLP x -> y with the same hidden layer, trained on the same
# pixels: it can only give E[y|x], one blurry mean. Both use a Bernoulli likelihood on binarized pixels
# (1[x > 0.5]), so both log-likelihoods are log-probabilities of the same binary hidden pixels and compare
# fairly: the baseline's log p(y|x) = sum_d log Bern(y_d; sigmoid(f(x)_d)) is exact; the CVAE's is the
# importance-sampled estimate log (1/k) sum_i p(y|x, z_i) p(z_i|x) / q(z_i|x, y) (Burda et al.), which for
# large k approaches log p(y|x) from below in expectation. (A Gaussian likelihood with a learned variance
# would reward pixels predicted exactly, since binary and near-binary pixels make its density unbounded.)
#
# The same hole is then filled by a plain VAE trained on whole digits, with Rezende et al.'s iterative
# imputation (Zhu, Deep Generative Models II, missing-value imputation): start the hidden pixels at 1/2,
# then repeat z ~ q(z|x_filled), y ~ p(y|z) on the hidden pixels only, keeping the visible ones. It needs no
# model of the hole: any mask works with the same VAE.
#
# Saves in --out:
# - 11_completions.png     per test digit: truth, visible part (hole grey), regression mean, 5 CVAE completions
# - 11_vae_imputation.png  per test digit: truth, visible part, then the VAE's imputation after 1, 2, 5, 10,
#                          25, 50 steps
# - metrics.json, params.npz  the numbers of the table, and the three trained models ({"cvae", "regression",
#                             "vae"}; load them with minivae.load_params)
#
# With --mask square every file name carries the mask (11_square_completions.png, metrics_square.json, ...),
# so the two variants can share one --out folder.
#
# Run it (the official test set evaluates when --data-dir, or the environment variable MINIVAE_DATA, names
# the folder with the MNIST files):
#
#     python walkthroughs/11_cvae_hole_filling.py --data-dir ~/mnist
#     python walkthroughs/11_cvae_hole_filling.py --mask square     # a 12x12 hole in the middle instead
#     python walkthroughs/11_cvae_hole_filling.py --quick           # 4 epochs on 1,500 digits: seconds

# %%
from __future__ import annotations

import time

import numpy

from minivae.cvae import CVAE, pack_pairs
from minivae.distributions import bernoulli_log_prob, sample_bernoulli
from minivae.models import VAE
from minivae.nn import init_mlp, mlp, sigmoid
from minivae.objectives import Objective, cvae_objective, vae_objective
from minivae.ops import mean as vmean
from minivae.optim import Adam
from minivae.plotting import save_image_grid
from minivae.train import TrainSettings, evaluate, fit
from minivae.walkthrough import (
    Run,
    add_mnist_args,
    add_setting,
    finish,
    in_chunks,
    lesson,
    load_mnist_split,
    parse_flags,
    positive_int,
    print_table,
    show_progress,
    walkthrough_parser,
)

IMPUTATION_STEPS = (1, 2, 5, 10, 25, 50)

# %% [markdown]
# ## TrainSettings
#
# (quick, full) for each setting; a flag you give beats both. The quick run (4 epochs on 1,500 digits)
# already gives varied completions and a CVAE log p(y|x) above the regression's; the full run's are sharper.

# %%
OUT = "figures/11_cvae_hole_filling"
SETTINGS = {  # name: (quick, full); n_train None means every training digit
    "epochs": (4, 30),
    "n_train": (1500, None),
    "batch_size": (100, 100),
    "z_dim": (16, 16),
    "hidden": (256, 256),
    "ll_k": (50, 500),
    "ll_n": (200, 1000),
    "n_test": (500, None),
}


def parse_args(argv: list[str] | None = None):
    """The flags of this walkthrough, each checked before any data is loaded."""
    parser = add_mnist_args(walkthrough_parser(lesson(__name__), OUT), SETTINGS)
    parser.add_argument("--mask", choices=("left", "square"), default="left",
                        help="what x shows: the left half (y = right half, default) or all but a 12x12 hole")
    add_setting(parser, "--z-dim", SETTINGS, positive_int, "latent dimension of CVAE and VAE")
    add_setting(parser, "--hidden", SETTINGS, positive_int, "hidden units of every network")
    add_setting(parser, "--ll-k", SETTINGS, positive_int, "importance samples per digit for log p(y|x)")
    add_setting(parser, "--ll-n", SETTINGS, positive_int, "test digits for log p(y|x)")
    return parse_flags(parser, argv, SETTINGS)


# %% [markdown]
# ## What x shows and what y hides
#
# A boolean mask over the 784 pixels; x and y are the two parts of every digit, and `compose` puts them back.

# %%
def visible_mask(kind: str) -> numpy.ndarray:
    """Boolean ``(784,)``: True where x shows the pixel, False where y (the hole) is."""
    image = numpy.ones((28, 28), dtype=bool)
    if kind == "left":
        image[:, 14:] = False
    else:
        image[8:20, 8:20] = False
    return image.ravel()


def compose(visible: numpy.ndarray, x: numpy.ndarray, y: numpy.ndarray) -> numpy.ndarray:
    """Whole ``(N, 784)`` images with the visible pixels ``x`` and the hidden ones ``y``."""
    images = numpy.empty((len(x), 784), dtype=numpy.float32)
    images[:, visible], images[:, ~visible] = x, y
    return images


# %% [markdown]
# ## The baseline: regression x -> E[y|x]
#
# The same Bernoulli likelihood on the hidden pixels, without a latent: one mean per x.

# %%
def regression_objective(x_dim: int) -> Objective:
    r"""Minimise −(1/N) Σ_n log p(y_n|x_n), p(y|x) = Π_d Bern(y_d; σ(f(x)_d)): the regression baseline."""
    return Objective(lambda p, xy, eps: -vmean(bernoulli_log_prob(xy[:, x_dim:], mlp(p, xy[:, :x_dim]))),
                     None, "log_lik")


# %% [markdown]
# ## Imputation with a plain VAE
#
# Rezende et al.'s chain: the hole starts at 1/2, then z ~ q(z|x_filled), y ~ p(y|z) on the hole, repeated.

# %%
def impute(vae: VAE, params: dict, images: numpy.ndarray, visible: numpy.ndarray, rng: numpy.random.Generator,
           steps: int) -> list[numpy.ndarray]:
    r"""Rezende et al.'s imputation: hidden pixels start at ½, then z ~ q(z|x), y ~ p(y|z) on the hole, repeated.

    Returns the hole's probabilities σ(decoder(z)) after every step, composed with the visible pixels.
    """
    filled = images.copy()
    filled[:, ~visible] = 0.5
    history = []
    for _ in range(steps):
        # z ~ q(z|x_filled)
        mean, log_var = vae.encode(params, filled)
        z = mean + numpy.exp(0.5 * log_var) * rng.standard_normal(mean.shape).astype(mean.dtype)
        # y ~ p(y|z) on the hidden pixels; the visible ones stay as observed
        probs = sigmoid(vae.decode(params, z))
        filled[:, ~visible] = sample_bernoulli(probs, rng)[:, ~visible]
        history.append(compose(visible, images[:, visible], probs[:, ~visible]))
    return history


# %% [markdown]
# ## The run
#
# Train the CVAE, the regression baseline and the VAE on the same digits; score log p(y|x); draw completions.

# %%
def main(argv: list[str] | None = None) -> Run:
    started = time.perf_counter()
    args = parse_args(argv)
    data = load_mnist_split(args, n_test=args.n_test)
    rng = numpy.random.default_rng(args.seed)
    visible = visible_mask(args.mask)
    x_tr, y_tr = data.x_train[:, visible], data.x_train[:, ~visible]
    x_te, y_te = data.x_test[:, visible], data.x_test[:, ~visible]
    train_pairs, test_pairs = pack_pairs(x_tr, y_tr), pack_pairs(x_te, y_te)
    run = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, binarize=data.fit_binarize,
                   device=args.device, progress=show_progress())
    seconds = {}

    # the CVAE: maximise the conditional ELBO of y given x
    cvae = CVAE(x_tr.shape[1], y_tr.shape[1], [args.hidden], args.z_dim)
    tick = time.perf_counter()
    cvae_params = fit(cvae_objective(cvae), cvae.init(rng), train_pairs, optimizer=Adam(1e-3), settings=run).params
    seconds["cvae"] = time.perf_counter() - tick

    # the regression baseline x -> E[y|x]: same hidden width, same Bernoulli likelihood
    tick = time.perf_counter()
    reg_params = fit(regression_objective(x_tr.shape[1]), init_mlp([x_tr.shape[1], args.hidden, y_tr.shape[1]], rng),
                     train_pairs, optimizer=Adam(1e-3), settings=run).params
    seconds["regression"] = time.perf_counter() - tick

    # a plain VAE on whole digits, for iterative imputation
    vae = VAE(784, [args.hidden], args.z_dim)
    tick = time.perf_counter()
    vae_params = fit(vae_objective(vae), vae.init(rng), data.x_train, optimizer=Adam(1e-3), settings=run).params
    seconds["vae"] = time.perf_counter() - tick

    # log p(y|x) on the same test digits: importance-sampled for the CVAE, exact for the regression MLP
    subset = rng.permutation(len(x_te))[:args.ll_n]
    tick = time.perf_counter()
    cvae_ll = float(numpy.mean(in_chunks(
        lambda rows: cvae.log_likelihood(cvae_params, x_te[rows], y_te[rows], args.ll_k, rng), subset,
        desc=f"log p(y|x), k={args.ll_k}")))
    seconds["log_likelihood"] = time.perf_counter() - tick
    cvae_elbo = evaluate(cvae_objective(cvae), cvae_params, test_pairs[subset], rng)
    reg_ll = evaluate(regression_objective(x_tr.shape[1]), reg_params, test_pairs[subset], rng)

    # completions on up to 500 test digits: the regression mean, CVAE samples, the VAE's imputation chain
    scored = subset[:500]
    reg_mean = sigmoid(mlp(reg_params, x_te[scored]))
    cvae_draws = cvae.sample(cvae_params, x_te[scored], 5, rng)
    chain = impute(vae, vae_params, data.x_test[scored], visible, rng, max(IMPUTATION_STEPS))
    hole = compose(visible, x_te[scored], numpy.full((len(scored), y_te.shape[1]), 0.5))
    stem = "11" if args.mask == "left" else f"11_{args.mask}"
    trained = (f"hidden {args.hidden}, z {args.z_dim}, {args.epochs} epochs on {len(data.x_train):,} digits, "
               f"{args.mask} mask, {data.eval_name} digits")
    rows = [[data.x_test[scored[i]], hole[i], compose(visible, x_te[scored[[i]]], reg_mean[[i]])[0],
             *compose(visible, numpy.repeat(x_te[scored[[i]]], 5, 0), cvae_draws[:, i])] for i in range(8)]
    imputed = [[data.x_test[scored[i]], hole[i], *(chain[t - 1][i] for t in IMPUTATION_STEPS)] for i in range(8)]
    figures = [
        save_image_grid(numpy.array(rows).reshape(-1, 784), args.out / f"{stem}_completions.png", ncols=8,
                        title=f"{trained}\ntruth | visible (hole grey) | regression mean | 5 CVAE completions"),
        save_image_grid(numpy.array(imputed).reshape(-1, 784), args.out / f"{stem}_vae_imputation.png", ncols=8,
                        title=f"{trained}\ntruth | visible | VAE imputation after 1, 2, 5, 10, 25, 50 steps"),
    ]

    # hidden-pixel error of one thresholded completion: the mean minimises it by construction
    def pixel_error(pred: numpy.ndarray) -> float:
        return float(numpy.mean((pred > 0.5) != (y_te[scored] > 0.5)))

    errors = {"regression mean": pixel_error(reg_mean), "CVAE, one completion": pixel_error(cvae_draws[0]),
              "VAE imputation, 50 steps": pixel_error(chain[-1][:, ~visible])}
    print_table([{"model": f"CVAE log p(y|x), k={args.ll_k}", "nats per digit": cvae_ll},
                 {"model": "CVAE ELBO", "nats per digit": cvae_elbo},
                 {"model": "regression MLP log p(y|x), exact", "nats per digit": reg_ll}],
                title=f"hidden part y = {int((~visible).sum())} pixels ({args.mask} mask), {len(subset)} "
                      f"{data.eval_name} digits")
    print_table([{"completion": k, "hidden-pixel error": v} for k, v in errors.items()],
                title=f"hidden-pixel error on {len(scored)} {data.eval_name} digits (the mean minimises it; "
                      "sharp samples pay)")
    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "mask": args.mask,
               "x_dim": int(visible.sum()), "y_dim": int((~visible).sum()), "epochs": args.epochs,
               "n_train": len(data.x_train), "hidden": args.hidden, "z_dim": args.z_dim, "ll_k": args.ll_k,
               "ll_n": len(subset), "cvae_log_likelihood": cvae_ll, "cvae_elbo": cvae_elbo,
               "regression_log_likelihood": reg_ll, "cvae_minus_regression": cvae_ll - reg_ll,
               "pixel_error": errors, "n_pixel_error": len(scored), "seconds": seconds, "quick": args.quick,
               "wall_seconds": time.perf_counter() - started}
    return finish(args.out, {"cvae": cvae_params, "regression": reg_params, "vae": vae_params}, metrics, figures,
                  "walkthroughs/12_semi_supervised_m2.py: 100 labels and many unlabelled digits train a classifier.",
                  variant="" if args.mask == "left" else args.mask)


# %%
if __name__ == "__main__":
    run = main()


# %% [markdown]
# ## Try it yourself
#
# Write this lesson's formulas by hand and let the grader check them with the properties that test
# minivae. `python -m minivae.exercises start DIR` writes `DIR/my_vae.py`, one stub per exercise; fill in
# `kl_diag_gaussians`, then run, in `DIR`:
#
#     python -m minivae.exercises check my_vae.py kl_diag_gaussians
#
# Each prints PASS, TODO, or FAIL with the first property that fails and the mistake it recognises
# (docs/exercises.md lists every exercise).
