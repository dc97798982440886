# %% [markdown]
# # 06 - A VAE with a 2-D latent space: the test digits' embedding, and the manifold the decoder draws.
#
# Shan, Variational Autoencoder (the 2-D embedding of MNIST) and Klushyn, "A brief introduction to
# (variational) autoencoders" (the 2-D latent learning process). The model is ``VAE(784, [400], 2)`` with a
# Bernoulli decoder, trained on the ELBO like walkthrough 05. With two latent dimensions we can look at
# the whole latent space at once:
#
# - 06_embedding.png  the encoder means mu(x) of the test digits, coloured by their label
# - 06_manifold.png   sigmoid(decoder(z)) on a 20 x 20 grid z = (Phi^-1(p_i), Phi^-1(p_j)), p_i = (i + 1/2)/20:
#                     equal-probability steps under the prior N(0, I), as in Kingma and Welling's figure
#                     (Phi^-1, the standard normal quantile, from the standard library's NormalDist)
#
# It reports the test ELBO (sampled z), the KL, log p(x) ≈ L_k (importance sampling, a lower bound), and how
# well the 2-D codes separate the digits. **The lesson as a number:** no label is used in training, yet a
# 5-nearest-neighbour classifier that labels each test code by the codes of the training digits is right far
# more often than chance (10 %): above 30 %, and about 51 % in the quick run on the official test set.
#
# Run it as a script (--data-dir, or the environment variable MINIVAE_DATA, names the folder with the MNIST
# files; `--quick` writes to `figures/06_mnist_latent_2d_quick`):
#
#     python walkthroughs/06_mnist_latent_2d.py --data-dir ~/mnist
#     python walkthroughs/06_mnist_latent_2d.py --quick       # 15 epochs on 4,000 digits: seconds
#
# As a notebook it runs quick, unless `MINIVAE_WALKTHROUGH_ARGS` holds other flags (`""` for the full run).

# %%
from minivae.walkthrough import settings

S = settings(__name__, "06_mnist_latent_2d", {  # name: (quick, full, what it is); a flag beats both: --epochs 50
    "epochs": (15, 10, "passes over the training digits"),
    "n_train": (4000, None, "train on a random subset of this many digits"),
    "batch_size": (100, 100, "digits per gradient step"),
    "hidden": (400, 400, "hidden units of encoder and decoder"),
    "lr": (3e-3, 1e-3, "Adam's learning rate (the quick run's is larger, to separate classes in seconds)"),
    "ll_k": (50, 1000, "importance samples per digit for L_k"),
    "ll_n": (200, 500, "test digits for L_k"),
    "n_test": (2000, None, "test digits, a random subset"),
}, mnist=True)

# %% [markdown]
# ## The data: MNIST digits and their labels
#
# The labels are never shown to the VAE; they only colour the embedding and score the codes at the end.

# %%
import numpy

from minivae.plotting import digit_grid, plt
from minivae.walkthrough_data import load_mnist_split

data = load_mnist_split(S, n_test=S.n_test)



S.figure(digit_grid(data.x_train[:16], 16, "16 training digits, labels " + " ".join(map(str, data.y_train[:16]))),
         "06_digits.png")

# %% [markdown]
# ## The model and its training
#
# The VAE of walkthrough 05 with z_dim = 2, trained on the ELBO; the test ELBO is scored after every epoch.

# %%
from minivae.models import VAE
from minivae.objectives import vae_objective
from minivae.optim import Adam
from minivae.train import TrainSettings, fit
from minivae.walkthrough import epoch_bar

rng = numpy.random.default_rng(S.seed)
vae = VAE(784, [S.hidden], 2)
run_name = f"784-{S.hidden}-2 VAE, {S.epochs} epochs on {len(data.x_train):,} digits"
result = fit(vae_objective(vae), vae.init(rng), data.x_train, x_test=data.x_test, optimizer=Adam(S.lr),
             settings=TrainSettings(epochs=S.epochs, batch_size=S.batch_size, seed=S.seed,
                                    binarize=data.fit_binarize, device=S.device, progress=False),
             on_epoch=epoch_bar(S.epochs, "VAE, 2-D latent"))
params = result.params
train_seconds = sum(h["seconds"] for h in result.history)

# %% [markdown]
# ## Evaluation: the test ELBO, the KL, and L_k beside the ELBO of the same digits

# %%
from minivae.distributions import kl_standard_normal
from minivae.train import evaluate
from minivae.walkthrough_data import in_chunks

# test ELBO (sampled z) and the closed-form KL of the encoder's q(z|x) to N(0, I)
test_elbo = evaluate(vae_objective(vae), params, data.x_test, rng)
codes, log_var = vae.encode(params, data.x_test)
test_kl = float(numpy.mean(kl_standard_normal(codes, log_var)))
# log p(x) ≈ L_k by importance sampling on a random subset, and the ELBO of the same digits
subset = data.x_test[rng.permutation(len(data.x_test))[:S.ll_n]]
log_lik = float(numpy.mean(in_chunks(lambda xb: vae.log_likelihood(params, xb, S.ll_k, rng), subset,
                                     desc=f"L_k, k={S.ll_k}")))
subset_elbo = evaluate(vae_objective(vae), params, subset, rng)
print(f"test ELBO {test_elbo:.1f} nats (KL {test_kl:.2f}); on {len(subset):,} of the digits: ELBO "
      f"{subset_elbo:.1f}, log p(x) ≈ L_k = {log_lik:.1f} (k = {S.ll_k}, a lower bound)")

# %% [markdown]
# ## How well do the codes separate the digits?
#
# No label was used in training. A 5-nearest-neighbour vote among the training digits' codes labels each
# test code; chance is 10 %.

# %%
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


train_codes, _ = vae.encode(params, data.x_train)
accuracy = knn_accuracy(train_codes, data.y_train, codes, data.y_test)
print(f"5-NN accuracy of the 2-D test codes: {accuracy:.3f} (chance 0.1)")

# %% [markdown]
# ## The embedding: the encoder means of the test digits, coloured by label

# %%
fig, ax = plt.subplots(figsize=(5.5, 4.6), layout="constrained")
points = ax.scatter(codes[:, 0], codes[:, 1], c=data.y_test, cmap="tab10", vmin=-0.5, vmax=9.5, s=4, alpha=0.7)
fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
ax.set_xlabel("$z_1$")
ax.set_ylabel("$z_2$")
quick_note = "\n(quick run: more digits and epochs separate more classes)" if S.quick else ""
ax.set_title(f"{run_name}\nencoder means of {len(codes):,} {data.eval_name} digits (5-NN accuracy "
             f"{100 * accuracy:.0f} %){quick_note}", fontsize=9)
S.figure(fig, "06_embedding.png")

# %% [markdown]
# ## The manifold: the latent square, in equal-probability steps
#
# Phi^-1 maps a uniform grid of probabilities to the quantiles of N(0, 1): each cell of the grid holds the
# same prior mass, so the manifold shows the latent space as the prior weights it.

# %%
from statistics import NormalDist

from minivae.nn import sigmoid


def manifold_codes(n: int = 20) -> numpy.ndarray:
    r"""The ``(n*n, 2)`` grid z = (Φ⁻¹(p_j), Φ⁻¹(p_i)), p = (i + ½)/n, row by row from the top (large z₂)."""
    q = numpy.array([NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)])
    z1, z2 = numpy.meshgrid(q, q[::-1])
    return numpy.stack([z1.ravel(), z2.ravel()], axis=1).astype(numpy.float32)


S.figure(digit_grid(sigmoid(vae.decode(params, manifold_codes(20))), 20,
                    f"{run_name}: sigmoid(decoder(z)) over the N(0, I) quantiles of the latent square"),
         "06_manifold.png")

# %% [markdown]
# ## The numbers, and the lesson as a number
#
# Nats per digit; log p(x) ≈ L_k is a lower bound on the true log p(x).

# %%
from minivae.walkthrough import lesson_check, print_table

print_table([{"quantity": "test ELBO (sampled z)", "value": test_elbo},
             {"quantity": "KL(q(z|x) || p(z))", "value": test_kl},
             {"quantity": f"ELBO of {len(subset)} of the digits", "value": subset_elbo},
             {"quantity": f"  log p(x) ≈ L_k, k = {S.ll_k}, a lower bound", "value": log_lik},
             {"quantity": "5-NN accuracy of the 2-D codes", "value": accuracy}],
            title=f"{run_name}, {train_seconds:.0f} s of training")
lesson = lesson_check("5-NN accuracy of the 2-D test codes (no labels in training), far above chance 0.1",
                      accuracy, 0.3)
metrics = {"lesson": lesson, "train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
           "n_test": len(data.x_test), "binarize": S.binarize, "z_dim": 2, "test_elbo": test_elbo,
           "test_kl": test_kl, "ll_n": len(subset), "test_log_likelihood": log_lik,
           "test_elbo_ll_subset": subset_elbo, "latent_5nn_accuracy": accuracy, "history": result.history,
           "train_seconds": train_seconds}

# %% [markdown]
# ## As a script: save and say what was written
#
# Only `python walkthroughs/06_mnist_latent_2d.py` runs this cell (a notebook skips it): it saves the trained
# VAE (`params.npz`, for `minivae.load_params`) and the numbers (`metrics.json`) in `--out`, lists every file
# written, and names the next walkthrough.

# %%
if S.script:
    S.finish(params, metrics, "walkthroughs/07_traverse_interpolate.py: walk through the 20-D latent space of "
                              "walkthrough 05.")


# %% [markdown]
# ## Try it yourself
#
# Write this lesson's formulas by hand and let the grader check them with the properties that test
# minivae. `python -m minivae.exercises start DIR` writes `DIR/my_vae.py`, one stub per exercise; fill in
# `dense_vjp`, `numerical_grad`, then run, in `DIR`:
#
#     python -m minivae.exercises check my_vae.py dense_vjp
#     python -m minivae.exercises check my_vae.py numerical_grad
#
# Each prints PASS, TODO, or FAIL with the first property that fails and the mistake it recognises
# (docs/exercises.md lists every exercise).
