r"""What :func:`minivae.train.fit` does before its first step: checks, the data of each epoch, resuming.

Every argument, the params (against the objective's model) and the output paths are checked before any work,
with one sentence per mistake. The seeded streams of the binarized pixels are functions of (seed, epoch), so the
pixels of an epoch never depend on what came before it, and a resumed run redraws them bit for bit.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import numpy

from minivae.backend import array_module
from minivae.checkpoint import load_checkpoint
from minivae.checks import check_count, check_data, check_like
from minivae.data.mnist import BINARIZE, binarize_pixels
from minivae.files import check_output_path
from minivae.objectives import Objective
from minivae.tree import tree_items, tree_leaves

# the purposes of the seeded streams besides the training one: default_rng([seed, purpose, epoch])
TEST_PIXELS, TRAIN_PIXELS, EVALUATION = 1, 2, 3


def all_finite(tree: Any) -> bool:
    r"""True when every entry of every array of the nest is finite (no NaN, no ±inf), on any device.

    The guard of every training step, so it is made cheap: Σ a² is finite only when every a is (a NaN or ±inf
    makes the sum NaN or inf), and one BLAS dot product reads the array once with no temporary. Where the sum
    is not finite (a NaN, an inf, or squares too large to add up), the exact test decides.
    """
    with numpy.errstate(over="ignore", invalid="ignore"):  # an overflowing sum is an answer here, not a warning
        for leaf in tree_leaves(tree):
            xp, flat = array_module(leaf), leaf.reshape(-1)
            if not math.isfinite(float(xp.dot(flat, flat))) and not bool(xp.isfinite(leaf).all()):
                return False
    return True


def check_fit_args(objective: Any, settings: Any, files: Any) -> tuple[Callable[[int], Objective], Objective]:
    """The schedule and its final objective, after refusing bad counts, seed, binarize and output paths."""
    check_count("epochs", settings.epochs, "epochs")
    check_count("batch_size", settings.batch_size, "rows")
    check_count("seed", settings.seed, minimum=0)
    if settings.binarize not in BINARIZE:
        raise ValueError(f"binarize must be None, 'threshold' or 'stochastic', got {settings.binarize!r}.")
    for path, name in ((files.checkpoint, "checkpoint"), (files.metrics, "metrics")):
        if path is not None:
            check_output_path(path, name)
    schedule = _as_schedule(objective)
    # the final objective: what the data are checked against and what the test bound measures
    return schedule, schedule(settings.epochs)


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


def check_params(params: Any, objective: Objective) -> Any:
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
    if dtypes == ["float16"]:
        raise ValueError("params are float16, in which Adam's eps (1e-8) and small gradients round to 0, so the "
                         "steps go wrong whatever the learning rate; train in float32, e.g. "
                         "tree_map(lambda a: a.astype(numpy.float32), params).")
    bad = next((where for where, leaf in leaves if not all_finite(leaf)), None)
    if bad is not None:
        raise ValueError(f"params{bad} holds NaN or inf; start from finite parameters (e.g. model.init(rng)).")
    if objective.init is not None:
        check_like(params, objective.init(numpy.random.default_rng(0)), "the objective's model",
                   "pass parameters made by the same model's init(rng)")
    return leaves[0][1].dtype


def prepare_data(target: Objective, x_train: Any, x_test: Any, binarize: str | None, dtype: Any,
                 seed: int) -> tuple:
    """``x_train`` and ``x_test`` checked, binarized where that happens once, and cast to the params' dtype.

    ``x_train`` may be a function ``epoch -> rows``; it is then called, and its rows checked, once per epoch.
    """
    if x_test is not None:
        check_data(x_test, _likelihood(target, binarize), target.x_dim, "x_test")
    if binarize is not None and x_test is not None:
        # x_test, and the data the final objective carries, binarized once (stochastic: one fixed draw)
        stream = numpy.random.default_rng([seed, TEST_PIXELS])
        x_test = binarize_pixels(x_test, binarize, stream)
        target = target.map_data(lambda x: binarize_pixels(x, binarize, stream))
    if not callable(x_train):
        x_train = _train_rows(x_train, target, binarize, dtype)
    return x_train, None if x_test is None else x_test.astype(dtype, copy=False), target


def _likelihood(target: Objective, binarize: str | None) -> str | None:
    # binarized pixels are Bernoulli draws, so their source intensities must lie in [0, 1] too
    return "bernoulli" if binarize is not None else target.likelihood


def _train_rows(x: Any, target: Objective, binarize: str | None, dtype: Any) -> numpy.ndarray:
    check_data(x, _likelihood(target, binarize), target.x_dim, "x_train")
    if binarize == "threshold":
        x = binarize_pixels(x, binarize)
    # the data in the parameters' dtype: float64 data never turn a float32 step into a float64 one
    return x.astype(dtype, copy=False)


def epoch_data(objective: Objective, x_train: Any, binarize: str | None, seed: int, epoch: int,
               dtype: Any) -> tuple[Objective, numpy.ndarray]:
    """This epoch's objective and pixels: for ``"stochastic"``, a fresh Bernoulli draw from this epoch's stream."""
    if callable(x_train):
        x_train = _train_rows(x_train(epoch), objective, binarize, dtype)
    if binarize is None:
        return objective, x_train
    stream = numpy.random.default_rng([seed, TRAIN_PIXELS, epoch])
    if binarize == "stochastic":
        x_train = binarize_pixels(x_train, binarize, stream).astype(dtype, copy=False)
    # the objective's own data (M2's labelled digits) binarized like x_train
    return objective.map_data(lambda x: binarize_pixels(x, binarize, stream)), x_train


# ------------------------------------------------------------------------------------------------ resume

def data_fingerprint(x: Any) -> str | None:
    r"""A cheap fingerprint of the training rows: a hash of their shape, dtype and a strided sample of at most
    65,536 of their values (None for rows that are a function of the epoch)."""
    if callable(x):
        return None
    flat = numpy.asarray(x).reshape(-1)
    sample = numpy.ascontiguousarray(flat[::max(1, flat.size // 65536)])
    return hashlib.sha256(f"{x.shape} {x.dtype} ".encode() + sample.tobytes()).hexdigest()[:16]


def run_settings(optimizer: Any, settings: Any, objective: Objective, x_train: Any, fingerprint: str | None) -> dict:
    r"""What a resumed run must share with the run that wrote its checkpoint: the optimizer and its
    hyperparameters, the batch size, binarize, this epoch's objective (its bound names β and k) and the data."""
    hyper = {name: float(getattr(optimizer, name)) for name in ("lr", "b1", "b2", "eps", "momentum")
             if isinstance(getattr(optimizer, name, None), (int, float))}
    return {"optimizer": type(optimizer).__name__, **hyper, "batch_size": settings.batch_size,
            "binarize": settings.binarize, "objective": objective.bound,
            "n_train": None if callable(x_train) else len(x_train), "data_fingerprint": fingerprint}


def check_same_settings(path: Any, saved: dict | None, now: dict) -> None:
    r"""Refuse a resume whose settings differ from the checkpoint's, naming each one that changed.

    A checkpoint without settings (written before minivae stored them) is resumed with the other checks only.
    """
    if saved is None:
        return
    changed = [f"{key} {saved.get(key)!r} -> {value!r}" for key, value in now.items() if saved.get(key) != value]
    if changed:
        raise ValueError(f"resume={path} was saved by a run with other settings ({', '.join(changed)}); pass the "
                         "same ones to continue it, or start a new run without resume.")


def resume(path: Any, params: Any, optimizer: Any, rng: numpy.random.Generator, backend: Any, epochs: int,
           seed: int, settings_at: Callable[[int], dict] = lambda epoch: {}) -> tuple:
    """``(params, history, first epoch)`` from a checkpoint, after checking it fits this run; ``rng`` restored.

    ``settings_at(epoch)`` gives this run's settings at an epoch, which must equal those the checkpoint stored.
    """
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
    if 1 <= state["epoch"] <= epochs:
        check_same_settings(path, state.get("settings"), settings_at(state["epoch"]))
    check_like(params, state["params"], f"resume={path}", fix, dtype=True)
    expected = sorted(optimizer.state())
    if sorted(state["optimizer"]) != expected:
        raise ValueError(f"resume={path} has damaged optimizer state: entries {sorted(state['optimizer'])}, where "
                         f"{type(optimizer).__name__} keeps {expected}; resume from another checkpoint.")
    for key, value in state["optimizer"].items():
        if isinstance(value, (dict, list, tuple)) or hasattr(value, "shape"):
            check_like(params, value, f"the optimizer state {key!r} in resume={path}", fix, dtype=True)
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
