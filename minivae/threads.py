r"""How many BLAS threads NumPy's matrix products use while minivae trains: the cores that are free, at most 4.

threads = min(4, free cores), at least 1; free cores = usable cores − other runnable tasks.

Why minivae chooses. NumPy's BLAS (OpenBLAS) starts one thread per core and splits every product between
them. The products of these models are small (a 100 × 784 batch times a 784 × 400 layer is 63 MFLOP, half a
millisecond), so each one ends in a wait for the slowest thread, and OpenBLAS's threads *spin* while they wait.
On a quiet 2-core machine that is fine: two threads take a 784-400-20 VAE step at batch 100 in 2.9 ms against
4.2 ms for one. On a machine where two other processes keep both cores busy, a second thread waits for a core
another process holds, and the same step took 135 ms instead of 12 (``05 --quick``: 52 s instead of 4 s). So
the default counts the cores that are free *when training starts* (other runnable tasks, from ``/proc/stat``,
minus this process's own threads) and uses that many threads: all of them on a quiet machine, one on a busy
one. It stops at 4: past a few threads a 100-row product splits into slivers whose wake-ups cost more than
they save (measured here only up to 2 cores). Without ``/proc/stat`` (macOS, Windows) it takes the usable
cores, at most 4.

Who decides, first match wins: an explicit ``n``; a ``--threads`` flag of a walkthrough
(:func:`set_blas_threads` with a number, for the whole run); the environment variable ``MINIVAE_THREADS``;
the default above. :func:`minivae.train.fit` runs under :func:`blas_threads`. The cap uses threadpoolctl,
which sets the BLAS library's own thread count at run time and puts the old one back afterwards.
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import ContextDecorator
from pathlib import Path
from typing import Any

import numpy
from threadpoolctl import ThreadpoolController, threadpool_info

VARIABLE = "MINIVAE_THREADS"
MAX_DEFAULT = 4
_controller: list = []  # one ThreadpoolController, made on first use (it scans the loaded libraries once)
_run: dict = {}  # "threads": the count a walkthrough's --threads set for the whole run


def check_threads(value: Any, name: str = "threads") -> int:
    r"""``value`` as a thread count ≥ 1 (an int, or a string of digits), else one ``ValueError`` sentence."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text.isdigit():
        text = int(text)
    if isinstance(text, bool) or not isinstance(text, (int, numpy.integer)) or text < 1:
        raise ValueError(f"{name} must be a whole number of BLAS threads of at least 1 (e.g. 1 or 2), got "
                         f"{value!r}.")
    return int(text)


def choose_threads(n: int | None = None) -> int:
    r"""The BLAS thread count minivae uses: ``n``, else the run's ``--threads``, else ``$MINIVAE_THREADS``, else
    min(4, free cores) (see the module's docstring)."""
    if n is not None:
        return check_threads(n)
    if "threads" in _run:
        return _run["threads"]
    if os.environ.get(VARIABLE, "") != "":
        return check_threads(os.environ[VARIABLE], VARIABLE)
    return default_threads()


def default_threads() -> int:
    r"""min(4, usable cores − other runnable tasks), at least 1; usable cores (at most 4) without ``/proc/stat``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    others = other_runnable()
    free = cores if others is None else cores - others
    return max(1, min(MAX_DEFAULT, free))


def other_runnable(samples: int = 5, gap: float = 0.002) -> int | None:
    r"""Tasks of other processes that are running or waiting for a core now: the median over ``samples`` looks
    ``gap`` seconds apart of ``procs_running`` (``/proc/stat``, this machine) minus this process's own running
    threads (its BLAS threads may still be spinning). None where ``/proc/stat`` does not exist."""
    counts = []
    for i in range(samples):
        if i:
            time.sleep(gap)
        try:
            running = _procs_running(Path("/proc/stat").read_text())
        except OSError:
            return None
        counts.append(max(0, running - _own_running()))
    return int(statistics.median(counts))


def _procs_running(stat: str) -> int:
    # the "procs_running N" line of /proc/stat: tasks running or runnable, machine-wide
    return next(int(line.split()[1]) for line in stat.splitlines() if line.startswith("procs_running"))


def _own_running() -> int:
    # this process's threads in state R (the field after the command name in /proc/self/task/*/stat)
    count = 0
    for task in Path("/proc/self/task").glob("*/stat"):
        try:
            text = task.read_text()
        except OSError:  # the thread ended meanwhile
            continue
        count += text[text.rindex(")") + 2] == "R"
    return count


def _limit(n: int) -> Any:
    # threadpoolctl's limiter for the BLAS libraries NumPy loaded; .restore_original_limits() undoes it
    if not _controller:
        _controller.append(ThreadpoolController())
    return _controller[0].limit(limits=n, user_api="blas")


class BlasThreads(ContextDecorator):
    r"""NumPy's BLAS on :func:`choose_threads` (``n``) threads inside, the previous count restored on leaving.

    Decided on each entry, so a decorated function (``@blas_threads()``) looks at the machine on every call.
    """

    def __init__(self, n: int | None = None) -> None:
        self.n = None if n is None else check_threads(n)
        self._limiters: list = []
        self.threads = 0

    def __enter__(self) -> BlasThreads:
        self.threads = choose_threads(self.n)
        self._limiters.append(_limit(self.threads))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._limiters.pop().restore_original_limits()


def blas_threads(n: int | None = None) -> BlasThreads:
    r"""``with blas_threads(): ...`` (or ``@blas_threads()``): BLAS on min(4, free cores) threads (or ``n``, or
    ``$MINIVAE_THREADS``) inside, NumPy's previous setting after; ``.threads`` says how many were chosen."""
    return BlasThreads(n)


def set_blas_threads(n: int | None = None) -> int:
    r"""Cap NumPy's BLAS for the rest of the process (a walkthrough's ``--threads``); return the count.

    With a number, every later :func:`blas_threads` (and so :func:`minivae.train.fit`) uses it too; with
    None, the count is :func:`choose_threads`'s choice now, and later ones choose again.
    """
    _run.pop("threads", None)
    threads = choose_threads(n)
    if n is not None:
        _run["threads"] = threads
    _limit(threads)
    return threads


def blas_info() -> list[dict]:
    r"""threadpoolctl's view of NumPy's BLAS: ``[{"internal_api", "version", "num_threads", ...}]``."""
    return [info for info in threadpool_info() if info.get("user_api") == "blas"]
