# %% [markdown]
# # 07 - Walking in latent space: traversals of one coordinate, and interpolation in latent vs pixel space.
#
# Barra, Variational Autoencoders: latent traversal, and interpolation in the image space vs in the latent
# space. The model is walkthrough 05's ``VAE(784, [400], 20)`` (Bernoulli decoder, trained on the ELBO).
#
# - 07_traversal.png      start from the code mu(x) of one test digit; each row varies one latent coordinate
#                         z_j over -3 ... 3 (the prior's range) and keeps the others fixed, then decodes
#                         sigmoid(decoder(z)). Rows are the most *active* units, by Burda et al.'s measure
#                         A_j = Var_x(E_q[z_j | x]) over the test digits (active when A_j > 0.01); inactive
#                         coordinates change nothing, which is why they are not shown.
# - 07_interpolation.png  two test digits x_a, x_b of different labels (--pair). Top: the decoded latent path
#                         sigmoid(decoder((1 - t) mu(x_a) + t mu(x_b))); bottom: the pixel path (1 - t) x_a + t x_b,
#                         for t = 0, 1/9, ..., 1. The latent path passes through digit-like images; the pixel path
#                         only fades one digit out and the other in.
#
# It prints the test ELBO, the number of active units, and the activity of the traversed units.
#
# Run it:
#
#     python walkthroughs/07_traverse_interpolate.py --data-dir ~/mnist
#     python walkthroughs/07_traverse_interpolate.py --quick      # 8 epochs on 3,000 digits: seconds
#
# (--data-dir, or the environment variable MINIVAE_DATA, names the folder with the MNIST files.) Also saved:
# params.npz (load it with minivae.load_params) and metrics.json.

# %%
from __future__ import annotations

import time

import numpy

from minivae.models import VAE, active_units, unit_activity
from minivae.nn import sigmoid
from minivae.objectives import vae_objective
from minivae.plotting import save_image_grid, save_image_panels
from minivae.train import TrainSettings, evaluate, fit
from minivae.walkthrough import (
    Run,
    add_mnist_args,
    add_setting,
    digit,
    finish,
    lesson,
    load_mnist_split,
    parse_flags,
    positive_int,
    print_table,
    show_progress,
    walkthrough_parser,
)

# %% [markdown]
# ## TrainSettings
#
# (quick, full) for each setting; a flag you give beats both. The quick run is walkthrough 05's: 8 epochs
# on 3,000 digits, enough for the traversals and the latent path to pass through digit-like images.

# %%
OUT = "figures/07_traverse_interpolate"
SETTINGS = {  # name: (quick, full); n_train None means every training digit
    "epochs": (8, 10),
    "n_train": (3000, None),
    "batch_size": (100, 100),
    "z_dim": (20, 20),
    "units": (8, 8),
    "n_test": (2000, None),
}


def parse_args(argv: list[str] | None = None):
    """The flags of this walkthrough, each checked before any data is loaded."""
    parser = add_mnist_args(walkthrough_parser(lesson(__name__), OUT), SETTINGS)
    add_setting(parser, "--z-dim", SETTINGS, positive_int, "latent dimension")
    add_setting(parser, "--units", SETTINGS, positive_int, "rows of the traversal: the most active units")
    parser.add_argument("--pair", type=digit, nargs=2, default=(7, 2), metavar=("A", "B"),
                        help="labels of the two test digits to interpolate between (default 7 2)")
    return parse_flags(parser, argv, SETTINGS)


# %% [markdown]
# ## Traversal: one coordinate at a time
#
# Block r of the codes is the start code with coordinate `units[r]` swept over the values; every other
# coordinate stays fixed.

# %%
def traversal_codes(start: numpy.ndarray, units: list[int], values: numpy.ndarray) -> numpy.ndarray:
    """Codes ``(len(units) * len(values), z_dim)``: block r is ``start`` with coordinate ``units[r]`` swept."""
    codes = numpy.repeat(start[None, :], len(units) * len(values), axis=0)
    for r, j in enumerate(units):
        codes[r * len(values):(r + 1) * len(values), j] = values
    return codes


# %% [markdown]
# ## Interpolation: which two digits
#
# The first evaluation digits that carry the two labels of `--pair`.

# %%
def interpolation_pair(y: numpy.ndarray, a: int, b: int) -> tuple[int, int]:
    """Indices of the first test digits labelled ``a`` and ``b``."""
    for label in (a, b):
        if not numpy.any(y == label):
            raise ValueError(f"--pair asks for digit {label}, but no evaluation digit has that label.")
    return int(numpy.argmax(y == a)), int(numpy.argmax(y == b))


# %% [markdown]
# ## The run
#
# Train on the ELBO (as in walkthrough 05), find the most active units, sweep them, and interpolate between
# two digits in latent space and in pixel space.

# %%
def main(argv: list[str] | None = None) -> Run:
    started = time.perf_counter()
    args = parse_args(argv)
    data = load_mnist_split(args, n_test=args.n_test)
    rng = numpy.random.default_rng(args.seed)
    vae = VAE(784, [400], args.z_dim)
    run_name = f"784-400-{args.z_dim} VAE, {args.epochs} epochs on {len(data.x_train):,} digits"

    # train on the ELBO, as in walkthrough 05
    result = fit(vae_objective(vae), vae.init(rng), data.x_train,
                 settings=TrainSettings(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                   binarize=data.fit_binarize, device=args.device, progress=show_progress()))
    params = result.params
    test_elbo = evaluate(vae_objective(vae), params, data.x_test, rng)

    # traversal: the most active units, each swept over −3 … 3 from the code of the first test digit
    test_mean, _ = vae.encode(params, data.x_test)
    activity = unit_activity(test_mean)
    units = [int(j) for j in numpy.argsort(activity)[::-1][:args.units]]
    values = numpy.linspace(-3.0, 3.0, 11, dtype=numpy.float32)
    start, _ = vae.encode(params, data.x_test[:1])
    traversal = sigmoid(vae.decode(params, traversal_codes(start[0], units, values)))

    # interpolation: (1 − t) a + t b in latent space (decoded) and in pixel space
    ia, ib = interpolation_pair(data.y_test, *args.pair)
    t = numpy.linspace(0.0, 1.0, 10, dtype=numpy.float32)[:, None]
    (mu_a, mu_b), _ = vae.encode(params, data.x_test[[ia, ib]])
    latent_path = sigmoid(vae.decode(params, (1 - t) * mu_a + t * mu_b))
    pixel_path = (1 - t) * data.x_test[ia] + t * data.x_test[ib]
    figures = [
        save_image_grid(traversal, args.out / "07_traversal.png", ncols=len(values),
                        title=f"{run_name}\nrows: z_j from -3 to 3 for the {len(units)} most active units"),
        save_image_panels({f"{run_name}\nlatent space: decoder((1-t) mu(a) + t mu(b))": latent_path,
                           f"pixel space: (1-t) a + t b, {data.eval_name} digits {args.pair[0]} and {args.pair[1]}":
                           pixel_path}, args.out / "07_interpolation.png", ncols=len(t), vertical=True),
    ]

    active = active_units(test_mean)
    print_table([{"quantity": "test ELBO (sampled z), nats", "value": test_elbo},
                 {"quantity": f"active units (Var_x mu_j > 0.01) of {args.z_dim}", "value": active}]
                + [{"quantity": f"  traversed unit {j}: Var_x mu_j", "value": float(activity[j])} for j in units],
                title=run_name)
    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
               "n_test": len(data.x_test), "binarize": args.binarize, "epochs": args.epochs, "z_dim": args.z_dim,
               "test_elbo": test_elbo, "active_units": active, "unit_activity": activity,
               "traversed_units": units, "pair_labels": list(args.pair), "pair_indices": [ia, ib],
               "history": result.history, "quick": args.quick,
               "train_seconds": sum(h["seconds"] for h in result.history),
               "wall_seconds": time.perf_counter() - started}
    return finish(args.out, params, metrics, figures,
                  "walkthroughs/08_ae_vs_vae_sampling.py: why an autoencoder cannot generate, and a VAE can.")


# %%
if __name__ == "__main__":
    run = main()
