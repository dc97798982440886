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
from minivae.files import atomic_write, open_regular

CHECKPOINT_FORMAT = "minivae-checkpoint-1"
PARAMS_FORMAT = "minivae-params-1"
_KINDS = ("dict", "list", "tuple", "array", "value")
# caps on what a file may declare or a nest may hold: bytes per array (4 GiB), levels of nesting
MAX_BYTES = 1 << 32
MAX_NEST = 32


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


def load_params(path: str | os.PathLike, like: Any = None) -> Any:
    r"""The params nest saved by :func:`save_params` (or the parameters inside a checkpoint), as host arrays.

    A file that is not one of these (a pickle, an ``.npz`` of object arrays, someone else's ``.npz``, a
    truncated or corrupt file, a FIFO or device) is one ``ValueError`` naming it. With ``like`` (a params nest
    of the model they are for, e.g. ``vae.init(rng)``), params of another kind of model or other sizes are one
    ``ValueError`` too, naming the first place they differ, instead of a ``KeyError`` later.
    """
    meta, arrays = _read(path, "params file", ("params",))
    if meta.get("format") not in (PARAMS_FORMAT, CHECKPOINT_FORMAT):
        raise ValueError(f"{path} is not a minivae params file (format {meta.get('format')!r}); write it with "
                         "minivae.save_params(path, params).")
    params = _unpack(meta.get("params"), arrays, numpy.asarray, path)
    if like is not None:
        _check_fits(params, like, path, "params")
    return params


def _check_fits(params: Any, like: Any, path: Any, where: str) -> None:
    """One sentence naming the first place where ``params`` differ from ``like`` in structure or shape."""
    def kind(tree: Any) -> str:
        if isinstance(tree, dict):
            return f"the keys {sorted(tree)}"
        if isinstance(tree, (list, tuple)):
            return f"a {type(tree).__name__} of {len(tree)}"
        return f"an array of shape {tuple(numpy.shape(tree))}"

    if isinstance(like, dict):
        fits = isinstance(params, dict) and set(params) == set(like)
    elif isinstance(like, (list, tuple)):
        fits = isinstance(params, (list, tuple)) and len(params) == len(like)
    else:
        fits = not isinstance(params, (dict, list, tuple)) and numpy.shape(params) == numpy.shape(like)
    if not fits:
        raise ValueError(f"{path} holds the params of another model: {where} has {kind(params)} where this model "
                         f"has {kind(like)}; load a file saved from the same kind of model with the same sizes.")
    children = like.items() if isinstance(like, dict) else enumerate(like) if isinstance(like, (list, tuple)) else ()
    for key, theirs in children:
        _check_fits(params[key], theirs, path, f"{where}[{key!r}]")


# -------------------------------------------------------------------------------------------- checkpoints

def save_checkpoint(path: str | os.PathLike, params: Any, optimizer: Any, epoch: int, rng: numpy.random.Generator,
                    history: list | None = None, seed: int | None = None, settings: dict | None = None) -> None:
    r"""Write params, optimizer state, epoch, RNG state, seed, history and the run's ``settings`` (a JSON object
    that a resume compares, see :func:`minivae.train_setup.resume`) to ``path`` (.npz, no pickles), atomically.

    The file is written under a temporary name in the same folder and renamed when complete, so a crash
    mid-write leaves the previous checkpoint intact. Non-finite parameters, optimizer state or history are
    refused (``ValueError``) before anything is written, so the last good checkpoint survives a blow-up.
    """
    arrays: dict = {}
    meta = {"format": CHECKPOINT_FORMAT, "epoch": int(epoch), "seed": seed, "rng": rng.bit_generator.state,
            "settings": settings, "optimizer_class": type(optimizer).__name__, "history": history or [],
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
    if not isinstance(meta.get("settings"), (dict, type(None))):
        raise ValueError(f"{path} has damaged metadata: its settings should be a JSON object.")
    if not all(isinstance(record, dict) for record in meta["history"]):
        raise ValueError(f"{path} has damaged metadata: its history should be a list of per-epoch records.")


# ------------------------------------------------------------------------------ nests <-> arrays and JSON

def _pack(tree: Any, arrays: dict, where: str, inside: tuple = ()) -> Any:
    """A JSON description of ``tree``; its arrays go into ``arrays`` under keys ``a0``, ``a1``, ...

    ``inside`` holds the ids of the containers above ``tree``: a nest that holds itself, or one deeper than
    :data:`MAX_NEST` levels, is refused with one sentence.
    """
    if isinstance(tree, (dict, list, tuple)):
        if id(tree) in inside:
            raise ValueError(f"{where} holds itself (the nest refers back to a container above it); a params nest "
                             "must be a tree of dicts, lists and tuples.")
        if len(inside) >= MAX_NEST:
            raise ValueError(f"{where} is nested more than {MAX_NEST} levels deep; a params nest that deep is a "
                             "mistake, so flatten it.")
        inside = (*inside, id(tree))
    if isinstance(tree, dict):
        if not all(isinstance(k, str) for k in tree):
            raise ValueError(f"{where} has dict keys {list(tree)}; only string keys can be saved.")
        return {"dict": {k: _pack(v, arrays, f"{where}[{k!r}]", inside) for k, v in tree.items()}}
    if isinstance(tree, (list, tuple)):
        return {type(tree).__name__: [_pack(v, arrays, f"{where}[{i}]", inside) for i, v in enumerate(tree)]}
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


def _read(path: Any, what: str, sections: tuple = ("params", "optimizer")) -> tuple[dict, dict]:
    """``(metadata, arrays)`` of an ``.npz`` written by :func:`_write`; any fault is one ``ValueError``.

    Only the arrays that the metadata's ``sections`` name are read, each after its declared size is checked
    against the archive and :data:`MAX_BYTES`, so a hostile file cannot make this allocate or inflate more.
    """
    try:
        f = open_regular(path, what)
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist; check the path of the {what}.") from None
    except OSError as err:
        raise ValueError(f"{path} cannot be read ({err.strerror or err}); check the path of the {what}.") from None
    try:
        with f:
            if f.read(4) != b"PK\x03\x04":
                f.seek(0)
                # pickles (protocol 2 and later) start with byte 0x80
                raise ValueError("it holds a pickle" if f.read(1) == b"\x80" else "it is not an .npz archive")
            f.seek(0)
            with zipfile.ZipFile(f) as archive:
                meta = _read_meta(archive, path, what)
                names = {key for section in sections for key in _array_keys(meta.get(section))}
                arrays = {key: _read_member(archive, f"{key}.npy") for key in sorted(names)}
    except _RefusedError as err:
        raise ValueError(f"{path} {err}") from None
    except (OSError, ValueError, EOFError, KeyError, RecursionError, NotImplementedError, RuntimeError,
            zipfile.BadZipFile, zlib.error) as err:
        if "pickle" in str(err):
            raise ValueError(f"{path} holds pickled objects, which minivae never writes nor loads (unpickling can "
                             "run code); save parameters with minivae.save_params.") from None
        raise ValueError(f"{path} is not a readable minivae {what} ({err}); it may be truncated or corrupt, so "
                         "write it again or use another copy.") from None
    return meta, arrays


class _RefusedError(Exception):
    """What is wrong with an archive, as a predicate for its path ("is ..."); becomes a ValueError naming it."""


def _read_meta(archive: zipfile.ZipFile, path: Any, what: str) -> dict:
    """The metadata JSON object of a minivae ``.npz``; deep nesting and bad JSON are one sentence."""
    if "meta.npy" not in archive.NameToInfo:
        if any(_holds_objects(archive, info) for info in archive.infolist()[:100]):
            raise ValueError("it holds a pickle")
        raise _RefusedError(f"is an .npz without minivae's metadata, so it is not a minivae {what}; write it with "
                       "minivae.save_params or fit(checkpoint=...).")
    raw = _read_member(archive, "meta.npy")
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise _RefusedError(f"is an .npz without minivae's metadata, so it is not a minivae {what}; write it with "
                       "minivae.save_params or fit(checkpoint=...).")
    try:
        meta = json.loads(str(raw))
    except RecursionError:
        raise _RefusedError("has damaged metadata: it is nested too deeply; the file was edited or "
                            "corrupted.") from None
    except ValueError as err:
        raise _RefusedError(f"has damaged metadata: it is not valid JSON ({err}); the file was edited or "
                       "corrupted.") from None
    if not isinstance(meta, dict):
        raise _RefusedError(f"has damaged metadata: it should be a JSON object, found {type(meta).__name__}.")
    return meta


def _array_keys(spec: Any, depth: int = 0) -> list:
    """The array keys (``a0``, ``a1``, ...) that a nest description names, refusing one nested too deeply."""
    # each level of a nest is two levels of its JSON description
    if depth > 2 * MAX_NEST + 2:
        raise _RefusedError(f"has damaged metadata: its nest is deeper than {MAX_NEST} levels; the file was edited "
                            "or corrupted.")
    if isinstance(spec, dict):
        own = [spec["array"]] if isinstance(spec.get("array"), str) else []
        return own + [k for value in spec.values() for k in _array_keys(value, depth + 1)]
    if isinstance(spec, list):
        return [k for value in spec for k in _array_keys(value, depth + 1)]
    return []


def _member(archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    """The archive entry ``name``, refused if encrypted, compressed in a way numpy never writes, or too large."""
    info = archive.NameToInfo.get(name)
    if info is None:
        raise _RefusedError(f"has damaged metadata: it names no stored array ({name[:-4]!r} is not in the archive); "
                            "the file was edited or corrupted.")
    if info.flag_bits & 0x1:
        raise _RefusedError(f"holds an encrypted member {name}; minivae writes none, so this is not a minivae file.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _RefusedError(f"stores {name} with zip compression method {info.compress_type}; minivae reads only "
                       "stored or deflated members (as numpy.savez writes them).")
    # deflate shrinks at most about 1032:1, so a larger declared size is a lie
    if info.file_size > MAX_BYTES or info.file_size > 1100 * info.compress_size + 1024:
        raise _RefusedError(f"declares {info.file_size:,} bytes for {name} from {info.compress_size:,} stored bytes; "
                       f"minivae reads at most {MAX_BYTES:,} bytes per array, so this is not a minivae file.")
    return info


def _read_member(archive: zipfile.ZipFile, name: str) -> numpy.ndarray:
    """The array in member ``name``, after checking that its header's shape fits the member's declared size."""
    info = _member(archive, name)
    with archive.open(info) as fp:
        dtype, shape, fortran = _npy_header(fp, name)
        needed = math.prod(shape) * dtype.itemsize
        if needed > info.file_size - fp.tell():
            raise _RefusedError(f"declares an array {name[:-4]!r} of shape {shape} ({needed:,} bytes) in a member of "
                           f"{info.file_size:,} bytes; the file is damaged or hostile.")
        data = fp.read(needed)
    if len(data) != needed:
        raise _RefusedError(f"is truncated: the array {name[:-4]!r} is shorter than its shape {shape} says.")
    array = numpy.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
    return array.copy()


def _npy_header(fp: Any, name: str) -> tuple:
    """``(dtype, shape, fortran_order)`` from the ``.npy`` header at the start of ``fp``."""
    version = numpy.lib.format.read_magic(fp)
    read = {(1, 0): numpy.lib.format.read_array_header_1_0, (2, 0): numpy.lib.format.read_array_header_2_0}
    if version not in read:
        raise _RefusedError(f"stores {name} in .npy version {version}, which minivae does not read.")
    shape, fortran, dtype = read[version](fp)
    if dtype.hasobject:
        raise ValueError("it holds a pickle")
    return dtype, tuple(int(n) for n in shape), fortran


def _holds_objects(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    """Whether an ``.npy`` member declares an object dtype (its header only is read: a few hundred bytes)."""
    try:
        with archive.open(_member(archive, info.filename)) as fp:
            return bool(_npy_header(fp, info.filename)[0].hasobject)
    except Exception as err:  # a damaged header only means: no object dtype found here
        return "pickle" in str(err)


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
