r"""09 - The β-VAE trade-off: reconstruction against KL, and how many latent units stay in use.

Barra, Variational Autoencoders: the β-VAE objective

    L_beta(x) = E_q[log p(x|z)] - beta * KL(q(z|x) || N(0, I)),

which is the ELBO at beta = 1. A larger beta pays more for information in z: the KL falls, the
reconstruction gets worse, and latent units switch off. The same ``VAE(784, [400], 20)`` (same
initialisation, data and noise) is trained once per beta (--betas, default 0.5 1 4 16; --quick: 0.5 1 4) and
evaluated on the test digits:

- reconstruction  E_q[log p(x|z)] with one sampled z per digit (= ELBO + KL), nats
- KL              KL(q(z|x) || N(0, I)) in closed form, nats
- ELBO            reconstruction - KL (the beta = 1 bound on log p(x), whatever beta was trained)
- active units    Burda et al.'s count of j with A_j = Var_x(E_q[z_j | x]) > 0.01

Saves 09_beta_tradeoff.png (those four against beta) and 09_samples.png (sigmoid(decoder(z)) for the same
36 draws z ~ N(0, I) under each beta).

Run it:

    python walkthroughs/09_beta_vae.py --data-dir ../shared/data/mnist
    python walkthroughs/09_beta_vae.py --quick
"""

from __future__ import annotations

import time

import numpy

from minivae.distributions import kl_standard_normal, sigmoid
from minivae.models import VAE, active_units
from minivae.objectives import vae_objective
from minivae.plotting import save_curve_panels, save_image_panels
from minivae.train import evaluate, fit
from minivae.walkthrough import (
    add_mnist_args,
    load_mnist_split,
    prepare_out,
    print_table,
    save_metrics,
    walkthrough_parser,
)


def test_terms(vae: VAE, params: dict, x: numpy.ndarray, rng: numpy.random.Generator) -> dict:
    r"""Test reconstruction E_q[log p(x|z)], KL, ELBO (nats, means over ``x``) and active units."""
    # ELBO with one sampled z per digit, and the closed-form KL
    elbo = evaluate(vae_objective(vae), params, x, rng)
    mean, log_var = vae.encode(params, x)
    kl = float(numpy.mean(kl_standard_normal(mean, log_var)))
    # active units: A_j = Var_x(μ_j(x)) > 0.01
    active = active_units(mean)
    return {"reconstruction": elbo + kl, "kl": kl, "elbo": elbo, "active_units": active}


def main(argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    parser = add_mnist_args(walkthrough_parser(__doc__, "figures/09_beta_vae"), epochs=10)
    parser.add_argument("--betas", type=float, nargs="+", default=[0.5, 1.0, 4.0, 16.0],
                        help="the values of beta, one model trained for each (default 0.5 1 4 16)")
    parser.add_argument("--z-dim", type=int, default=20, help="latent dimension (default 20)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.n_train, args.betas = 2, 600, [0.5, 1.0, 4.0]
    out = prepare_out(args.out)
    data = load_mnist_split(args, n_test=300 if args.quick else None)
    vae = VAE(784, [400], args.z_dim)
    z = numpy.random.default_rng(args.seed).standard_normal((36, args.z_dim)).astype(numpy.float32)

    rows, samples = [], {}
    for beta in args.betas:
        # the same initialisation and minibatch noise for every β: only the weight of the KL changes
        init = vae.init(numpy.random.default_rng(args.seed))
        result = fit(vae_objective(vae, beta), init, data.x_train, epochs=args.epochs,
                     batch_size=args.batch_size, seed=args.seed, device=args.device,
                     binarize=data.fit_binarize)
        terms = test_terms(vae, result.params, data.x_test, numpy.random.default_rng(args.seed + 1))
        rows.append({"beta": beta, **terms, "train_seconds": sum(h["seconds"] for h in result.history)})
        samples[f"beta = {beta:g}"] = sigmoid(vae.decode(result.params, z))

    betas = [r["beta"] for r in rows]
    save_curve_panels({"nats per test digit": {name: (betas, [r[key] for r in rows]) for name, key in
                                               (("reconstruction", "reconstruction"), ("KL", "kl"),
                                                ("ELBO", "elbo"))},
                       "active units": {f"of {args.z_dim}": (betas, [r["active_units"] for r in rows])}},
                      out / "09_beta_tradeoff.png", xlabel="beta", logx=True,
                      ylims={"active units": (0, args.z_dim + 0.5)})
    save_image_panels(samples, out / "09_samples.png", ncols=6)

    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
               "n_test": len(data.x_test), "binarize": args.binarize, "epochs": args.epochs, "z_dim": args.z_dim,
               "betas": betas, "results": rows, "wall_seconds": time.perf_counter() - started}
    print_table([{k: v for k, v in r.items() if k != "train_seconds"} for r in rows],
                title=f"beta-VAE 784-400-{args.z_dim}, {args.epochs} epochs; test terms in nats per digit")
    save_metrics(out, metrics)
    return metrics


if __name__ == "__main__":
    main()
