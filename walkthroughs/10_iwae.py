# %% [markdown]
# # 10 - VAE vs IWAE: a tighter bound trains a better density model.
#
# Zhu, Deep Generative Models II: the importance-weighted bound (Burda et al.)
#
#     L_k(x) = E[ log (1/k) sum_{i=1..k} p(x, z_i) / q(z_i|x) ],   z_i ~ q(z|x),
#     log p(x) >= L_k >= L_1 = ELBO,   L_k increasing in k.
#
# The same ``VAE(784, [400], 20)`` (same initialisation, data and epochs) is trained on the ELBO (the VAE) and
# on L_k (the IWAE; k = 5 and 50, --ks), then each model is scored on the same random test digits with L_1,
# L_5 and L_50 (fresh samples), with log p(x) ≈ L_1000 (a lower bound: L_k with a large k, --ll-k), and with
# Burda et al.'s active units (the j with Var_x(E_q[z_j | x]) > 0.01).
#
# **The lesson as a number:** L_1 ≤ L_5 ≤ L_50 on every model, and every IWAE's L_50 beats the VAE's; the
# number is the smallest of those margins in nats, above 0 (the quick run, seeds 0-4: 2.3 to 2.6 nats; the
# IWAE-5's L_50 beats the VAE's by 4.2 to 6.8 nats).
#
# Reference numbers, each under the name of where it is printed (both on stochastically binarized MNIST, all
# 60,000 training digits, far longer training): **Zhu's slides** (Deep Generative Models II) print the rows
# VAE −85.69, IWAE-5 −84.43, IWAE-50 −83.58; **Burda et al.'s Table 1** (one stochastic layer, 784-200-200-50,
# negative log-likelihoods estimated as L_5000 on the 10,000 test digits) prints VAE 86.76 / 86.47 / 86.35 and
# IWAE 86.76 / 85.54 / 84.78 for k = 1 / 5 / 50. Only a run with `--binarize stochastic` compares with them
# (docs/walkthroughs.md has one).
#
# Run it as a script (about two minutes; `--quick` takes about fifteen seconds, trains only the VAE and the
# IWAE-5, and writes to `figures/10_iwae_quick`):
#
#     python walkthroughs/10_iwae.py --data-dir ~/mnist
#     python walkthroughs/10_iwae.py --quick
#
# (--data-dir, or the environment variable MINIVAE_DATA, names the folder with the MNIST files.) As a notebook it
# runs quick, unless `MINIVAE_WALKTHROUGH_ARGS` holds other flags (`""` for the full run).

# %%
from minivae.walkthrough import epoch_bar, lesson_check, print_table, settings

S = settings(__name__, "10_iwae", {  # name: (quick, full, what it is); a flag beats both: --ks 5 50
    "epochs": (8, 10, "passes over the training digits"),
    "n_train": (3000, None, "training digits, a random subset"),
    "batch_size": (100, 100, "digits per gradient step"),
    "ks": ((5,), (5, 50), "IWAE sample sizes k, one model trained on L_k for each (and the VAE on L_1)"),
    "test_ks": ((5, 50), (5, 50), "the k of the bounds L_k scored on every model"),
    "z_dim": (20, 20, "latent dimension"),
    "ll_k": (200, 1000, "importance samples per digit for log p(x) ≈ L_k"),
    "eval_n": (500, 1000, "test digits scored, a random subset"),
}, mnist=True)

# %% [markdown]
# ## The data
#
# The training and test digits (which ones, and from where, is printed), binarized as `--binarize` says.

# %%
import numpy

from minivae.plotting import digit_grid, image_panels, plt
from minivae.walkthrough_data import load_mnist_split

data = load_mnist_split(S, n_test=S.eval_n)
S.figure(digit_grid(data.x_test[:12], 12, f"the first 12 {data.eval_name} digits scored below"), "10_digits.png")

# %% [markdown]
# ## The model, the training bound, and every bound on every model
#
# k = 1 is the ELBO (the VAE); k > 1 the importance-weighted bound L_k (the IWAE). Each model is scored with
# L_1, L_k for each test k, and log p(x) ≈ L_{ll_k} (the longest step: it shows a progress bar), on the same
# test digits, so L_1 ≤ L_5 ≤ L_50 can be read off each row.

# %%
from minivae.models import VAE, active_units
from minivae.objectives import iwae_objective, vae_objective
from minivae.train import evaluate
from minivae.walkthrough_data import in_chunks

vae = VAE(784, [400], S.z_dim)


def objective_for(k: int):
    """The ELBO for k = 1 (the VAE), the IWAE bound L_k otherwise."""
    return vae_objective(vae) if k == 1 else iwae_objective(vae, k)


def evaluate_model(params: dict, x: numpy.ndarray, rng: numpy.random.Generator) -> dict:
    r"""Mean L_1, L_k for each k in ``S.test_ks``, log p(x) ≈ L_{S.ll_k} and active units on ``x`` ``(N, 784)``."""
    # L_1 = ELBO and L_k with fresh noise (batches of 100 keep the (k, N, 784) logits small)
    row = {"L_1": evaluate(vae_objective(vae), params, x, rng)}
    for k in S.test_ks:
        row[f"L_{k}"] = evaluate(iwae_objective(vae, k), params, x, rng, batch_size=100)
    # log p(x) ≈ L_{ll_k}: importance sampling with ll_k samples, still a lower bound
    log_lik = in_chunks(lambda xb: vae.log_likelihood(params, xb, S.ll_k, rng), x, desc=f"log p(x), k={S.ll_k}")
    row["log_likelihood"] = float(numpy.mean(log_lik))
    # active units: Var_x(μ_j(x)) > 0.01
    row["active_units"] = active_units(vae.encode(params, x)[0])
    return row


# %% [markdown]
# ## Training: the VAE and each IWAE
#
# The same initialisation and data order for every model: only the training bound changes. One progress bar
# per model.

# %%
from minivae.nn import sigmoid
from minivae.train import TrainSettings, fit

z = numpy.random.default_rng(S.seed).standard_normal((36, S.z_dim)).astype(numpy.float32)
rows, samples, params = [], {}, {}
for k in [1, *S.ks]:
    name = "VAE" if k == 1 else f"IWAE-{k}"
    result = fit(objective_for(k), vae.init(numpy.random.default_rng(S.seed)), data.x_train,
                 settings=TrainSettings(S.epochs, S.batch_size, S.seed, data.fit_binarize, S.device, progress=False),
                 on_epoch=epoch_bar(S.epochs, name))
    scores = evaluate_model(result.params, data.x_test, numpy.random.default_rng(S.seed + 1))
    rows.append({"model": name, "trained on": f"L_{k}", **scores,
                 "train_seconds": sum(h["seconds"] for h in result.history)})
    samples[name] = sigmoid(vae.decode(result.params, z))
    params[name] = result.params
RUN = f"784-400-{S.z_dim}, {S.epochs} epochs on {len(data.x_train):,} digits"

# %% [markdown]
# ## Every model's bounds against k
#
# On one model L_k rises with k towards log p(x); the last point, k = --ll-k, is the log p(x) estimate (still a
# lower bound). The IWAEs' curves lie above the VAE's at large k: a better density model.

# %%
test_ks = [1, *S.test_ks, S.ll_k]
bounds = ["L_1", *(f"L_{k}" for k in S.test_ks), "log_likelihood"]
fig, ax = plt.subplots(figsize=(7.5, 3.6), layout="constrained")
for r in rows:
    ax.plot(test_ks, [r[b] for b in bounds], marker="o", ms=4, label=f"{r['model']} (trained on {r['trained on']})")
ax.set_xscale("log")
ax.set_xticks(test_ks, [f"{k:g}" for k in test_ks])
ax.minorticks_off()
ax.set_xlabel(f"k, importance samples at test time (k = {S.ll_k}: log p(x) ≈ L_k, a lower bound)")
ax.set_ylabel(f"L_k, nats per digit\n({len(data.x_test):,} {data.eval_name} digits)")
ax.set_title(RUN, fontsize=10)
ax.grid(alpha=0.3)
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
S.figure(fig, "10_iwae_bounds.png")

# %% [markdown]
# ## Samples of each model
#
# sigmoid(decoder(z)) for the same 36 draws z ~ N(0, I), decoded by each model.

# %%
S.figure(image_panels(samples, 6, f"{RUN}:\nsigmoid(decoder(z)), the same 36 z ~ N(0, I)"), "10_samples.png")

# %% [markdown]
# ## The density table, and the lesson as a number
#
# Beside each row, the published numbers for a model trained on the same bound (log p(x) = −NLL), each under
# its source's name. They are for stochastically binarized digits, whose coin flips a threshold-binarized test
# digit does not carry: compare with them only a run with `--binarize stochastic`.

# %%
ZHU_SLIDES = {1: -85.69, 5: -84.43, 50: -83.58}  # Zhu, Deep Generative Models II: MNIST test log p(x), nats
BURDA_TABLE1 = {1: -86.76, 5: -85.54, 50: -84.78}  # Burda et al., Table 1, one stochastic layer: −NLL, nats

LL = f"log p(x) ≈ L_{S.ll_k}"
print_table([{"model": r["model"], "trained on": r["trained on"], **{b: r[b] for b in bounds[:-1]},
              LL: r["log_likelihood"], "active units": r["active_units"],
              "Zhu's slides": ZHU_SLIDES.get(int(r["trained on"][2:]), "-"),
              "Burda Table 1": BURDA_TABLE1.get(int(r["trained on"][2:]), "-")} for r in rows],
            title=f"{RUN}; nats per digit on {len(data.x_test):,} {data.eval_name} digits ({S.binarize} "
                  f"binarization); {LL}, a lower bound. References, on stochastically binarized digits: Zhu's "
                  "slide rows, and Burda et al.'s Table 1 (−NLL ≈ L_5000 on the 10,000 test digits)")
# the margins: L_1 <= L_5 <= L_50 on every model, and every IWAE's largest-k bound over the VAE's
top = bounds[-2]
margins = [r[b] - r[a] for r in rows for a, b in zip(bounds[:-2], bounds[1:-1])]
gains = [r[top] - rows[0][top] for r in rows[1:]]
lesson = lesson_check(f"the smallest margin (nats) of L_1 <= {' <= '.join(bounds[1:-1])} on every model and of "
                      f"every IWAE's {top} over the VAE's, above 0", min(margins + gains), 0.0)
metrics = {"lesson": lesson, "train_set": data.train_set, "eval_set": data.eval_set, "n_train": len(data.x_train),
           "n_test": len(data.x_test), "binarize": S.binarize, "iwae_gain": dict(zip([r["model"] for r in rows[1:]],
                                                                                     gains)),
           "log_likelihood_is": f"L_{S.ll_k}, a lower bound", "results": rows,
           "references": {"zhu_slides": ZHU_SLIDES, "burda_table1_iwae": BURDA_TABLE1}}

# %% [markdown]
# ## As a script: save and say what was written
#
# Only `python walkthroughs/10_iwae.py` runs this cell (a notebook skips it): it saves one model each (`params.npz`,
# keyed "VAE", "IWAE-5", ...; for `minivae.load_params`) and the numbers (`metrics.json`) in `--out`, lists every
# file written, and names the next walkthrough.

# %%
if S.script:
    S.finish(params, metrics, "walkthroughs/11_cvae_hole_filling.py: a conditional VAE fills in the hidden half of "
             "a digit.")


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
