r"""Minibatch training: the slides' loop (:func:`train_epoch`), and :func:`fit`, which runs it epoch by epoch.

Zhu, Deep Generative Models II (and Kingma & Welling 2014, Algorithm 1): repeat { x_b ← a random minibatch;
ε ← noise from p(ε); g ← ∇_θ L(θ; x_b, ε); θ ← an optimizer step with g }. An :class:`Objective` says what
L is and which noise it needs: ``loss(params, x, eps)`` returns a scalar (the mean over the batch of a negative
bound) and ``noise_shape(n)`` the shape of ``eps`` for a batch of n rows (or None for a deterministic loss).

Randomness comes from seeded ``numpy.random.Generator`` streams, so the same seed gives the same numbers, bit
for bit: the training stream (order and noise, saved in checkpoints), and streams of their own, functions of
(seed, epoch), for binarized pixels and for the evaluation on ``x_test``, so that evaluating never changes what
is trained. A run resumed from a checkpoint continues bit for bit as if it had never stopped.

The guard: a NaN or infinite loss, gradient, updated parameter or test bound stops training with
:class:`NonFiniteLossError` naming the epoch and step. Nothing non-finite is ever written to a checkpoint or
``metrics.json``, and the error hands back the last parameters whose loss and gradient were finite.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy

from minivae.backend import array_module, get_backend
from minivae.checkpoint import load_checkpoint, save_checkpoint, write_metrics
from minivae.checks import check_count, check_data
from minivae.data import BINARIZE, binarize_pixels
from minivae.files import check_output_path
from minivae.grad import value_and_grad
from minivae.objectives import Objective
from minivae.optim import Adam
from minivae.threads import blas_threads
from minivae.tree import tree_items, tree_leaves, tree_map

# the purposes of the seeded streams besides the training one: default_rng([seed, purpose, epoch])
_TEST_PIXELS, _TRAIN_PIXELS, _EVALUATION = 1, 2, 3


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained ``params`` (host arrays), the optimizer, and per-epoch history."""

    params: Any
    optimizer: Any
    history: list = field(default_factory=list)


class NonFiniteLossError(FloatingPointError):
    r"""The loss, a gradient, the updated parameters or the test bound became NaN or inf.

    ``epoch`` and ``step`` say where (``step`` is None when the evaluation on ``x_test`` failed). ``params``
    (host arrays) are the last good parameters: those whose loss and gradient were finite, from before the
    update that broke things (at the very first step, the starting parameters); when the test bound failed,
    those of the previous epoch, which the checkpoint also holds. Lower the learning rate and go on from them.
    """

    def __init__(self, message: str, epoch: int, step: int | None, params: Any) -> None:
        super().__init__(message)
        self.epoch, self.step, self.params = epoch, step, params


def train_epoch(objective: Objective, params: Any, x: numpy.ndarray, optimizer: Any, rng: numpy.random.Generator,
                batch_size: int = 100, *, backend: Any = None, epoch: int = 1, progress: str | None = None,
                last_good: Any = None) -> tuple[Any, float]:
    r"""θ ← step(θ, ∇_θ L(θ; x_b, ε)) for each minibatch x_b of a shuffled ``x``, ε ~ N(0, I); one epoch.

    Returns ``(θ, (1/N) Σ_b n_b L_b)``. Zhu, Deep Generative Models II (Kingma & Welling 2014, Algorithm 1):
    shuffle the rows with ``rng``; per batch x_b of n_b rows draw ε from ``rng``, compute L(θ; x_b, ε) and
    g = ∇_θ L with :func:`minivae.grad.value_and_grad`, check both, take ``optimizer.step``, check the new θ. The loss
    returned is the mean per example (each batch weighted by its rows). The noise is drawn in the parameters'
    dtype; ``x`` should already be in it. ``progress``: a description shows a tqdm bar with the running loss.
    Raises :class:`NonFiniteLossError` (with the last good parameters) instead of stepping on garbage.
    ``last_good``: buffers shaped like ``params`` that hold θ_good; pass the same ones epoch after epoch so
    that a failure at an epoch's first step hands back the previous step's parameters (a copy of ``params``
    by default).
    """
    check_count("batch_size", batch_size, "rows")
    if len(x) == 0:
        raise ValueError("x has no rows; train_epoch needs at least one example.")
    backend = backend or get_backend("numpy")
    grad_fn = value_and_grad(objective.loss)
    dtype = tree_leaves(params)[0].dtype
    # θ_good: the last parameters whose loss and gradient were finite (what the guard hands back)
    good = tree_map(lambda a: a.copy(), params) if last_good is None else last_good
    # a fresh random order of the rows
    order = rng.permutation(len(x))
    total, seen = 0.0, 0
    bar = _bar(range(0, len(x), batch_size), progress)
    for step, start in enumerate(bar, 1):
        # the minibatch x_b and its noise ε ~ N(0, I)
        xb = backend.asarray(x[order[start:start + batch_size]])
        eps = _noise(objective, len(xb), rng, backend, dtype)
        # L(θ; x_b, ε) and g = ∇_θ L
        loss, grads = grad_fn(params, xb, eps)
        loss = float(loss)
        # guard: a non-finite loss or gradient never reaches the parameters or the optimizer's state
        if not (math.isfinite(loss) and all_finite(grads)):
            raise _stopped("loss" if not math.isfinite(loss) else "gradient", loss, epoch, step, good, backend)
        _copy_into(good, params)
        # θ ← the optimizer's step along −g
        params = optimizer.step(params, grads)
        # guard: nor does a step that blew the parameters up
        if not all_finite(params):
            raise _stopped("updated parameters", loss, epoch, step, good, backend)
        total, seen = total + loss * len(xb), seen + len(xb)
        if progress:
            bar.set_postfix(loss=f"{total / seen:.3f}", refresh=False)
    return params, total / seen


def evaluate(objective: Objective, params: Any, x: numpy.ndarray, rng: numpy.random.Generator,
             batch_size: int = 500, backend: Any = None) -> float:
    r"""(1/N) Σ_n −loss(x_n) with fresh *sampled* noise: for a VAE, the test ELBO in nats per example.

    Never z = μ: each row gets its own reparameterized draw from ``rng``, so the number is an unbiased ELBO
    estimate. ``x`` is taken in the parameters' dtype. The value may be −inf or NaN for broken parameters
    (:func:`fit` stops on that); an empty ``x`` is refused.
    """
    check_data(x, None, objective.x_dim, "x")
    check_count("batch_size", batch_size, "rows")
    backend = backend or get_backend("numpy")
    dtype = tree_leaves(params)[0].dtype
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].astype(dtype, copy=False)
        eps = _noise(objective, len(xb), rng, backend, dtype)
        # batch mean of the bound, weighted by the batch size
        total += float(objective.loss(params, backend.asarray(xb), eps)) * len(xb)
    return -total / len(x)


@blas_threads()  # NumPy's BLAS on the free cores (at most 4) while it trains: see minivae.threads
def fit(objective: Objective | Callable[[int], Objective], params: Any, x_train: numpy.ndarray, *,
        x_test: numpy.ndarray | None = None, optimizer: Any = None, epochs: int = 10, batch_size: int = 100,
        seed: int = 0, progress: bool | None = None, device: Any = "cpu",
        on_epoch: Callable[[int, dict], None] | None = None, checkpoint: str | os.PathLike | None = None,
        resume: str | os.PathLike | None = None, metrics_path: str | os.PathLike | None = None,
        binarize: str | None = None) -> FitResult:
    r"""Minimise ``objective.loss`` over ``x_train``: :func:`train_epoch` once per epoch (Adam(1e-3) by default).

    After each epoch, −loss is evaluated on ``x_test`` (the test ELBO with *sampled* z for a VAE, in nats per
    example) and the checkpoint and ``metrics.json`` are written. ``epochs`` counts all epochs, including those
    of a resumed run. Every argument, the params (against the objective's model) and the output paths are
    checked before the first step; the data are cast to the parameters' dtype.

    - ``objective``: an :class:`Objective`, or a schedule ``epoch -> Objective`` (epochs count from 1), e.g. a
      KL warm-up (:func:`minivae.objectives.kl_warmup`). Epoch e minimises ``objective(e)`` and records it as
      ``train_<its bound>``; the test bound is always that of the final objective ``objective(epochs)``, so
      the test column is one quantity across epochs, and ``metrics.json`` names that one.
    - ``progress``: a tqdm bar with the running loss; None (default) shows it only when stderr is a TTY.
    - The guard: a non-finite loss, gradient, updated parameter or test bound raises
      :class:`NonFiniteLossError` naming the epoch and step, before anything of that epoch is written.
    - ``checkpoint=path``: after every epoch, write params, optimizer state, epoch, seed and RNG state to an
      ``.npz`` file (atomically). ``resume=path`` continues from one bit-identically; it must be from the same
      model, dtype, optimizer and seed, and ``epochs`` must reach at least its epoch.
    - ``metrics_path``: write ``metrics.json`` (strict JSON) after every epoch: train/test bound, seconds,
      examples/s.
    - ``binarize``: ``"stochastic"`` redraws x ~ Bernoulli(intensity) every epoch from a stream of its own,
      ``"threshold"`` uses 1[x > ½]; ``x_test`` is binarized once (stochastic: one fixed draw), and so is the
      data an objective carries (M2's labelled digits, see :meth:`Objective.map_data`).
    - ``device``: ``"cpu"``, ``"gpu"`` or ``"auto"`` (see :func:`minivae.backend.get_backend`).
    """
    schedule, target = _check_fit_args(objective, epochs, batch_size, seed, binarize, checkpoint, metrics_path)
    dtype = _check_params(params, target)
    x_train, x_test, target = _prepare_data(target, x_train, x_test, binarize, dtype, seed)
    backend, optimizer, rng = get_backend(device), optimizer or Adam(1e-3), numpy.random.default_rng(seed)
    # a private copy on the device: the caller's arrays are never updated in place
    params = tree_map(lambda a: backend.asarray(a).copy(), params)
    history, first = [], 1
    if resume is not None:
        params, history, first = _resume(resume, params, optimizer, rng, backend, epochs, seed)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    # θ_good, which train_epoch keeps up to date from epoch to epoch
    good = tree_map(lambda a: a.copy(), params)
    for epoch in range(first, epochs + 1):
        started = time.perf_counter()
        current, x_epoch = _epoch_data(schedule(epoch), x_train, binarize, seed, epoch, dtype)
        # the parameters this epoch starts from: handed back if its test bound is not finite
        previous = None if x_test is None else _host_copy(params, backend)
        params, loss = train_epoch(current, params, x_epoch, optimizer, rng, batch_size, backend=backend,
                                   epoch=epoch, progress=f"epoch {epoch}/{epochs}" if show else None,
                                   last_good=good)
        seconds = time.perf_counter() - started
        record = {"epoch": epoch, f"train_{current.bound}": -loss, "seconds": seconds,
                  "examples_per_second": len(x_train) / seconds}
        if x_test is not None:
            record.update(_test_record(target, params, x_test, seed, epoch, backend, previous))
        history.append(record)
        if checkpoint is not None:
            save_checkpoint(checkpoint, params, optimizer, epoch, rng, history, seed=seed)
        if metrics_path is not None:
            write_metrics(metrics_path, target, history, seed=seed, batch_size=batch_size, epochs=epochs,
                          n_train=len(x_train), n_test=None if x_test is None else len(x_test),
                          device=backend.name, binarize=binarize)
        if on_epoch is not None:
            on_epoch(epoch, record)
    # host arrays of the caller's own: not the optimizer's buffers, which its next step updates in place
    return FitResult(tree_map(lambda a: numpy.array(backend.to_numpy(a)), params), optimizer, history)


# ------------------------------------------------------------------------------------------------ helpers

def all_finite(tree: Any) -> bool:
    r"""True when every entry of every array of the nest is finite (no NaN, no ±inf), on any device."""
    return all(bool(array_module(leaf).isfinite(leaf).all()) for leaf in tree_leaves(tree))


def _noise(objective: Objective, n: int, rng: numpy.random.Generator, backend: Any, dtype: Any) -> Any:
    if objective.noise_shape is None:
        return None
    return backend.asarray(rng.standard_normal(objective.noise_shape(n)).astype(dtype))


def _copy_into(destination: Any, source: Any) -> None:
    for to, a in zip(tree_leaves(destination), tree_leaves(source)):
        to[...] = a


def _host_copy(params: Any, backend: Any) -> Any:
    return tree_map(lambda a: numpy.array(backend.to_numpy(a)), params)


def _stopped(what: str, loss: float, epoch: int, step: int, good: Any, backend: Any) -> NonFiniteLossError:
    return NonFiniteLossError(
        f"the {what} became non-finite (loss {loss}) at epoch {epoch}, step {step}; lower the learning rate or "
        "check the data. The last good parameters are in this error's .params.",
        epoch, step, _host_copy(good, backend))


def _bar(steps: range, description: str | None) -> Any:
    if not description:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc=description, unit="batch", leave=False)


def _test_record(target: Objective, params: Any, x_test: numpy.ndarray, seed: int, epoch: int, backend: Any,
                 previous: Any) -> dict:
    """The final objective's bound on ``x_test`` (its own noise stream), checked, and the seconds it took."""
    started = time.perf_counter()
    value = evaluate(target, params, x_test, numpy.random.default_rng([seed, _EVALUATION, epoch]), backend=backend)
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"the test {target.bound} became {value} at epoch {epoch}, so nothing of this epoch was saved; lower "
            "the learning rate or check the data. The parameters of the previous epoch are in this error's "
            ".params.", epoch, None, previous)
    return {f"test_{target.bound}": value, "eval_seconds": time.perf_counter() - started}


# -------------------------------------------------------------------------- checks before the first step

def _check_fit_args(objective: Any, epochs: Any, batch_size: Any, seed: Any, binarize: Any, checkpoint: Any,
                    metrics_path: Any) -> tuple[Callable[[int], Objective], Objective]:
    """The schedule and its final objective, after refusing bad counts, seed, binarize and output paths."""
    check_count("epochs", epochs, "epochs")
    check_count("batch_size", batch_size, "rows")
    check_count("seed", seed, minimum=0)
    if binarize not in BINARIZE:
        raise ValueError(f"binarize must be None, 'threshold' or 'stochastic', got {binarize!r}.")
    for path, name in ((checkpoint, "checkpoint"), (metrics_path, "metrics_path")):
        if path is not None:
            check_output_path(path, name)
    schedule = _as_schedule(objective)
    # the final objective: what the data are checked against and what the test bound measures
    return schedule, schedule(epochs)


def _as_schedule(objective: Any) -> Callable[[int], Objective]:
    """``objective`` as a function of the epoch: a schedule as it is, one Objective for every epoch."""
    if isinstance(objective, Objective):
        return lambda epoch: objective
    if not callable(objective):
        raise ValueError(f"objective must be an Objective or a function epoch -> Objective, got {objective!r}.")

    def checked(epoch: int) -> Objective:
        current = objective(epoch)
        if not isinstance(current, Objective):
            raise ValueError(f"the objective schedule returned {current!r} for epoch {epoch}; it must return "
                             "an Objective (e.g. vae_objective(vae, beta)).")
        return current

    return checked


def _check_params(params: Any, objective: Objective) -> Any:
    """The one float dtype of ``params``, after refusing non-arrays, mixed dtypes, NaN and another model's nest."""
    leaves = list(tree_items(params)) if isinstance(params, (dict, list, tuple)) else []
    if not leaves:
        raise ValueError(f"params must be a nest (dicts, lists, tuples) of arrays such as model.init(rng), got "
                         f"{type(params).__name__}.")
    for where, leaf in leaves:
        kind = getattr(getattr(leaf, "dtype", None), "kind", None)
        if kind != "f" or not hasattr(leaf, "shape"):
            what = f"an array of dtype {leaf.dtype}" if kind else f"a {type(leaf).__name__}"
            raise ValueError(f"params{where} is {what}; every parameter must be a float array (float32 to train).")
    dtypes = sorted({str(leaf.dtype) for _, leaf in leaves})
    if len(dtypes) > 1:
        raise ValueError(f"params mix the dtypes {dtypes}; cast them to one, e.g. "
                         "tree_map(lambda a: a.astype(numpy.float32), params).")
    bad = next((where for where, leaf in leaves if not all_finite(leaf)), None)
    if bad is not None:
        raise ValueError(f"params{bad} holds NaN or inf; start from finite parameters (e.g. model.init(rng)).")
    if objective.init is not None:
        _check_like(objective.init(numpy.random.default_rng(0)), params, "the objective's model",
                    "pass parameters made by the same model's init(rng)", dtype=False)
    return leaves[0][1].dtype


def _check_like(reference: Any, params: Any, source: str, fix: str, dtype: bool = True) -> None:
    """Refuse ``params`` unless they have ``reference``'s structure and shapes (and dtypes)."""
    def same(r: Any, p: Any) -> None:
        if tuple(p.shape) != tuple(r.shape) or (dtype and p.dtype != r.dtype):
            raise ValueError(f"{source} has an array of shape {tuple(r.shape)} and dtype {r.dtype} where params "
                             f"has {tuple(p.shape)} and {p.dtype}; {fix}.")

    tree_map(same, reference, params, name=f"{source} and params")


def _prepare_data(target: Objective, x_train: Any, x_test: Any, binarize: str | None, dtype: Any,
                  seed: int) -> tuple:
    """``x_train`` and ``x_test`` checked, binarized where that happens once, and cast to the params' dtype."""
    # binarized pixels are Bernoulli draws, so their source intensities must lie in [0, 1] too
    likelihood = "bernoulli" if binarize is not None else target.likelihood
    check_data(x_train, likelihood, target.x_dim, "x_train")
    if x_test is not None:
        check_data(x_test, likelihood, target.x_dim, "x_test")
    if binarize is not None and x_test is not None:
        # x_test, and the data the final objective carries, binarized once (stochastic: one fixed draw)
        stream = numpy.random.default_rng([seed, _TEST_PIXELS])
        x_test = binarize_pixels(x_test, binarize, stream)
        target = target.map_data(lambda x: binarize_pixels(x, binarize, stream))
    if binarize == "threshold":
        x_train = binarize_pixels(x_train, binarize)
    # the data in the parameters' dtype: float64 data never turn a float32 step into a float64 one
    return x_train.astype(dtype, copy=False), None if x_test is None else x_test.astype(dtype, copy=False), target


def _epoch_data(objective: Objective, x_train: numpy.ndarray, binarize: str | None, seed: int, epoch: int,
                dtype: Any) -> tuple[Objective, numpy.ndarray]:
    """This epoch's objective and pixels: for ``"stochastic"``, a fresh Bernoulli draw from this epoch's stream."""
    if binarize is None:
        return objective, x_train
    stream = numpy.random.default_rng([seed, _TRAIN_PIXELS, epoch])
    if binarize == "stochastic":
        x_train = binarize_pixels(x_train, binarize, stream).astype(dtype, copy=False)
    # the objective's own data (M2's labelled digits) binarized like x_train
    return objective.map_data(lambda x: binarize_pixels(x, binarize, stream)), x_train


# ------------------------------------------------------------------------------------------------ resume

def _resume(path: Any, params: Any, optimizer: Any, rng: numpy.random.Generator, backend: Any, epochs: int,
            seed: int) -> tuple:
    """``(params, history, first epoch)`` from a checkpoint, after checking it fits this run; ``rng`` restored."""
    state = load_checkpoint(path, backend.asarray)
    if state["optimizer_class"] != type(optimizer).__name__:
        raise ValueError(f"resume={path} was saved with {state['optimizer_class']}, but fit got "
                         f"{type(optimizer).__name__}; pass the same optimizer to continue.")
    if state["epoch"] > epochs:
        raise ValueError(f"resume={path} is already at epoch {state['epoch']}, but epochs={epochs}; epochs counts "
                         f"every epoch, those done included, so pass epochs >= {state['epoch']}.")
    if state.get("seed") not in (None, seed):
        raise ValueError(f"resume={path} was saved by a run with seed={state['seed']}, but fit got seed={seed}; "
                         "pass the same seed to continue bit for bit.")
    fix = "it was saved for a different model or dtype"
    _check_like(state["params"], params, f"resume={path}", fix)
    expected = sorted(optimizer.state())
    if sorted(state["optimizer"]) != expected:
        raise ValueError(f"resume={path} has damaged optimizer state: entries {sorted(state['optimizer'])}, where "
                         f"{type(optimizer).__name__} keeps {expected}; resume from another checkpoint.")
    for key, value in state["optimizer"].items():
        if isinstance(value, (dict, list, tuple)) or hasattr(value, "shape"):
            _check_like(value, params, f"the optimizer state {key!r} in resume={path}", fix)
        elif value is not None and not (isinstance(value, int) and value >= 0):
            raise ValueError(f"resume={path} has damaged optimizer state: {key!r} is {value!r}, not a count.")
    if not all_finite(state["params"]):
        raise ValueError(f"resume={path} holds non-finite parameters; resume from another checkpoint.")
    optimizer.load_state(state["optimizer"])
    try:
        rng.bit_generator.state = state["rng"]
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"resume={path} holds an unusable random-generator state ({err}); the file was edited or "
                         "corrupted.") from None
    return state["params"], list(state["history"]), state["epoch"] + 1
