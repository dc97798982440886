r"""Minibatch training of any loss built from the engine: shuffling, progress, evaluation, NaN guard.

An :class:`Objective` says what to minimise and which noise it needs: ``loss(params, x, eps)`` returns a
scalar (the mean over the batch of a negative bound) and ``noise_shape(n)`` the shape of ``eps`` for a
batch of n rows (or None for a deterministic loss). Noise is drawn on the host by the trainer's seeded
``Generator`` and moved to the device with the batch, so the same seed gives the same numbers.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy
from autograd import value_and_grad

from minivae.backend import get_backend
from minivae.ops import mean as vmean
from minivae.optim import Adam
from minivae.tree import tree_map


@dataclass(frozen=True)
class Objective:
    r"""A training objective: ``loss(params, x, eps)`` → scalar to minimise, and the noise it needs.

    ``bound`` names what ``−loss`` is (for example ``"elbo"``), so the trainer can report it in nats.
    """

    loss: Callable[[Any, Any, Any], Any]
    noise_shape: Callable[[int], tuple] | None
    bound: str


def vae_objective(vae: Any, beta: float = 1.0) -> Objective:
    r"""Minimise −(1/N) Σ_n ELBO_β(x_n): one reparameterized sample per example."""
    return Objective(lambda p, x, eps: -vmean(vae.elbo(p, x, eps, beta)),
                     lambda n: (n, vae.z_dim), "elbo" if beta == 1.0 else f"elbo_beta{beta:g}")


def iwae_objective(vae: Any, k: int) -> Objective:
    r"""Minimise −(1/N) Σ_n L_k(x_n): k importance samples per example (Burda et al.)."""
    return Objective(lambda p, x, eps: -vmean(vae.iwae_bound(p, x, eps)), lambda n: (k, n, vae.z_dim), f"iwae_{k}")


def ae_objective(ae: Any) -> Objective:
    r"""Minimise (1/N) Σ_n ‖x_n − x̂_n‖²: the deterministic autoencoder needs no noise."""
    return Objective(lambda p, x, eps: vmean(ae.loss(p, x)), None, "neg_squared_error")


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained ``params`` (host arrays), the optimizer, and per-epoch history."""

    params: Any
    optimizer: Any
    history: list = field(default_factory=list)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf during training."""


def _noise(objective: Objective, n: int, rng: numpy.random.Generator, backend: Any, dtype: Any) -> Any:
    if objective.noise_shape is None:
        return None
    return backend.asarray(rng.standard_normal(objective.noise_shape(n)).astype(dtype))


def evaluate(objective: Objective, params: Any, x: numpy.ndarray, rng: numpy.random.Generator,
             batch_size: int = 500, backend: Any = None) -> float:
    r"""The mean of −loss over ``x`` with fresh sampled noise: for a VAE, the test ELBO in nats per example."""
    backend = backend or get_backend("numpy")
    dtype = x.dtype
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        eps = _noise(objective, len(xb), rng, backend, dtype)
        total += float(objective.loss(params, backend.asarray(xb), eps)) * len(xb)
    return -total / len(x)


def fit(objective: Objective, params: Any, x_train: numpy.ndarray, *, x_test: numpy.ndarray | None = None,
        optimizer: Any = None, epochs: int = 10, batch_size: int = 100, seed: int = 0,
        progress: bool | None = None, device: str = "cpu",
        on_epoch: Callable[[int, dict], None] | None = None) -> FitResult:
    r"""Minimise ``objective.loss`` over ``x_train`` by minibatch gradient steps (Adam(1e-3) by default).

    Each epoch shuffles the rows with a ``Generator`` seeded by ``seed``, takes ``batch_size`` rows per step,
    draws fresh noise per step, and then evaluates −loss on ``x_test`` (the test ELBO with *sampled* z for
    a VAE). Stops with :class:`NonFiniteLossError`, naming the epoch and step, if the loss becomes NaN or
    inf. ``device`` is ``"cpu"``, ``"gpu"`` or ``"auto"``. Returns a :class:`FitResult`.
    """
    backend = get_backend(device)
    rng = numpy.random.default_rng(seed)
    optimizer = optimizer or Adam(1e-3)
    params = tree_map(backend.asarray, params)
    show = sys.stderr.isatty() if progress is None else progress
    grad_fn = value_and_grad(objective.loss)
    history = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        order = rng.permutation(len(x_train))
        steps = range(0, len(x_train), batch_size)
        bar = _progress(steps, epoch, epochs, show)
        losses = []
        for step, start in enumerate(bar, 1):
            xb = backend.asarray(x_train[order[start:start + batch_size]])
            eps = _noise(objective, len(xb), rng, backend, x_train.dtype)
            loss, grads = grad_fn(params, xb, eps)
            loss = float(loss)
            if not math.isfinite(loss):
                raise NonFiniteLossError(f"the loss became {loss} at epoch {epoch}, step {step}; lower the "
                                         "learning rate or check the data for NaN or out-of-range values.")
            params = optimizer.step(params, grads)
            losses.append(loss)
            if show and step % 10 == 0:
                bar.set_postfix(loss=f"{numpy.mean(losses[-10:]):.2f}")
        seconds = time.perf_counter() - started
        record = {"epoch": epoch, f"train_{objective.bound}": -float(numpy.mean(losses)), "seconds": seconds,
                  "examples_per_second": len(x_train) / seconds}
        if x_test is not None:
            record[f"test_{objective.bound}"] = evaluate(objective, params, x_test, rng, backend=backend)
        history.append(record)
        if on_epoch is not None:
            on_epoch(epoch, record)
    return FitResult(tree_map(backend.to_numpy, params), optimizer, history)


def _progress(steps: range, epoch: int, epochs: int, show: bool) -> Any:
    if not show:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False)
