# %% [markdown]
# # 08 - Why an autoencoder is not a generative model: decode N(0, I) through an AE and through a VAE (d = 32).
#
# Barra, Variational Autoencoders ("AE (d=32)" vs "VAE (d=32)" samples) and Klushyn, "A brief introduction
# to (variational) autoencoders" (deterministic AE vs VAE). Both models have the same layers, 784-400-32-400-784
# (the VAE's encoder has one more 400 x 32 head, for log sigma^2):
#
# - the AE, z = f(x), x_hat = g(z), trained on the squared error ||x - x_hat||^2; nothing asks its codes to
#   look like N(0, I), so N(0, I) draws land where no training code ever was;
# - the VAE, trained on the ELBO, whose KL term pulls q(z|x) towards the prior N(0, I).
#
# Both decode the *same* 64 draws z ~ N(0, I) (08_samples.png: AE outputs clipped to [0, 1], VAE
# probabilities sigmoid(logits)).
#
# The number (higher is better): the mean **mixture-of-Bernoullis log-likelihood** of the 64 samples, each
# binarized at 1/2 like the training digits (u_d = 1[image_d > 1/2]), under a density model of the real digits:
#
#     score(u) = log sum_c pi_c prod_d p_cd^u_d (1 - p_cd)^(1 - u_d),
#
# a mixture of C = 20 products of Bernoullis fitted by EM to the training digits (one pseudo-count for 0 and
# one for 1 in every p_cd, one per component in pi_c). The score of 1,000 real test digits is printed for
# reference; the VAE's blurry samples, once binarized, are smooth "typical" digits and may even score above it.
# The AE's samples score worse than the VAE's. The reason is printed too: KL(N(m, diag s^2) || N(0, I)) for
# a diagonal Gaussian moment-matched to each model's codes of the test digits (the AE's f(x), the VAE's
# z ~ q(z|x)). It is near 0 when N(0, I) draws look like the codes the decoder was trained on.
#
# Run it:
#
#     python walkthroughs/08_ae_vs_vae_sampling.py --data-dir ~/mnist
#     python walkthroughs/08_ae_vs_vae_sampling.py --quick       # 8 epochs on 2,000 digits each: seconds
#
# (--data-dir, or the environment variable MINIVAE_DATA, names the folder with the MNIST files.) Also saved:
# params.npz (both models: {"ae": ..., "vae": ...}; load it with minivae.load_params) and metrics.json.

# %%
from __future__ import annotations

import time

import numpy

from minivae.distributions import kl_standard_normal
from minivae.models import AE, VAE
from minivae.nn import sigmoid
from minivae.objectives import ae_objective, vae_objective
from minivae.plotting import save_image_panels
from minivae.train import TrainSettings, evaluate, fit
from minivae.walkthrough import (
    Run,
    add_mnist_args,
    add_setting,
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
# (quick, full) for each setting; a flag you give beats both. The quick run trains each model 8 epochs on
# 2,000 digits: the VAE's samples are already digit-like, the AE's are not.

# %%
OUT = "figures/08_ae_vs_vae_sampling"
SETTINGS = {  # name: (quick, full); n_train None means every training digit
    "epochs": (8, 10),
    "n_train": (2000, None),
    "batch_size": (100, 100),
    "z_dim": (32, 32),
    "n_test": (2000, None),
}


def parse_args(argv: list[str] | None = None):
    """The flags of this walkthrough, each checked before any data is loaded."""
    parser = add_mnist_args(walkthrough_parser(lesson(__name__), OUT), SETTINGS)
    add_setting(parser, "--z-dim", SETTINGS, positive_int, "latent dimension of both models")
    return parse_flags(parser, argv, SETTINGS)


# %% [markdown]
# ## A density model of real digits, to score samples
#
# A mixture of 20 products of Bernoullis, fitted by EM: the E-step computes each digit's responsibilities,
# the M-step re-estimates the mixing weights and pixel probabilities (with pseudo-counts).

# %%
def fit_bernoulli_mixture(x: numpy.ndarray, c: int, rng: numpy.random.Generator, iters: int = 30) -> tuple:
    r"""EM for p(x) = Σ_c π_c Π_d Bern(x_d; p_cd) on ``x`` ``(N, D)``: returns ``(log π (C,), p (C, D))``."""
    # start from C random digits, pulled halfway to the mean image
    p = 0.5 * x[rng.choice(len(x), c, replace=False)] + 0.5 * x.mean(axis=0)
    log_pi = numpy.full(c, -numpy.log(c))
    for _ in range(iters):
        # E-step: responsibilities r_nc ∝ π_c Π_d Bern(x_nd; p_cd)
        log_r = mixture_joint(x, log_pi, numpy.clip(p, 1e-3, 1 - 1e-3))
        r = numpy.exp(log_r - log_r.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)
        # M-step: π_c = (N_c + 1) / (N + C), p_cd = (Σ_n r_nc x_nd + 1) / (N_c + 2)
        n_c = r.sum(axis=0)
        log_pi = numpy.log((n_c + 1.0) / (len(x) + c))
        p = (r.T @ x + 1.0) / (n_c[:, None] + 2.0)
    return log_pi, p


def mixture_joint(u: numpy.ndarray, log_pi: numpy.ndarray, p: numpy.ndarray) -> numpy.ndarray:
    r"""log π_c + Σ_d [u_d log p_cd + (1 − u_d) log(1 − p_cd)] for every row and component, ``(N, C)``."""
    return u @ numpy.log(p).T + (1.0 - u) @ numpy.log1p(-p).T + log_pi


def mixture_score(u: numpy.ndarray, log_pi: numpy.ndarray, p: numpy.ndarray) -> float:
    r"""Mean over rows of log Σ_c π_c Π_d p_cd^u_d (1 − p_cd)^(1−u_d), in nats."""
    joint = mixture_joint(numpy.asarray(u, dtype=numpy.float64), log_pi, p)
    return float(numpy.mean(numpy.logaddexp.reduce(joint, axis=1)))


# %% [markdown]
# ## How far are the codes from N(0, I)?
#
# Fit a diagonal Gaussian to a model's codes of the test digits and measure its KL from the prior.

# %%
def code_kl(codes: numpy.ndarray) -> float:
    r"""KL(N(m, diag s²) ‖ N(0, I)) for the mean m and variance s² of ``codes`` ``(N, d)``, in nats."""
    return float(kl_standard_normal(codes.mean(axis=0)[None, :], numpy.log(codes.var(axis=0))[None, :])[0])


# %% [markdown]
# ## The run
#
# Train both models on the same digits, decode the same 64 prior draws through each, and score them.

# %%
def main(argv: list[str] | None = None) -> Run:
    started = time.perf_counter()
    args = parse_args(argv)
    data = load_mnist_split(args, n_test=args.n_test)
    rng = numpy.random.default_rng(args.seed)
    ae, vae = AE(784, [400], args.z_dim), VAE(784, [400], args.z_dim)

    # the same data, epochs and optimizer for both; only the objective differs
    fitted = {}
    for name, model, objective in (("AE", ae, ae_objective(ae)), ("VAE", vae, vae_objective(vae))):
        fitted[name] = fit(objective, model.init(rng), data.x_train,
                           settings=TrainSettings(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                             binarize=data.fit_binarize, device=args.device, progress=show_progress()))
    ae_params, vae_params = fitted["AE"].params, fitted["VAE"].params

    # decode the same 64 draws z ~ N(0, I) through each decoder
    z = rng.standard_normal((64, args.z_dim)).astype(numpy.float32)
    samples = {"AE": numpy.clip(ae.decode(ae_params, z), 0.0, 1.0), "VAE": sigmoid(vae.decode(vae_params, z))}
    trained = f"{args.epochs} epochs on {len(data.x_train):,} digits"
    figures = [save_image_panels({f"AE 784-400-{args.z_dim}, {trained}\ndecoder(z), z ~ N(0, I)": samples["AE"],
                                  f"VAE 784-400-{args.z_dim}, {trained}\nsigmoid(decoder(z)), z ~ N(0, I)":
                                  samples["VAE"]}, args.out / "08_samples.png", ncols=8)]

    # score the samples under a mixture of Bernoullis fitted to the real training digits
    log_pi, p = fit_bernoulli_mixture(data.x_train, 20, rng)
    p = numpy.clip(p, 1e-3, 1 - 1e-3)
    real = data.x_test[rng.permutation(len(data.x_test))[:1000]]
    scores = {f"real {data.eval_name} digits": mixture_score(real, log_pi, p),
              "VAE samples": mixture_score(samples["VAE"] > 0.5, log_pi, p),
              "AE samples": mixture_score(samples["AE"] > 0.5, log_pi, p)}
    # how far each model's codes of the test digits are from N(0, I)
    mean, log_var = vae.encode(vae_params, data.x_test)
    vae_codes = mean + numpy.exp(0.5 * log_var) * rng.standard_normal(mean.shape).astype(numpy.float32)
    kls = {"AE": code_kl(ae.encode(ae_params, data.x_test)), "VAE": code_kl(vae_codes)}

    ae_error = -evaluate(ae_objective(ae), ae_params, data.x_test, rng)
    vae_elbo = evaluate(vae_objective(vae), vae_params, data.x_test, rng)
    print_table([{"images": k, "log-likelihood (nats)": v} for k, v in scores.items()],
                title="64 decoded N(0, I) draws, binarized, under a Bernoulli mixture (higher: more digit-like)")
    print_table([{"model": k, "KL(codes || N(0, I))": v} for k, v in kls.items()])
    metrics = {"train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
               "n_test": len(data.x_test), "binarize": args.binarize, "epochs": args.epochs, "z_dim": args.z_dim,
               "score_real": scores[f"real {data.eval_name} digits"], "score_vae_samples": scores["VAE samples"],
               "score_ae_samples": scores["AE samples"], "code_kl_ae": kls["AE"], "code_kl_vae": kls["VAE"],
               "ae_test_squared_error": ae_error, "vae_test_elbo": vae_elbo, "quick": args.quick,
               "wall_seconds": time.perf_counter() - started}
    return finish(args.out, {"ae": ae_params, "vae": vae_params}, metrics, figures,
                  "walkthroughs/09_beta_vae.py: weigh the KL term by beta and watch latent units switch off.")


# %%
if __name__ == "__main__":
    run = main()
