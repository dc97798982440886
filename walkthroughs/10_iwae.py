r"""10 - VAE vs IWAE: a tighter bound trains a better density model.

Zhu, Deep Generative Models II: the importance-weighted bound (Burda et al.)

    L_k(x) = E[ log (1/k) sum_{i=1..k} p(x, z_i) / q(z_i|x) ],   z_i ~ q(z|x),
    log p(x) >= L_k >= L_1 = ELBO,   L_k increasing in k,

and the slides' MNIST density table (VAE -85.69, IWAE-5 -84.43, IWAE-50 -83.58 nats, Burda et al.'s
larger models on all 60,000 digits for thousands of epochs). Here the same ``VAE(784, [400], 20)`` (same
initialisation, data and epochs) is trained three times: on the ELBO (the VAE) and on L_k for k = 5 and
k = 50 (the IWAE; --ks). Each is then evaluated on the same --eval-n random test digits:

- L_1 (the ELBO), L_5 and L_50 with fresh samples;
- log p(x) ~ L_1000 (--ll-k), the importance-sampled log-likelihood, the table's number;
- active units, Burda et al.'s count of j with Var_x(E_q[z_j | x]) > 0.01 (they find IWAE keeps more).

The bounds are computed on every model, so L_50 >= L_1 can be seen on each row. Saves 10_iwae_bounds.png
(each model's test L_k against k) and 10_samples.png (the same 36 draws z ~ N(0, I) decoded by each model).

Run it:

    python walkthroughs/10_iwae.py --data-dir ../shared/data/mnist
    python walkthroughs/10_iwae.py --quick
"""

from __future__ import annotations

import time

import numpy

from minivae.distributions import sigmoid
from minivae.models import VAE, active_units

# Zhu, Deep Generative Models II, density estimation table: test log-likelihood on MNIST, nats
from minivae.objectives import iwae_objective, vae_objective
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

SLIDES = {1: -85.69, 5: -84.43, 50: -83.58}


def objective_for(vae: VAE, k: int):
    """The ELBO for k = 1 (the VAE), the IWAE bound L_k otherwise."""
    return vae_objective(vae) if k == 1 else iwae_objective(vae, k)


def evaluate_model(vae: VAE, params: dict, x: numpy.ndarray, ks: list[int], ll_k: int,
                   rng: numpy.random.Generator) -> dict:
    r"""Mean test L_1, L_k for each k in ``ks``, log p(x) ≈ L_{ll_k}, and active units, on the rows of ``x``."""
    # L_1 = ELBO and L_k with fresh noise (batches of 100 keep the (k, N, 784) logits small)
    row = {"L_1": evaluate(vae_objective(vae), params, x, rng)}
    for k in ks:
        row[f"L_{k}"] = evaluate(iwae_objective(vae, k), params, x, rng, batch_size=100)
    # log p(x) by importance sampling with ll_k samples
    row["log_likelihood"] = float(numpy.mean(vae.log_likelihood(params, x, ll_k, rng)))
    # active units: Var_x(μ_j(x)) > 0.01
    row["active_units"] = active_units(vae.encode(params, x)[0])
    return row


def main(argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    parser = add_mnist_args(walkthrough_parser(__doc__, "figures/10_iwae"), epochs=10)
    parser.add_argument("--ks", type=int, nargs="+", default=[5, 50], help="IWAE sample sizes (default 5 50)")
    parser.add_argument("--z-dim", type=int, default=20, help="latent dimension (default 20)")
    parser.add_argument("--ll-k", type=int, default=1000, help="importance samples for log p(x) (default 1000)")
    parser.add_argument("--eval-n", type=int, default=1000, help="test digits evaluated (default 1000)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.n_train, args.ks, args.ll_k, args.eval_n = 2, 500, [2, 5], 100, 200
    out = prepare_out(args.out)
    data = load_mnist_split(args, n_test=args.eval_n)
    vae = VAE(784, [400], args.z_dim)
    z = numpy.random.default_rng(args.seed).standard_normal((36, args.z_dim)).astype(numpy.float32)

    rows, samples = [], {}
    for k in [1, *args.ks]:
        name = "VAE" if k == 1 else f"IWAE-{k}"
        # the same initialisation and data order for every model: only the training bound changes
        result = fit(objective_for(vae, k), vae.init(numpy.random.default_rng(args.seed)), data.x_train,
                     epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, device=args.device,
                     binarize=data.fit_binarize)
        scores = evaluate_model(vae, result.params, data.x_test, args.ks, args.ll_k,
                                numpy.random.default_rng(args.seed + 1))
        rows.append({"model": name, "trained on": f"L_{k}", "slides": SLIDES.get(k, ""), **scores,
                     "train_seconds": sum(h["seconds"] for h in result.history)})
        samples[name] = sigmoid(vae.decode(result.params, z))

    # each model's test L_k against k; the last point, k = ll_k, is the log p(x) estimate
    test_ks = [1, *args.ks, args.ll_k]
    bounds = ["L_1", *(f"L_{k}" for k in args.ks), "log_likelihood"]
    save_curve_panels({"test L_k (nats per digit)": {r["model"]: (test_ks, [r[b] for b in bounds]) for r in rows}},
                      out / "10_iwae_bounds.png", xlabel="k, importance samples at test time", logx=True)
    save_image_panels(samples, out / "10_samples.png", ncols=6)

    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
               "n_test": len(data.x_test), "binarize": args.binarize, "epochs": args.epochs, "z_dim": args.z_dim,
               "ks": args.ks, "ll_k": args.ll_k, "results": rows, "wall_seconds": time.perf_counter() - started}
    print_table([{k: v for k, v in r.items() if k != "train_seconds"} for r in rows],
                title=f"test bounds in nats on {len(data.x_test):,} digits; log p(x) with k={args.ll_k}; "
                      f"'slides': Zhu's table (Burda et al., full MNIST)")
    save_metrics(out, metrics)
    return metrics


if __name__ == "__main__":
    main()
