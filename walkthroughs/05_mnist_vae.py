# %% [markdown]
# # 05 - The main job: train a VAE on MNIST and look at what it learned
#
# Shan, Variational Autoencoder: the PyTorch example's model, ``VAE(784, [400], 20)`` with a Bernoulli
# decoder p(x|z) = Bern(sigmoid(logits)). Its "BCE + KLD" loss is the negative ELBO (Zhu, Deep Generative
# Models II):
#
#     ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)),   z = mu + sigma * eps,
#
# trained with Adam(1e-3) on minibatches of 100. Pixels are binarized 1[x > 0.5] by default; --binarize
# stochastic redraws x ~ Bernoulli(intensity) every epoch (test digits: one fixed draw), and none keeps the
# grey values (then the "log-likelihood" is a cross-entropy score, not a density of binary images).
#
# Saves in --out:
# - 05_samples.png          64 draws z ~ N(0, I) decoded to the probabilities sigmoid(logits)
# - 05_reconstructions.png  test digits (rows 1, 3) above their reconstructions sigmoid(decoder(mu(x))) (rows 2, 4)
# - 05_learning_curve.png   train and test ELBO per epoch
# - params.npz, metrics.json  the trained model (minivae.load_params) and the numbers of the table
#
# and reports the test ELBO in nats (one *sampled* z per digit, KL in closed form) and the importance-sampled
# test log-likelihood log p(x) ~ L_k = log (1/k) sum_i p(x, z_i)/q(z_i|x) with k = --ll-k on --ll-n random
# test digits (Burda et al.), with the ELBO of the same digits beside it: log p(x) >= L_k >= ELBO.
#
# Run it (all 60,000 MNIST training digits for 10 epochs, or the 5,000 offline digits if that is all there is;
# --data-dir, or the environment variable MINIVAE_DATA, names the folder with the MNIST files):
#
#     python walkthroughs/05_mnist_vae.py --data-dir ~/mnist
#     python walkthroughs/05_mnist_vae.py --quick          # 8 epochs on 3,000 digits: seconds
#
# In a notebook, run the cells in order; the last one trains (set MINIVAE_WALKTHROUGH_ARGS="--quick" for a
# quick run) and leaves the trained model in `run.params`.

# %%
from __future__ import annotations

import time

import numpy

from minivae.distributions import kl_standard_normal
from minivae.models import VAE
from minivae.nn import sigmoid
from minivae.objectives import vae_objective
from minivae.optim import Adam
from minivae.plotting import save_curves, save_image_grid
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
# One block, each setting as (quick, full). `--quick` trains 8 epochs on 3,000 digits: seconds on one core,
# and the samples are already recognisable digits (its learning curve follows 1,000 test digits; the final
# numbers use the whole test set). A flag you give beats both columns.

# %%
OUT = "figures/05_mnist_vae"
SETTINGS = {  # name: (quick, full); n_train None means every training digit
    "epochs": (8, 10),
    "n_train": (3000, None),
    "batch_size": (100, 100),
    "z_dim": (20, 20),
    "hidden": (400, 400),
    "lr": (1e-3, 1e-3),
    "ll_k": (50, 1000),
    "ll_n": (100, 1000),
    "n_test": (None, None),  # test digits for the final numbers (None: all of them)
    "curve_n": (1000, None),  # test digits evaluated after every epoch, for the learning curve
}


def parse_args(argv: list[str] | None = None):
    """The flags of this walkthrough, each checked before any data is loaded."""
    parser = add_mnist_args(walkthrough_parser(lesson(__name__), OUT), SETTINGS)
    add_setting(parser, "--z-dim", SETTINGS, positive_int, "latent dimension")
    add_setting(parser, "--hidden", SETTINGS, positive_int, "hidden units of encoder and decoder")
    add_setting(parser, "--lr", SETTINGS, positive_float, "Adam learning rate")
    add_setting(parser, "--ll-k", SETTINGS, positive_int, "importance samples per digit for log p(x)")
    add_setting(parser, "--ll-n", SETTINGS, positive_int, "test digits for log p(x)")
    return parse_flags(parser, argv, SETTINGS)


# %% [markdown]
# ## Reconstructions
#
# The encoder's mean mu(x) of a digit, decoded: sigmoid(decoder(mu(x))). Each row of originals is followed
# by the row of their reconstructions.

# %%
def reconstruction_rows(vae: VAE, params: dict, x: numpy.ndarray, ncols: int = 8) -> numpy.ndarray:
    """Rows of ``ncols`` originals, each followed by a row of their reconstructions sigmoid(decoder(mu(x)))."""
    mean, _ = vae.encode(params, x)
    recon = sigmoid(vae.decode(params, mean))
    rows = [block for i in range(0, len(x), ncols) for block in (x[i:i + ncols], recon[i:i + ncols])]
    return numpy.concatenate(rows)


# %% [markdown]
# ## Evaluation
#
# The test ELBO uses one *sampled* z per digit (never z = mu), its KL term is in closed form, and the
# reconstruction term is their sum. log p(x) is estimated by importance sampling with k samples per digit
# (the longest step: it shows a progress bar), next to the ELBO of the same digits.

# %%
def test_numbers(vae: VAE, params: dict, x_test: numpy.ndarray, args, rng: numpy.random.Generator) -> dict:
    r"""Test ELBO, KL and reconstruction term on ``x_test``; log p(x) ≈ L_k and the ELBO on ``args.ll_n`` digits."""
    # ELBO with a sampled z, and its closed-form KL; E_q[log p(x|z)] = ELBO + KL
    elbo = evaluate(vae_objective(vae), params, x_test, rng)
    kl = float(numpy.mean(kl_standard_normal(*vae.encode(params, x_test))))
    # log p(x) ≈ L_k by importance sampling on a random subset, and the ELBO of the same digits
    subset = x_test[rng.permutation(len(x_test))[:args.ll_n]]
    log_lik = in_chunks(lambda xb: vae.log_likelihood(params, xb, args.ll_k, rng), subset,
                        desc=f"log p(x), k={args.ll_k}")
    return {"test_elbo": elbo, "test_kl": kl, "test_reconstruction": elbo + kl, "ll_n": len(subset),
            "test_log_likelihood": float(numpy.mean(log_lik)),
            "test_elbo_ll_subset": evaluate(vae_objective(vae), params, subset, rng)}


# %% [markdown]
# ## The run
#
# Load the digits, train on the ELBO (the test ELBO after every epoch), evaluate, draw the figures, and
# keep the model: `params.npz` loads back with `minivae.load_params`.

# %%
def main(argv: list[str] | None = None) -> Run:
    started = time.perf_counter()
    args = parse_args(argv)
    data = load_mnist_split(args, n_test=args.n_test)
    rng = numpy.random.default_rng(args.seed)
    vae = VAE(784, [args.hidden], args.z_dim)
    sizes = f"784-{args.hidden}-{args.z_dim}"

    # train: maximise the ELBO (minimise BCE + KLD), the ELBO of curve_n test digits after every epoch
    curve_x = data.x_test[:args.curve_n]
    result = fit(vae_objective(vae), vae.init(rng), data.x_train, x_test=curve_x, optimizer=Adam(args.lr),
                 settings=TrainSettings(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                   binarize=data.fit_binarize, device=args.device, progress=show_progress()))
    params, history = result.params, result.history
    train_seconds = sum(h["seconds"] for h in history)
    numbers = test_numbers(vae, params, data.x_test, args, rng)

    run_name = f"{sizes} VAE, {args.epochs} epochs on {len(data.x_train):,} digits"
    figures = [
        save_image_grid(vae.sample(params, 64, rng), args.out / "05_samples.png", ncols=8,
                        title=f"{run_name}\n64 samples sigmoid(decoder(z)), z ~ N(0, I)"),
        save_image_grid(reconstruction_rows(vae, params, data.x_test[:16]), args.out / "05_reconstructions.png",
                        ncols=8, title=f"{run_name}\n{data.eval_name} digits (rows 1, 3), reconstructions (rows 2, 4)"),
        save_curves({"train ELBO": ([h["epoch"] for h in history], [h["train_elbo"] for h in history]),
                     f"{data.eval_name} ELBO": ([h["epoch"] for h in history], [h["test_elbo"] for h in history])},
                    args.out / "05_learning_curve.png", ylabel="ELBO (nats per digit)",
                    title=f"{run_name}\nevaluated on {len(curve_x):,} {data.eval_name} digits"),
    ]

    print_table([{"quantity": "test ELBO (sampled z)", "nats": numbers["test_elbo"]},
                 {"quantity": "  reconstruction E_q[log p(x|z)]", "nats": numbers["test_reconstruction"]},
                 {"quantity": "  KL(q(z|x) || p(z))", "nats": numbers["test_kl"]},
                 {"quantity": f"ELBO of the {numbers['ll_n']} log p(x) digits", "nats": numbers["test_elbo_ll_subset"]},
                 {"quantity": f"log p(x), k={args.ll_k}, same digits", "nats": numbers["test_log_likelihood"]}],
                title=f"{run_name}, {train_seconds:.0f} s of training")
    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
               "n_test": len(data.x_test), "binarize": args.binarize, "epochs": args.epochs, "z_dim": args.z_dim,
               "hidden": args.hidden, "ll_k": args.ll_k, **numbers, "history": history, "quick": args.quick,
               "train_seconds": train_seconds, "wall_seconds": time.perf_counter() - started}
    return finish(args.out, params, metrics, figures,
                  "walkthroughs/06_mnist_latent_2d.py: the same VAE with a 2-D latent space, drawn whole.")


# %%
if __name__ == "__main__":
    run = main()


# %% [markdown]
# ## Try it yourself
#
# Write this lesson's formulas by hand and let the grader check them with the properties that test
# minivae. `python -m minivae.exercises start DIR` writes `DIR/my_vae.py`, one stub per exercise; fill in
# `bernoulli_log_prob`, `bernoulli_log_prob_vjp`, `kl_standard_normal`, `adam_step`, then run, in `DIR`:
#
#     python -m minivae.exercises check my_vae.py bernoulli_log_prob
#     python -m minivae.exercises check my_vae.py bernoulli_log_prob_vjp
#     python -m minivae.exercises check my_vae.py kl_standard_normal
#     python -m minivae.exercises check my_vae.py adam_step
#
# Each prints PASS, TODO, or FAIL with the first property that fails and the mistake it recognises
# (docs/exercises.md lists every exercise).
