"""minivae.files: the one atomic writer (umask, kill -9 leftovers, error messages, fsync) and output-path checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

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
    f.write(b"x" * 1000)
    f.flush()
    print("writing", flush=True)
    time.sleep(60)

atomic_write(sys.argv[1], write)
"""


@pytest.mark.skipif(os.name != "posix", reason="kill -9 and pid probes are POSIX")
def test_parts_left_by_a_kill_9_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "c.npz"
    writers = [subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target)], stdout=subprocess.PIPE)
               for _ in range(2)]
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
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == sorted([".c.npz.1.abcd.part.npz", f".c.npz.{writers[1].pid}." + left[1].split(".")[-2]
                               + ".part", "c.npz"])
    finally:
        writers[1].kill()
        writers[1].wait()
    assert target.read_bytes() == b"new"


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

