r"""Files that must never be lost or half-written: checkpoints, saved parameters, metrics.json.

A checkpoint (:func:`save_checkpoint`) and a params file (:func:`save_params`) are ``.npz`` archives of plain
numeric arrays (no pickles: they load with ``allow_pickle=False``), and the structure of the nests (dicts,
lists, tuples) travels as JSON next to the arrays. :func:`atomic_write` writes every file under a temporary name
in the same folder and renames it when complete, so a crash or kill -9 mid-write leaves the previous file intact.
Reading back gives the arrays bit for bit, or one ``ValueError`` naming the file (truncated, bit-flipped,
hand-edited, or not a minivae file). Nothing non-finite is ever written to a checkpoint or to ``metrics.json``
(strict JSON).
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from collections.abc import Callable
from typing import Any

import numpy

from minivae.backend import to_numpy
from minivae.files import atomic_write

CHECKPOINT_FORMAT = "minivae-checkpoint-1"
PARAMS_FORMAT = "minivae-params-1"
_KINDS = ("dict", "list", "tuple", "array", "value")


# ------------------------------------------------------------------------------------------- params files

def save_params(path: str | os.PathLike, params: Any) -> None:
    r"""Write any params nest (dicts with string keys, lists, tuples of arrays) to ``path`` as an ``.npz``.

    No pickles: each array is stored as itself, the nest's structure as JSON. Written atomically (a crash
    leaves any previous file intact). :func:`load_params` gives it back bit for bit: dtypes, shapes, and
    lists, tuples and dicts (in their key order) as they were. Device arrays are saved as host arrays.
    """
    arrays: dict = {}
    spec = _pack(params, arrays, "params")
    _write(path, {"format": PARAMS_FORMAT, "params": spec}, arrays)


def load_params(path: str | os.PathLike) -> Any:
    r"""The params nest saved by :func:`save_params` (or the parameters inside a checkpoint), as host arrays.

    A file that is not one of these (a pickle, an ``.npz`` of object arrays, someone else's ``.npz``, a
    truncated or corrupt file) is one ``ValueError`` naming it.
    """
    meta, arrays = _read(path, "params file")
    if meta.get("format") not in (PARAMS_FORMAT, CHECKPOINT_FORMAT):
        raise ValueError(f"{path} is not a minivae params file (format {meta.get('format')!r}); write it with "
                         "minivae.save_params(path, params).")
    return _unpack(meta.get("params"), arrays, numpy.asarray, path)


# -------------------------------------------------------------------------------------------- checkpoints

def save_checkpoint(path: str | os.PathLike, params: Any, optimizer: Any, epoch: int,
                    rng: numpy.random.Generator, history: list | None = None, seed: int | None = None) -> None:
    r"""Write params, optimizer state, epoch, RNG state, seed and history to ``path`` (.npz, no pickles), atomically.

    The file is written under a temporary name in the same folder and renamed when complete, so a crash
    mid-write leaves the previous checkpoint intact. Non-finite parameters, optimizer state or history are
    refused (``ValueError``) before anything is written, so the last good checkpoint survives a blow-up.
    """
    arrays: dict = {}
    meta = {"format": CHECKPOINT_FORMAT, "epoch": int(epoch), "seed": seed, "rng": rng.bit_generator.state,
            "optimizer_class": type(optimizer).__name__, "history": history or [],
            "params": _pack(params, arrays, "params"), "optimizer": _pack(optimizer.state(), arrays, "optimizer")}
    for key, array in arrays.items():
        bad = array.size - int(numpy.isfinite(array).sum()) if array.dtype.kind in "fc" else 0
        if bad:
            raise ValueError(f"refusing to write non-finite values to the checkpoint {path}: {bad} entries of "
                             f"{_where_of(meta, key)} are NaN or inf; the previous checkpoint is kept.")
    bad_record = _non_finite(meta["history"], "history")
    if bad_record:
        raise ValueError(f"refusing to write {bad_record[1]} for {bad_record[0]} to the checkpoint {path}: a "
                         "checkpoint holds only finite numbers; the previous checkpoint is kept.")
    _write(path, meta, arrays)


def load_checkpoint(path: str | os.PathLike, to_device: Callable[[Any], Any] = numpy.asarray) -> dict:
    r"""Read a checkpoint written by :func:`save_checkpoint`: ``{"params", "optimizer", "epoch", "rng", ...}``.

    Arrays are passed through ``to_device`` (host numpy arrays by default). A file that is not a readable
    minivae checkpoint (truncated, bit-flipped, hand-edited metadata, another format) is one ``ValueError``
    naming it.
    """
    meta, arrays = _read(path, "checkpoint")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a minivae checkpoint (format {meta.get('format')!r}, expected "
                         f"{CHECKPOINT_FORMAT!r}).")
    _check_checkpoint_meta(meta, path)
    meta["params"] = _unpack(meta["params"], arrays, to_device, path)
    meta["optimizer"] = _unpack(meta["optimizer"], arrays, to_device, path)
    return meta


def _check_checkpoint_meta(meta: dict, path: Any) -> None:
    """One sentence for hand-edited metadata: a missing key, a wrong type, a negative epoch."""
    expected = {"epoch": int, "rng": dict, "optimizer_class": str, "history": list, "params": dict,
                "optimizer": dict}
    for key, kind in expected.items():
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"{path} has damaged metadata: {key!r} should be a {kind.__name__}, found {value!r}; "
                             "the file was edited or corrupted, so resume from another checkpoint or start afresh.")
    if meta["epoch"] < 1:
        raise ValueError(f"{path} has damaged metadata: epoch {meta['epoch']} (a checkpoint is written after epoch "
                         "1 or later); resume from another checkpoint or start afresh.")
    seed = meta.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"{path} has damaged metadata: seed {seed!r} is not a non-negative integer.")
    if not all(isinstance(record, dict) for record in meta["history"]):
        raise ValueError(f"{path} has damaged metadata: its history should be a list of per-epoch records.")


# ------------------------------------------------------------------------------ nests <-> arrays and JSON

def _pack(tree: Any, arrays: dict, where: str) -> Any:
    """A JSON description of ``tree``; its arrays go into ``arrays`` under keys ``a0``, ``a1``, ..."""
    if isinstance(tree, dict):
        if not all(isinstance(k, str) for k in tree):
            raise ValueError(f"{where} has dict keys {list(tree)}; only string keys can be saved.")
        return {"dict": {k: _pack(v, arrays, f"{where}[{k!r}]") for k, v in tree.items()}}
    if isinstance(tree, (list, tuple)):
        return {type(tree).__name__: [_pack(v, arrays, f"{where}[{i}]") for i, v in enumerate(tree)]}
    if tree is None or isinstance(tree, (bool, int, str)):
        return {"value": tree}
    if isinstance(tree, float):
        if not math.isfinite(tree):
            raise ValueError(f"{where} is {tree}; only finite numbers can be saved.")
        return {"value": tree}
    array = to_numpy(tree) if hasattr(tree, "shape") else None
    if array is None or array.dtype.hasobject or array.dtype.kind not in "biufc":
        kind = type(tree).__name__ if array is None else f"an array of dtype {array.dtype}"
        raise ValueError(f"{where} is {kind}; only numeric arrays can be saved (no pickles), so convert it with "
                         "numpy.asarray(..., dtype=numpy.float32).")
    key = f"a{len(arrays)}"
    arrays[key] = array
    return {"array": key, "where": where}


def _unpack(spec: Any, arrays: dict, to_device: Callable[[Any], Any], path: Any) -> Any:
    """The nest that :func:`_pack` described; a malformed description is one ``ValueError`` naming ``path``."""
    kinds = [k for k in spec if k in _KINDS] if isinstance(spec, dict) else []
    if len(kinds) != 1:
        raise ValueError(f"{path} has damaged metadata: {spec!r} does not describe a nest; the file was edited or "
                         "corrupted.")
    kind, body = kinds[0], spec[kinds[0]]
    if kind == "dict" and isinstance(body, dict):
        return {k: _unpack(v, arrays, to_device, path) for k, v in body.items()}
    if kind in ("list", "tuple") and isinstance(body, list):
        items = [_unpack(v, arrays, to_device, path) for v in body]
        return items if kind == "list" else tuple(items)
    if kind == "array" and isinstance(body, str) and body in arrays:
        return to_device(arrays[body])
    if kind == "value" and (body is None or isinstance(body, (bool, int, float, str))):
        return body
    raise ValueError(f"{path} has damaged metadata: {spec!r} names no stored array or value; the file was edited or "
                     "corrupted.")


def _where_of(meta: dict, key: str) -> str:
    """The nest path (``params['encoder']...``) that :func:`_pack` recorded for array ``key``."""
    found = []

    def walk(spec: Any) -> None:
        if isinstance(spec, dict):
            if spec.get("array") == key:
                found.append(spec.get("where", key))
            for value in spec.values():
                walk(value)
        elif isinstance(spec, list):
            for value in spec:
                walk(value)

    walk(meta)
    return found[0] if found else key


def _write(path: Any, meta: dict, arrays: dict) -> None:
    arrays = {**arrays, "meta": numpy.array(json.dumps(meta, allow_nan=False))}
    atomic_write(path, lambda f: _write_npz(f, arrays))


def _write_npz(f: Any, arrays: dict) -> None:
    numpy.savez(f, **arrays)


def _read(path: Any, what: str) -> tuple[dict, dict]:
    """``(metadata, arrays)`` of an ``.npz`` written by :func:`_write`; any fault is one ``ValueError``."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"PK\x03\x04":
            # pickles (protocol 2 and later) start with byte 0x80
            raise ValueError("it holds a pickle" if magic[:1] == b"\x80" else "it is not an .npz archive")
        with numpy.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist; check the path of the {what}.") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        if "pickle" in str(err):
            raise ValueError(f"{path} holds pickled objects, which minivae never writes nor loads (unpickling can "
                             "run code); save parameters with minivae.save_params.") from None
        raise ValueError(f"{path} is not a readable minivae {what} ({err}); it may be truncated or corrupt, so "
                         "write it again or use another copy.") from None
    raw = arrays.pop("meta", None)
    if raw is None or raw.dtype.kind != "U" or raw.ndim != 0:
        raise ValueError(f"{path} is an .npz without minivae's metadata, so it is not a minivae {what}; write it "
                         "with minivae.save_params or fit(checkpoint=...).")
    try:
        meta = json.loads(str(raw))
    except ValueError as err:
        raise ValueError(f"{path} has damaged metadata: it is not valid JSON ({err}); the file was edited or "
                         "corrupted.") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path} has damaged metadata: it should be a JSON object, found {type(meta).__name__}.")
    return meta, arrays


# ---------------------------------------------------------------------------------------------- metrics

def write_metrics(path: Any, objective: Any, history: list, **run: Any) -> None:
    r"""Write ``metrics.json`` atomically: the objective's bound, the run's settings and the per-epoch history.

    Strict JSON: a NaN or infinite number is refused with one ``ValueError`` naming it, and nothing is written.
    """
    body = {"objective": objective.bound, "units": "nats per example", **run, "history": history}
    bad = _non_finite(body, "")
    if bad:
        raise ValueError(f"refusing to write {bad[1]} for {bad[0]} to {path}: metrics.json holds only finite "
                         "numbers (strict JSON); the previous file is kept.")
    text = json.dumps(body, indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def _non_finite(value: Any, where: str) -> tuple[str, float] | None:
    """The first ``(where, value)`` in a JSON-like body whose number is NaN or infinite, or None."""
    if isinstance(value, dict):
        items: Any = ((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return (where, value) if isinstance(value, float) and not math.isfinite(value) else None
    for key, item in items:
        found = _non_finite(item, key)
        if found:
            return found
    return None
