# %% [markdown]
# # 10 - VAE vs IWAE: a tighter bound trains a better density model.
#
# Zhu, Deep Generative Models II: the importance-weighted bound (Burda et al.)
#
#     L_k(x) = E[ log (1/k) sum_{i=1..k} p(x, z_i) / q(z_i|x) ],   z_i ~ q(z|x),
#     log p(x) >= L_k >= L_1 = ELBO,   L_k increasing in k,
#
# and the slides' MNIST density table (VAE -85.69, IWAE-5 -84.43, IWAE-50 -83.58 nats, Burda et al.'s
# larger models on all 60,000 digits for thousands of epochs). Here the same ``VAE(784, [400], 20)`` (same
# initialisation, data and epochs) is trained three times: on the ELBO (the VAE) and on L_k for k = 5 and
# k = 50 (the IWAE; --ks). Each is then evaluated on the same --eval-n random test digits:
#
# - L_1 (the ELBO), L_5 and L_50 with fresh samples;
# - log p(x) ~ L_1000 (--ll-k), the importance-sampled log-likelihood, the table's number;
# - active units, Burda et al.'s count of j with Var_x(E_q[z_j | x]) > 0.01 (they find IWAE keeps more).
#
# The bounds are computed on every model, so L_50 >= L_1 can be seen on each row. Saves 10_iwae_bounds.png
# (each model's test L_k against k) and 10_samples.png (the same 36 draws z ~ N(0, I) decoded by each model).
#
# Run it:
#
#     python walkthroughs/10_iwae.py --data-dir ~/mnist
#     python walkthroughs/10_iwae.py --quick       # VAE, IWAE-2, IWAE-5: 4 epochs on 1,000 digits each
#
# (--data-dir, or the environment variable MINIVAE_DATA, names the folder with the MNIST files.) Also saved:
# params.npz (one model each, keyed "VAE", "IWAE-5", ...; load it with minivae.load_params) and metrics.json.

# %%
from __future__ import annotations

import time

import numpy

from minivae.models import VAE, active_units
from minivae.nn import sigmoid
from minivae.objectives import iwae_objective, vae_objective
from minivae.plotting import save_curve_panels, save_image_panels
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
    positive_int,
    print_table,
    show_progress,
    walkthrough_parser,
)

# Zhu, Deep Generative Models II, density estimation table: test log-likelihood on MNIST, nats
SLIDES = {1: -85.69, 5: -84.43, 50: -83.58}

# %% [markdown]
# ## TrainSettings
#
# (quick, full) for each setting; a flag you give beats both. The quick run trains the VAE, IWAE-2 and
# IWAE-5 for 4 epochs on 1,000 digits: every model's L_k already rises with k, and the IWAEs already score
# a higher log p(x); the full run (k = 5 and 50, all digits) comes closer to the slides' numbers.

# %%
OUT = "figures/10_iwae"
SETTINGS = {  # name: (quick, full); n_train None means every training digit
    "epochs": (4, 10),
    "n_train": (1000, None),
    "batch_size": (100, 100),
    "ks": ((2, 5), (5, 50)),
    "z_dim": (20, 20),
    "ll_k": (100, 1000),
    "eval_n": (200, 1000),
}
QUICK_NOTE = "quick run, far below the slides' -85 nats; the full run trains k = 5 and 50 on all digits"


def parse_args(argv: list[str] | None = None):
    """The flags of this walkthrough, each checked before any data is loaded."""
    parser = add_mnist_args(walkthrough_parser(lesson(__name__), OUT), SETTINGS)
    add_setting(parser, "--ks", SETTINGS, positive_int, "IWAE sample sizes k, one model trained for each",
                nargs="+")
    add_setting(parser, "--z-dim", SETTINGS, positive_int, "latent dimension")
    add_setting(parser, "--ll-k", SETTINGS, positive_int, "importance samples per digit for log p(x)")
    add_setting(parser, "--eval-n", SETTINGS, positive_int, "test digits evaluated")
    return parse_flags(parser, argv, SETTINGS)


# %% [markdown]
# ## The training bound
#
# k = 1 is the ELBO (the VAE); k > 1 the importance-weighted bound L_k (the IWAE).

# %%
def objective_for(vae: VAE, k: int):
    """The ELBO for k = 1 (the VAE), the IWAE bound L_k otherwise."""
    return vae_objective(vae) if k == 1 else iwae_objective(vae, k)


# %% [markdown]
# ## Every bound on every model
#
# L_1, L_k for each k, and log p(x) ≈ L_{ll_k} (the longest step: it shows a progress bar), on the same
# test digits, so L_k ≥ L_1 can be read off each row.

# %%
def evaluate_model(vae: VAE, params: dict, x: numpy.ndarray, ks: list[int], ll_k: int,
                   rng: numpy.random.Generator) -> dict:
    r"""Mean test L_1, L_k for each k in ``ks``, log p(x) ≈ L_{ll_k}, and active units, on the rows of ``x``."""
    # L_1 = ELBO and L_k with fresh noise (batches of 100 keep the (k, N, 784) logits small)
    row = {"L_1": evaluate(vae_objective(vae), params, x, rng)}
    for k in ks:
        row[f"L_{k}"] = evaluate(iwae_objective(vae, k), params, x, rng, batch_size=100)
    # log p(x) by importance sampling with ll_k samples
    log_lik = in_chunks(lambda xb: vae.log_likelihood(params, xb, ll_k, rng), x, desc=f"log p(x), k={ll_k}")
    row["log_likelihood"] = float(numpy.mean(log_lik))
    # active units: Var_x(μ_j(x)) > 0.01
    row["active_units"] = active_units(vae.encode(params, x)[0])
    return row


# %% [markdown]
# ## The run
#
# The same initialisation, data and epochs for every model: only the training bound changes.

# %%
def main(argv: list[str] | None = None) -> Run:
    started = time.perf_counter()
    args = parse_args(argv)
    data = load_mnist_split(args, n_test=args.eval_n)
    vae = VAE(784, [400], args.z_dim)
    z = numpy.random.default_rng(args.seed).standard_normal((36, args.z_dim)).astype(numpy.float32)

    rows, samples, params = [], {}, {}
    for k in [1, *args.ks]:
        name = "VAE" if k == 1 else f"IWAE-{k}"
        # the same initialisation and data order for every model: only the training bound changes
        result = fit(objective_for(vae, k), vae.init(numpy.random.default_rng(args.seed)), data.x_train,
                     settings=TrainSettings(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                       binarize=data.fit_binarize, device=args.device, progress=show_progress()))
        scores = evaluate_model(vae, result.params, data.x_test, args.ks, args.ll_k,
                                numpy.random.default_rng(args.seed + 1))
        rows.append({"model": name, "trained on": f"L_{k}", "slides": SLIDES.get(k, ""), **scores,
                     "train_seconds": sum(h["seconds"] for h in result.history)})
        samples[name] = sigmoid(vae.decode(result.params, z))
        params[name] = result.params

    # each model's test L_k against k; the last point, k = ll_k, is the log p(x) estimate
    run_name = f"784-400-{args.z_dim}, {args.epochs} epochs on {len(data.x_train):,} digits"
    test_ks = [1, *args.ks, args.ll_k]
    bounds = ["L_1", *(f"L_{k}" for k in args.ks), "log_likelihood"]
    figures = [
        save_curve_panels({f"L_k on {len(data.x_test):,} {data.eval_name} digits (nats per digit)":
                           {r["model"]: (test_ks, [r[b] for b in bounds]) for r in rows}},
                          args.out / "10_iwae_bounds.png", xlabel="k, importance samples at test time", logx=True,
                          title=run_name + (f"\n({QUICK_NOTE})" if args.quick else "")),
        save_image_panels(samples, args.out / "10_samples.png", ncols=6,
                          title=f"{run_name}: sigmoid(decoder(z)), the same 36 z ~ N(0, I)"),
    ]
    print_table([{k: v for k, v in r.items() if k != "train_seconds"} for r in rows],
                title=f"{run_name}; bounds in nats on {len(data.x_test):,} {data.eval_name} digits; log p(x) with "
                      f"k={args.ll_k}; 'slides': Zhu's table (Burda et al., full MNIST)")
    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
               "n_test": len(data.x_test), "binarize": args.binarize, "epochs": args.epochs, "z_dim": args.z_dim,
               "ks": list(args.ks), "ll_k": args.ll_k, "results": rows, "quick": args.quick,
               "wall_seconds": time.perf_counter() - started}
    return finish(args.out, params, metrics, figures,
                  "walkthroughs/11_cvae_hole_filling.py: a conditional VAE fills in the hidden half of a digit.")


# %%
if __name__ == "__main__":
    run = main()


# %% [markdown]
# ## Try it yourself
#
# Write this lesson's formulas by hand and let the grader check them with the properties that test
# minivae. `python -m minivae.exercises start DIR` writes `DIR/my_vae.py`, one stub per exercise; fill in
# `log_mean_exp`, `iwae_bound`, then run, in `DIR`:
#
#     python -m minivae.exercises check my_vae.py log_mean_exp
#     python -m minivae.exercises check my_vae.py iwae_bound
#
# Each prints PASS, TODO, or FAIL with the first property that fails and the mistake it recognises
# (docs/exercises.md lists every exercise).
