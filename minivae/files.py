r"""The one atomic writer, the safe reader, and the checks on output paths: every file minivae writes or reads
goes through here.

:func:`atomic_write` writes under a temporary name in the same folder, fsyncs, and renames onto the final name,
so a crash, a kill -9 or a full disk mid-write leaves the previous file intact and no half-written file behind.
:func:`open_regular` opens a file for reading only if it is a regular file, so a FIFO, a device or a socket is
one sentence instead of a hang.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # not POSIX (Windows): writers take no lock, and stale temporary files are left alone
    fcntl = None

def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    r"""Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path`` in one step.

    ``file`` is a binary file object. The temporary file ``.<name>.<random>.part`` is created with mode 0666
    minus the umask (as ``open`` would) and locked (``flock``) for as long as it exists; it is flushed,
    fsynced, renamed onto ``path``, and the folder is fsynced so the rename survives a power cut. If ``write``
    fails, the temporary file is removed and ``path`` is untouched. Temporary files of the same target whose
    lock is free (their writer was killed) are removed first; a live writer's, on this host or another one
    sharing the folder, holds its lock and is left alone. Concurrent writers to one path each finish, and the
    last rename wins. An ``OSError`` names ``path``, never the temporary file; an empty path is a
    ``ValueError``.
    """
    path = _file_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(path)
        tmp, fd = _create_part(path)
    except OSError as err:
        raise _naming(err, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                write(f)
                f.flush()
                os.fsync(f.fileno())
                # renamed while the lock is held, so no cleanup can take the part before it is in place
                os.replace(tmp, path)
            except BaseException:
                # removed while the lock is held, too
                _remove_quietly(tmp)
                raise
    except OSError as err:
        raise _naming(err, path) from None
    _fsync_folder(path.parent)


def _remove_quietly(tmp: str) -> None:
    try:
        os.remove(tmp)
    except OSError:
        pass  # already renamed or removed, or the folder turned read-only: nothing more can be done


def _file_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, refusing one that names no file ('' , '.', a folder's trailing slash)."""
    text = os.fspath(path)
    if not text or text.endswith(("/", os.sep)) or Path(text).name in ("", ".", ".."):
        raise ValueError(f"{text!r} names no file; give a file path such as params.npz.")
    return Path(path)


def _naming(err: OSError, path: Path) -> OSError:
    """The same error (same errno, same class) saying which file could not be written: ``path``."""
    if err.errno is None:
        return OSError(f"could not write {path}: {err}")
    return OSError(err.errno, f"could not write {path}: {err.strerror or os.strerror(err.errno)}")


def _create_part(path: Path) -> tuple[str, int]:
    """A new ``.<name>.<hex>.part`` next to ``path`` (mode 0666 & ~umask), locked by this writer."""
    while True:
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.part")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        if _lock(fd, wait=True) and os.fstat(fd).st_nlink == 0:
            # another writer's cleanup took it between its creation and our lock: start again
            os.close(fd)
            continue
        return tmp, fd


def _lock(fd: int, wait: bool) -> bool:
    """Take the exclusive advisory lock on ``fd``: True if taken, False if it is held or locks do not work."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        return False  # held by a live writer (EWOULDBLOCK), or a file system without locks (ENOLCK)
    return True


def _remove_stale_parts(path: Path) -> None:
    """Remove ``.<name>.<hex>.part`` files of this target whose lock is free: their writer is gone (a kill -9)."""
    if fcntl is None:
        return
    # the older ``.<name>.<pid>.<hex>.part`` names too
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+\.)?[0-9a-f]+\.part")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in filter(pattern.fullmatch, names):
        part = path.parent / name
        try:
            fd = os.open(part, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue  # gone already, or not ours to open
        try:
            # a regular file still under that name, whose lock nobody holds
            if stat.S_ISREG(os.fstat(fd).st_mode) and _lock(fd, wait=False) and _same_file(fd, part):
                os.remove(part)
        except OSError:
            pass  # another writer removed it first, or the folder is read-only: the write will say so
        finally:
            os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
    except OSError:
        return False


def open_regular(path: str | os.PathLike, what: str) -> IO[bytes]:
    r"""``path`` opened for binary reading, if it is a regular file; a FIFO, device, socket or folder is a
    ``ValueError`` naming it, raised without blocking.

    ``what`` names the file's role for the message (``"params file"``, ``"IDX file"``). It is checked before
    opening (so a device is never opened) and again after (O_NONBLOCK: a FIFO swapped in between cannot hang
    the open). A missing or unreadable file raises the usual ``OSError``, which names it.
    """
    path = os.fspath(path)
    _refuse_special(os.stat(path).st_mode, path, what)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        _refuse_special(os.fstat(fd).st_mode, path, what)
        if fcntl is not None:
            # back to blocking reads (a regular file never blocks, but a reader may expect plain semantics)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


_SPECIAL = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
            (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _refuse_special(mode: int, path: str, what: str) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _SPECIAL if test(mode)), "not a regular file")
    raise ValueError(f"{path} is {kind}, not a regular file; give the path of a {what}.")


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
    if not os.fspath(path):
        example = "metrics.json" if "metrics" in name else f"{name}.npz"
        raise ValueError(f"{name}='' names no file; give a file path such as {example}.")
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
