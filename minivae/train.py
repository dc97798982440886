r"""Minibatch training of any loss built from the engine: shuffling, progress, evaluation, NaN guard, checkpoints.

An :class:`Objective` says what to minimise and which noise it needs: ``loss(params, x, eps)`` returns a
scalar (the mean over the batch of a negative bound) and ``noise_shape(n)`` the shape of ``eps`` for a
batch of n rows (or None for a deterministic loss). Noise is drawn on the host by the trainer's seeded
``Generator`` and moved to the device with the batch, so the same seed gives the same numbers, and a run
resumed from a checkpoint continues bit for bit as if it had never stopped. In place of one objective,
:func:`fit` also takes a schedule, a function of the epoch number returning that epoch's objective, for
example :func:`kl_warmup`.
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

from minivae.backend import get_backend
from minivae.checkpoint import load_checkpoint, save_checkpoint, write_metrics
from minivae.data import BINARIZE, binarize_pixels, check_data
from minivae.grad import value_and_grad
from minivae.objectives import Objective
from minivae.optim import Adam
from minivae.tree import tree_leaves, tree_map


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained ``params`` (host arrays), the optimizer, and per-epoch history."""

    params: Any
    optimizer: Any
    history: list = field(default_factory=list)


class NonFiniteLossError(FloatingPointError):
    """The loss or a gradient became NaN or inf; ``params`` holds the last good parameters (host arrays)."""

    def __init__(self, message: str, epoch: int, step: int, params: Any) -> None:
        super().__init__(message)
        self.epoch, self.step, self.params = epoch, step, params


def _noise(objective: Objective, n: int, rng: numpy.random.Generator, backend: Any, dtype: Any) -> Any:
    if objective.noise_shape is None:
        return None
    return backend.asarray(rng.standard_normal(objective.noise_shape(n)).astype(dtype))


def evaluate(objective: Objective, params: Any, x: numpy.ndarray, rng: numpy.random.Generator,
             batch_size: int = 500, backend: Any = None) -> float:
    r"""(1/N) Σ_n −loss(x_n) with fresh *sampled* noise: for a VAE, the test ELBO in nats per example.

    Never z = μ: each row gets its own reparameterized draw, so the number is an unbiased ELBO estimate.
    """
    backend = backend or get_backend("numpy")
    dtype = x.dtype
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        eps = _noise(objective, len(xb), rng, backend, dtype)
        # batch mean of the bound, weighted by the batch size
        total += float(objective.loss(params, backend.asarray(xb), eps)) * len(xb)
    return -total / len(x)


def fit(objective: Objective | Callable[[int], Objective], params: Any, x_train: numpy.ndarray, *,
        x_test: numpy.ndarray | None = None, optimizer: Any = None, epochs: int = 10, batch_size: int = 100,
        seed: int = 0, progress: bool | None = None, device: Any = "cpu",
        on_epoch: Callable[[int, dict], None] | None = None, checkpoint: str | os.PathLike | None = None,
        resume: str | os.PathLike | None = None, metrics_path: str | os.PathLike | None = None,
        binarize: str | None = None) -> FitResult:
    r"""Minimise ``objective.loss`` over ``x_train`` by minibatch gradient steps (Adam(1e-3) by default).

    Each epoch shuffles the rows with a ``Generator`` seeded by ``seed``, takes ``batch_size`` rows per step,
    draws fresh noise per step, and then evaluates −loss on ``x_test`` (the test ELBO with *sampled* z for
    a VAE, in nats per example). ``epochs`` counts all epochs, including those of a resumed run.

    - ``objective``: an :class:`Objective`, or a schedule ``epoch -> Objective`` (epochs count from 1), e.g. a
      KL warm-up (:func:`kl_warmup`). Epoch e then minimises ``objective(e)`` and records it as
      ``train_<its bound>`` (``train_elbo_beta0.1``, ..., ``train_elbo``); the test bound is always that of the
      final objective ``objective(epochs)``, so the test column is one quantity across epochs (for a warm-up,
      the ELBO at β = 1), and ``metrics.json`` names that one. A schedule is a function of the epoch number
      alone, so an interrupted run resumed with the same ``epochs`` continues bit for bit.
    - ``progress``: a tqdm bar with the running loss; None (default) shows it only when stderr is a TTY.
    - NaN guard: a NaN or inf loss or gradient raises :class:`NonFiniteLossError` naming the epoch and step;
      its ``params`` are the last good parameters.
    - ``checkpoint=path``: after every epoch, write params, optimizer state, epoch and RNG state to an
      ``.npz`` file (atomically). ``resume=path`` continues from one, bit-identically.
    - ``metrics_path``: write ``metrics.json`` after every epoch (train/test bound, seconds, examples/s).
    - ``binarize``: ``"stochastic"`` redraws x ~ Bernoulli(intensity) every epoch from the trainer's
      ``Generator``, ``"threshold"`` uses 1[x > ½]; ``x_test`` is binarized once (stochastic: one fixed draw).
    - ``device``: ``"cpu"``, ``"gpu"`` or ``"auto"`` (see :func:`minivae.backend.get_backend`).
    """
    _check_counts(epochs=epochs, batch_size=batch_size)
    schedule = _as_schedule(objective)
    # the final objective: what the data are checked against and what the test bound measures
    target = schedule(epochs)
    _check_fit_args(target, x_train, x_test, binarize)
    backend = get_backend(device)
    rng = numpy.random.default_rng(seed)
    optimizer = optimizer or Adam(1e-3)
    # a private copy: the caller's arrays are never updated in place
    params = tree_map(lambda a: backend.asarray(a).copy(), params)
    history: list = []
    first = 1
    if resume is not None:
        params, history, first = _resume(resume, params, optimizer, rng, backend)
    if binarize is not None and x_test is not None:
        x_test = binarize_pixels(x_test, binarize, numpy.random.default_rng([seed, 1]))
    if binarize == "threshold":
        x_train = binarize_pixels(x_train, binarize)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    for epoch in range(first, epochs + 1):
        started = time.perf_counter()
        current = schedule(epoch)
        # a fresh Bernoulli draw of the training pixels each epoch, when asked
        x_epoch = binarize_pixels(x_train, binarize, rng) if binarize == "stochastic" else x_train
        params, losses = _train_epoch(value_and_grad(current.loss), current, optimizer, params, x_epoch, rng,
                                      backend, epoch, epochs, batch_size, show)
        record = _epoch_record(current, target, params, epoch, losses, time.perf_counter() - started,
                               len(x_train), x_test, rng, backend)
        history.append(record)
        if checkpoint is not None:
            save_checkpoint(checkpoint, params, optimizer, epoch, rng, history)
        if metrics_path is not None:
            write_metrics(metrics_path, target, history, seed=seed, batch_size=batch_size, epochs=epochs,
                           n_train=len(x_train), n_test=None if x_test is None else len(x_test),
                           device=backend.name, binarize=binarize)
        if on_epoch is not None:
            on_epoch(epoch, record)
    return FitResult(tree_map(backend.to_numpy, params), optimizer, history)


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


def _epoch_record(current: Objective, target: Objective, params: Any, epoch: int, losses: list, seconds: float,
                  n_train: int, x_test: numpy.ndarray | None, rng: numpy.random.Generator, backend: Any) -> dict:
    """One epoch's line of history: this epoch's train bound and the final objective's test bound (nats per
    example), seconds, examples/s."""
    record = {"epoch": epoch, f"train_{current.bound}": -float(numpy.mean(losses)), "seconds": seconds,
              "examples_per_second": n_train / seconds}
    if x_test is not None:
        started = time.perf_counter()
        record[f"test_{target.bound}"] = evaluate(target, params, x_test, rng, backend=backend)
        record["eval_seconds"] = time.perf_counter() - started
    return record


def _check_counts(**counts: Any) -> None:
    for name, value in counts.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _check_fit_args(objective: Objective, x_train: Any, x_test: Any, binarize: str | None) -> None:
    if binarize not in BINARIZE:
        raise ValueError(f"binarize must be None, 'threshold' or 'stochastic', got {binarize!r}.")
    # binarized pixels are Bernoulli draws, so their source intensities must lie in [0, 1] too
    likelihood = "bernoulli" if binarize is not None else objective.likelihood
    check_data(x_train, likelihood, objective.x_dim, "x_train")
    if x_test is not None:
        check_data(x_test, likelihood, objective.x_dim, "x_test")


def _train_epoch(grad_fn: Callable, objective: Objective, optimizer: Any, params: Any, x: numpy.ndarray,
                 rng: numpy.random.Generator, backend: Any, epoch: int, epochs: int, batch_size: int,
                 show: bool) -> tuple[Any, list]:
    """One pass over ``x`` in a fresh random order; returns the new params and the per-step losses."""
    order = rng.permutation(len(x))
    bar = _progress(range(0, len(x), batch_size), epoch, epochs, show)
    losses: list = []
    for step, start in enumerate(bar, 1):
        xb = backend.asarray(x[order[start:start + batch_size]])
        eps = _noise(objective, len(xb), rng, backend, x.dtype)
        loss, grads = grad_fn(params, xb, eps)
        loss = float(loss)
        # NaN guard: stop before a non-finite gradient reaches the parameters
        if not (math.isfinite(loss) and _all_finite(grads, backend)):
            bad = "loss" if not math.isfinite(loss) else "gradient"
            raise NonFiniteLossError(
                f"the {bad} became non-finite (loss {loss}) at epoch {epoch}, step {step}; lower the learning "
                "rate or check the data. The last good parameters are in this error's .params.",
                epoch, step, tree_map(lambda a: numpy.array(backend.to_numpy(a)), params))
        params = optimizer.step(params, grads)
        losses.append(loss)
        if show:
            bar.set_postfix(loss=f"{sum(losses) / len(losses):.3f}", refresh=False)
    return params, losses


def _all_finite(tree: Any, backend: Any) -> bool:
    xp = backend.xp
    return all(bool(xp.all(xp.isfinite(leaf))) for leaf in tree_leaves(tree))


def _progress(steps: range, epoch: int, epochs: int, show: bool) -> Any:
    if not show:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False)


def _resume(path: Any, params: Any, optimizer: Any, rng: numpy.random.Generator, backend: Any) -> tuple:
    state = load_checkpoint(path, backend.asarray)
    if state["optimizer_class"] != type(optimizer).__name__:
        raise ValueError(f"resume={path} was saved with {state['optimizer_class']}, but fit got "
                         f"{type(optimizer).__name__}; pass the same optimizer to continue.")

    def same_shape(p: Any, q: Any) -> None:
        if p.shape != q.shape:
            raise ValueError(f"resume={path} holds an array of shape {q.shape} where params has {p.shape}; "
                             "it was saved for a different model.")

    tree_map(same_shape, params, state["params"], name=f"params and the parameters in resume={path}")
    optimizer.load_state(state["optimizer"])
    rng.bit_generator.state = state["rng"]
    return state["params"], list(state["history"]), state["epoch"] + 1
