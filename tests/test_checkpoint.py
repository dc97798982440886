"""minivae.checkpoint: params files and checkpoints round-trip bit for bit, every damaged or foreign file is one
ValueError naming it, nothing non-finite is written, and atomic_write leaves no half file, honours the umask,
cleans up after a kill -9 and fsyncs the folder."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy
import pytest

import minivae
from minivae import checkpoint
from minivae.checkpoint import (
    load_checkpoint,
    load_params,
    save_checkpoint,
    save_params,
    write_metrics,
)
from minivae.models import VAE
from minivae.objectives import vae_objective
from minivae.optim import Adam
from minivae.train import RunFiles, TrainSettings, fit
from minivae.tree import tree_items, tree_leaves, tree_unflatten


def tiny_run(tmp_path: Path, epochs: int = 1) -> tuple:
    """A 12-pixel VAE trained for ``epochs`` with a checkpoint: (vae, initial params, x, checkpoint path)."""
    rng = numpy.random.default_rng(0)
    vae = VAE(12, [8], 2)
    params, x = vae.init(rng), rng.random((200, 12)).astype(numpy.float32)
    path = tmp_path / "c.npz"
    fit(vae_objective(vae), params, x, settings=TrainSettings(epochs=epochs, seed=2, progress=False),
        files=RunFiles(checkpoint=path))
    return vae, params, x, path


def assert_identical(a, b) -> None:
    """The same nest: container types, dict key order, array types, dtypes, shapes and bytes."""
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_identical(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            assert_identical(u, v)
    else:
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ------------------------------------------------------------------------------------------- params files


def test_save_params_round_trips_any_nest_bit_for_bit(tmp_path):
    rng = numpy.random.default_rng(0)
    weird = rng.standard_normal(5).astype(numpy.float32)
    weird[[1, 3]] = numpy.nan, -numpy.inf  # NaN and inf bit patterns survive too
    params = {"z_last": [rng.standard_normal((3, 2)), (numpy.arange(4, dtype=numpy.int64), numpy.array(True))],
              "a_first": {"w": weird, "empty": numpy.zeros((0, 7), numpy.float16), "scalar": numpy.float32(2.5)},
              "tuple": (), "list": []}
    assert minivae.save_params is save_params and minivae.load_params is load_params
    save_params(tmp_path / "p.npz", params)
    back = load_params(tmp_path / "p.npz")
    params["a_first"]["scalar"] = numpy.asarray(params["a_first"]["scalar"])  # a numpy scalar comes back 0-d
    assert_identical(back, params)
    # no pickles inside: every array loads with allow_pickle=False and none is of object dtype
    with numpy.load(tmp_path / "p.npz", allow_pickle=False) as npz:
        assert all(npz[key].dtype != object for key in npz.files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.npz"]


def test_load_params_reads_the_params_of_a_checkpoint(tmp_path):
    _, _, _, path = tiny_run(tmp_path)
    assert_identical(load_params(path), load_checkpoint(path)["params"])


def test_foreign_and_pickled_files_are_one_sentence(tmp_path):
    import pickle

    files = {"pickle.npz": lambda p: p.write_bytes(pickle.dumps({"w": numpy.ones(2)})),
             "object.npz": lambda p: numpy.savez(p, w=numpy.array([{"w": 1}], dtype=object)),
             "plain.npz": lambda p: numpy.savez(p, w=numpy.ones(2)),
             "single.npy": lambda p: numpy.save(p, numpy.ones(2)),
             "text.npz": lambda p: p.write_text("hello"),
             "empty.npz": lambda p: p.write_bytes(b"")}
    words = {"pickle.npz": "pickle", "object.npz": "pickle", "plain.npz": "without minivae's metadata",
             "single.npy": "not an .npz", "text.npz": "not an .npz", "empty.npz": "not an .npz"}
    for name, make in files.items():
        make(tmp_path / name)
        with pytest.raises(ValueError, match=words[name]) as err:
            load_params(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
    with pytest.raises(ValueError, match="does not exist"):
        load_params(tmp_path / "missing.npz")
    numpy.savez(tmp_path / "other.npz", meta=numpy.array(json.dumps({"format": "other"})))
    with pytest.raises(ValueError, match="not a minivae params file"):
        load_params(tmp_path / "other.npz")


@pytest.mark.parametrize("params, words", [
    ({"w": numpy.array([None, 1.0], dtype=object)}, r"params\['w'\] is an array of dtype object"),
    ({1: numpy.ones(2)}, "only string keys"),
    ({"w": "a string"}, None),
    ([numpy.ones(2), {"b": object()}], r"params\[1\]\['b'\] is object"),
    ({"lr": float("nan")}, "finite"),
])
def test_save_params_refuses_what_it_cannot_store_before_writing(tmp_path, params, words):
    if words is None:  # a str leaf is JSON, and it round-trips
        save_params(tmp_path / "p.npz", params)
        assert load_params(tmp_path / "p.npz") == params
        return
    with pytest.raises(ValueError, match=words):
        save_params(tmp_path / "p.npz", params)
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------------------------- checkpoints


def test_checkpoint_contents_and_no_pickles(tmp_path):
    vae, params, x, path = tiny_run(tmp_path)
    with numpy.load(path, allow_pickle=False) as npz:
        assert all(npz[key].dtype != object for key in npz.files)
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and state["optimizer_class"] == "Adam" and state["optimizer"]["t"] == 2
    assert state["seed"] == 2 and state["rng"]["bit_generator"] == "PCG64"
    result = fit(vae_objective(vae), params, x, settings=TrainSettings(epochs=1, seed=2, progress=False))
    assert_identical(state["params"], result.params)


def test_truncated_or_bit_flipped_checkpoints_are_one_sentence_naming_the_file(tmp_path):
    _, _, _, path = tiny_run(tmp_path)
    good = path.read_bytes()
    reference = load_checkpoint(path)
    damaged = tmp_path / "damaged.npz"
    rng = numpy.random.default_rng(0)
    cases = [good[:n] for n in (0, 3, 10, 100, len(good) // 2, len(good) - 30, len(good) - 1)]
    for position in rng.choice(len(good), 60, replace=False):
        flipped = bytearray(good)
        flipped[position] ^= 1 << int(rng.integers(8))
        cases.append(bytes(flipped))
    refused = 0
    for data in cases:
        damaged.write_bytes(data)
        try:
            state = load_checkpoint(damaged)
        except ValueError as err:
            assert str(damaged) in str(err)
            refused += 1
        else:
            # a flip in a field nothing reads (a zip timestamp, say) may pass, but never with other numbers
            assert_identical(state["params"], reference["params"])
            assert_identical(state["optimizer"]["m"], reference["optimizer"]["m"])
    # every truncation and most flips are refused (the zip CRC-32 covers the arrays and the metadata)
    assert refused >= 7 + 30


def rewrite_meta(path: Path, edit) -> None:
    """Rewrite the checkpoint at ``path`` with its metadata passed through ``edit`` (a hand edit)."""
    with numpy.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    meta = json.loads(str(arrays["meta"]))
    edited = edit(meta)
    arrays["meta"] = numpy.array(edited if isinstance(edited, str) else json.dumps(edited))
    numpy.savez(path, **arrays)


@pytest.mark.parametrize("edit, words", [
    (lambda m: "{not json", "not valid JSON"),
    (lambda m: [1, 2], "should be a JSON object"),
    (lambda m: {k: v for k, v in m.items() if k != "epoch"}, "'epoch' should be a int"),
    (lambda m: {**m, "epoch": "3"}, "'epoch' should be a int"),
    (lambda m: {**m, "epoch": -5}, "epoch -5"),
    (lambda m: {**m, "epoch": True}, "'epoch' should be a int"),
    (lambda m: {**m, "history": {"a": 1}}, "'history' should be a list"),
    (lambda m: {**m, "history": [1, 2]}, "list of per-epoch records"),
    (lambda m: {**m, "rng": None}, "'rng' should be a dict"),
    (lambda m: {**m, "seed": -1}, "seed -1"),
    (lambda m: {**m, "params": {"array": "a999"}}, "names no stored array"),
    (lambda m: {**m, "params": {"dict": [1]}}, "names no stored array"),
    (lambda m: {**m, "optimizer": {"dict": {"m": 5}}}, "does not describe a nest"),
])
def test_hand_edited_metadata_is_one_sentence(tmp_path, edit, words):
    _, _, _, path = tiny_run(tmp_path)
    rewrite_meta(path, edit)
    with pytest.raises(ValueError, match=words) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


def test_non_finite_values_are_never_written_to_a_checkpoint(tmp_path):
    _, params, _, path = tiny_run(tmp_path)
    before = path.read_bytes()
    (where, first), *_ = tree_items(params)
    bad = tree_unflatten(params, [numpy.full_like(first, numpy.inf)] + tree_leaves(params)[1:])
    with pytest.raises(ValueError, match=f"non-finite.*{re.escape('params' + where)} are NaN or inf"):
        save_checkpoint(path, bad, Adam(), 2, numpy.random.default_rng(0))
    with pytest.raises(ValueError, match=r"-inf for history\[0\]\.test_elbo"):
        save_checkpoint(path, params, Adam(), 2, numpy.random.default_rng(0), [{"test_elbo": -numpy.inf}])
    with pytest.raises(ValueError, match="dtype object"):
        save_checkpoint(path, {"w": numpy.array([1.0, None], dtype=object)}, Adam(), 2, numpy.random.default_rng(0))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    vae, params, x, path = tiny_run(tmp_path)
    before = path.read_bytes()

    def dying_writer(f, arrays):
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(checkpoint, "_write_npz", dying_writer)
    with pytest.raises(KeyboardInterrupt):
        fit(vae_objective(vae), params, x, settings=TrainSettings(epochs=2, seed=2, progress=False),
            files=RunFiles(checkpoint=path, resume=path))
    assert path.read_bytes() == before and load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


# --------------------------------------------------------------------------------------------- metrics


def test_metrics_json_is_strict_and_refuses_non_finite_numbers(tmp_path):
    objective = vae_objective(VAE(4, [3], 2))
    path = tmp_path / "m.json"
    write_metrics(path, objective, [{"epoch": 1, "test_elbo": -3.5}], seed=0)
    body = json.loads(path.read_text(), parse_constant=lambda token: pytest.fail(f"non-strict JSON: {token}"))
    assert body["history"] == [{"epoch": 1, "test_elbo": -3.5}] and body["objective"] == "elbo"
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match=r"history\[1\]\.test_elbo.*strict JSON"):
            write_metrics(path, objective, [{"epoch": 1, "test_elbo": -3.5}, {"epoch": 2, "test_elbo": bad}])
    assert json.loads(path.read_text())["history"] == [{"epoch": 1, "test_elbo": -3.5}]


# ------------------------------------------------------------------------------------------- hostile files


def _npy_header(shape: tuple, descr: str = "<f4") -> bytes:
    """A version 1.0 .npy header declaring ``shape`` of ``descr``, padded to 64 bytes as numpy writes it."""
    text = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    pad = 64 - (10 + len(text) + 1) % 64
    return b"\x93NUMPY\x01\x00" + (len(text) + pad + 1).to_bytes(2, "little") + text + b" " * pad + b"\n"


def _params_npz(path: Path, members: dict, params_spec: dict | None = None, method=zipfile.ZIP_STORED) -> Path:
    """A params .npz whose metadata names array ``a0``, with the raw ``members`` ({name: bytes}) as its arrays."""
    meta = {"format": checkpoint.PARAMS_FORMAT, "params": params_spec or {"dict": {"w": {"array": "a0"}}}}
    buffer = io.BytesIO()
    numpy.lib.format.write_array(buffer, numpy.array(json.dumps(meta)))
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("meta.npy", buffer.getvalue())
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _set_zip_field(path: Path, offset_local: int, offset_central: int, value: int) -> None:
    """Overwrite a 2-byte field of every local and central zip header (flags: 6 and 8; method: 8 and 10)."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", offset_local), (b"PK\x01\x02", offset_central)):
        at = data.find(signature)
        while at >= 0:
            data[at + offset:at + offset + 2] = value.to_bytes(2, "little")
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))


def test_a_huge_declared_shape_is_one_sentence_before_any_allocation(tmp_path):
    # 10^12 float32 = 4 TB declared in a member of 80 bytes: refused from the header, nothing allocated
    path = _params_npz(tmp_path / "huge.npz", {"a0.npy": _npy_header((10**12,)) + b"\0" * 16})
    with pytest.raises(ValueError, match=r"shape \(1000000000000,\)") as err:
        load_params(path)
    assert str(path) in str(err.value)


def test_members_the_metadata_does_not_name_are_never_inflated(tmp_path):
    import tracemalloc

    good = io.BytesIO()
    numpy.lib.format.write_array(good, numpy.arange(4, dtype=numpy.float32))
    # 100 MB of zeros deflate to about 100 kB: a bomb the metadata never names
    junk = _npy_header((25_000_000,)) + bytes(100_000_000)
    path = _params_npz(tmp_path / "bomb.npz", {"a0.npy": good.getvalue(), "junk.npy": junk},
                       method=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        params = load_params(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert params["w"].tolist() == [0, 1, 2, 3]
    assert peak < 5_000_000, f"loading took {peak:,} bytes"


@pytest.mark.parametrize("offsets, value, words", [
    ((8, 10), 99, "compression method 99"),  # a method zipfile does not know (AES is 99)
    ((8, 10), zipfile.ZIP_BZIP2, "compression method 12"),  # one numpy never writes
    ((6, 8), 0x1, "encrypted"),  # the encryption flag bit
])
def test_unsupported_compression_and_encryption_are_one_sentence(tmp_path, offsets, value, words):
    path = tmp_path / "p.npz"
    save_params(path, {"w": numpy.ones(3, dtype=numpy.float32)})
    _set_zip_field(path, *offsets, value)
    with pytest.raises(ValueError, match=words) as err:
        load_params(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("depth", [60, 100_000])
def test_deeply_nested_metadata_is_one_sentence(tmp_path, depth):
    # 100,000 levels overflow json's recursion; 60 levels parse but describe a nest deeper than any model's
    text = '{"list": [' * depth + '{"array": "a0"}' + "]}" * depth
    meta = json.dumps({"format": checkpoint.PARAMS_FORMAT, "params": "X"}).replace('"X"', text)
    buffer, good = io.BytesIO(), io.BytesIO()
    numpy.lib.format.write_array(buffer, numpy.array(meta))
    numpy.lib.format.write_array(good, numpy.ones(2, dtype=numpy.float32))
    path = tmp_path / "deep.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("meta.npy", buffer.getvalue())
        archive.writestr("a0.npy", good.getvalue())
    for load in (load_params, load_checkpoint):
        with pytest.raises(ValueError, match="nested too deeply|deeper than") as err:
            load(path)
        assert str(path) in str(err.value)


def test_save_params_of_a_deep_or_self_referencing_nest_is_one_sentence(tmp_path):
    deep: list = [numpy.ones(2)]
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested more than"):
        save_params(tmp_path / "p.npz", deep)
    loop: dict = {"w": numpy.ones(2)}
    loop["again"] = [loop]
    with pytest.raises(ValueError, match=r"params\['again'\]\[0\] holds itself"):
        save_params(tmp_path / "p.npz", loop)
    shared = numpy.ones(2)  # the same array twice is a tree with equal leaves, not a loop
    save_params(tmp_path / "p.npz", {"a": shared, "b": [shared, shared]})
    assert load_params(tmp_path / "p.npz")["b"][1].tolist() == [1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.npz"]


def test_params_of_another_model_are_one_sentence_with_like(tmp_path):
    from minivae.cvae import CVAE

    rng = numpy.random.default_rng(0)
    vae, cvae = VAE(12, [8], 2), CVAE(12, 3, [8], 2)
    save_params(tmp_path / "cvae.npz", cvae.init(rng))
    save_params(tmp_path / "wide.npz", VAE(12, [9], 2).init(rng))
    save_params(tmp_path / "vae.npz", vae.init(rng))
    for name, words in (("cvae.npz", r"another model: params has the keys \['decoder', 'encoder', 'prior'\]"),
                        ("wide.npz", r"another model: params\['encoder'\]\['hidden'\]\[0\]\[0\] has an array of "
                                     r"shape \(12, 9\) where this model has an array of shape \(12, 8\)")):
        with pytest.raises(ValueError, match=words) as err:
            load_params(tmp_path / name, like=vae.init(rng))
        assert str(tmp_path / name) in str(err.value)
    assert_identical(load_params(tmp_path / "vae.npz", like=vae.init(rng)), load_params(tmp_path / "vae.npz"))
