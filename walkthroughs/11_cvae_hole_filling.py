r"""11 - Hole filling: a conditional VAE draws many sharp completions where regression gives one blurry mean.

Shan, Variational Autoencoder, "Conditional VAE [Sohn et al., 2015]": X is the visible part of a digit,
Y the hidden part, and the model P(Y|X) has a latent z:

    log p(y|x) >= E_{q(z|x,y)}[log p(y|x, z)] - KL(q(z|x, y) || p(z|x)),

with a learned Gaussian prior p(z|x) (see minivae.cvae.CVAE). Given x, each z ~ p(z|x) gives one
completion. The baseline is a plain regression MLP x -> y with the same hidden layer, trained on the same
pixels: it can only give E[y|x], one blurry mean. Both use a Bernoulli likelihood on binarized pixels
(1[x > 0.5]), so both log-likelihoods are log-probabilities of the same binary hidden pixels and compare
fairly: the baseline's log p(y|x) = sum_d log Bern(y_d; sigmoid(f(x)_d)) is exact; the CVAE's is the
importance-sampled estimate log (1/k) sum_i p(y|x, z_i) p(z_i|x) / q(z_i|x, y) (Burda et al.), which for
large k approaches log p(y|x) from below in expectation. (A Gaussian likelihood with a learned variance
would reward pixels predicted exactly, since binary and near-binary pixels make its density unbounded.)

The same hole is then filled by a plain VAE trained on whole digits, with Rezende et al.'s iterative
imputation (Zhu, Deep Generative Models II, missing-value imputation): start the hidden pixels at 1/2,
then repeat z ~ q(z|x_filled), y ~ p(y|z) on the hidden pixels only, keeping the visible ones. It needs no
model of the hole: any mask works with the same VAE.

Saves in --out:
- 11_completions.png     per test digit: truth, visible part (hole grey), regression mean, 5 CVAE completions
- 11_vae_imputation.png  per test digit: truth, visible part, then the VAE's imputation after 1, 2, 5, 10, 25, 50 steps
- metrics.json           the numbers of the table

Run it (the 5,000 offline digits train; the official test set evaluates when --data-dir has it):

    python walkthroughs/11_cvae_hole_filling.py --data-dir ../shared/data/mnist
    python walkthroughs/11_cvae_hole_filling.py --mask square     # a 12x12 hole in the middle instead
    python walkthroughs/11_cvae_hole_filling.py --quick           # seconds, used by the tests
"""

from __future__ import annotations

import time

import numpy

from minivae.cvae import CVAE, pack_pairs
from minivae.distributions import bernoulli_log_prob, sample_bernoulli, sigmoid
from minivae.models import VAE
from minivae.nn import init_mlp, mlp
from minivae.objectives import Objective, cvae_objective, vae_objective
from minivae.ops import mean as vmean
from minivae.optim import Adam
from minivae.plotting import save_image_grid
from minivae.train import evaluate, fit
from minivae.walkthrough import (
    add_mnist_args,
    load_mnist_split,
    prepare_out,
    print_table,
    save_metrics,
    walkthrough_parser,
)

IMPUTATION_STEPS = (1, 2, 5, 10, 25, 50)


def parse_args(argv: list[str] | None = None):
    parser = add_mnist_args(walkthrough_parser(__doc__, "figures/11_cvae_hole_filling"), epochs=30)
    parser.add_argument("--mask", choices=("left", "square"), default="left",
                        help="what x shows: the left half (y = right half, default) or all but a 12x12 hole")
    parser.add_argument("--z-dim", type=int, default=16, help="latent dimension of CVAE and VAE (default 16)")
    parser.add_argument("--hidden", type=int, default=256, help="hidden units of every network (default 256)")
    parser.add_argument("--ll-k", type=int, default=500, help="importance samples for log p(y|x) (default 500)")
    parser.add_argument("--ll-n", type=int, default=1000, help="test digits for log p(y|x) (default 1000)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.n_train, args.ll_k, args.ll_n = 4, 1500, 50, 200
    return args


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


def regression_objective(x_dim: int) -> Objective:
    r"""Minimise −(1/N) Σ_n log p(y_n|x_n), p(y|x) = Π_d Bern(y_d; σ(f(x)_d)): the regression baseline."""
    return Objective(lambda p, xy, eps: -vmean(bernoulli_log_prob(xy[:, x_dim:], mlp(p, xy[:, :x_dim]))),
                     None, "log_lik")


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


def main(argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    args = parse_args(argv)
    out = prepare_out(args.out)
    data = load_mnist_split(args, n_test=500 if args.quick else None)
    rng = numpy.random.default_rng(args.seed)
    visible = visible_mask(args.mask)
    x_tr, y_tr = data.x_train[:, visible], data.x_train[:, ~visible]
    x_te, y_te = data.x_test[:, visible], data.x_test[:, ~visible]
    train_pairs, test_pairs = pack_pairs(x_tr, y_tr), pack_pairs(x_te, y_te)
    fit_args = dict(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, device=args.device,
                    binarize=data.fit_binarize)
    seconds = {}

    # the CVAE: maximise the conditional ELBO of y given x
    cvae = CVAE(x_tr.shape[1], y_tr.shape[1], [args.hidden], args.z_dim)
    tick = time.perf_counter()
    cvae_params = fit(cvae_objective(cvae), cvae.init(rng), train_pairs, optimizer=Adam(1e-3), **fit_args).params
    seconds["cvae"] = time.perf_counter() - tick

    # the regression baseline x -> E[y|x]: same hidden width, same Bernoulli likelihood
    tick = time.perf_counter()
    reg_params = fit(regression_objective(x_tr.shape[1]), init_mlp([x_tr.shape[1], args.hidden, y_tr.shape[1]], rng),
                     train_pairs, optimizer=Adam(1e-3), **fit_args).params
    seconds["regression"] = time.perf_counter() - tick

    # a plain VAE on whole digits, for iterative imputation
    vae = VAE(784, [args.hidden], args.z_dim)
    tick = time.perf_counter()
    vae_params = fit(vae_objective(vae), vae.init(rng), data.x_train, optimizer=Adam(1e-3), **fit_args).params
    seconds["vae"] = time.perf_counter() - tick

    # log p(y|x) on the same test digits: importance-sampled for the CVAE, exact for the regression MLP
    subset = rng.permutation(len(x_te))[:args.ll_n]
    tick = time.perf_counter()
    cvae_ll = float(numpy.mean(cvae.log_likelihood(cvae_params, x_te[subset], y_te[subset], args.ll_k, rng)))
    seconds["log_likelihood"] = time.perf_counter() - tick
    cvae_elbo = evaluate(cvae_objective(cvae), cvae_params, test_pairs[subset], rng)
    reg_ll = evaluate(regression_objective(x_tr.shape[1]), reg_params, test_pairs[subset], rng)

    # completions on up to 500 test digits: the regression mean, CVAE samples, the VAE's imputation chain
    scored = subset[:500]
    reg_mean = sigmoid(mlp(reg_params, x_te[scored]))
    cvae_draws = cvae.sample(cvae_params, x_te[scored], 5, rng)
    chain = impute(vae, vae_params, data.x_test[scored], visible, rng, max(IMPUTATION_STEPS))
    hole = compose(visible, x_te[scored], numpy.full((len(scored), y_te.shape[1]), 0.5))
    rows = [[data.x_test[scored[i]], hole[i], compose(visible, x_te[scored[[i]]], reg_mean[[i]])[0],
             *compose(visible, numpy.repeat(x_te[scored[[i]]], 5, 0), cvae_draws[:, i])] for i in range(8)]
    save_image_grid(numpy.array(rows).reshape(-1, 784), out / "11_completions.png", ncols=8,
                    title="truth | visible (hole grey) | regression mean | 5 CVAE completions")
    rows = [[data.x_test[scored[i]], hole[i], *(chain[t - 1][i] for t in IMPUTATION_STEPS)] for i in range(8)]
    save_image_grid(numpy.array(rows).reshape(-1, 784), out / "11_vae_imputation.png", ncols=8,
                    title="truth | visible | VAE imputation after 1, 2, 5, 10, 25, 50 steps")

    # hidden-pixel error of one thresholded completion: the mean minimises it by construction
    def pixel_error(pred: numpy.ndarray) -> float:
        return float(numpy.mean((pred > 0.5) != (y_te[scored] > 0.5)))

    errors = {"regression mean": pixel_error(reg_mean), "CVAE, one completion": pixel_error(cvae_draws[0]),
              "VAE imputation, 50 steps": pixel_error(chain[-1][:, ~visible])}
    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "mask": args.mask,
               "x_dim": int(visible.sum()), "y_dim": int((~visible).sum()), "epochs": args.epochs,
               "hidden": args.hidden, "z_dim": args.z_dim, "ll_k": args.ll_k, "ll_n": len(subset),
               "cvae_log_likelihood": cvae_ll, "cvae_elbo": cvae_elbo, "regression_log_likelihood": reg_ll,
               "cvae_minus_regression": cvae_ll - reg_ll, "pixel_error": errors, "n_pixel_error": len(scored),
               "seconds": seconds, "wall_seconds": time.perf_counter() - started}
    print_table([{"model": f"CVAE log p(y|x), k={args.ll_k}", "nats per digit": cvae_ll},
                 {"model": "CVAE ELBO", "nats per digit": cvae_elbo},
                 {"model": "regression MLP log p(y|x), exact", "nats per digit": reg_ll}],
                title=f"hidden part y = {int((~visible).sum())} pixels ({args.mask} mask), {len(subset)} test digits")
    print_table([{"completion": k, "hidden-pixel error": v} for k, v in errors.items()],
                title=f"hidden-pixel error on {len(scored)} test digits (the mean minimises it; sharp samples pay)")
    save_metrics(out, metrics)
    return metrics


if __name__ == "__main__":
    main()
