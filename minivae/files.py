r"""The one atomic writer, and the checks on output paths: every file minivae writes goes through here.

:func:`atomic_write` writes under a temporary name in the same folder, fsyncs, and renames onto the final name,
so a crash, a kill -9 or a full disk mid-write leaves the previous file intact and no half-written file behind.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    r"""Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path`` in one step.

    ``file`` is a binary file object. The temporary file ``.<name>.<pid>.<random>.part`` is created with mode
    0666 minus the umask (as ``open`` would), flushed and fsynced, renamed onto ``path``, and the folder is
    fsynced so the rename survives a power cut. If ``write`` fails, the temporary file is removed and ``path``
    is untouched. Temporary files of the same target left by a killed process (its pid no longer runs) are
    removed first. An ``OSError`` names ``path``, never the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(path)
    tmp, fd = _create_part(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if tmp in (err.filename, err.filename2):
            # the temporary file is gone by the time the user reads this: name the file they asked for
            raise OSError(err.errno, f"could not write {path}: {err.strerror}") from None
        raise
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)
    _fsync_folder(path.parent)


def _create_part(path: Path) -> tuple[str, int]:
    """A new ``.<name>.<pid>.<hex>.part`` next to ``path``, created with mode 0666 & ~umask."""
    while True:
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue


def _remove_stale_parts(path: Path) -> None:
    """Remove ``.<name>.<pid>.<hex>.part`` files of this target whose writer no longer runs (a kill -9)."""
    if os.name != "posix":
        return  # os.kill(pid, 0) probes a process only on POSIX
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)\.[0-9a-f]+\.part")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _running(int(match.group(1))):
            try:
                os.remove(path.parent / name)
            except OSError:
                pass  # another writer removed it first, or the folder is read-only: the write will say so


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but belongs to someone else (PermissionError), or cannot be probed
    return True


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # platforms where a folder cannot be opened (Windows) persist renames without it
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_output_path(path: str | os.PathLike, name: str) -> None:
    r"""Refuse, before any work, an output file path that cannot be written: a folder, or a path under a file.

    ``name`` is the argument's name for the message (``"checkpoint"``, ``"metrics_path"``).
    """
    path = Path(path)
    if path.is_dir():
        example = path / ("metrics.json" if "metrics" in name else f"{name}.npz")
        raise ValueError(f"{name}={path} is a folder; give a file path, such as {example}.")
    for folder in path.parents:
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"{name}={path} lies under {folder}, which is a file, not a folder; choose a path "
                                 "inside a folder.")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ValueError(f"{name}={path}: the folder {folder} is not writable; choose a folder you can "
                                 "write to.")
            return
