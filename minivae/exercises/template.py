r"""``start DIR``: write DIR/my_vae.py, one function per exercise raising ``NotImplementedError``; never overwrite.

The file is written whole to a temporary name in DIR, then linked to ``my_vae.py`` only if that name is
still free (``os.link`` fails on an existing name), so a learner's file is never replaced and no half-written
file is ever left behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from minivae.exercises.catalogue import EXERCISES, Exercise

FILE = "my_vae.py"

HEADER = '''r"""My VAE: minivae's exercises, written by hand.

Fill in each function, one at a time, then grade it:

    python -m minivae.exercises check my_vae.py             every exercise
    python -m minivae.exercises check my_vae.py elbo        one of them

Use autograd.numpy (np below) so autograd can differentiate your functions, and arrays whose rows are
examples, (N, D). A body that still raises NotImplementedError is reported as TODO.
"""

import autograd.numpy as np
from autograd.tracer import getval  # the stop-gradient of reinforce_surrogate
'''


def function_source(exercise: Exercise) -> str:
    r"""The stub of one exercise: its signature, its formula docstring and a one-line hint."""
    doc = "\n".join(("    " + line).rstrip() for line in exercise.formula.splitlines())
    return (f"\n\ndef {exercise.name}({exercise.signature}):\n"
            f'    r"""{doc.lstrip()}\n\n    {exercise.lecture}; feeds walkthroughs/{exercise.walkthrough}.\n    """\n'
            f"    raise NotImplementedError({('hint: ' + exercise.hint)!r})\n")


def template_source() -> str:
    r"""The whole of my_vae.py."""
    return HEADER + "".join(function_source(e) for e in EXERCISES)


def start(directory: str) -> Path:
    r"""Write ``directory/my_vae.py`` (creating the folder) and return its path.

    Raises ``FileExistsError`` when the file is there already, leaving it untouched, and ``ValueError``
    when ``directory`` exists but is not a folder.
    """
    folder = Path(directory)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a folder; pass the folder to write {FILE} into.")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / FILE
    if target.exists():
        raise FileExistsError(str(target))
    fd, temp = tempfile.mkstemp(prefix=".my_vae.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(template_source())
            handle.flush()
            os.fsync(handle.fileno())
        _link(Path(temp), target)
    finally:
        os.unlink(temp)
    return target


def _link(temp: Path, target: Path) -> None:
    # a hard link fails, leaving the learner's file alone, if the name was taken meanwhile
    try:
        os.link(temp, target)
    except FileExistsError:
        raise
    except OSError:
        # a file system without hard links: create the name exclusively, and remove it if the copy fails
        with open(target, "x", encoding="utf-8") as handle:
            try:
                handle.write(temp.read_text(encoding="utf-8"))
            except OSError:
                target.unlink()
                raise
