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

from minivae.backend import asarray_like, get_backend, to_numpy
from minivae.checkpoint import save_checkpoint, write_metrics
from minivae.checks import check_count, check_data
from minivae.fast.adam import Adam as FastAdam
from minivae.grad import value_and_grad
from minivae.objectives import Objective
from minivae.optim import Adam
from minivae.threads import blas_threads
from minivae.train_setup import (
    EVALUATION,
    all_finite,
    check_fit_args,
    check_params,
    data_fingerprint,
    epoch_data,
    prepare_data,
    resume,
    run_settings,
)
from minivae.tree import tree_leaves, tree_map


@dataclass(frozen=True)
class TrainSettings:
    r"""How :func:`fit` runs: ``epochs`` (all of them, a resumed run's included), ``batch_size``, ``seed``,
    ``binarize`` (None, ``"threshold"`` or ``"stochastic"``), ``device`` (``"cpu"``, ``"gpu"``, ``"auto"``) and
    ``progress`` (a tqdm bar; None shows it only when stderr is a TTY)."""

    epochs: int = 10
    batch_size: int = 100
    seed: int = 0
    binarize: str | None = None
    device: Any = "cpu"
    progress: bool | None = None


@dataclass(frozen=True)
class RunFiles:
    r"""What :func:`fit` writes and reads: a ``checkpoint`` after every epoch, a checkpoint to ``resume`` from,
    and ``metrics`` (a ``metrics.json`` path) written after every epoch; None for none."""

    checkpoint: str | os.PathLike | None = None
    resume: str | os.PathLike | None = None
    metrics: str | os.PathLike | None = None


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

    def __init__(self, message: str, epoch: int | None, step: int | None, params: Any) -> None:
        super().__init__(message)
        self.epoch, self.step, self.params = epoch, step, params


def _stopped(what: str, loss: float, step: int, params: Any, epoch: int | None = None) -> NonFiniteLossError:
    where = f"step {step}" if epoch is None else f"epoch {epoch}, step {step}"
    error = NonFiniteLossError(f"the {what} became non-finite (loss {loss}) at {where}; lower the learning rate or "
                               "check the data. The last good parameters are in this error's .params.",
                               epoch, step, _host_copy(params))
    error.what, error.loss = what, loss
    return error


def train_epoch(objective: Objective, params: Any, x: numpy.ndarray, optimizer: Any, rng: numpy.random.Generator,
                batch_size: int = 100, *, progress: str | None = None,
                guard_every_step: bool = True) -> tuple[Any, float]:
    r"""θ ← step(θ, ∇_θ L(θ; x_b, ε)) for each minibatch x_b of a shuffled ``x``, ε ~ p(ε); one epoch.

    Zhu, Deep Generative Models II (Kingma & Welling 2014, Algorithm 1). Returns ``(θ, (1/N) Σ_b n_b L_b)``, the
    loss per example. Batches and noise go to the parameters' device and dtype (``x`` should be in it).
    ``progress``: a description shows a tqdm bar with the running loss. The guard: a non-finite loss, gradient
    or updated θ raises :class:`NonFiniteLossError` handing back the θ before the last step (whose loss and
    gradient were finite; at step 1, ``params``), since ``optimizer.step`` returns new arrays.
    ``guard_every_step=False`` checks only the loss at each step and leaves the arrays to the caller (:func:`fit`
    does so under the fast Adam, and checks θ once per epoch).
    """
    check_count("batch_size", batch_size, "rows")
    if len(x) == 0:
        raise ValueError("x has no rows; train_epoch needs at least one example.")
    grad_fn, like, total = value_and_grad(objective.loss), tree_leaves(params)[0], 0.0
    # a fresh random order of the rows
    order, good = rng.permutation(len(x)), params
    bar = _bar(range(0, len(x), batch_size), progress)
    for step, start in enumerate(bar, 1):
        # the minibatch x_b and its noise ε
        xb = asarray_like(x[order[start:start + batch_size]], like)
        eps = _noise(objective, len(xb), rng, like)
        # L(θ; x_b, ε) and g = ∇_θ L
        loss, grads = grad_fn(params, xb, eps)
        loss = float(loss)
        # guard: a non-finite loss or gradient never reaches the parameters or the optimizer's state
        if not math.isfinite(loss) or guard_every_step and not all_finite(grads):
            raise _stopped("loss" if not math.isfinite(loss) else "gradient", loss, step, good)
        # θ ← the optimizer's step along −g (θ is the last good one now; the one before it is let go first, so
        # the fast Adam can write into its buffer)
        good = params
        params = optimizer.step(params, grads)
        # guard: nor does a step that blew the parameters up
        if guard_every_step and not all_finite(params):
            raise _stopped("updated parameters", loss, step, good)
        total += loss * len(xb)
        if progress:
            bar.set_postfix(loss=f"{total / min(start + batch_size, len(x)):.3f}", refresh=False)
    return params, total / len(x)


def evaluate(objective: Objective, params: Any, x: numpy.ndarray, rng: numpy.random.Generator,
             batch_size: int = 500) -> float:
    r"""(1/N) Σ_n −loss(x_n) with fresh *sampled* noise: for a VAE, the test ELBO in nats per example.

    Never z = μ: each row gets its own reparameterized draw from ``rng``, so the number is an unbiased ELBO
    estimate. ``x`` is taken to the parameters' device and dtype. The value may be −inf or NaN for broken parameters
    (:func:`fit` stops on that); an empty ``x`` is refused.
    """
    check_data(x, None, objective.x_dim, "x")
    check_count("batch_size", batch_size, "rows")
    like, total = tree_leaves(params)[0], 0.0
    for start in range(0, len(x), batch_size):
        xb = asarray_like(x[start:start + batch_size], like)
        eps = _noise(objective, len(xb), rng, like)
        # batch mean of the bound, weighted by the batch size
        total += float(objective.loss(params, xb, eps)) * len(xb)
    return -total / len(x)


@blas_threads()  # NumPy's BLAS on one thread (or --threads, MINIVAE_THREADS) while it trains: minivae.threads
def fit(objective: Objective | Callable[[int], Objective], params: Any, x_train: Any, *,
        x_test: numpy.ndarray | None = None, optimizer: Any = None, settings: TrainSettings = TrainSettings(),
        files: RunFiles = RunFiles(), on_epoch: Callable[[int, Any, dict], None] | None = None) -> FitResult:
    r"""Minimise ``objective.loss`` over ``x_train``: :func:`train_epoch` once per epoch (Adam(1e-3) by default).

    After each epoch, −loss is evaluated on ``x_test`` (the test ELBO with *sampled* z for a VAE, in nats per
    example), ``files`` are written and ``on_epoch(epoch, params, record)`` is called (``params``: host arrays
    of the caller's own). :class:`TrainSettings` says how long and how, :class:`RunFiles` what is written and read.
    Every argument, the params and the output paths are checked before the first step; the data are cast to
    the parameters' dtype. The caller's arrays, and every array fit hands out, are never changed afterwards.

    - ``objective``: an :class:`Objective`, or a schedule ``epoch -> Objective`` (epochs count from 1), e.g. a
      KL warm-up (:func:`minivae.objectives.kl_warmup`), recorded as ``train_<its bound>``; the test bound is
      always that of the final objective ``objective(epochs)`` (called once up front), which metrics.json names.
    - ``x_train``: the rows, or a function ``epoch -> rows`` (called after the objective, each epoch).
    - The guard: a non-finite loss, gradient, updated parameter or test bound raises
      :class:`NonFiniteLossError` naming the epoch and step, before anything of that epoch is written. Under
      Adam, θ is checked once per epoch and a failing epoch runs again with the check at every step (the same
      error, two passes fewer per step, one over the gradients and one over θ: :func:`_guarded_epoch`).
    - ``files.checkpoint``: params, optimizer state, epoch, seed and RNG state after every epoch (atomically);
      ``files.resume`` continues from one bit for bit (same model, dtype, optimizer and seed; ``epochs`` must
      reach its epoch). ``files.metrics``: ``metrics.json`` (strict JSON): bounds, seconds, examples/s.
    - ``binarize``: ``"stochastic"`` redraws x ~ Bernoulli(intensity) every epoch from a stream of its own,
      ``"threshold"`` uses 1[x > ½]; ``x_test`` is binarized once (stochastic: one fixed draw), and so is the
      data an objective carries (M2's labelled digits, see :meth:`Objective.map_data`).
    - The lesson's :class:`minivae.optim.Adam` runs as :class:`minivae.fast.adam.Adam`, the same update on flat
      buffers in Kingma & Ba's faster order (equal up to rounding); its state is copied back when fit returns or
      stops.
    """
    run = settings
    schedule, target = check_fit_args(objective, run, files)
    dtype = check_params(params, target)
    x_train, x_test, target = prepare_data(target, x_train, x_test, run.binarize, dtype, run.seed)
    backend, optimizer, rng = get_backend(run.device), optimizer or Adam(1e-3), numpy.random.default_rng(run.seed)
    stepper, fingerprint = _Remembering(_faster(optimizer)), data_fingerprint(x_train)
    # what a resume must share with this run, at each epoch: optimizer, batch size, objective, data
    settings_at = lambda epoch: run_settings(optimizer, run, schedule(epoch), x_train, fingerprint)  # noqa: E731
    # a private copy on the device: the caller's arrays are never updated, whichever optimizer runs
    params, history, first = tree_map(lambda a: backend.asarray(a).copy(), params), [], 1
    if files.resume is not None:
        params, history, first = resume(files.resume, params, stepper.optimizer, rng, backend, run.epochs, run.seed,
                                        settings_at)
    show = sys.stderr.isatty() if run.progress is None else bool(run.progress)
    try:
        for epoch in range(first, run.epochs + 1):
            started, start = time.perf_counter(), params
            current, x_epoch = epoch_data(schedule(epoch), x_train, run.binarize, run.seed, epoch, dtype)
            try:
                params, loss = _guarded_epoch(current, params, x_epoch, stepper, rng, run.batch_size,
                                              f"epoch {epoch}/{run.epochs}" if show else None)
            except NonFiniteLossError as err:
                # the θ before the last step, which may have been the previous epoch's last
                last_good = start if stepper.before is None else stepper.before
                raise _stopped(err.what, err.loss, err.step, last_good, epoch) from None
            seconds = time.perf_counter() - started
            record = {"epoch": epoch, f"train_{current.bound}": -loss, "seconds": seconds,
                      "examples_per_second": len(x_epoch) / seconds}
            if x_test is not None:
                record.update(_test_record(target, params, x_test, run.seed, epoch, start))
            history.append(record)
            _write(files, params, stepper.optimizer, epoch, rng, history, target, run, backend,
                   run_settings(optimizer, run, current, x_train, fingerprint), x_test)
            if on_epoch is not None:
                on_epoch(epoch, _host_copy(params), record)
    finally:
        if stepper.optimizer is not optimizer:
            optimizer.load_state(stepper.optimizer.state())
    return FitResult(_host_copy(params), optimizer, history)


# ------------------------------------------------------------------------------------------------ helpers

class _Remembering:
    r"""An optimizer that remembers the θ it was given at its last step (the last good parameters, across epochs
    too) and the θ it returned."""

    def __init__(self, optimizer: Any) -> None:
        self.optimizer, self.before, self.after = optimizer, None, None

    def step(self, params: Any, grads: Any) -> Any:
        self.before = params
        self.after = self.optimizer.step(params, grads)
        return self.after


def _guarded_epoch(objective: Objective, params: Any, x: Any, stepper: _Remembering, rng: numpy.random.Generator,
                   batch_size: int, progress: str | None) -> tuple[Any, float]:
    r""":func:`train_epoch` with the fast Adam's guard checked once, at the epoch's end, instead of twice per step.

    Under Adam a NaN or ±inf in a gradient makes that entry of θ NaN (m/√v is NaN/NaN or ∞/∞), and an entry of
    θ that is NaN or ±inf stays so whatever later steps subtract (∞ − ∞ is NaN), so a θ that is finite at the end
    proves every gradient and every update of the epoch finite. When it is not, the epoch runs again from its
    start (the same stream, state and θ, so the same steps, bit for bit) with the guard at every step, which
    names the step and the last good θ.
    """
    if type(stepper.optimizer) is not FastAdam:
        return train_epoch(objective, params, x, stepper, rng, batch_size, progress=progress)
    # where the epoch starts: the training stream, the optimizer's state, the θ before and after its last step
    stream, state, before, after = rng.bit_generator.state, stepper.optimizer.state(), stepper.before, stepper.after
    try:
        new, loss = train_epoch(objective, params, x, stepper, rng, batch_size, progress=progress,
                                guard_every_step=False)
        if all_finite(new):
            return new, loss
    except NonFiniteLossError:
        # a non-finite loss at a finite θ: every step before it was good, so the error stands as it is
        if all_finite(params if stepper.after is after else stepper.after):
            raise
    # the same epoch again from its start, with the guard at every step
    rng.bit_generator.state, stepper.before, stepper.after = stream, before, after
    stepper.optimizer.load_state(state)
    return train_epoch(objective, params, x, stepper, rng, batch_size, progress=progress)


def _faster(optimizer: Any) -> Any:
    r"""The lesson's Adam as the fast Adam on flat buffers (the same update up to rounding: minivae.fast.adam)."""
    if type(optimizer) is not Adam:
        return optimizer
    fast = FastAdam(optimizer.lr, optimizer.b1, optimizer.b2, optimizer.eps)
    fast.load_state(optimizer.state())
    return fast


def _write(files: RunFiles, params: Any, optimizer: Any, epoch: int, rng: numpy.random.Generator, history: list,
           target: Objective, run: TrainSettings, backend: Any, settings: dict, x_test: Any) -> None:
    if files.checkpoint is not None:
        save_checkpoint(files.checkpoint, params, optimizer, epoch, rng, history, seed=run.seed, settings=settings)
    if files.metrics is not None:
        # the settings (optimizer, lr, ..., batch_size, n_train, data_fingerprint) hold for every epoch of the
        # history, since a resume refuses to change them; "objective" names the final objective's bound
        kept = {k: v for k, v in settings.items() if k != "objective"}
        write_metrics(files.metrics, target, history, seed=run.seed, epochs=run.epochs,
                      n_test=None if x_test is None else len(x_test), device=backend.name, **kept)


def _noise(objective: Objective, n: int, rng: numpy.random.Generator, like: Any) -> Any:
    # ε for a batch of n rows, on the parameters' device and in their dtype (None for a deterministic loss)
    if objective.noise_shape is None:
        return None
    return asarray_like(rng.standard_normal(objective.noise_shape(n)), like)


def _host_copy(params: Any) -> Any:
    return tree_map(lambda a: numpy.array(to_numpy(a)), params)


def _bar(steps: range, description: str | None) -> Any:
    if not description:
        return steps
    from minivae.console import bar

    return bar(steps, description, unit="batch", leave=False)


def _test_record(target: Objective, params: Any, x_test: numpy.ndarray, seed: int, epoch: int, previous: Any) -> dict:
    """The final objective's bound on ``x_test`` (its own noise stream), checked, and the seconds it took."""
    started = time.perf_counter()
    value = evaluate(target, params, x_test, numpy.random.default_rng([seed, EVALUATION, epoch]))
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"the test {target.bound} became {value} at epoch {epoch}, so nothing of this epoch was saved; lower "
            "the learning rate or check the data. The parameters of the previous epoch are in this error's "
            ".params.", epoch, None, _host_copy(previous))
    return {f"test_{target.bound}": value, "eval_seconds": time.perf_counter() - started}
