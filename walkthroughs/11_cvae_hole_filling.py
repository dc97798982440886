# %% [markdown]
# # 11 - Hole filling: a conditional VAE draws many sharp completions where regression gives one blurry mean.
#
# Shan, Variational Autoencoder, "Conditional VAE [Sohn et al., 2015]": X is the visible part of a digit,
# Y the hidden part, and the model P(Y|X) has a latent z:
#
#     log p(y|x) >= E_{q(z|x,y)}[log p(y|x, z)] - KL(q(z|x, y) || p(z|x)),
#
# with a learned Gaussian prior p(z|x) (see minivae.cvae.CVAE). Given x, each z ~ p(z|x) gives one
# completion. The baseline is a plain regression MLP x -> y with the same hidden layer, trained on the same
# pixels: it can only give E[y|x], one blurry mean. Both use a Bernoulli likelihood on binarized pixels
# (1[x > 0.5]), so both log-likelihoods are log-probabilities of the same binary hidden pixels and compare
# fairly: the baseline's log p(y|x) = sum_d log Bern(y_d; sigmoid(f(x)_d)) is exact; the CVAE's is the
# importance-sampled estimate log (1/k) sum_i p(y|x, z_i) p(z_i|x) / q(z_i|x, y) (Burda et al.), which for
# large k approaches log p(y|x) from below in expectation. (A Gaussian likelihood with a learned variance
# would reward pixels predicted exactly, since binary and near-binary pixels make its density unbounded.)
#
# The same hole is then filled by a plain VAE trained on whole digits, with Rezende et al.'s iterative
# imputation (Zhu, Deep Generative Models II, missing-value imputation): start the hidden pixels at 1/2,
# then repeat z ~ q(z|x_filled), y ~ p(y|z) on the hidden pixels only, keeping the visible ones. It needs no
# model of the hole: any mask works with the same VAE.
#
# **The lesson as a number:** the CVAE's log p(y|x) beats the regression's exact one by more than 10 nats
# per digit, and its completions differ: two of the five completions of a digit (thresholded at 1/2) disagree
# on more than 5 % of the hole's pixels (the quick run on the official test set, seeds 0-4: 18.2 to 21.2 nats,
# 7.3 to 8.0 %).
#
# Run it as a script (30 epochs on every training digit; --data-dir, or the environment variable
# MINIVAE_DATA, names the folder with the MNIST files, whose official test set then evaluates):
#
#     python walkthroughs/11_cvae_hole_filling.py --data-dir ~/mnist
#     python walkthroughs/11_cvae_hole_filling.py --mask square     # a 12x12 hole in the middle instead
#     python walkthroughs/11_cvae_hole_filling.py --quick           # 10 epochs on 4,000 digits: seconds
#
# With --mask square every file name carries the mask (11_square_completions.png, metrics_square.json, ...),
# so the two variants can share one --out folder. `--quick` writes to `figures/11_cvae_hole_filling_quick`.
# As a notebook it runs quick, unless `MINIVAE_WALKTHROUGH_ARGS` holds other flags (`""` for the full run).

# %%
from minivae.walkthrough import settings

S = settings(__name__, "11_cvae_hole_filling", {  # name: (quick, full, what it is); a flag beats both
    "mask": ("left", "left", "what x shows: the left half (y = the right half) or all but a 12x12 hole"),
    "epochs": (10, 30, "passes over the training digits, for each of the three models"),
    "n_train": (4000, None, "train on a random subset of this many digits"),
    "batch_size": (100, 100, "digits per gradient step"),
    "lr": (3e-3, 1e-3, "Adam's learning rate"),
    "z_dim": (16, 16, "latent dimension of CVAE and VAE"),
    "hidden": (256, 256, "hidden units of every network"),
    "ll_k": (50, 500, "importance samples per digit for log p(y|x)"),
    "ll_n": (200, 1000, "test digits for log p(y|x) and the completions"),
    "n_test": (500, None, "test digits to draw them from"),
}, types={"mask": ("left", "square")}, mnist=True)

# %% [markdown]
# ## The data: what x shows and what y hides
#
# A boolean mask over the 784 pixels; x and y are the two parts of every digit, and `compose` puts them back.
# The first row below is the digits, the second what the models see (the hole grey).

# %%
import numpy

from minivae.plotting import digit_grid
from minivae.walkthrough_data import load_mnist_split

data = load_mnist_split(S, n_test=S.n_test)
STEM = "11" if S.mask == "left" else f"11_{S.mask}"


def visible_mask(kind: str) -> numpy.ndarray:
    """Boolean ``(784,)``: True where x shows the pixel, False where y (the hole) is."""
    image = numpy.ones((28, 28), dtype=bool)
    if kind == "left":
        image[:, 14:] = False
    else:
        image[8:20, 8:20] = False
    return image.ravel()


def compose(visible: numpy.ndarray, x: numpy.ndarray, y: numpy.ndarray) -> numpy.ndarray:
    """Whole ``(N, 784)`` images with the visible pixels ``x`` and the hidden ones ``y``."""
    images = numpy.empty((len(x), 784), dtype=numpy.float32)
    images[:, visible], images[:, ~visible] = x, y
    return images



visible = numpy.asarray(visible_mask(S.mask))
x_tr, y_tr = data.x_train[:, visible], data.x_train[:, ~visible]
x_te, y_te = data.x_test[:, visible], data.x_test[:, ~visible]
grey = compose(visible, x_te[:10], numpy.full((10, y_te.shape[1]), 0.5))
S.figure(digit_grid(numpy.concatenate([data.x_test[:10], grey]), 10,
                    f"10 {data.eval_name} digits, and what x shows ({S.mask} mask: {int((~visible).sum())} "
                    "hidden pixels, grey)"), f"{STEM}_digits.png")

# %% [markdown]
# ## The CVAE: q(z|x, y), a learned prior p(z|x), and the decoder p(y|x, z)
#
# `pack_pairs` puts x and y side by side so that `fit` shuffles the pairs together; `cvae_objective` maximises
# the conditional ELBO of y given x, one sampled z per digit.

# %%
from minivae.cvae import CVAE, pack_pairs
from minivae.objectives import cvae_objective
from minivae.optim import Adam
from minivae.train import TrainSettings, fit
from minivae.walkthrough import epoch_bar

rng = numpy.random.default_rng(S.seed)
train_pairs, test_pairs = pack_pairs(x_tr, y_tr), pack_pairs(x_te, y_te)
run = TrainSettings(epochs=S.epochs, batch_size=S.batch_size, seed=S.seed, binarize=data.fit_binarize,
                    device=S.device, progress=False)
cvae = CVAE(x_tr.shape[1], y_tr.shape[1], [S.hidden], S.z_dim)
cvae_params = fit(cvae_objective(cvae), cvae.init(rng), train_pairs, optimizer=Adam(S.lr), settings=run,
                  on_epoch=epoch_bar(S.epochs, "CVAE")).params

# %% [markdown]
# ## The baseline: regression x -> E[y|x]
#
# The same Bernoulli likelihood on the hidden pixels, without a latent: one mean per x, the same hidden width.

# %%
from minivae.distributions import bernoulli_log_prob
from minivae.nn import init_mlp, mlp, sigmoid
from minivae.objectives import Objective
from minivae.ops import mean as vmean


def regression_objective(x_dim: int) -> Objective:
    r"""Minimise −(1/N) Σ_n log p(y_n|x_n), p(y|x) = Π_d Bern(y_d; σ(f(x)_d)): the regression baseline."""
    return Objective(lambda p, xy, eps: -vmean(bernoulli_log_prob(xy[:, x_dim:], mlp(p, xy[:, :x_dim]))),
                     None, "log_lik")


reg_params = fit(regression_objective(x_tr.shape[1]), init_mlp([x_tr.shape[1], S.hidden, y_tr.shape[1]], rng),
                 train_pairs, optimizer=Adam(S.lr), settings=run, on_epoch=epoch_bar(S.epochs, "regression")).params

# %% [markdown]
# ## Which model says more about the hole: log p(y|x) on the same test digits
#
# Importance-sampled for the CVAE (k samples from q(z|x, y)), exact for the regression MLP; the CVAE's ELBO
# beside them (log p(y|x) >= its estimate >= the ELBO, in expectation).

# %%
from minivae.train import evaluate
from minivae.walkthrough import print_table
from minivae.walkthrough_data import in_chunks

subset = rng.permutation(len(x_te))[:S.ll_n]
cvae_ll = float(numpy.mean(in_chunks(
    lambda rows: cvae.log_likelihood(cvae_params, x_te[rows], y_te[rows], S.ll_k, rng), subset,
    desc=f"log p(y|x), k={S.ll_k}")))
cvae_elbo = evaluate(cvae_objective(cvae), cvae_params, test_pairs[subset], rng)
reg_ll = evaluate(regression_objective(x_tr.shape[1]), reg_params, test_pairs[subset], rng)
print_table([{"model": f"CVAE log p(y|x), k={S.ll_k}", "nats per digit": cvae_ll},
             {"model": "CVAE ELBO", "nats per digit": cvae_elbo},
             {"model": "regression MLP log p(y|x), exact", "nats per digit": reg_ll}],
            title=f"hidden part y = {int((~visible).sum())} pixels ({S.mask} mask), {len(subset)} "
                  f"{data.eval_name} digits")

# %% [markdown]
# ## Completions: one blurry mean against five draws z ~ p(z|x)
#
# Each row: the test digit, what the models see (hole grey), the regression mean, five CVAE completions (the
# decoder's means for five z ~ p(z|x)). Where the visible part is ambiguous the completions disagree with each
# other, each a sharper digit than the mean. How much they disagree: for every pair of the five, thresholded at
# 1/2, the share of the hole's pixels on which they differ, averaged over pairs and digits.

# %%
TRAINED = (f"hidden {S.hidden}, z {S.z_dim}, {S.epochs} epochs on {len(data.x_train):,} digits, {S.mask} mask, "
           f"{data.eval_name} digits")
scored = subset[:500]
reg_mean = sigmoid(mlp(reg_params, x_te[scored]))
cvae_draws = cvae.sample(cvae_params, x_te[scored], 5, rng)
hole = compose(visible, x_te[scored], numpy.full((len(scored), y_te.shape[1]), 0.5))
rows = [[data.x_test[scored[i]], hole[i], compose(visible, x_te[scored[[i]]], reg_mean[[i]])[0],
         *compose(visible, numpy.repeat(x_te[scored[[i]]], 5, 0), cvae_draws[:, i])] for i in range(8)]
S.figure(digit_grid(numpy.array(rows).reshape(-1, 784), 8,
                    f"{TRAINED}\ntruth | visible (hole grey) | regression mean | 5 CVAE completions"),
         f"{STEM}_completions.png")
# every pair (i, j) of the five completions, thresholded: the share of hole pixels where they differ
first, second = numpy.triu_indices(5, 1)
binary = cvae_draws > 0.5
spread = float(numpy.mean(binary[first] != binary[second]))
print(f"two CVAE completions of a digit differ on {100 * spread:.1f} % of the hole's pixels "
      f"(mean over the 10 pairs of 5, {len(scored)} digits)")

# %% [markdown]
# ## Imputation with a plain VAE
#
# Rezende et al.'s chain on a VAE trained on whole digits: the hole starts at 1/2, then z ~ q(z|x_filled),
# y ~ p(y|z) on the hole, repeated. The chain wanders towards digits consistent with the visible part; it needs
# no retraining for a new mask, but it is slower (50 encoder/decoder passes) and less accurate than the CVAE
# trained for this mask.

# %%
from minivae.distributions import sample_bernoulli
from minivae.models import VAE
from minivae.objectives import vae_objective

IMPUTATION_STEPS = (1, 2, 5, 10, 25, 50)


def impute(vae: VAE, params: dict, images: numpy.ndarray, visible: numpy.ndarray, rng: numpy.random.Generator,
           steps: int) -> list[numpy.ndarray]:
    r"""Rezende et al.'s imputation: hidden pixels start at ½, then z ~ q(z|x), y ~ p(y|z) on the hole, repeated.

    Returns the hole's probabilities σ(decoder(z)) after every step, composed with the visible pixels.
    """
    filled = images.copy()
    filled[:, ~visible] = 0.5
    history = []
    for _ in range(steps):
        # z ~ q(z|x_filled)
        mean, log_var = vae.encode(params, filled)
        z = mean + numpy.exp(0.5 * log_var) * rng.standard_normal(mean.shape).astype(mean.dtype)
        # y ~ p(y|z) on the hidden pixels; the visible ones stay as observed
        probs = sigmoid(vae.decode(params, z))
        filled[:, ~visible] = sample_bernoulli(probs, rng)[:, ~visible]
        history.append(compose(visible, images[:, visible], probs[:, ~visible]))
    return history


vae = VAE(784, [S.hidden], S.z_dim)
vae_params = fit(vae_objective(vae), vae.init(rng), data.x_train, optimizer=Adam(S.lr), settings=run,
                 on_epoch=epoch_bar(S.epochs, "VAE")).params
chain = impute(vae, vae_params, data.x_test[scored], visible, rng, max(IMPUTATION_STEPS))
imputed = [[data.x_test[scored[i]], hole[i], *(chain[t - 1][i] for t in IMPUTATION_STEPS)] for i in range(8)]
S.figure(digit_grid(numpy.array(imputed).reshape(-1, 784), 8,
                    f"{TRAINED}\ntruth | visible | VAE imputation after 1, 2, 5, 10, 25, 50 steps"),
         f"{STEM}_vae_imputation.png")

# %% [markdown]
# ## The price of sharpness, and the lesson as a number
#
# Per-pixel error is what the mean minimises by construction: a thresholded regression mean gets fewer hidden
# pixels wrong than one sharp completion. The likelihood, which scores the whole hole at once, says the
# opposite: a factorised Bernoulli cannot say "either this stroke or that one", the latent z can.

# %%
from minivae.walkthrough import lesson_check


def pixel_error(pred: numpy.ndarray) -> float:
    """Share of hidden pixels that one thresholded completion ``(N, y_dim)`` gets wrong."""
    return float(numpy.mean((pred > 0.5) != (y_te[scored] > 0.5)))


errors = {"regression mean": pixel_error(reg_mean), "CVAE, one completion": pixel_error(cvae_draws[0]),
          "VAE imputation, 50 steps": pixel_error(chain[-1][:, ~visible])}
print_table([{"completion": k, "hidden-pixel error": v} for k, v in errors.items()],
            title=f"hidden-pixel error on {len(scored)} {data.eval_name} digits (the mean minimises it; "
                  "sharp samples pay)")
lesson = lesson_check("the CVAE's log p(y|x) minus the regression's exact one, nats per digit, above 10",
                      cvae_ll - reg_ll, 10.0)
lesson_spread = lesson_check("share of the hole's pixels on which two CVAE completions of a digit differ "
                             "(thresholded at 1/2), above 0.05", spread, 0.05)
metrics = {"lesson": lesson, "lesson_spread": lesson_spread, "train_set": data.train_set,
           "eval_set": data.eval_set, "x_dim": int(visible.sum()), "y_dim": int((~visible).sum()),
           "n_train": len(data.x_train), "ll_n": len(subset), "cvae_log_likelihood": cvae_ll,
           "cvae_elbo": cvae_elbo, "regression_log_likelihood": reg_ll, "cvae_minus_regression": cvae_ll - reg_ll,
           "completion_spread": spread, "pixel_error": errors, "n_pixel_error": len(scored)}

# %% [markdown]
# ## As a script: save and say what was written
#
# Only `python walkthroughs/11_cvae_hole_filling.py` runs this cell (a notebook skips it): it saves the three
# trained models (`params.npz`: `{"cvae", "regression", "vae"}`, for `minivae.load_params`) and the numbers
# (`metrics.json`) in `--out` (with `--mask square`: `params_square.npz`, `metrics_square.json`), lists every
# file written, and names the next walkthrough.

# %%
if S.script:
    S.finish({"cvae": cvae_params, "regression": reg_params, "vae": vae_params}, metrics,
             "walkthroughs/12_semi_supervised_m2.py: 100 labels and many unlabelled digits train a classifier.",
             variant="" if S.mask == "left" else S.mask)


# %% [markdown]
# ## Try it yourself
#
# Write this lesson's formulas by hand and let the grader check them with the properties that test
# minivae. `python -m minivae.exercises start DIR` writes `DIR/my_vae.py`, one stub per exercise; fill in
# `kl_diag_gaussians`, then run, in `DIR`:
#
#     python -m minivae.exercises check my_vae.py kl_diag_gaussians
#
# Each prints PASS, TODO, or FAIL with the first property that fails and the mistake it recognises
# (docs/exercises.md lists every exercise).
