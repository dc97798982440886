r"""Checkpoints and metrics files: written atomically, read back with one clear error.

A checkpoint is an ``.npz`` of arrays (no pickles) whose nest structure travels as JSON next to them. Every
file is written under a temporary name in the same folder and renamed when complete, so a crash mid-write
leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy

from minivae.backend import to_numpy

CHECKPOINT_FORMAT = "minivae-checkpoint-1"


def save_checkpoint(path: str | os.PathLike, params: Any, optimizer: Any, epoch: int,
                    rng: numpy.random.Generator, history: list | None = None) -> None:
    r"""Write params, optimizer state, epoch, RNG state and history to ``path`` (.npz, no pickles), atomically.

    The file is written under a temporary name in the same folder and renamed when complete, so a crash
    mid-write leaves the previous checkpoint intact. The nests' structure travels as JSON next to the arrays.
    """
    arrays: dict = {}
    meta = {"format": CHECKPOINT_FORMAT, "epoch": int(epoch), "rng": rng.bit_generator.state,
            "optimizer_class": type(optimizer).__name__, "history": history or [],
            "params": _pack(params, arrays), "optimizer": _pack(optimizer.state(), arrays)}
    arrays["meta"] = numpy.array(json.dumps(meta))
    atomic_write(path, lambda f: _write_npz(f, arrays))


def load_checkpoint(path: str | os.PathLike, to_device: Callable[[Any], Any] = numpy.asarray) -> dict:
    r"""Read a checkpoint written by :func:`save_checkpoint`: ``{"params", "optimizer", "epoch", "rng", ...}``.

    Arrays are passed through ``to_device`` (host numpy arrays by default). A file that is not a minivae
    checkpoint is a ``ValueError`` naming it.
    """
    try:
        with numpy.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path} is not a readable .npz checkpoint ({err}).") from None
    meta = json.loads(str(arrays.pop("meta"))) if "meta" in arrays else {}
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a minivae checkpoint (format {meta.get('format')!r}, expected "
                         f"{CHECKPOINT_FORMAT!r}).")
    meta["params"] = _unpack(meta["params"], arrays, to_device)
    meta["optimizer"] = _unpack(meta["optimizer"], arrays, to_device)
    return meta


def _pack(tree: Any, arrays: dict) -> Any:
    """A JSON description of ``tree``; its arrays go into ``arrays`` under keys ``a0``, ``a1``, ..."""
    if isinstance(tree, dict):
        if not all(isinstance(k, str) for k in tree):
            raise ValueError(f"checkpoints need string dict keys, got {list(tree)}.")
        return {"dict": {k: _pack(v, arrays) for k, v in tree.items()}}
    if isinstance(tree, (list, tuple)):
        return {type(tree).__name__: [_pack(v, arrays) for v in tree]}
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return {"value": tree}
    key = f"a{len(arrays)}"
    arrays[key] = to_numpy(tree)
    return {"array": key}


def _unpack(spec: dict, arrays: dict, to_device: Callable[[Any], Any]) -> Any:
    (kind, body), = spec.items()
    if kind == "dict":
        return {k: _unpack(v, arrays, to_device) for k, v in body.items()}
    if kind in ("list", "tuple"):
        items = [_unpack(v, arrays, to_device) for v in body]
        return items if kind == "list" else tuple(items)
    if kind == "array":
        return to_device(arrays[body])
    return body


def _write_npz(f: Any, arrays: dict) -> None:
    numpy.savez(f, **arrays)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    r"""Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_metrics(path: Any, objective: Any, history: list, **run: Any) -> None:
    r"""Write ``metrics.json``: the objective's bound, the run's settings and the per-epoch history, atomically."""
    body = {"objective": objective.bound, "units": "nats per example", **run, "history": history}
    text = json.dumps(body, indent=2) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))
