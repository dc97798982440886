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
# **The lesson as a number:** how far a decoded draw is from every digit the model was trained on. Binarize each
# sample at 1/2 like the training digits and count the pixels in which it differs from its nearest training
# digit: the AE's samples differ in more than 1.4 times as many pixels as the VAE's (the quick run, seeds 0-4:
# about 80 against 44 pixels, 1.6 to 1.9 times with or without the official test set; real test digits differ
# from their nearest training digit in about 48).
#
# A second number (higher is better): the mean **mixture-of-Bernoullis log-likelihood** of the 64 binarized
# samples under a density model of the real digits,
#
#     score(u) = log sum_c pi_c prod_d p_cd^u_d (1 - p_cd)^(1 - u_d),
#
# a mixture of C = 20 products of Bernoullis fitted by EM to the training digits (one pseudo-count for 0 and
# one for 1 in every p_cd, one per component in pi_c). The score of 1,000 real test digits is printed for
# reference; the VAE's blurry samples, once binarized, are smooth "typical" digits and may even score above it
# (and lie nearer a training digit than real ones do). The AE's samples score worse than the VAE's. The reason is
# printed too: KL(N(m, diag s^2) || N(0, I)) for a diagonal Gaussian moment-matched to each model's codes of the
# test digits (the AE's f(x), the VAE's z ~ q(z|x)). It is near 0 when N(0, I) draws look like the codes the
# decoder was trained on.
#
# Run it as a script (`--quick`, 8 epochs on 2,000 digits each, takes seconds and writes to
# `figures/08_ae_vs_vae_sampling_quick`):
#
#     python walkthroughs/08_ae_vs_vae_sampling.py --data-dir ~/mnist
#     python walkthroughs/08_ae_vs_vae_sampling.py --quick
#
# (--data-dir, or the environment variable MINIVAE_DATA, names the folder with the MNIST files.) Also saved:
# params.npz (both models: {"ae": ..., "vae": ...}; load it with minivae.load_params) and metrics.json. As a
# notebook it runs quick, unless `MINIVAE_WALKTHROUGH_ARGS` holds other flags (`""` for the full run).

# %%
from minivae.walkthrough import epoch_bar, lesson_check, print_table, settings

S = settings(__name__, "08_ae_vs_vae_sampling", {  # name: (quick, full, what it is); a flag beats both
    "epochs": (8, 10, "passes over the training digits, for each model"),
    "n_train": (2000, None, "train on a random subset of this many digits"),
    "batch_size": (100, 100, "digits per gradient step"),
    "z_dim": (32, 32, "latent dimension of both models"),
    "n_test": (2000, None, "evaluation digits (codes, reference scores)"),
}, mnist=True)

# %% [markdown]
# ## The data
#
# The training digits, binarized at 1/2, and the evaluation digits (the official test set, or held-out training
# digits without it). A few of them:

# %%
import numpy

from minivae.plotting import plt, tile_images
from minivae.walkthrough_data import load_mnist_split

data = load_mnist_split(S, n_test=S.n_test)
rng = numpy.random.default_rng(S.seed)
fig, ax = plt.subplots(figsize=(8, 0.9), layout="constrained")
ax.imshow(tile_images(data.x_train[:12], 12), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
ax.set_axis_off()
ax.set_title(f"training digits, labels {' '.join(map(str, data.y_train[:12]))}", fontsize=9)
S.figure(fig, "08_digits.png")

# %% [markdown]
# ## Two models, the same layers, two objectives
#
# The same data, epochs and optimizer for both; only the objective differs: the AE's squared error, the VAE's
# negative ELBO.

# %%
from minivae.models import AE, VAE
from minivae.objectives import ae_objective, vae_objective
from minivae.train import TrainSettings, evaluate, fit

ae, vae = AE(784, [400], S.z_dim), VAE(784, [400], S.z_dim)
fitted = {}
for name, model, objective in (("AE", ae, ae_objective(ae)), ("VAE", vae, vae_objective(vae))):
    fitted[name] = fit(objective, model.init(rng), data.x_train,
                       settings=TrainSettings(epochs=S.epochs, batch_size=S.batch_size, seed=S.seed,
                                              binarize=data.fit_binarize, device=S.device, progress=False),
                       on_epoch=epoch_bar(S.epochs, name))
ae_params, vae_params = fitted["AE"].params, fitted["VAE"].params

# %% [markdown]
# ## Decode the same 64 draws z ~ N(0, I) through each decoder

# %%
from minivae.nn import sigmoid

z = rng.standard_normal((64, S.z_dim)).astype(numpy.float32)
samples = {"AE": numpy.clip(ae.decode(ae_params, z), 0.0, 1.0), "VAE": sigmoid(vae.decode(vae_params, z))}
trained = f"{S.epochs} epochs on {len(data.x_train):,} digits"
fig, axes = plt.subplots(1, 2, figsize=(11, 5.8), layout="constrained")
for ax, (name, images), about in zip(axes, samples.items(), ("decoder(z)", "sigmoid(decoder(z))")):
    ax.imshow(tile_images(images, 8), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{name} 784-400-{S.z_dim}, {trained}\n{about}, z ~ N(0, I)", fontsize=9)
S.figure(fig, "08_samples.png")

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


log_pi, p = fit_bernoulli_mixture(data.x_train, 20, rng)
p = numpy.clip(p, 1e-3, 1 - 1e-3)
real = data.x_test[rng.permutation(len(data.x_test))[:1000]]
scores = {f"real {data.eval_name} digits": mixture_score(real, log_pi, p),
          "VAE samples": mixture_score(samples["VAE"] > 0.5, log_pi, p),
          "AE samples": mixture_score(samples["AE"] > 0.5, log_pi, p)}
print_table([{"images": k, "log-likelihood (nats)": v} for k, v in scores.items()],
            title="64 decoded N(0, I) draws, binarized, under a Bernoulli mixture (higher: more digit-like)")

# %% [markdown]
# ## Why: how far are the codes from N(0, I)?
#
# Fit a diagonal Gaussian to a model's codes of the evaluation digits and measure its KL from the prior.

# %%
from minivae.distributions import kl_standard_normal


def code_kl(codes: numpy.ndarray) -> float:
    r"""KL(N(m, diag s²) ‖ N(0, I)) for the mean m and variance s² of ``codes`` ``(N, d)``, in nats."""
    return float(kl_standard_normal(codes.mean(axis=0)[None, :], numpy.log(codes.var(axis=0))[None, :])[0])


mean, log_var = vae.encode(vae_params, data.x_test)
vae_codes = mean + numpy.exp(0.5 * log_var) * rng.standard_normal(mean.shape).astype(numpy.float32)
kls = {"AE": code_kl(ae.encode(ae_params, data.x_test)), "VAE": code_kl(vae_codes)}
print_table([{"model": k, "KL(codes || N(0, I))": v} for k, v in kls.items()])

# %% [markdown]
# ## How far is each sample from the digits the model was trained on?
#
# Binarize each sample at 1/2 and count the pixels in which it differs from its nearest training digit (the
# Hamming distance; for 0/1 images it equals the squared distance). Real evaluation digits give the scale.

# %%
def nearest_distance(u: numpy.ndarray, x: numpy.ndarray) -> numpy.ndarray:
    r"""min_n ||x_n - u_i||^2 for each 0/1 image u_i ``(M, D)`` over the 0/1 digits x ``(N, D)``: the pixels in
    which u_i differs from its nearest x_n, ``(M,)``."""
    u, x = numpy.asarray(u, dtype=numpy.float64), numpy.asarray(x, dtype=numpy.float64)
    # ||u||^2 - 2 u . x + ||x||^2 for every pair, (M, N)
    return ((u**2).sum(1)[:, None] - 2.0 * u @ x.T + (x**2).sum(1)[None, :]).min(axis=1)


train01 = data.x_train > 0.5
distance = {"AE samples": nearest_distance(samples["AE"] > 0.5, train01),
            "VAE samples": nearest_distance(samples["VAE"] > 0.5, train01),
            f"real {data.eval_name} digits": nearest_distance(real > 0.5, train01)}
print_table([{"images": k, "pixels differing from the nearest training digit": v.mean()} for k, v in distance.items()],
            title="binarized at 1/2; mean over the images")

# %% [markdown]
# ## The lesson as a number

# %%
ae_error = -evaluate(ae_objective(ae), ae_params, data.x_test, rng)
vae_elbo = evaluate(vae_objective(vae), vae_params, data.x_test, rng)
mean_distance = {k: float(v.mean()) for k, v in distance.items()}
lesson = lesson_check("decoded N(0, I) draws, binarized: pixels differing from the nearest training digit, AE over "
                      "VAE, above 1.4", mean_distance["AE samples"] / mean_distance["VAE samples"], 1.4)
metrics = {"lesson": lesson, "train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
           "n_test": len(data.x_test), "binarize": S.binarize,
           "score_real": scores[f"real {data.eval_name} digits"], "score_vae_samples": scores["VAE samples"],
           "score_ae_samples": scores["AE samples"], "code_kl_ae": kls["AE"], "code_kl_vae": kls["VAE"],
           "nearest_distance_ae": mean_distance["AE samples"], "nearest_distance_vae": mean_distance["VAE samples"],
           "nearest_distance_real": mean_distance[f"real {data.eval_name} digits"],
           "ae_test_squared_error": ae_error, "vae_test_elbo": vae_elbo}

# %% [markdown]
# ## As a script: save and say what was written
#
# Only `python walkthroughs/08_ae_vs_vae_sampling.py` runs this cell (a notebook skips it): it saves both models
# (`params.npz`, for `minivae.load_params`) and the numbers (`metrics.json`) in `--out`, lists every file
# written, and names the next walkthrough.

# %%
if S.script:
    S.finish({"ae": ae_params, "vae": vae_params}, metrics,
             "walkthroughs/09_beta_vae.py: weigh the KL term by beta and watch latent units switch off.")
