# %% [markdown]
# # 13 - M1 and the stacked M1+M2: the slide's semi-supervised table with 100 labels, chosen on validation digits
#
# Shan, Variational Autoencoder, "Semi-supervised VAE [Kingma et al., 2014]" (Kingma, Rezende, Mohamed &
# Welling, arXiv 1406.5298). The slide's table has three models next to a classifier on the labels alone:
#
# - **M1 + MLP**: a VAE q(z1|x), p(x|z1) trained on every digit, labelled or not, then a classifier on the codes
#   z1 of the labelled digits (Kingma et al. used a transductive SVM; here a small MLP).
# - **M2** on the pixels, as in walkthrough 12.
# - **M1+M2**: M2 trained on the codes z1 ~ q(z1|x) of the trained M1, with a Gaussian p(z1|y, z2):
#
#       p(x, y, z1, z2) = p(y) p(z2) p(z1|y, z2) p(x|z1)
#
#   trained on J^alpha, the labelled bound L, the unlabelled bound U and alpha times the classifier's
#   cross-entropy, weighted as Kingma et al. did (`--weighting paper`, the full run's choice on validation) or
#   with equal means (`--weighting equal_means`, which M2 on pixels always uses: it too was chosen on validation).
#
# Every model sees the same digits the same way (moved by up to `--shift` pixels, a fresh binary draw each
# time). `--n-validation` training digits are set aside: settings are chosen on them, never on the test digits,
# which are scored once, at the end. **The lesson as a number:** M1+M2's test error lies several points (more
# than 3) below that of the classifier on the labels alone. docs/semi_supervised.md has the full runs (mean
# ± sd over 10 fresh label draws, with and without the shifts, with both weightings of J^alpha) and what was tried.
#
# Run it as a script (about three minutes on one core; `--quick` takes seconds and writes to
# `figures/13_m1_m2_stacked_quick`):
#
#     python walkthroughs/13_m1_m2_stacked.py --data-dir ~/mnist
#     python walkthroughs/13_m1_m2_stacked.py --quick
#
# As a notebook it runs quick, unless `MINIVAE_WALKTHROUGH_ARGS` holds other flags (`""` for the full run).

# %%
from minivae.walkthrough import decay, lesson_check, print_table, settings, whole_number_in

VALUES = {  # name: (quick, full, what it is); a flag beats both. The full values were chosen on validation (docs)
    "n_train": (5000, None, "training digits"), "n_test": (1000, None, "test digits, scored once at the end"),
    "n_validation": (500, 500, "digits set aside to choose settings"), "labels_per_class": (10, 10, "1-300"),
    "shift": (0, 1, "move training digits by up to this many pixels"), "lr": (1e-3, 1e-3, "Adam's step size"),
    "batch_size": (100, 50, "digits per step"), "m1_epochs": (30, 120, "epochs of M1's VAE"),
    "classifier_steps": (300, 3000, "steps of the labels-only classifier"), "m1_classifier_steps": (300, 1000,
    "steps of M1's classifier"), "hidden": (256, 500, "width of M1, M1+M2"), "m2_hidden": (128, 500, "width of M2"),
    "epochs": (2, 30, "epochs of M2 on pixels"), "alpha": (50.0, 50.0, "alpha of M2 on pixels (equal means)"),
    "stack_epochs": (40, 90, "epochs of M1+M2"), "stack_alpha": (1.0, 1.0, "alpha of M1+M2 (equal means)"),
    "stack_average": (0.9, 0.9, "decay of M1+M2's moving average"), "weighting": ("equal_means", "paper",
    "M1+M2's J^alpha (M2 on pixels: equal means)")}
S = settings(__name__, "13_m1_m2_stacked", VALUES, mnist=True, binarize="stochastic", types={"stack_average": decay,
    "weighting": ("equal_means", "paper"), "labels_per_class": whole_number_in(1, 300), "shift": whole_number_in(0, 4)})

# %% [markdown]
# ## The digits: labelled, unlabelled, validation and test
#
# `minivae.protocol.split_labelled` sets aside `--n-validation` random training digits (never trained on: the
# settings were chosen on them), then picks `--labels-per-class` random digits of each class from the rest as
# the labelled set; every other training digit is unlabelled. Validation and test digits get one fixed binary
# draw, x ~ Bernoulli(grey value), as the training digits do at every step.

# %%
import sys

import numpy

from minivae.plotting import save_image_grid
from minivae.protocol import split_labelled
from minivae.walkthrough_data import load_mnist_split

data = load_mnist_split(S, n_test=S.n_test)
rng = numpy.random.default_rng(S.seed)
try:
    split = split_labelled(data.y_train, S.labels_per_class, S.n_validation, rng)
except ValueError as error:
    # one sentence, like a bad flag (exit status 2): a class with too few digits in the data found
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(2) from None
labelled, unlabelled, y_l = split.labelled, split.unlabelled, data.y_train[split.labelled]
x_val, y_val = data.x_train[split.validation], data.y_train[split.validation]
if data.fit_binarize == "stochastic":
    x_val = (rng.random(x_val.shape) < x_val).astype(x_val.dtype)
print(f"{len(labelled)} labelled, {len(unlabelled):,} unlabelled, {len(y_val)} validation and {len(data.y_test):,} "
      f"{data.eval_name} digits")
S.written.append(save_image_grid(data.x_train[labelled[numpy.argsort(y_l, kind="stable")]], S.out /
                                 "13_labelled.png", ncols=S.labels_per_class, title="the labelled digits, by class"))

# %% [markdown]
# ## What a model sees of a digit
#
# 4,400 unlabelled digits are few for a VAE on pixels: it learns them by heart. A digit moved by a pixel is still
# the same digit, so each time a model sees its training digits, `seen` moves each by a random (dy, dx), each
# uniform in -shift..shift (zeros fill in at the border), then, with `--binarize stochastic`, draws fresh binary
# pixels. Every model gets this treatment, the classifier on the labels alone included.

# %%
def shifted(x: numpy.ndarray, shift: int, rng: numpy.random.Generator) -> numpy.ndarray:
    """Rows of 28 x 28 images (N, 784), each moved down by dy and right by dx, both uniform in -shift..shift.

    Pixel (r, c) of an image lands on (r + dy, c + dx); what leaves the 28 x 28 frame is lost and zeros fill
    in. ``shift`` 0 returns ``x`` itself.
    """
    if shift == 0:
        return x
    n = len(x)
    padded = numpy.pad(x.reshape(n, 28, 28), ((0, 0), (shift, shift), (shift, shift)))
    dy, dx = (rng.integers(-shift, shift + 1, (n, 1, 1)) for _ in range(2))
    # output pixel (r, c) reads input pixel (r - dy, c - dx), which sits at (r - dy + shift, c - dx + shift)
    rows = numpy.arange(28)[None, :, None] - dy + shift
    cols = numpy.arange(28)[None, None, :] - dx + shift
    return padded[numpy.arange(n)[:, None, None], rows, cols].reshape(n, 784)


def seen(x: numpy.ndarray, shift: int, binarize: str | None, rng: numpy.random.Generator) -> numpy.ndarray:
    """The digits ``x`` as one training step sees them: moved by up to ``shift`` pixels, then a binary draw."""
    moved = shifted(x, shift, rng)
    return (rng.random(moved.shape) < moved).astype(x.dtype) if binarize == "stochastic" else moved


def error_rate(predicted: numpy.ndarray, labels: numpy.ndarray) -> float:
    """Fraction of wrong labels."""
    return float(numpy.mean(predicted != labels))


S.written.append(save_image_grid(numpy.concatenate([seen(data.x_train[labelled[:1]], 1, S.binarize, rng)
                                                    for _ in range(8)]), S.out / "13_seen.png", ncols=8,
                                 title="one labelled digit as eight training steps see it (--shift 1)"))

# %% [markdown]
# ## The classifier on the labels alone
#
# Both classifiers train on the labelled digits alone, by full-batch Adam steps: a hand-written loop with
# `value_and_grad`, since 100 digits make one batch, each step on new rows. A NaN or infinite loss, gradient or
# step stops the loop with `fit`'s `NonFiniteLossError`, which hands back the last good parameters (a script
# saves them and says what to change).

# %%
from minivae.console import bar, show_progress
from minivae.grad import value_and_grad
from minivae.m1 import Classifier, pack_labelled
from minivae.objectives import classifier_objective
from minivae.optim import Adam
from minivae.train import NonFiniteLossError
from minivae.train_setup import all_finite


def full_batch_steps(objective, params, rows, steps: int, lr: float, rng, desc: str = "") -> list:
    """``steps`` Adam steps on ``objective.loss`` over ``rows()`` (new rows each step), fresh noise each step."""
    grad_fn, optimizer = value_and_grad(objective.loss), Adam(lr)
    progress = bar(desc=desc, total=steps, unit="step") if desc and show_progress() else None
    for step in range(1, steps + 1):
        batch = rows()
        eps = None if objective.noise_shape is None else rng.standard_normal(
            objective.noise_shape(len(batch))).astype(batch.dtype)
        with numpy.errstate(over="ignore", invalid="ignore"):  # the guard below says it in one sentence
            loss, grads = grad_fn(params, batch, eps)
            updated = optimizer.step(params, grads)
        # guard: a non-finite loss, gradient or step never becomes the parameters
        if not (numpy.isfinite(float(loss)) and all_finite(grads) and all_finite(updated)):
            raise NonFiniteLossError(f"the classifier's loss or parameters became non-finite at step {step}", None,
                                     step, params)
        params = updated
        if progress is not None:
            progress.update(1)
    if progress is not None:
        progress.close()
    return params


def train_baseline(x_l, y_l, args, rng) -> tuple[Classifier, list]:
    """The classifier q(y|x) on the labelled pixels alone, each step on a new ``seen`` copy of them."""
    classifier = Classifier(784, [CLASSIFIER_HIDDEN])
    params = full_batch_steps(classifier_objective(classifier), classifier.init(rng),
                              lambda: pack_labelled(y_l, 10, seen(x_l, args.shift, args.binarize, rng)),
                              args.classifier_steps, args.lr, rng, "labels only")
    return classifier, params


CLASSIFIER_HIDDEN = 100
baseline, baseline_params = train_baseline(data.x_train[labelled], y_l, S, rng)
print(f"labels only: validation error {100 * error_rate(baseline.predict(baseline_params, x_val), y_val):.2f} %")

# %% [markdown]
# ## M1: a VAE on every digit, then a classifier on the codes
#
# The VAE's ELBO needs no label, so it trains on every labelled and unlabelled digit (never the validation ones),
# each moved anew every epoch (`fit` draws the binary pixels). Its classifier q(y|z1) = softmax(f(z1)) sees the
# codes of the labelled digits, one sampled z1 ~ q(z1|x) per digit and step (the encoder's noise as data
# augmentation), taken from a pool of the codes of ten `seen` copies of every digit (not moved: `CODE_SHIFT`).
# It predicts from the mean code.

# %%
from minivae.m1 import M1
from minivae.models import VAE
from minivae.objectives import m1_objective, vae_objective
from minivae.train import TrainSettings, fit
from minivae.walkthrough import epoch_bar

Z1_DIM, Z2_DIM, CODE_SHIFT = 16, 10, 0  # chosen on validation (docs/semi_supervised.md)


def train_m1(x_train, labelled, unlabelled, y_l, args, rng, binarize=None) -> tuple[M1, dict, list]:
    """M1: the VAE on every labelled and unlabelled digit, then q(y|z1) on sampled codes of the labelled ones.

    Every epoch moves each digit by up to ``args.shift`` pixels; ``binarize="stochastic"`` redraws the VAE's
    binary training pixels every epoch (``fit``'s option). Returns M1, its params and the pool of codes.
    """
    m1 = M1(VAE(784, [args.hidden, args.hidden], Z1_DIM), [CLASSIFIER_HIDDEN])
    params, rows = m1.init(rng), numpy.concatenate([labelled, unlabelled])
    # the VAE's ELBO on every training digit, each moved anew every epoch by up to --shift pixels
    params["vae"] = fit(vae_objective(m1.vae), params["vae"], lambda epoch: shifted(x_train[rows], args.shift, rng),
                        optimizer=Adam(args.lr), on_epoch=epoch_bar(args.m1_epochs, "M1's VAE"),
                        settings=TrainSettings(epochs=args.m1_epochs, batch_size=args.batch_size, seed=args.seed,
                                               binarize=binarize, device=args.device, progress=False)).params
    pool = code_pool(m1, params, x_train, args, rng)
    params["classifier"] = m1_classifier(m1, params, pool, labelled, y_l, args, rng)
    return m1, params, pool


def code_pool(m1: M1, params: dict, x: numpy.ndarray, args, rng, copies: int = 10) -> list:
    """q(z1|x) = (mean, log_var) of ``copies`` ``seen`` copies of every digit (moved by ``CODE_SHIFT``)."""
    return [tuple(numpy.asarray(a) for a in m1.features(params, seen(x, CODE_SHIFT, args.binarize, rng)))
            for _ in range(copies)]


def m1_classifier(m1: M1, params: dict, pool: list, labelled, y_l, args, rng) -> list:
    """M1's q(y|z1), trained on codes of the labelled digits from a random copy of the pool each step."""
    def rows():
        # q(z1|x) of the labelled digits, from one copy of the pool, and their labels
        mean, log_var = pool[rng.integers(len(pool))]
        return pack_labelled(y_l, 10, mean[labelled], log_var[labelled])

    return full_batch_steps(m1_objective(m1), params["classifier"], rows, args.m1_classifier_steps, args.lr, rng,
                            "M1's classifier")


m1, m1_params, pool = train_m1(data.x_train, labelled, unlabelled, y_l, S, rng, data.fit_binarize)
print(f"M1 + MLP: validation error {100 * error_rate(m1.predict(m1_params, x_val), y_val):.2f} %")

# %% [markdown]
# ## M2, on pixels or on codes, and the two weightings of J^alpha
#
# One `fit`, whose `on_epoch` follows the validation error. `draw()` gives the data of an epoch: the pixels,
# moved, for M2; fresh codes z1 ~ q(z1|x) for M1+M2. The unlabelled digits are the rows `fit` batches; the
# labelled set enters every step whole, through `m2_objective`. `weighting` says how J^alpha weighs its terms:
#
# - `"paper"`: Kingma et al.'s sums over all N digits, alpha' = 0.1 N (their eq. 9 and released code); per digit,
#   (N_l/N) mean_l -L + (N_u/N) mean_u -U + 0.1 mean_l -log q(y|x);
# - `"equal_means"`: mean_l -L + mean_u -U + alpha mean_l -log q(y|x): each labelled digit weighs N_u/N_l
#   times more than in the paper's form.
#
# On the validation digits the paper's weighting won for M1+M2 (5.4 against 7.8 % error) and lost badly for M2 on
# pixels (67 against 16 %), so `--weighting` sets M1+M2's, and M2 on pixels keeps equal means.
#
# With `average` > 0 the model evaluated is an exponential moving average of the parameters over epochs,
# theta_avg <- a theta_avg + (1 - a) theta: the stack's error jumps by up to a point from one epoch to the next,
# its average's by a tenth of that.

# %%
from minivae.m2 import M2
from minivae.objectives import m2_objective
from minivae.tree import tree_map

PAPER_ALPHA = 0.1  # Kingma et al.'s alpha under their weighting of J^alpha (and in their released code)


def alpha_for(weighting: str, alpha: float) -> float:
    """The alpha of J^alpha under ``weighting``: the paper's weighting comes with the paper's alpha."""
    return PAPER_ALPHA if weighting == "paper" else alpha


def pixel_m2(args) -> M2:
    """M2 on pixels: one hidden layer of ``args.m2_hidden`` units, z of 4 (walkthrough 12's), a Bernoulli p(x|y, z)."""
    return M2(784, [args.m2_hidden], 4)


def train_m2(m2: M2, params: dict, draw, labelled, unlabelled, y_l, x_val, y_val, epochs: int, alpha: float,
             args, binarize=None, average: float = 0.0, weighting: str = "equal_means",
             desc: str = "M2") -> tuple[dict, list]:
    """Train ``m2`` for ``epochs`` epochs on ``draw(indices)``; return params and the per-epoch validation error.

    ``average`` is the decay a of the moving average of the parameters that is evaluated and returned
    (0: the parameters of the last epoch themselves).
    """
    history, averaged, progress = [], None, epoch_bar(epochs, desc)

    def follow(epoch, params, trained):
        nonlocal averaged
        last_error = error_rate(m2.predict(params, x_val), y_val)
        record = {"epoch": epoch, "train_neg_j_alpha": trained["train_neg_j_alpha"], "validation_error": last_error}
        if average > 0:
            # theta_avg <- a theta_avg + (1 - a) theta, starting from the first epoch's parameters
            averaged = params if averaged is None else tree_map(lambda m, p: average * m + (1 - average) * p,
                                                                averaged, params)
            record.update(validation_error=error_rate(m2.predict(averaged, x_val), y_val),
                          validation_error_last_params=last_error)
        history.append(record)
        progress(epoch, params, trained)

    objective = lambda epoch: m2_objective(m2, draw(labelled), y_l, alpha, weighting, len(unlabelled))  # noqa: E731
    params = fit(objective, params, lambda epoch: draw(unlabelled), optimizer=Adam(args.lr), on_epoch=follow,
                 settings=TrainSettings(epochs=epochs, batch_size=args.batch_size, seed=args.seed, binarize=binarize,
                                        device=args.device, progress=False)).params
    return (averaged if average > 0 else params), history


# M2 on pixels with equal means (the paper's weighting failed there on validation: 67 % error); M1+M2 with
# --weighting
stack_alpha = alpha_for(S.weighting, S.stack_alpha)
m2 = pixel_m2(S)
m2_params, m2_history = train_m2(m2, m2.init(rng), lambda i: shifted(data.x_train[i], S.shift, rng), labelled,
                                 unlabelled, y_l, x_val, y_val, S.epochs, S.alpha, S, data.fit_binarize,
                                 weighting="equal_means", desc="M2 on pixels")
print(f"M2 on pixels: validation error {100 * m2_history[-1]['validation_error']:.2f} %")

# %% [markdown]
# ## M1+M2: M2 on M1's codes
#
# M2 with a Gaussian p(z1|y, z2) (learned diagonal variance) in place of the pixel likelihood, trained on codes
# z1 = mu + sigma eps of a random copy of the pool every epoch. Validation and test digits are classified from
# their mean codes, argmax_y q(y | mu(x)). M2 sees in z1 a space where digits of one class already lie close
# together, so its "cluster" assumption, that the classes are the modes of p(z1), holds far better than on
# pixels. The figure follows the validation error of both M2s over their epochs.

# %%
from minivae.plotting import save_curves


def train_stack(m1: M1, pool: list, labelled, unlabelled, y_l, x_val_codes, y_val, args, rng, weighting: str,
                alpha: float) -> tuple[M2, dict, list]:
    """M1+M2: M2 with a Gaussian p(z1|y, z2) on codes z1 ~ q(z1|x), from one copy of the pool each epoch."""

    def draw_codes(i):
        # z1 = mu + sigma * eps, a new draw each call, from a random copy of the digits
        mean, log_var = pool[rng.integers(len(pool))]
        return (mean[i] + numpy.exp(0.5 * log_var[i]) * rng.standard_normal(mean[i].shape)).astype(numpy.float32)

    stack = M2(Z1_DIM, [args.hidden], Z2_DIM, likelihood="gaussian")
    params, history = train_m2(stack, stack.init(rng), draw_codes, labelled, unlabelled, y_l, x_val_codes, y_val,
                               args.stack_epochs, alpha, args, average=args.stack_average, weighting=weighting,
                               desc="M1+M2")
    return stack, params, history


val_codes, test_codes = (numpy.asarray(m1.features(m1_params, x)[0]) for x in (x_val, data.x_test))
stack, stack_params, stack_history = train_stack(m1, pool, labelled, unlabelled, y_l, val_codes, y_val, S, rng,
                                                 S.weighting, stack_alpha)
print(f"M1+M2: validation error {100 * stack_history[-1]['validation_error']:.2f} %")
S.written.append(save_curves(
    {"M2 on pixels": ([h["epoch"] for h in m2_history], [100 * h["validation_error"] for h in m2_history]),
     "M1+M2": ([h["epoch"] for h in stack_history], [100 * h["validation_error"] for h in stack_history])},
    S.out / "13_validation_error.png", ylabel="error on the validation digits (%)",
    title=f"{len(labelled)} labels + {len(unlabelled):,} unlabelled digits, J^alpha of M1+M2: {S.weighting}"))

# %% [markdown]
# ## The test digits, scored once, and the lesson as a number
#
# Only now, with every setting frozen, are the test digits classified, once per model. The slides' numbers had
# 49,900 unlabelled digits, ten times more. A single run's number lands somewhere in the spread of full runs
# over fresh label draws (`REFERENCE`, from docs/semi_supervised.md), so a run on another CPU knows what to expect.

# %%
from minivae.protocol import beside

SLIDES = {"labels only": 25.81, "M1 + MLP": 11.82, "M2": 11.97, "M1+M2": 3.33}  # Kingma et al.'s table, % error
REFERENCE = {"mean": 0.0646, "sd": 0.0038, "n": 10}  # M1+M2, full runs, shifts, paper weighting (docs/semi_supervised)
# each model with its validation and test inputs: pixels, or the mean codes of M1 for the stack
models = {"labels only": (baseline, baseline_params, x_val, data.x_test),
          "M1 + MLP": (m1, m1_params, x_val, data.x_test), "M2": (m2, m2_params, x_val, data.x_test),
          "M1+M2": (stack, stack_params, val_codes, test_codes)}
errors = {name: {"validation": error_rate(model.predict(p, xv), y_val), "test": error_rate(model.predict(p, xt),
                                                                                           data.y_test)}
          for name, (model, p, xv, xt) in models.items()}
print_table([{"model": name, "validation %": 100 * e["validation"], "test %": 100 * e["test"],
              "slides %": SLIDES[name]} for name, e in errors.items()],
            title=f"{len(labelled)} labels, M1+M2's J^alpha {S.weighting}, --shift {S.shift}, "
                  f"{len(data.y_test):,} {data.eval_name} digits (slides: 100 labels + 49,900 unlabelled)")
if not S.quick and (S.shift, S.weighting) == (1, VALUES["weighting"][1]):
    print(f"M1+M2 test error, this run: {beside(errors['M1+M2']['test'], REFERENCE)}")
gain = 100 * (errors["labels only"]["test"] - errors["M1+M2"]["test"])
lesson = lesson_check("M1+M2's test error is this many points below that of the classifier on the labels alone, "
                      "more than 3", gain, 3.0)

# %% [markdown]
# ## The stack as a generator
#
# Fix y, draw z2 ~ N(0, I), take the mean of p(z1|y, z2) and decode it with M1's decoder: digits of the chosen
# class (columns) in the style z2 (rows).

# %%
z2 = numpy.repeat(rng.standard_normal((8, stack.z_dim)).astype(numpy.float32), 10, axis=0)
images = m1.vae.decode(m1_params["vae"], stack.generate(stack_params, numpy.tile(numpy.arange(10), 8), z2))
S.written.append(save_image_grid(1.0 / (1.0 + numpy.exp(-images)), S.out / "13_m1_m2_styles.png", ncols=10,
                                 title="M1+M2 as a generator: columns fix y = 0..9, rows one z2 ~ N(0, I)"))
metrics = {"lesson": lesson, "train_set": data.train_set, "eval_set": data.eval_set, "n_labelled": len(labelled),
           "n_unlabelled": len(unlabelled), "n_validation": len(y_val), "n_test": len(data.y_test),
           "binarize": S.binarize, "validation_error": {k: e["validation"] for k, e in errors.items()},
           "test_error": {k: e["test"] for k, e in errors.items()}, "slides_test_error_percent": SLIDES,
           "reference_m1_m2_test_error": REFERENCE, "m2_history": m2_history, "m1_m2_history": stack_history}

# %% [markdown]
# ## As a script: save and say what was written
#
# Only `python walkthroughs/13_m1_m2_stacked.py` runs this cell (a notebook skips it): it saves the four trained
# models (`params.npz`: `{"baseline", "m1", "m2", "m1_m2"}`) and the numbers (`metrics.json`) in `--out`, lists
# every file written, and names the next walkthrough.

# %%
if S.script:
    S.finish({"baseline": baseline_params, "m1": m1_params, "m2": m2_params, "m1_m2": stack_params}, metrics,
             "walkthroughs/14_digit_fantasies.py: move a decoder's latent variables and watch the digit change.")
