r"""Figures saved to files: image grids, scatter plots, curves.

In a script matplotlib draws with its Agg backend (files only, never a window, never ``plt.show()``); in a
Jupyter kernel each saved figure is also shown inline, below the cell that made it. Every figure is written
through :func:`minivae.files.atomic_write`, so a full disk or a kill mid-write keeps the previous PNG whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from minivae.console import in_notebook
from minivae.files import atomic_write

if not in_notebook():
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy  # noqa: E402

DPI = 100


def save_figure(fig: Any, path: Path, dpi: int = DPI) -> Path:
    r"""Save ``fig`` at ``path`` (parents created; at least 100 dpi), show it inline in a notebook, and close it.

    The format follows the suffix (``.png``, ``.pdf``, ``.svg``; PNG without one). The file is written
    atomically: under a temporary name, then renamed, so the previous figure survives any failure.
    """
    path = Path(path)
    kind = path.suffix[1:].lower() or "png"
    try:
        atomic_write(path, lambda f: fig.savefig(f, format=kind, dpi=max(dpi, DPI), bbox_inches="tight"))
    finally:
        plt.close(fig)
    if in_notebook():
        from IPython.display import Image, display

        display(Image(filename=str(path)))
    return path


def tile_images(images: numpy.ndarray, ncols: int, shape: tuple[int, int] = (28, 28), pad: int = 1) -> numpy.ndarray:
    r"""Tile ``(n, H*W)`` images row by row into one 2-D array, ``ncols`` per row, with ``pad`` pixels between."""
    images = numpy.asarray(images).reshape(-1, *shape)
    n = len(images)
    nrows = -(-n // ncols)
    h, w = shape
    canvas = numpy.ones((nrows * (h + pad) + pad, ncols * (w + pad) + pad), dtype=numpy.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = image
    return canvas


def digit_grid(images: numpy.ndarray, ncols: int, title: str) -> Any:
    r"""A figure of ``(n, 784)`` images in [0, 1], ``ncols`` per row, under ``title`` (sized to the digits)."""
    canvas = tile_images(images, ncols)
    fig, ax = plt.subplots(figsize=(canvas.shape[1] / 40, canvas.shape[0] / 40 + 0.6), layout="constrained")
    ax.imshow(canvas, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return fig


def save_image_grid(images: numpy.ndarray, path: Path, ncols: int = 8, title: str = "",
                    shape: tuple[int, int] = (28, 28)) -> Path:
    r"""Save ``(n, H*W)`` images in [0, 1] as one grayscale grid PNG at ``path``."""
    canvas = tile_images(images, ncols, shape)
    fig, ax = plt.subplots(figsize=(canvas.shape[1] / 40, canvas.shape[0] / 40 + (0.3 if title else 0)))
    ax.imshow(canvas, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def save_curves(curves: dict, path: Path, xlabel: str = "epoch", ylabel: str = "", title: str = "") -> Path:
    r"""Save line plots of ``{label: (xs, ys)}`` in one axes at ``path``."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, marker="o", ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    whole_number_ticks(ax.xaxis, [x for xs, _ in curves.values() for x in xs])
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def whole_number_ticks(axis: Any, values: list) -> None:
    r"""Put the ticks of ``axis`` (``ax.xaxis`` or ``ax.yaxis``) on whole numbers when every value is a count
    (epochs, steps, units)."""
    if values and all(float(v).is_integer() for v in values):
        from matplotlib.ticker import MaxNLocator

        axis.set_major_locator(MaxNLocator(integer=True))


def save_latent_scatter(z: numpy.ndarray, labels: numpy.ndarray, path: Path, title: str = "") -> Path:
    r"""Save a scatter of 2-D codes ``z`` ``(N, 2)`` coloured by their integer ``labels`` (one colour per digit)."""
    z = numpy.asarray(z)
    fig, ax = plt.subplots(figsize=(5, 4.2))
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=4, alpha=0.7)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def image_panels(panels: dict, ncols: int, title: str = "", size: tuple = (2.6, 3.0)) -> Any:
    r"""A figure of image grids ``{name: (n, 784) images in [0, 1]}`` side by side, ``ncols`` per row, each under
    its name, all under ``title``; ``size`` is one panel's (width, height) in inches."""
    fig, axes = plt.subplots(1, len(panels), figsize=(size[0] * len(panels), size[1]), layout="constrained",
                             squeeze=False)
    for ax, (name, images) in zip(axes.ravel(), panels.items()):
        ax.imshow(tile_images(numpy.clip(images, 0.0, 1.0), ncols), cmap="gray_r", vmin=0.0, vmax=1.0,
                  interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    return fig


def scatter_panel(ax: Any, points: numpy.ndarray, title: str = "", xlim: tuple | None = None,
                  ylim: tuple | None = None, **style: Any) -> Any:
    r"""Scatter the rows of ``points`` ``(N, 2)`` on ``ax`` as one square 2-D panel (equal axes, light grid).

    ``xlim``, ``ylim``: ``(lo, hi)`` or None (matplotlib's choice). ``style`` goes to ``ax.scatter``
    (default ``s=2, alpha=0.4``). Returns the scatter's artist, for a colour bar.
    """
    points = numpy.asarray(points)
    artist = ax.scatter(points[:, 0], points[:, 1], **{"s": 2, "alpha": 0.4, **style})
    if title:
        ax.set_title(title, fontsize=10)
    if xlim is not None:
        ax.set_xlim(*xlim)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    return artist
