r"""06 - A VAE with a 2-D latent space: the test digits' embedding, and the manifold the decoder draws.

Shan, Variational Autoencoder (the 2-D embedding of MNIST) and Klushyn, "A brief introduction to
(variational) autoencoders" (the 2-D latent learning process). The model is ``VAE(784, [400], 2)`` with a
Bernoulli decoder, trained on the ELBO like walkthrough 05. With two latent dimensions we can look at
the whole latent space at once:

- 06_embedding.png  the encoder means mu(x) of the test digits, coloured by their label
- 06_manifold.png   sigmoid(decoder(z)) on a 20 x 20 grid z = (Phi^-1(p_i), Phi^-1(p_j)), p_i = (i + 1/2)/20:
                    equal-probability steps under the prior N(0, I), as in Kingma and Welling's figure
                    (Phi^-1, the standard normal quantile, from the standard library's NormalDist)

It reports the test ELBO (sampled z), the KL, log p(x) by importance sampling, and how well the 2-D codes
separate the digits: the accuracy of a 5-nearest-neighbour classifier that labels each test code by the
codes of the training digits (no labels were used in training).

Run it:

    python walkthroughs/06_mnist_latent_2d.py --data-dir ../shared/data/mnist
    python walkthroughs/06_mnist_latent_2d.py --quick
"""

from __future__ import annotations

import time
from statistics import NormalDist

import numpy

from minivae.distributions import kl_standard_normal, sigmoid
from minivae.models import VAE
from minivae.objectives import vae_objective
from minivae.plotting import save_image_grid, save_latent_scatter
from minivae.train import evaluate, fit
from minivae.walkthrough import (
    add_mnist_args,
    load_mnist_split,
    prepare_out,
    print_table,
    save_metrics,
    walkthrough_parser,
)


def manifold_codes(n: int = 20) -> numpy.ndarray:
    r"""The ``(n*n, 2)`` grid z = (Φ⁻¹(p_j), Φ⁻¹(p_i)), p = (i + ½)/n, row by row from the top (large z₂)."""
    q = numpy.array([NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)])
    z1, z2 = numpy.meshgrid(q, q[::-1])
    return numpy.stack([z1.ravel(), z2.ravel()], axis=1).astype(numpy.float32)


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


def main(argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    parser = add_mnist_args(walkthrough_parser(__doc__, "figures/06_mnist_latent_2d"), epochs=10)
    parser.add_argument("--hidden", type=int, default=400, help="hidden units (default 400)")
    parser.add_argument("--ll-k", type=int, default=1000, help="importance samples for log p(x) (default 1000)")
    parser.add_argument("--ll-n", type=int, default=500, help="test digits for log p(x) (default 500)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.n_train, args.ll_k, args.ll_n = 2, 1000, 50, 100
    out = prepare_out(args.out)
    data = load_mnist_split(args, n_test=500 if args.quick else None)
    rng = numpy.random.default_rng(args.seed)
    vae = VAE(784, [args.hidden], 2)

    # train on the ELBO, as in walkthrough 05, with a 2-D latent space
    result = fit(vae_objective(vae), vae.init(rng), data.x_train, x_test=data.x_test, epochs=args.epochs,
                 batch_size=args.batch_size, seed=args.seed, device=args.device,
                 binarize=data.fit_binarize)
    params = result.params
    train_seconds = sum(h["seconds"] for h in result.history)

    # test ELBO (sampled z), closed-form KL, and log p(x) by importance sampling on a subset
    test_elbo = evaluate(vae_objective(vae), params, data.x_test, rng)
    codes, log_var = vae.encode(params, data.x_test)
    test_kl = float(numpy.mean(kl_standard_normal(codes, log_var)))
    subset = data.x_test[rng.permutation(len(data.x_test))[:args.ll_n]]
    log_lik = float(numpy.mean(vae.log_likelihood(params, subset, args.ll_k, rng)))
    # how well the unsupervised 2-D codes separate the digits
    train_codes, _ = vae.encode(params, data.x_train)
    accuracy = knn_accuracy(train_codes, data.y_train, codes, data.y_test)

    save_latent_scatter(codes, data.y_test, out / "06_embedding.png",
                        title=f"encoder means of {len(codes):,} test digits")
    save_image_grid(sigmoid(vae.decode(params, manifold_codes(20))), out / "06_manifold.png", ncols=20,
                    title="sigmoid(decoder(z)) over the N(0, I) quantiles of the latent square")

    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
               "n_test": len(data.x_test), "binarize": args.binarize, "epochs": args.epochs, "z_dim": 2,
               "hidden": args.hidden, "test_elbo": test_elbo, "test_kl": test_kl, "ll_k": args.ll_k,
               "ll_n": len(subset), "test_log_likelihood": log_lik, "latent_5nn_accuracy": accuracy,
               "history": result.history, "train_seconds": train_seconds,
               "wall_seconds": time.perf_counter() - started}
    print_table([{"quantity": "test ELBO (sampled z)", "value": test_elbo},
                 {"quantity": "KL(q(z|x) || p(z))", "value": test_kl},
                 {"quantity": f"log p(x), k={args.ll_k}, {len(subset)} digits", "value": log_lik},
                 {"quantity": "5-NN accuracy of the 2-D codes", "value": accuracy}],
                title=f"784-{args.hidden}-2 VAE, {args.epochs} epochs, {train_seconds:.0f} s of training")
    save_metrics(out, metrics)
    return metrics


if __name__ == "__main__":
    main()
