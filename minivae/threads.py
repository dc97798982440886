r"""How many BLAS threads NumPy's matrix products use while minivae trains: one, unless you ask for more.

Why minivae chooses. NumPy's BLAS (OpenBLAS) starts one thread per core and splits every product between
them. The products of these models are small (a 100 × 784 batch times a 784 × 400 layer is 63 MFLOP, half a
millisecond), so each one ends in a wait for the slowest thread, and OpenBLAS's threads *spin* while they wait.
On a machine where two other processes keep both cores busy, a second thread waits for a core another process
holds: a 784-400-20 VAE step took 135 ms instead of 12, and ``05 --quick`` trained 52 s instead of 4. One thread
never waits for another.

Why one, and not the free cores. A count that followed the machine's load would change the numbers: OpenBLAS
splits a product differently for 1 and 2 threads, and the sums come out different in their last bits, so a run,
its resume and its rerun would no longer agree bit for bit (minivae promises that they do). So the default is a
fixed count, and the fixed count that never stalls is 1. On a quiet 2-core machine two threads take a VAE step at
batch 100 in 2.9 ms against 4.2 ms for one, but a whole ``05 --quick`` trained in 1.0–1.25 s with two and
1.2 s with one (the products are a part of each step). Ask for more with ``--threads N`` or ``MINIVAE_THREADS``.

Who decides, first match wins: an explicit ``n``; a ``--threads`` flag of a walkthrough
(:func:`set_blas_threads` with a number, for the whole run); the environment variable ``MINIVAE_THREADS``;
the default, 1. :func:`minivae.train.fit` runs under :func:`blas_threads`. The cap uses threadpoolctl, which
sets the BLAS library's own thread count at run time and puts the old one back afterwards.
"""

from __future__ import annotations

import os
from contextlib import ContextDecorator
from typing import Any

import numpy
from threadpoolctl import ThreadpoolController, threadpool_info

VARIABLE = "MINIVAE_THREADS"
DEFAULT = 1  # a fixed count, so that the numbers never depend on the machine's load
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
    1 (see the module's docstring)."""
    if n is not None:
        return check_threads(n)
    if "threads" in _run:
        return _run["threads"]
    if os.environ.get(VARIABLE, "") != "":
        return check_threads(os.environ[VARIABLE], VARIABLE)
    return DEFAULT


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
    r"""``with blas_threads(): ...`` (or ``@blas_threads()``): BLAS on 1 thread (or ``n``, or
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
