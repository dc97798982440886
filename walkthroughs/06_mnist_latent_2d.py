# %% [markdown]
# # 06 - A VAE with a 2-D latent space: the test digits' embedding, and the manifold the decoder draws.
#
# Shan, Variational Autoencoder (the 2-D embedding of MNIST) and Klushyn, "A brief introduction to
# (variational) autoencoders" (the 2-D latent learning process). The model is ``VAE(784, [400], 2)`` with a
# Bernoulli decoder, trained on the ELBO like walkthrough 05. With two latent dimensions we can look at
# the whole latent space at once:
#
# - 06_embedding.png  the encoder means mu(x) of the test digits, coloured by their label
# - 06_manifold.png   sigmoid(decoder(z)) on a 20 x 20 grid z = (Phi^-1(p_i), Phi^-1(p_j)), p_i = (i + 1/2)/20:
#                     equal-probability steps under the prior N(0, I), as in Kingma and Welling's figure
#                     (Phi^-1, the standard normal quantile, from the standard library's NormalDist)
#
# It reports the test ELBO (sampled z), the KL, log p(x) by importance sampling, and how well the 2-D codes
# separate the digits: the accuracy of a 5-nearest-neighbour classifier that labels each test code by the
# codes of the training digits (no labels were used in training).
#
# Run it:
#
#     python walkthroughs/06_mnist_latent_2d.py --data-dir ~/mnist
#     python walkthroughs/06_mnist_latent_2d.py --quick       # 15 epochs on 4,000 digits: seconds
#
# (--data-dir, or the environment variable MINIVAE_DATA, names the folder with the MNIST files.) Also saved:
# params.npz (load it with minivae.load_params) and metrics.json.

# %%
from __future__ import annotations

import time
from statistics import NormalDist

import numpy

from minivae.distributions import kl_standard_normal
from minivae.models import VAE
from minivae.nn import sigmoid
from minivae.objectives import vae_objective
from minivae.optim import Adam
from minivae.plotting import save_image_grid, save_latent_scatter
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
    positive_float,
    positive_int,
    print_table,
    show_progress,
    walkthrough_parser,
)

# %% [markdown]
# ## TrainSettings
#
# (quick, full) for each setting; a flag you give beats both. The quick run (15 epochs on 4,000 digits, with
# a larger learning rate) already pulls 1s and 7s apart in the embedding. On the 5,000 offline digits the
# full run looks much the same (5-NN accuracy 0.48 on all 10,000 test digits, against the quick run's 0.51 on
# 2,000); more training digits and epochs are what separate more classes.

# %%
OUT = "figures/06_mnist_latent_2d"
SETTINGS = {  # name: (quick, full); n_train None means every training digit
    "epochs": (15, 10),
    "n_train": (4000, None),
    "batch_size": (100, 100),
    "hidden": (400, 400),
    "lr": (3e-3, 1e-3),
    "ll_k": (50, 1000),
    "ll_n": (200, 500),
    "n_test": (2000, None),
}
QUICK_NOTE = "quick run: 1s and 7s pull apart, the rest overlap; on 5,000 digits the full run looks alike"


def parse_args(argv: list[str] | None = None):
    """The flags of this walkthrough, each checked before any data is loaded."""
    parser = add_mnist_args(walkthrough_parser(lesson(__name__), OUT), SETTINGS)
    add_setting(parser, "--hidden", SETTINGS, positive_int, "hidden units of encoder and decoder")
    add_setting(parser, "--lr", SETTINGS, positive_float, "Adam learning rate")
    add_setting(parser, "--ll-k", SETTINGS, positive_int, "importance samples per digit for log p(x)")
    add_setting(parser, "--ll-n", SETTINGS, positive_int, "test digits for log p(x)")
    return parse_flags(parser, argv, SETTINGS)


# %% [markdown]
# ## The latent square, in equal-probability steps
#
# Phi^-1 maps a uniform grid of probabilities to the quantiles of N(0, 1): each cell of the grid holds the
# same prior mass, so the manifold shows the latent space as the prior weights it.

# %%
def manifold_codes(n: int = 20) -> numpy.ndarray:
    r"""The ``(n*n, 2)`` grid z = (Φ⁻¹(p_j), Φ⁻¹(p_i)), p = (i + ½)/n, row by row from the top (large z₂)."""
    q = numpy.array([NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)])
    z1, z2 = numpy.meshgrid(q, q[::-1])
    return numpy.stack([z1.ravel(), z2.ravel()], axis=1).astype(numpy.float32)


# %% [markdown]
# ## How well do the codes separate the digits?
#
# No label was used in training. A 5-nearest-neighbour vote among the training digits' codes labels each
# test code; chance is 10 %.

# %%
def knn_accuracy(train_codes: numpy.ndarray, train_labels: numpy.ndarray, codes: numpy.ndarray,
                 labels: numpy.ndarray, k: int = 5) -> float:
    """The fraction of ``codes`` whose k nearest ``train_codes`` (Euclidean) vote for the right label."""
    correct = 0
    for start in range(0, len(codes), 1000):
        block = codes[start:start + 1000]
        dist = ((block[:, None, :] - train_codes[None, :, :]) ** 2).sum(-1)
        nearest = train_labels[numpy.argsort(dist, axis=1)[:, :k]]
        votes = numpy.array([numpy.bincount(row, minlength=10).argmax() for row in nearest])
        correct += int((votes == labels[start:start + 1000]).sum())
    return correct / len(codes)


# %% [markdown]
# ## The run
#
# Train on the ELBO as in walkthrough 05 with z_dim = 2, evaluate, and draw the embedding and the manifold.

# %%
def main(argv: list[str] | None = None) -> Run:
    started = time.perf_counter()
    args = parse_args(argv)
    data = load_mnist_split(args, n_test=args.n_test)
    rng = numpy.random.default_rng(args.seed)
    vae = VAE(784, [args.hidden], 2)
    run_name = f"784-{args.hidden}-2 VAE, {args.epochs} epochs on {len(data.x_train):,} digits"

    # train on the ELBO, as in walkthrough 05, with a 2-D latent space
    result = fit(vae_objective(vae), vae.init(rng), data.x_train, x_test=data.x_test, optimizer=Adam(args.lr),
                 settings=TrainSettings(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                   binarize=data.fit_binarize, device=args.device, progress=show_progress()))
    params = result.params
    train_seconds = sum(h["seconds"] for h in result.history)

    # test ELBO (sampled z), closed-form KL, and log p(x) by importance sampling on a subset
    test_elbo = evaluate(vae_objective(vae), params, data.x_test, rng)
    codes, log_var = vae.encode(params, data.x_test)
    test_kl = float(numpy.mean(kl_standard_normal(codes, log_var)))
    subset = data.x_test[rng.permutation(len(data.x_test))[:args.ll_n]]
    log_lik = float(numpy.mean(in_chunks(lambda xb: vae.log_likelihood(params, xb, args.ll_k, rng), subset,
                                         desc=f"log p(x), k={args.ll_k}")))
    subset_elbo = evaluate(vae_objective(vae), params, subset, rng)
    # how well the unsupervised 2-D codes separate the digits
    train_codes, _ = vae.encode(params, data.x_train)
    accuracy = knn_accuracy(train_codes, data.y_train, codes, data.y_test)

    figures = [
        save_latent_scatter(codes, data.y_test, args.out / "06_embedding.png",
                            title=f"{run_name}\nencoder means of {len(codes):,} {data.eval_name} digits "
                                  f"(5-NN accuracy {100 * accuracy:.0f} %)"
                                  + (f"\n({QUICK_NOTE})" if args.quick else "")),
        save_image_grid(sigmoid(vae.decode(params, manifold_codes(20))), args.out / "06_manifold.png", ncols=20,
                        title=f"{run_name}: sigmoid(decoder(z)) over the N(0, I) quantiles of the latent square"),
    ]
    print_table([{"quantity": "test ELBO (sampled z)", "value": test_elbo},
                 {"quantity": "KL(q(z|x) || p(z))", "value": test_kl},
                 {"quantity": f"ELBO of the {len(subset)} log p(x) digits", "value": subset_elbo},
                 {"quantity": f"log p(x), k={args.ll_k}, same digits", "value": log_lik},
                 {"quantity": "5-NN accuracy of the 2-D codes", "value": accuracy}],
                title=f"{run_name}, {train_seconds:.0f} s of training")
    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
               "n_test": len(data.x_test), "binarize": args.binarize, "epochs": args.epochs, "z_dim": 2,
               "hidden": args.hidden, "lr": args.lr, "test_elbo": test_elbo, "test_kl": test_kl,
               "ll_k": args.ll_k,
               "ll_n": len(subset), "test_log_likelihood": log_lik,
               "test_elbo_ll_subset": subset_elbo, "latent_5nn_accuracy": accuracy,
               "history": result.history, "quick": args.quick, "train_seconds": train_seconds,
               "wall_seconds": time.perf_counter() - started}
    return finish(args.out, params, metrics, figures,
                  "walkthroughs/07_traverse_interpolate.py: walk through the 20-D latent space of walkthrough 05.")


# %%
if __name__ == "__main__":
    run = main()


# %% [markdown]
# ## Try it yourself
#
# Write this lesson's formulas by hand and let the grader check them with the properties that test
# minivae. `python -m minivae.exercises start DIR` writes `DIR/my_vae.py`, one stub per exercise; fill in
# `dense_vjp`, `numerical_grad`, then run, in `DIR`:
#
#     python -m minivae.exercises check my_vae.py dense_vjp
#     python -m minivae.exercises check my_vae.py numerical_grad
#
# Each prints PASS, TODO, or FAIL with the first property that fails and the mistake it recognises
# (docs/exercises.md lists every exercise).
