# %% [markdown]
# # 14 - Digit fantasies: move the latent variables and watch the decoder draw
#
# Shan, Variational Autoencoder: the demo slide "Digit Fantasies by a Deep Generative Model" (Kingma's
# interactive SGVB demo on MNIST). A decoder p(x|z) = Bern(sigmoid(f(z))) turns every point z of the latent
# space into a digit; the fastest way to feel what it learned is to move z and watch. This walkthrough trains
# the VAE of walkthrough 06 (``VAE(784, [400], 2)``, Bernoulli decoder, ELBO) and writes its decoder into one
# web page that opens from disk, with no network and no library: the weights are embedded (float32, base64)
# and the same MLP runs in plain JavaScript.
#
# On the page (minivae.fantasies):
# - a latent pad: click or drag a point z; behind it, the encoder means of the test digits, coloured by label;
# - with --z-dim above 2, sliders over the most active latent units (A_j = Var_x(mu_j(x)), Burda et al.);
# - a "sample" button that draws z ~ N(0, I), as the samples figure of walkthrough 05 does.
#
# Saves in --out:
# - fantasies.html            the page: open it in any browser (double-click, or file:// in the address bar)
# - 14_latent_pad.png         the pad's background: the test digits' codes, coloured by label
# - 14_samples.png            64 draws z ~ N(0, I) decoded, what the sample button shows one at a time
# - params.npz, metrics.json  the trained model (minivae.load_params) and the numbers of the table
#
# The page has a testing hook: fantasies.html?z=v1,v2,... sets z on load and writes the 784 probabilities
# into the element id="pixels" (docs/fantasies.md).
#
# Run it (the 2-D model; --z-dim 20 gives the sliders; --data-dir or MINIVAE_DATA names the MNIST folder):
#
#     python walkthroughs/14_digit_fantasies.py --data-dir ~/mnist
#     python walkthroughs/14_digit_fantasies.py --quick            # 15 epochs on 4,000 digits: seconds
#     python walkthroughs/14_digit_fantasies.py --quick --z-dim 20
#
# In a notebook, run the cells in order; the last one trains (set MINIVAE_WALKTHROUGH_ARGS="--quick" for a
# quick run) and leaves the trained model in `run.params`.

# %%
from __future__ import annotations

import time

import numpy

from minivae.distributions import kl_standard_normal
from minivae.fantasies import write_fantasies
from minivae.models import VAE, active_units, unit_activity
from minivae.objectives import vae_objective
from minivae.optim import Adam
from minivae.plotting import save_image_grid, save_latent_scatter
from minivae.train import TrainSettings, evaluate, fit
from minivae.walkthrough import (
    Run,
    add_mnist_args,
    add_setting,
    finish,
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
# One block, each setting as (quick, full). A 2-D latent space needs more steps than walkthrough 05's 20-D
# one before the digits part on the pad: `--quick` trains 15 epochs on 4,000 digits at a higher learning
# rate (seconds on one core; the 0s, 1s, 7s, 8s and 9s already have their own regions), the full run 50
# epochs. A flag you give beats both columns.

# %%
OUT = "figures/14_digit_fantasies"
SETTINGS = {  # name: (quick, full); n_train / n_test None means every digit
    "epochs": (15, 50),
    "n_train": (4000, None),
    "batch_size": (100, 100),
    "z_dim": (2, 2),
    "hidden": (400, 400),
    "lr": (3e-3, 1e-3),
    "n_test": (1000, None),
    "sliders": (10, 10),
    "points": (5000, 5000),
}


def parse_args(argv: list[str] | None = None):
    """The flags of this walkthrough, each checked before any data is loaded."""
    parser = add_mnist_args(walkthrough_parser(lesson(__name__), OUT), SETTINGS)
    add_setting(parser, "--z-dim", SETTINGS, positive_int, "latent dimension (2: a pad; more: a pad and sliders)")
    add_setting(parser, "--hidden", SETTINGS, positive_int, "hidden units of encoder and decoder")
    add_setting(parser, "--lr", SETTINGS, positive_float, "Adam learning rate")
    add_setting(parser, "--n-test", SETTINGS, positive_int, "test digits to evaluate and to scatter on the pad")
    add_setting(parser, "--sliders", SETTINGS, positive_int, "sliders over the most active units (z-dim > 2)")
    add_setting(parser, "--points", SETTINGS, positive_int, "most test codes drawn on the pad")
    args = parse_flags(parser, argv, SETTINGS)
    if args.z_dim < 2:
        parser.error(f"--z-dim {args.z_dim}: the page's pad needs at least 2 latent dimensions.")
    return args


# %% [markdown]
# ## What the page is given
#
# The decoder's weights, and the encoder means mu(x) of the test digits: they rank the latent units by their
# activity A_j = Var_x(mu_j(x)), and the pad scatters them behind the point you move. Where the dots of one
# colour lie, the decoder draws that digit.

# %%
def codes_and_activity(vae: VAE, params: dict, x_test: numpy.ndarray) -> tuple[numpy.ndarray, numpy.ndarray]:
    r"""The encoder means mu(x) of ``x_test`` ``(N, z_dim)`` and each unit's activity A_j = Var_x(mu_j(x))."""
    codes, _ = vae.encode(params, x_test)
    return numpy.asarray(codes), unit_activity(codes)


# %% [markdown]
# ## The run
#
# Load the digits, train on the ELBO, evaluate, write the page and the figures, and keep the model:
# `params.npz` loads back with `minivae.load_params`, and `minivae.fantasies.write_fantasies` turns any
# trained Bernoulli VAE into a page.

# %%
def main(argv: list[str] | None = None) -> Run:
    started = time.perf_counter()
    args = parse_args(argv)
    data = load_mnist_split(args, n_test=args.n_test)
    rng = numpy.random.default_rng(args.seed)
    vae = VAE(784, [args.hidden], args.z_dim)
    run_name = f"784-{args.hidden}-{args.z_dim} VAE, {args.epochs} epochs on {len(data.x_train):,} digits"

    # train: maximise the ELBO, test ELBO after every epoch
    result = fit(vae_objective(vae), vae.init(rng), data.x_train, x_test=data.x_test, optimizer=Adam(args.lr),
                 settings=TrainSettings(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                   binarize=data.fit_binarize, device=args.device, progress=show_progress()))
    params, history = result.params, result.history
    train_seconds = sum(h["seconds"] for h in history)

    # test ELBO (sampled z) and its closed-form KL; the codes and the activity of each unit
    test_elbo = evaluate(vae_objective(vae), params, data.x_test, rng)
    test_kl = float(numpy.mean(kl_standard_normal(*vae.encode(params, data.x_test))))
    codes, activity = codes_and_activity(vae, params, data.x_test)

    # the page, and the two figures it is made of
    page = write_fantasies(args.out / "fantasies.html", vae, params, codes, data.y_test,
                           title=f"the decoder of a {run_name}", n_sliders=args.sliders, max_points=args.points)
    top = [0, 1] if args.z_dim == 2 else list(numpy.argsort(-activity, kind="stable")[:2])
    figures = [
        page,
        save_latent_scatter(codes[:args.points][:, top], data.y_test[:args.points], args.out / "14_latent_pad.png",
                            title=f"{run_name}\nthe pad: encoder means of {min(len(codes), args.points):,} "
                                  f"{data.eval_name} digits, units {top[0] + 1} and {top[1] + 1}"),
        save_image_grid(vae.sample(params, 64, rng), args.out / "14_samples.png", ncols=8,
                        title=f"{run_name}\n64 samples sigmoid(decoder(z)), z ~ N(0, I)"),
    ]

    print_table([{"quantity": "test ELBO (sampled z)", "value": test_elbo},
                 {"quantity": "KL(q(z|x) || p(z))", "value": test_kl},
                 {"quantity": f"active units (A_j > 0.01) of {args.z_dim}", "value": active_units(codes)},
                 {"quantity": "fantasies.html (kB)", "value": page.stat().st_size / 1000}],
                title=f"{run_name}, {train_seconds:.0f} s of training")
    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
               "n_test": len(data.x_test), "binarize": args.binarize, "epochs": args.epochs, "z_dim": args.z_dim,
               "hidden": args.hidden, "test_elbo": test_elbo, "test_kl": test_kl, "unit_activity": activity,
               "active_units": active_units(codes), "page": page.name, "page_bytes": page.stat().st_size,
               "pad_units": [int(j) for j in top], "history": history, "quick": args.quick,
               "train_seconds": train_seconds, "wall_seconds": time.perf_counter() - started}
    # the next step: play with this page first, then a 20-D model (sliders), or β and what it does to the units
    play = f"First open {page.resolve().as_uri()} in a browser and drag the point across the pad."
    return finish(args.out, params, metrics, figures,
                  "walkthroughs/14_digit_fantasies.py --z-dim 20: the page of a 20-D model, with sliders. " + play
                  if args.z_dim == 2 else
                  "walkthroughs/09_beta_vae.py: the KL weight β, and what it does to the latent units. " + play)


# %%
if __name__ == "__main__":
    run = main()
