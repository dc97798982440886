r"""07 - Walking in latent space: traversals of one coordinate, and interpolation in latent vs pixel space.

Barra, Variational Autoencoders: latent traversal, and interpolation in the image space vs in the latent
space. The model is walkthrough 05's ``VAE(784, [400], 20)`` (Bernoulli decoder, trained on the ELBO).

- 07_traversal.png      start from the code mu(x) of one test digit; each row varies one latent coordinate
                        z_j over -3 ... 3 (the prior's range) and keeps the others fixed, then decodes
                        sigmoid(decoder(z)). Rows are the most *active* units, by Burda et al.'s measure
                        A_j = Var_x(E_q[z_j | x]) over the test digits (active when A_j > 0.01); inactive
                        coordinates change nothing, which is why they are not shown.
- 07_interpolation.png  two test digits x_a, x_b of different labels (--pair). Top: the decoded latent path
                        sigmoid(decoder((1 - t) mu(x_a) + t mu(x_b))); bottom: the pixel path (1 - t) x_a + t x_b,
                        for t = 0, 1/9, ..., 1. The latent path passes through digit-like images; the pixel path
                        only fades one digit out and the other in.

It prints the test ELBO, the number of active units, and the activity of the traversed units.

Run it:

    python walkthroughs/07_traverse_interpolate.py --data-dir ../shared/data/mnist
    python walkthroughs/07_traverse_interpolate.py --quick
"""

from __future__ import annotations

import time

import numpy

from minivae.distributions import sigmoid
from minivae.models import VAE, active_units, unit_activity
from minivae.objectives import vae_objective
from minivae.plotting import save_image_grid, save_image_panels
from minivae.train import evaluate, fit
from minivae.walkthrough import (
    add_mnist_args,
    load_mnist_split,
    prepare_out,
    print_table,
    save_metrics,
    walkthrough_parser,
)


def traversal_codes(start: numpy.ndarray, units: list[int], values: numpy.ndarray) -> numpy.ndarray:
    """Codes ``(len(units) * len(values), z_dim)``: block r is ``start`` with coordinate ``units[r]`` swept."""
    codes = numpy.repeat(start[None, :], len(units) * len(values), axis=0)
    for r, j in enumerate(units):
        codes[r * len(values):(r + 1) * len(values), j] = values
    return codes


def interpolation_pair(y: numpy.ndarray, a: int, b: int) -> tuple[int, int]:
    """Indices of the first test digits labelled ``a`` and ``b``."""
    for label in (a, b):
        if not numpy.any(y == label):
            raise ValueError(f"--pair asks for digit {label}, but no evaluation digit has that label.")
    return int(numpy.argmax(y == a)), int(numpy.argmax(y == b))


def main(argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    parser = add_mnist_args(walkthrough_parser(__doc__, "figures/07_traverse_interpolate"), epochs=10)
    parser.add_argument("--z-dim", type=int, default=20, help="latent dimension (default 20)")
    parser.add_argument("--units", type=int, default=8, help="rows of the traversal: the most active units (default 8)")
    parser.add_argument("--pair", type=int, nargs=2, default=(7, 2), metavar=("A", "B"),
                        help="labels of the two test digits to interpolate between (default 7 2)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.n_train = 2, 1000
    out = prepare_out(args.out)
    data = load_mnist_split(args, n_test=500 if args.quick else None)
    rng = numpy.random.default_rng(args.seed)
    vae = VAE(784, [400], args.z_dim)

    # train on the ELBO, as in walkthrough 05
    result = fit(vae_objective(vae), vae.init(rng), data.x_train, epochs=args.epochs, batch_size=args.batch_size,
                 seed=args.seed, device=args.device,
                 binarize=data.fit_binarize)
    params = result.params
    test_elbo = evaluate(vae_objective(vae), params, data.x_test, rng)

    # traversal: the most active units, each swept over −3 … 3 from the code of the first test digit
    test_mean, _ = vae.encode(params, data.x_test)
    activity = unit_activity(test_mean)
    units = [int(j) for j in numpy.argsort(activity)[::-1][:args.units]]
    values = numpy.linspace(-3.0, 3.0, 11, dtype=numpy.float32)
    start, _ = vae.encode(params, data.x_test[:1])
    traversal = sigmoid(vae.decode(params, traversal_codes(start[0], units, values)))
    save_image_grid(traversal, out / "07_traversal.png", ncols=len(values),
                    title=f"rows: z_j from -3 to 3 for the {len(units)} most active units")

    # interpolation: (1 − t) a + t b in latent space (decoded) and in pixel space
    ia, ib = interpolation_pair(data.y_test, *args.pair)
    t = numpy.linspace(0.0, 1.0, 10, dtype=numpy.float32)[:, None]
    (mu_a, mu_b), _ = vae.encode(params, data.x_test[[ia, ib]])
    latent_path = sigmoid(vae.decode(params, (1 - t) * mu_a + t * mu_b))
    pixel_path = (1 - t) * data.x_test[ia] + t * data.x_test[ib]
    save_image_panels({"latent space: decoder((1-t) mu(a) + t mu(b))": latent_path,
                       "pixel space: (1-t) a + t b": pixel_path},
                      out / "07_interpolation.png", ncols=len(t), vertical=True)

    active = active_units(test_mean)
    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
               "n_test": len(data.x_test), "binarize": args.binarize, "epochs": args.epochs, "z_dim": args.z_dim,
               "test_elbo": test_elbo, "active_units": active, "unit_activity": activity,
               "traversed_units": units, "pair_labels": list(args.pair), "pair_indices": [ia, ib],
               "history": result.history, "train_seconds": sum(h["seconds"] for h in result.history),
               "wall_seconds": time.perf_counter() - started}
    print_table([{"quantity": "test ELBO (sampled z), nats", "value": test_elbo},
                 {"quantity": f"active units (Var_x mu_j > 0.01) of {args.z_dim}", "value": active}]
                + [{"quantity": f"  traversed unit {j}: Var_x mu_j", "value": float(activity[j])} for j in units],
                title=f"784-400-{args.z_dim} VAE, {args.epochs} epochs")
    save_metrics(out, metrics)
    return metrics


if __name__ == "__main__":
    main()
