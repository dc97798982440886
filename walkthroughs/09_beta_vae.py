# %% [markdown]
# # 09 - The β-VAE trade-off: reconstruction against KL, and how many latent units stay in use.
#
# Barra, Variational Autoencoders: the β-VAE objective
#
#     L_beta(x) = E_q[log p(x|z)] - beta * KL(q(z|x) || N(0, I)),
#
# which is the ELBO at beta = 1. A larger beta pays more for information in z: the KL falls, the
# reconstruction gets worse, and latent units switch off. The same ``VAE(784, [400], 20)`` (same
# initialisation, data and noise) is trained once per beta (--betas, default 0.5 1 4 16; --quick: 0.5 1 4) and
# evaluated on the test digits:
#
# - reconstruction  E_q[log p(x|z)] with one sampled z per digit (= ELBO + KL), nats
# - KL              KL(q(z|x) || N(0, I)) in closed form, nats
# - ELBO            reconstruction - KL (the beta = 1 bound on log p(x), whatever beta was trained)
# - active units    Burda et al.'s count of j with A_j = Var_x(E_q[z_j | x]) > 0.01
#
# Saves 09_beta_tradeoff.png (those four against beta) and 09_samples.png (sigmoid(decoder(z)) for the same
# 36 draws z ~ N(0, I) under each beta).
#
# Run it:
#
#     python walkthroughs/09_beta_vae.py --data-dir ~/mnist
#     python walkthroughs/09_beta_vae.py --quick       # beta 0.5, 1, 4: 4 epochs on 2,000 digits each
#
# (--data-dir, or the environment variable MINIVAE_DATA, names the folder with the MNIST files.) Also saved:
# params.npz (one model per beta, keyed "beta=0.5", ...; load it with minivae.load_params) and metrics.json.

# %%
from __future__ import annotations

import time

import numpy

from minivae.distributions import kl_standard_normal
from minivae.models import VAE, active_units
from minivae.nn import sigmoid
from minivae.objectives import vae_objective
from minivae.plotting import save_curve_panels, save_image_panels
from minivae.train import TrainSettings, evaluate, fit
from minivae.walkthrough import (
    Run,
    add_mnist_args,
    add_setting,
    finish,
    lesson,
    load_mnist_split,
    non_negative_float,
    parse_flags,
    positive_int,
    print_table,
    show_progress,
    walkthrough_parser,
)

# %% [markdown]
# ## TrainSettings
#
# (quick, full) for each setting; a flag you give beats both. The quick run trains three betas for 4 epochs
# on 2,000 digits each: the KL already falls as beta grows; in the full run units switch off too, and
# beta = 16 joins, where the samples lose most of their detail.

# %%
OUT = "figures/09_beta_vae"
SETTINGS = {  # name: (quick, full); n_train None means every training digit
    "epochs": (4, 10),
    "n_train": (2000, None),
    "batch_size": (100, 100),
    "betas": ((0.5, 1.0, 4.0), (0.5, 1.0, 4.0, 16.0)),
    "z_dim": (20, 20),
    "n_test": (1000, None),
}
QUICK_NOTE = "quick run: the KL already falls as beta grows; units switch off in the full run"


def parse_args(argv: list[str] | None = None):
    """The flags of this walkthrough, each checked before any data is loaded."""
    parser = add_mnist_args(walkthrough_parser(lesson(__name__), OUT), SETTINGS)
    add_setting(parser, "--betas", SETTINGS, non_negative_float, "the values of beta, one model trained for each",
                nargs="+")
    add_setting(parser, "--z-dim", SETTINGS, positive_int, "latent dimension")
    return parse_flags(parser, argv, SETTINGS)


# %% [markdown]
# ## The terms of the bound on test digits
#
# One sampled z per digit for the ELBO, the KL in closed form, the reconstruction term as their sum, and
# the active units A_j = Var_x(mu_j(x)) > 0.01.

# %%
def test_terms(vae: VAE, params: dict, x: numpy.ndarray, rng: numpy.random.Generator) -> dict:
    r"""Test reconstruction E_q[log p(x|z)], KL, ELBO (nats, means over ``x``) and active units."""
    # ELBO with one sampled z per digit, and the closed-form KL
    elbo = evaluate(vae_objective(vae), params, x, rng)
    mean, log_var = vae.encode(params, x)
    kl = float(numpy.mean(kl_standard_normal(mean, log_var)))
    # active units: A_j = Var_x(μ_j(x)) > 0.01
    active = active_units(mean)
    return {"reconstruction": elbo + kl, "kl": kl, "elbo": elbo, "active_units": active}


# %% [markdown]
# ## The run
#
# One model per beta, from the same initialisation and with the same minibatch noise: only the weight of
# the KL changes.

# %%
def main(argv: list[str] | None = None) -> Run:
    started = time.perf_counter()
    args = parse_args(argv)
    data = load_mnist_split(args, n_test=args.n_test)
    vae = VAE(784, [400], args.z_dim)
    z = numpy.random.default_rng(args.seed).standard_normal((36, args.z_dim)).astype(numpy.float32)

    rows, samples, params = [], {}, {}
    for beta in args.betas:
        # the same initialisation and minibatch noise for every β: only the weight of the KL changes
        init = vae.init(numpy.random.default_rng(args.seed))
        result = fit(vae_objective(vae, beta), init, data.x_train,
                     settings=TrainSettings(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                       binarize=data.fit_binarize, device=args.device, progress=show_progress()))
        terms = test_terms(vae, result.params, data.x_test, numpy.random.default_rng(args.seed + 1))
        rows.append({"beta": beta, **terms, "train_seconds": sum(h["seconds"] for h in result.history)})
        samples[f"beta = {beta:g}"] = sigmoid(vae.decode(result.params, z))
        params[f"beta={beta:g}"] = result.params

    betas = [r["beta"] for r in rows]
    run_name = f"784-400-{args.z_dim} beta-VAE, {args.epochs} epochs on {len(data.x_train):,} digits"
    figures = [
        save_curve_panels({f"nats per {data.eval_name} digit": {name: (betas, [r[key] for r in rows]) for name, key in
                                                               (("reconstruction", "reconstruction"), ("KL", "kl"),
                                                                ("ELBO", "elbo"))},
                           "active units": {f"of {args.z_dim}": (betas, [r["active_units"] for r in rows])}},
                          args.out / "09_beta_tradeoff.png", xlabel="beta", logx=True,
                          ylims={"active units": (0, args.z_dim + 0.5)},
                          title=run_name + (f"\n({QUICK_NOTE})" if args.quick else "")),
        save_image_panels(samples, args.out / "09_samples.png", ncols=6,
                          title=f"{run_name}: sigmoid(decoder(z)), the same 36 z ~ N(0, I)"),
    ]
    print_table([{k: v for k, v in r.items() if k != "train_seconds"} for r in rows],
                title=f"{run_name}; {data.eval_name} terms in nats per digit")
    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
               "n_test": len(data.x_test), "binarize": args.binarize, "epochs": args.epochs, "z_dim": args.z_dim,
               "betas": betas, "results": rows, "quick": args.quick, "wall_seconds": time.perf_counter() - started}
    return finish(args.out, params, metrics, figures,
                  "walkthroughs/10_iwae.py: a tighter bound than the ELBO trains a better density model.")


# %%
if __name__ == "__main__":
    run = main()
