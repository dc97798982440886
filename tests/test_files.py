"""minivae.files: the one atomic writer (umask, kill -9 leftovers, live writers, concurrent writers, error
messages, fsync), the safe reader (FIFOs, devices, sockets) and output-path checks."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import numpy
import pytest

from minivae import files
from minivae.files import atomic_write, check_output_path


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_honours_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "f.bin", lambda f: f.write(b"data"))
    finally:
        os.umask(old)
    # as open() would create it: 0666 minus the umask (mkstemp's 0600 would hide the file from other users)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "f.bin").read_bytes() == b"data"


SLOW_WRITER = """
import sys, time
from minivae.files import atomic_write

def write(f):
    f.write(sys.argv[2].encode() * 1000)
    f.flush()
    print("writing", flush=True)
    time.sleep(60)

atomic_write(sys.argv[1], write)
"""


@pytest.mark.skipif(os.name != "posix", reason="kill -9 and flock are POSIX")
def test_parts_left_by_a_kill_9_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "c.npz"
    writers = [subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target), str(i)], stdout=subprocess.PIPE)
               for i in range(2)]
    for writer in writers:
        assert writer.stdout.readline() == b"writing\n"
    # one writer is killed mid-write; the other is still writing (its part file must survive)
    writers[0].send_signal(signal.SIGKILL)
    writers[0].wait()
    parts = sorted(p.name for p in tmp_path.iterdir())
    assert len(parts) == 2 and all(p.startswith(".c.npz.") and p.endswith(".part") for p in parts)
    other_target = tmp_path / ".c.npz.1.abcd.part.npz"  # a file of another target with a look-alike name
    other_target.write_bytes(b"keep")
    try:
        atomic_write(target, lambda f: f.write(b"new"))
        left = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part"))
        # only the live writer's part is left, and it is the live writer's (its bytes say so)
        assert len(left) == 1 and (tmp_path / left[0]).read_bytes() == b"1" * 1000
        assert other_target.read_bytes() == b"keep"
    finally:
        writers[1].kill()
        writers[1].wait()
    assert target.read_bytes() == b"new"


def _a_dead_pid() -> int:
    """A pid that runs nowhere on this host: what a writer in another pid namespace or on another host looks like."""
    for pid in range(4_194_000, 4_194_300):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            continue
    pytest.skip("no free pid found")


@pytest.mark.skipif(os.name != "posix", reason="flock is POSIX")
def test_a_live_writer_whose_pid_is_not_ours_to_see_keeps_its_part(tmp_path, monkeypatch):
    # a writer in another pid namespace (a container) or on another host sharing the folder: alive, but its pid
    # does not run here. Its part must survive another writer's cleanup, and its own write must finish.
    import threading

    target = tmp_path / "c.npz"
    started, go, errors = threading.Event(), threading.Event(), []
    real_getpid = os.getpid
    monkeypatch.setattr(os, "getpid", _a_dead_pid)

    def foreign_write(f):
        f.write(b"foreign")
        started.set()
        assert go.wait(30)

    def foreign():
        try:
            atomic_write(target, foreign_write)
        except BaseException as err:  # handed to the test below
            errors.append(err)

    writer = threading.Thread(target=foreign)
    writer.start()
    assert started.wait(30)
    monkeypatch.setattr(os, "getpid", real_getpid)
    try:
        atomic_write(target, lambda f: f.write(b"ours"))
    finally:
        go.set()
        writer.join(30)
    assert errors == [] and target.read_bytes() == b"foreign"  # the last rename wins
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


RACER = """
import sys
from minivae.files import atomic_write

payload = sys.argv[2].encode() * 100_000
for _ in range(60):
    atomic_write(sys.argv[1], lambda f: f.write(payload))
"""


@pytest.mark.skipif(os.name != "posix", reason="flock is POSIX")
def test_two_processes_writing_one_path_each_finish_and_the_last_wins(tmp_path):
    target = tmp_path / "m.json"
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(target), tag], stderr=subprocess.PIPE)
              for tag in "ab"]
    errors = [racer.communicate(timeout=120)[1].decode() for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], errors
    assert target.read_bytes() in (b"a" * 100_000, b"b" * 100_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_errors_name_the_final_file_not_the_part_or_none(tmp_path, monkeypatch):
    import errno

    target = tmp_path / "p.npz"
    # a full disk: the write fails with an error that names no file
    def full(f):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as err:
        atomic_write(target, full)
    assert err.value.errno == errno.ENOSPC and str(target) in str(err.value) and ".part" not in str(err.value)
    # a read-only file system: creating the temporary file fails with an error that names the temporary file
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(files.os, "open", read_only)
    with pytest.raises(OSError) as err:
        atomic_write(target, lambda f: f.write(b"data"))
    assert err.value.errno == errno.EROFS and str(target) in str(err.value) and ".part" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["", ".", "..", "some/folder/"])
def test_a_path_that_names_no_file_is_one_sentence(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="names no file"):
        atomic_write(path, lambda f: f.write(b"data"))
    from minivae import save_params

    with pytest.raises(ValueError, match="names no file"):
        save_params(path, {"w": numpy.ones(2)})
    assert list(tmp_path.iterdir()) == []


def _refused_without_blocking(read, path, what: str) -> str:
    """The message of the ValueError that ``read(path)`` raises, which must come within 10 s (a hang fails)."""
    import threading

    outcome = []

    def call():
        try:
            read(path)
        except Exception as err:  # handed to the test below
            outcome.append(err)
        else:
            outcome.append(None)

    reader = threading.Thread(target=call, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive() and stat.S_ISFIFO(os.stat(path).st_mode):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # free the blocked reader before failing
    assert outcome, f"{what} blocked on {path}"
    assert isinstance(outcome[0], ValueError), outcome
    assert str(path) in str(outcome[0]) and "not a regular file" in str(outcome[0])
    return str(outcome[0])


@pytest.mark.skipif(os.name != "posix", reason="FIFOs, devices and sockets are POSIX")
def test_fifos_devices_sockets_and_folders_are_refused_without_blocking(tmp_path):
    import socket

    fifo = tmp_path / "params.npz"
    os.mkfifo(fifo)
    assert "FIFO" in _refused_without_blocking(lambda p: files.open_regular(p, "params file"), fifo, "open_regular")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    try:
        assert "socket" in _refused_without_blocking(lambda p: files.open_regular(p, "x"), tmp_path / "sock", "open")
    finally:
        server.close()
    assert "character device" in _refused_without_blocking(lambda p: files.open_regular(p, "x"), "/dev/null", "open")
    assert "folder" in _refused_without_blocking(lambda p: files.open_regular(p, "x"), tmp_path, "open")
    regular = tmp_path / "r.bin"
    regular.write_bytes(b"abc")
    with files.open_regular(regular, "x") as f:
        assert f.read() == b"abc"
    with pytest.raises(FileNotFoundError):
        files.open_regular(tmp_path / "missing", "x")


@pytest.mark.skipif(os.name != "posix", reason="FIFOs are POSIX")
def test_load_params_and_checkpoints_refuse_a_fifo_without_blocking(tmp_path):
    from minivae.checkpoint import load_checkpoint, load_params

    fifo = tmp_path / "c.npz"
    os.mkfifo(fifo)
    _refused_without_blocking(load_params, fifo, "load_params")
    _refused_without_blocking(load_checkpoint, fifo, "load_checkpoint")


def test_atomic_write_errors_name_the_file_not_the_deleted_temporary(tmp_path):
    folder = tmp_path / "taken"
    (folder / "inside").mkdir(parents=True)
    with pytest.raises(OSError) as err:
        atomic_write(folder, lambda f: f.write(b"data"))
    assert str(folder) in str(err.value) and ".part" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]

    def failing(f):
        raise ValueError("the writer's own error")

    with pytest.raises(ValueError, match="the writer's own error"):
        atomic_write(tmp_path / "f.bin", failing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_atomic_write_fsyncs_the_file_and_then_its_folder(tmp_path, monkeypatch):
    import stat

    synced = []
    real_fsync = os.fsync

    def recording(fd):
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", recording)
    atomic_write(tmp_path / "f.bin", lambda f: f.write(b"data"))
    assert synced == ["file", "folder"]


def test_output_paths_that_cannot_be_written_are_refused(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match="checkpoint=.* is a folder"):
        check_output_path(tmp_path, "checkpoint")
    with pytest.raises(ValueError, match="metrics_path=.* lies under .*a_file, which is a file"):
        check_output_path(tmp_path / "a_file" / "sub" / "m.json", "metrics_path")
    check_output_path(tmp_path / "new" / "deeper" / "c.npz", "checkpoint")  # folders still to be made are fine
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="not writable"):
            check_output_path(locked / "c.npz", "checkpoint")

