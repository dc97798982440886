r"""Is this checkout slower than an earlier commit? Both minivae's, PyTorch and NumPy by hand, in one process.

The step that ``fit`` runs (``value_and_grad`` of the 784-400-20 VAE's loss, ``float(loss)``, an Adam step) is timed
for the package as it is now and for the package of ``--commit`` (its ``minivae/`` taken out of git into a temporary
folder and imported as ``minivae_then``), interleaved round by round beside the PyTorch and NumPy-by-hand contenders
of ``engines.py``, on one pinned CPU with one BLAS thread. On a shared machine only ratios measured this way mean
anything: the headline is the median over rounds of each paired ratio. Like every benchmark here it unsets
``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` for its own process and says so.

With ``--fit`` it times whole epochs of each package's ``fit`` instead (one ``fit`` call of one epoch per round,
the epoch's own ``seconds`` record: shuffling, noise, the guard and the steps), now against ``--commit`` only.

Run from the repository root: ``python benchmarks/against_commit.py --commit e703dfb [--n 2000 --rounds 15]
[--fit]``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _openblas import cpu_model, unset_openblas_vars  # noqa: E402

removed = unset_openblas_vars()
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
os.environ["MINIVAE_THREADS"] = "1"

import argparse  # noqa: E402
import importlib  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from io import BytesIO  # noqa: E402
from pathlib import Path  # noqa: E402

import engines  # noqa: E402
import numpy  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def package_of(commit: str, into: Path) -> str:
    """Write ``commit``'s ``minivae/`` into ``into/minivae_then/`` with its imports renamed; return the name."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "minivae"], check=True,
                             capture_output=True).stdout
    tarfile.open(fileobj=BytesIO(archive)).extractall(into)
    (into / "minivae").rename(into / "minivae_then")
    for path in (into / "minivae_then").rglob("*.py"):
        text = re.sub(r"\bminivae([.\s])", r"minivae_then\1", path.read_text())
        path.write_text(text.replace("import minivae\n", "import minivae_then\n"))
    sys.path.insert(0, str(into))
    return "minivae_then"


def fit_step_epoch(package: str, x: numpy.ndarray, eps: numpy.ndarray) -> callable:
    """An epoch of ``package``'s fit path: value_and_grad, float(loss), the Adam that package's fit runs."""
    grad = importlib.import_module(f"{package}.grad")
    models = importlib.import_module(f"{package}.models")
    objectives = importlib.import_module(f"{package}.objectives")
    try:  # the speed wing's Adam where the package has one, else its only Adam
        adam = importlib.import_module(f"{package}.fast.adam").Adam
    except ImportError:
        adam = importlib.import_module(f"{package}.optim").Adam
    vae = models.VAE(784, [400], 20)
    step, optimizer = grad.value_and_grad(objectives.vae_objective(vae).loss), adam(1e-3)
    state = {"params": vae.init(numpy.random.default_rng(1))}

    def epoch() -> None:
        params = state["params"]
        for i in range(len(eps)):
            value, grads = step(params, x[i * eps.shape[1]:(i + 1) * eps.shape[1]], eps[i])
            float(value)
            params = optimizer.step(params, grads)
        state["params"] = params

    return epoch


def fit_epoch(package: str, x: numpy.ndarray) -> callable:
    """One epoch of ``package``'s own ``fit`` (batch 100, seed 0), each round going on from the last one's params;
    returns the epoch's ``seconds`` record."""
    train = importlib.import_module(f"{package}.train")
    vae = importlib.import_module(f"{package}.models").VAE(784, [400], 20)
    objective = importlib.import_module(f"{package}.objectives").vae_objective(vae)
    state = {"params": vae.init(numpy.random.default_rng(1))}
    how = {"epochs": 1, "batch_size": 100, "seed": 0, "progress": False}
    # fit's settings as one value where the package has TrainSettings (issue 20), else as keywords
    how = {"settings": train.TrainSettings(**how)} if hasattr(train, "TrainSettings") else how

    def epoch() -> float:
        result = train.fit(objective, state["params"], x, **how)
        state["params"] = result.params
        return result.history[0]["seconds"]

    return epoch


def interleaved(contenders: dict, rounds: int) -> dict:
    """Each contender (a function returning its seconds) once per round, the order reversed every other round;
    round 0 warms up. Returns the seconds of each, round by round."""
    times: dict = {name: [] for name in contenders}
    for r in range(rounds + 1):
        for name in (list(contenders) if r % 2 else list(reversed(contenders))):
            seconds = contenders[name]()
            if r:
                times[name].append(seconds)
    return times


def timed(run: callable, steps: int) -> callable:
    """``run`` as a function returning its seconds per step."""
    def seconds() -> float:
        start = time.perf_counter()
        run()
        return (time.perf_counter() - start) / steps

    return seconds


def ratio(times: dict, a: str, b: str) -> float:
    return statistics.median(p / q for p, q in zip(times[a], times[b]))


def machine() -> str:
    return (f"CPU: {cpu_model()}; one pinned CPU, one BLAS thread; load {os.getloadavg()[0]:.1f}; "
            f"unset for this process: {', '.join(removed) or 'nothing'}")


def fit_epochs(commit: str, n: int, rounds: int) -> None:
    """``--fit``: whole epochs of fit, now against ``commit``, interleaved round by round."""
    x = engines.load_x(n)
    with tempfile.TemporaryDirectory() as folder, threadpool_limits(1, user_api="blas"):
        contenders = {"now": fit_epoch("minivae", x), commit: fit_epoch(package_of(commit, Path(folder)), x)}
        times = interleaved(contenders, rounds)
    print(machine())
    for name, seconds in times.items():
        print(f"{name:>14}: {1000 * statistics.median(seconds):.1f} ms per fit epoch of {n} (median of {rounds})")
    print(f"fit epoch, now / {commit}: {ratio(times, 'now', commit):.3f} (median paired ratio)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commit", required=True, help="the commit to compare with, e.g. e703dfb")
    parser.add_argument("--n", type=int, default=2000, help="examples per epoch (default 2,000: 20 steps)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds after a warm-up (default 15)")
    parser.add_argument("--fit", action="store_true", help="time whole epochs of each package's fit instead")
    args = parser.parse_args()
    if args.fit:
        return fit_epochs(args.commit, args.n, args.rounds)
    import torch

    torch.set_num_threads(1)
    x = engines.load_x(args.n)
    eps = numpy.random.default_rng(0).standard_normal((args.n // 100, 100, 20)).astype(numpy.float32)
    with tempfile.TemporaryDirectory() as folder, threadpool_limits(1, user_api="blas"):
        then = package_of(args.commit, Path(folder))
        vae = importlib.import_module("minivae.models").VAE(784, [400], 20)
        torch_epoch = engines.torch_engine(vae.init(numpy.random.default_rng(1)), None)
        by_hand = engines.numpy_by_hand(vae, vae.init(numpy.random.default_rng(1)), None)
        epochs = {"now": fit_step_epoch("minivae", x, eps), args.commit: fit_step_epoch(then, x, eps),
                  "PyTorch": lambda: torch_epoch(x, eps), "NumPy by hand": lambda: by_hand(x, eps)}
        times = interleaved({name: timed(run, len(eps)) for name, run in epochs.items()}, args.rounds)
    print(machine())
    for name, seconds in times.items():
        print(f"{name:>14}: {1000 * statistics.median(seconds):.2f} ms per step (median of {args.rounds})")
    for other in ("PyTorch", "NumPy by hand"):
        print(f"minivae / {other}: now {ratio(times, 'now', other):.3f}, "
              f"{args.commit} {ratio(times, args.commit, other):.3f}")
    print(f"now / {args.commit}: {ratio(times, 'now', args.commit):.3f} (median paired ratio)")


if __name__ == "__main__":
    main()
