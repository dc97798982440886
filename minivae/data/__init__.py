r"""Data: toy sets, the IDX format, MNIST and Fashion-MNIST with checksums and offline fallbacks, downloads.

Every loader returns rows as examples: images are float32 ``(N, 784)`` in [0, 1], labels int64 ``(N,)``.
The toy sets take a seeded ``numpy.random.Generator`` so the same seed gives the same points.

- :mod:`minivae.data.toy`: :func:`two_gaussians`, :func:`ring`;
- :mod:`minivae.data.idx`: :func:`read_idx`, :func:`parse_idx` and the bounded gunzip;
- :mod:`minivae.data.mnist`: :func:`load_mnist`, :func:`load_fashion_mnist`, the offline digits,
  :func:`binarize_pixels` (the only place pixels are binarized);
- :mod:`minivae.data.download`: mirrors in turn, the watchdog and its limits ``DOWNLOAD_*`` (set them there:
  ``minivae.data.download.DOWNLOAD_MIN_RATE = 2048``).
"""

from minivae.data.idx import parse_idx, read_idx
from minivae.data.mnist import (
    BINARIZE,
    OFFLINE_SEED,
    binarize_pixels,
    default_root,
    load_fashion_mnist,
    load_mnist,
    mirrors,
)
from minivae.data.toy import ring, two_gaussians

__all__ = ["BINARIZE", "OFFLINE_SEED", "binarize_pixels", "default_root", "load_fashion_mnist", "load_mnist",
           "mirrors", "parse_idx", "read_idx", "ring", "two_gaussians"]
