r"""Where a run prints: a notebook kernel or a terminal, its progress bars, and streams that may be closed or broken.

A script's output is a courtesy; its files are the result. :func:`guard_streams` makes printing unable to
lose them: a closed stdout or stderr (``>&-``, ``2>&-``), a reader that went away (``| head -1``) or a console
that cannot show a character (``PYTHONIOENCODING=ascii``) each make printing quiet or plainer, never a crash.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

# characters minivae prints, spelled out for a console that cannot show them
_ASCII = {"σ": "sigma", "β": "beta", "μ": "mu", "ε": "eps", "α": "alpha", "θ": "theta", "φ": "phi", "λ": "lambda",
          "≥": ">=", "≤": "<=", "≈": "~", "×": "x", "·": ".", "−": "-", "–": "-", "—": "-", "→": "->", "←": "<-",
          "…": "...", "²": "^2", "‖": "||", "∑": "sum", "‘": "'", "’": "'", "“": '"', "”": '"'}


def in_notebook() -> bool:
    r"""True inside a Jupyter (IPython) kernel, False in a plain ``python`` process or IPython terminal."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def show_progress() -> bool:
    r"""Whether progress bars should show: in a notebook, or when stderr is a terminal (never in a log)."""
    return in_notebook() or (sys.stderr is not None and sys.stderr.isatty())


def bar(items: Iterable | None = None, desc: str = "", total: int | None = None, leave: bool = True,
        unit: str = "it", **options: Any) -> Any:
    r"""A plain ``tqdm`` bar: on stderr in a terminal; in a notebook on stdout, ASCII, 100 columns, at most two
    updates a second (plain text that Jupyter redraws in place, so no ipywidgets and no ``IProgress`` warning).

    Never ``tqdm.auto``, which wants ipywidgets in Jupyter. ``options`` go to ``tqdm`` (e.g. ``unit_scale``).
    """
    from tqdm import tqdm

    style = {"file": sys.stdout, "ascii": True, "ncols": 100, "mininterval": 0.5} if in_notebook() else {}
    return tqdm(items, desc=desc, total=total, leave=leave, unit=unit, **style, **options)


def guard_streams() -> None:
    r"""Make ``sys.stdout`` and ``sys.stderr`` safe for a script run (not in a notebook; idempotent).

    - A standard descriptor (0, 1, 2) that was closed is reopened on the null device, so no file minivae opens
      later can take its number and receive stray output; a missing ``sys.stdout``/``sys.stderr`` writes there.
    - Each stream is wrapped in :class:`QuietStream`: a broken pipe or a closed descriptor silences it (one
      note on the other stream, if that one still works), and text its encoding cannot show is spelled in ASCII.
    """
    if in_notebook():
        return
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            # open for the rest of the run, like the stream it stands in for
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))
        elif not isinstance(stream, QuietStream):
            setattr(sys, name, QuietStream(stream, name))


class QuietStream:
    """A text stream that goes quiet, instead of raising, once its reader is gone; and falls back on ASCII."""

    def __init__(self, stream: Any, name: str) -> None:
        self.stream, self.name, self.broken = stream, name, False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self.stream.write(text)
            except UnicodeEncodeError:
                self._guarded(self.stream.write, plain(text, getattr(self.stream, "encoding", None) or "ascii"))
            except (OSError, ValueError):
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            self._guarded(self.stream.flush)

    def isatty(self) -> bool:
        return not self.broken and self.stream.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def _guarded(self, call: Any, *args: Any) -> None:
        try:
            call(*args)
        except (OSError, ValueError):
            self._silence()

    def _silence(self) -> None:
        """Stop writing; point the descriptor at the null device so the interpreter's last flush succeeds."""
        self.broken = True
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)
        except (OSError, ValueError, AttributeError):
            pass  # not a real descriptor (a test's capture): being quiet is enough
        other = getattr(sys, "stderr" if self.name == "stdout" else "stdout", None)
        if other is not None and other is not self:
            print(f"minivae: {self.name} was closed (broken pipe); printing stops there, and the run goes on "
                  "writing its files.", file=other)


def plain(text: str, encoding: str) -> str:
    r"""``text`` as ``encoding`` can show it: known symbols spelled out (σ → sigma), anything else escaped."""
    spelled = "".join(_ASCII.get(c, c) for c in text)
    return spelled.encode(encoding, "backslashreplace").decode(encoding)
