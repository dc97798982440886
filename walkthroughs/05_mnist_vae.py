r"""05 - The main job: train the 784-400-20 VAE on MNIST and look at what it learned.

Shan, Variational Autoencoder: the PyTorch example's model, ``VAE(784, [400], 20)`` with a Bernoulli
decoder p(x|z) = Bern(sigmoid(logits)). Its "BCE + KLD" loss is the negative ELBO (Zhu, Deep Generative
Models II):

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)),   z = mu + sigma * eps,

trained with Adam(1e-3) on minibatches of 100. Pixels are binarized 1[x > 0.5] by default; --binarize
stochastic redraws x ~ Bernoulli(intensity) every epoch (test digits: one fixed draw), and none keeps the
grey values (then the "log-likelihood" is a cross-entropy score, not a density of binary images).

Saves in --out:
- 05_samples.png          64 draws z ~ N(0, I) decoded to the probabilities sigmoid(logits)
- 05_reconstructions.png  test digits (rows 1, 3) above their reconstructions sigmoid(decoder(mu(x))) (rows 2, 4)
- 05_learning_curve.png   train and test ELBO per epoch

and reports the test ELBO in nats (one *sampled* z per digit, KL in closed form) and the importance-sampled
test log-likelihood log p(x) ~ L_k = log (1/k) sum_i p(x, z_i)/q(z_i|x) with k = --ll-k on --ll-n random
test digits (Burda et al.), with the ELBO of the same digits beside it: log p(x) >= L_k >= ELBO.

Run it (full 60,000 MNIST for 10 epochs, or the 5,000 offline digits if that is all there is):

    python walkthroughs/05_mnist_vae.py --data-dir ../shared/data/mnist
    python walkthroughs/05_mnist_vae.py --quick          # a few seconds, used by the tests
"""

from __future__ import annotations

import time

import numpy

from minivae.distributions import kl_standard_normal, sigmoid
from minivae.models import VAE
from minivae.objectives import vae_objective
from minivae.optim import Adam
from minivae.plotting import save_curves, save_image_grid
from minivae.train import evaluate, fit
from minivae.walkthrough import (
    add_mnist_args,
    load_mnist_split,
    prepare_out,
    print_table,
    save_metrics,
    walkthrough_parser,
)


def parse_args(argv: list[str] | None = None):
    parser = add_mnist_args(walkthrough_parser(__doc__, "figures/05_mnist_vae"), epochs=10)
    parser.add_argument("--z-dim", type=int, default=20, help="latent dimension (default 20)")
    parser.add_argument("--hidden", type=int, default=400, help="hidden units of encoder and decoder (default 400)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--ll-k", type=int, default=1000, help="importance samples for log p(x) (default 1000)")
    parser.add_argument("--ll-n", type=int, default=1000, help="test digits for log p(x) (default 1000)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.n_train, args.ll_k, args.ll_n = 2, 1000, 50, 100
    return args


def reconstruction_rows(vae: VAE, params: dict, x: numpy.ndarray, ncols: int = 8) -> numpy.ndarray:
    """Rows of ``ncols`` originals, each followed by a row of their reconstructions sigmoid(decoder(mu(x)))."""
    mean, _ = vae.encode(params, x)
    recon = sigmoid(vae.decode(params, mean))
    rows = [block for i in range(0, len(x), ncols) for block in (x[i:i + ncols], recon[i:i + ncols])]
    return numpy.concatenate(rows)


def main(argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    args = parse_args(argv)
    out = prepare_out(args.out)
    data = load_mnist_split(args, n_test=500 if args.quick else None)
    rng = numpy.random.default_rng(args.seed)
    vae = VAE(784, [args.hidden], args.z_dim)

    # train: maximise the ELBO (minimise BCE + KLD), test ELBO after every epoch
    result = fit(vae_objective(vae), vae.init(rng), data.x_train, x_test=data.x_test, optimizer=Adam(args.lr),
                 epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, device=args.device,
                 binarize=data.fit_binarize)
    params, history = result.params, result.history
    train_seconds = sum(h["seconds"] for h in history)

    # test ELBO with sampled z, its closed-form KL, and the reconstruction term E_q[log p(x|z)] = ELBO + KL
    test_elbo = evaluate(vae_objective(vae), params, data.x_test, rng)
    test_kl = float(numpy.mean(kl_standard_normal(*vae.encode(params, data.x_test))))
    # log p(x) by importance sampling on a random subset, and the ELBO of the same digits
    subset = data.x_test[rng.permutation(len(data.x_test))[:args.ll_n]]
    log_lik = float(numpy.mean(vae.log_likelihood(params, subset, args.ll_k, rng)))
    subset_elbo = evaluate(vae_objective(vae), params, subset, rng)

    save_image_grid(vae.sample(params, 64, rng), out / "05_samples.png", ncols=8,
                    title="64 samples: sigmoid(decoder(z)), z ~ N(0, I)")
    save_image_grid(reconstruction_rows(vae, params, data.x_test[:16]), out / "05_reconstructions.png", ncols=8,
                    title="test digits (rows 1, 3) and reconstructions (rows 2, 4)")
    epochs = [h["epoch"] for h in history]
    save_curves({"train ELBO": (epochs, [h["train_elbo"] for h in history]),
                 "test ELBO": (epochs, [h["test_elbo"] for h in history])},
                out / "05_learning_curve.png", ylabel="ELBO (nats per digit)", title="784-400-20 VAE on MNIST")

    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
               "n_test": len(data.x_test), "binarize": args.binarize, "epochs": args.epochs,
               "z_dim": args.z_dim, "hidden": args.hidden, "test_elbo": test_elbo,
               "test_reconstruction": test_elbo + test_kl, "test_kl": test_kl, "ll_k": args.ll_k,
               "ll_n": len(subset), "test_log_likelihood": log_lik, "test_elbo_ll_subset": subset_elbo,
               "history": history, "train_seconds": train_seconds,
               "wall_seconds": time.perf_counter() - started}
    print_table([{"quantity": "test ELBO (sampled z)", "nats": test_elbo},
                 {"quantity": "  reconstruction E_q[log p(x|z)]", "nats": test_elbo + test_kl},
                 {"quantity": "  KL(q(z|x) || p(z))", "nats": test_kl},
                 {"quantity": f"ELBO of the {len(subset)} log p(x) digits", "nats": subset_elbo},
                 {"quantity": f"log p(x), k={args.ll_k}, same digits", "nats": log_lik}],
                title=f"784-{args.hidden}-{args.z_dim} VAE, {args.epochs} epochs, {train_seconds:.0f} s of training")
    save_metrics(out, metrics)
    return metrics


if __name__ == "__main__":
    main()
