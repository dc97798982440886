"""minivae.data.idx: the IDX reader and parser on every type, on corrupt files, and on gzip bombs."""

from __future__ import annotations

import gzip
import os

import numpy
import pytest
from data_fakes import idx_bytes, peak_bytes, write, zero_bomb

from minivae import data


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_read_idx_round_trips_every_type(tmp_path, compress, dtype):
    rng = numpy.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = write(tmp_path / "a.idx", idx_bytes(array), compress)
    got = data.read_idx(path)
    assert got.shape == array.shape and got.dtype == numpy.dtype(dtype) and got.dtype.isnative
    numpy.testing.assert_array_equal(got, array)


def test_read_idx_one_dimensional_labels(tmp_path):
    labels = numpy.arange(10, dtype=numpy.uint8)
    numpy.testing.assert_array_equal(data.read_idx(write(tmp_path / "l", idx_bytes(labels), True)), labels)


GOOD = idx_bytes(numpy.arange(24, dtype=numpy.uint8).reshape(2, 3, 4))


CORRUPTIONS = {
    "bad magic": (b"\x01\x02" + GOOD[2:], "not an IDX file"),
    "unknown type code": (GOOD[:2] + b"\x07" + GOOD[3:], "unknown IDX type code 0x07"),
    "zero dimensions": (GOOD[:3] + b"\x00" + GOOD[4:], "0 dimensions"),
    "truncated header": (GOOD[:9], "truncated"),
    "truncated payload": (GOOD[:-1], "truncated"),
    "trailing bytes": (GOOD + b"\x00\x00", "2 trailing bytes"),
    "empty file": (b"", "not an IDX file"),
    "HTML error page": (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "HTML"),
}


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_read_idx_rejects_corrupt_files_naming_them(tmp_path, compress, kind):
    payload, words = CORRUPTIONS[kind]
    path = write(tmp_path / "train-images-idx3-ubyte.gz", payload, compress)
    with pytest.raises(ValueError, match=words) as err:
        data.read_idx(path)
    assert str(path) in str(err.value)


def test_read_idx_rejects_a_damaged_gzip_stream(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(GOOD)[:-6])
    with pytest.raises(ValueError, match="damaged gzip") as err:
        data.read_idx(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("shape, words", [
    ((65536,) * 4, "overflow int64"),     # 2**64 items: numpy's int64 product wraps round to 0
    ((2**32 - 1,) * 3, "overflow int64"),
    ((60000, 28, 28), "truncated"),       # fits in int64, but the data is not there
])
def test_idx_sizes_beyond_int64_or_the_data_name_the_file(tmp_path, shape, words):
    raw = bytes([0, 0, 0x08, len(shape)]) + numpy.asarray(shape, ">u4").tobytes() + bytes(10)
    path = write(tmp_path / "train-images-idx3-ubyte.gz", raw, True)
    for read in (lambda: data.read_idx(path), lambda: data.parse_idx(raw, path)):
        with pytest.raises(ValueError, match=words) as err:
            read()
        assert str(path) in str(err.value)


def test_read_idx_stops_a_gzip_bomb_at_the_size_its_header_declares(tmp_path):
    bomb = tmp_path / "t10k-images-idx3-ubyte.gz"
    # read_idx, which knows no official size, stops at what the header declares (plus 64 KiB)
    header = idx_bytes(numpy.zeros((1, 28, 28), numpy.uint8))[:16]
    bomb.write_bytes(zero_bomb(64, prefix=header))

    def read():
        with pytest.raises(ValueError, match="inflates to more than 66,336 bytes") as err:
            data.read_idx(bomb)
        assert str(bomb) in str(err.value)
    assert peak_bytes(read) < 8e6


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_read_idx_refuses_a_fifo_without_blocking(tmp_path):
    from test_files import _refused_without_blocking

    fifo = tmp_path / "train-images-idx3-ubyte"
    os.mkfifo(fifo)
    message = _refused_without_blocking(data.read_idx, fifo, "read_idx")
    assert str(fifo) in message and "FIFO" in message
