"""minivae.plotting: figures go through the atomic writer, and plotting borrows nothing from the walkthroughs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import matplotlib.image
import numpy
import pytest

from minivae import plotting


def test_a_figure_is_written_whole_or_not_at_all(tmp_path, monkeypatch) -> None:
    path = tmp_path / "grid.png"
    plotting.save_image_grid(numpy.zeros((4, 784)), path, ncols=2)
    before = path.read_bytes()
    assert matplotlib.image.imread(path).size > 0

    def dies_half_way(fig, target, **kwargs):
        # a full disk in the middle of writing the PNG (to a file name, or to a file object)
        with open(target, "wb") if isinstance(target, (str, os.PathLike)) else contextlib.nullcontext(target) as f:
            f.write(b"\x89PNG\r\n\x1a\n half a figure")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", dies_half_way)
    with pytest.raises(OSError, match="grid.png") as err:
        plotting.save_image_grid(numpy.ones((4, 784)), path, ncols=2)
    assert ".part" not in str(err.value)
    # the previous figure is intact and no temporary file is left beside it
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_the_suffix_chooses_the_format(tmp_path) -> None:
    for name, magic in (("f.png", b"\x89PNG"), ("f.pdf", b"%PDF"), ("f.svg", b"<?xml")):
        plotting.save_curves({"a": ([1, 2], [3, 4])}, tmp_path / name)
        assert (tmp_path / name).read_bytes().startswith(magic), name


def test_plotting_imports_nothing_from_the_walkthroughs() -> None:
    # a lower room: the walkthroughs use plotting, never the other way round
    code = "import sys, minivae.plotting; print('minivae.walkthrough' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
