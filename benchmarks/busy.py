r"""The training step on a quiet machine and on a busy one: minivae, PyTorch and JAX, each at its default threads.

The 784-400-20 Bernoulli VAE of ``engines.py`` (same start, batches and noise everywhere, float32, Adam(1e-3)),
one epoch per engine and round, in two conditions that alternate round by round:

- **quiet**: nothing else started by this benchmark (other jobs of the machine are not under its control: the
  load average is printed with every result);
- **busy**: two processes that never sleep (``python -c "while True: pass"``), started by this benchmark before
  the round and killed after it, keep two cores busy.

Engines, each as a user gets it, with no thread setting of ours: ``minivae`` (the ``fit`` path under
:func:`minivae.threads.blas_threads` at its default, one thread; an earlier version counted the free cores),
``minivae, NumPy's threads`` (the same step with NumPy's default BLAS threads: minivae before it chose them),
``pytorch`` (eager, ``torch.get_num_threads()`` threads) and ``jax`` (one ``jax.jit`` step, XLA's default
thread pool; compiled before timing). The numbers: ms per step (median over rounds), CPU time / wall time,
and the median over rounds of busy / quiet. Like ``vs_jax.py`` it unsets ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` for its own process and says so. Run from the repository root::

    python benchmarks/busy.py                  # batch 100, 5 rounds of 3,000 examples: about 2 minutes
    python benchmarks/busy.py --quick          # a smoke test
    python benchmarks/busy.py --json benchmarks/results/busy.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _openblas import cpu_model, unset_openblas_vars  # noqa: E402

ENGINES = ("minivae", "minivae, NumPy's threads", "pytorch", "jax")
SPIN = "while True: pass"


@contextmanager
def hogs(n: int = 2) -> Iterator[list]:
    """``n`` processes that never sleep, for the body of the ``with``; killed (and reaped) when it ends."""
    procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(n)]
    try:
        # let them reach their loop, so that the body starts on a busy machine
        time.sleep(0.5)
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


def build(params: dict, batch: int, x: Any, eps: Any) -> dict[str, Callable]:
    """``name -> epoch(x, eps, threads)`` for each engine; only ``minivae`` uses ``threads`` (the caller's choice)."""
    import engines

    from minivae.models import VAE
    from minivae.threads import blas_threads

    vae = VAE(784, [400], 20)
    capped, plain = engines.minivae_fit_path(vae, params, None), engines.minivae_fit_path(vae, params, None)
    jax_epoch, compile_step = engines.jax_engine(params, None)
    compile_step(x[:batch], eps[0])

    def minivae(x: Any, eps: Any, threads: int) -> float:
        with blas_threads(threads):
            return capped(x, eps)

    def ignoring_threads(epoch: Callable) -> Callable:
        return lambda x, eps, threads: epoch(x, eps)

    return {"minivae": minivae, "minivae, NumPy's threads": ignoring_threads(plain),
            "pytorch": ignoring_threads(engines.torch_engine(params, None)), "jax": ignoring_threads(jax_epoch)}


def run(args: argparse.Namespace) -> dict:
    import statistics

    import engines
    import numpy
    import torch

    from minivae.models import VAE
    from minivae.threads import blas_info, choose_threads

    params = VAE(784, [400], 20).init(numpy.random.default_rng(0))
    steps = args.n // args.batch
    x, noise = engines.load_x(steps * args.batch), numpy.random.default_rng(1)
    epochs = build(params, args.batch, x, noise.standard_normal((1, args.batch, 20)).astype(numpy.float32))
    times = {(c, e): {"wall": [], "cpu": [], "threads": []} for c in ("quiet", "busy") for e in ENGINES}
    for round_ in range(args.rounds + 1):
        for condition in (("quiet", "busy") if round_ % 2 else ("busy", "quiet")):
            with hogs(2) if condition == "busy" else _nothing():
                eps = noise.standard_normal((steps, args.batch, 20)).astype(numpy.float32)
                # what fit would choose now, chosen outside the timed epoch (fit chooses once per call)
                chosen = choose_threads()
                for name in (ENGINES if round_ % 2 else ENGINES[::-1]):
                    wall, cpu = time.perf_counter(), time.process_time()
                    epochs[name](x, eps, chosen)
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    if round_ > 0:
                        for key, value in (("wall", wall), ("cpu", cpu), ("threads", chosen)):
                            times[condition, name][key].append(value)
        print(f"  {'warm-up' if round_ == 0 else f'round {round_}/{args.rounds}'} done, load average "
              f"{os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    blas = blas_info()[0]
    result = {"cpu": cpu_model(), "batch": args.batch, "steps": steps, "rounds": args.rounds,
              "numpy_blas": f"{blas['internal_api']} {blas['version']} kernel {blas['architecture']}, "
                            f"{blas['num_threads']} thread(s) by default", "torch_threads": torch.get_num_threads(),
              "load_after": os.getloadavg()[0], "rows": {}}
    for (condition, name), t in times.items():
        result["rows"].setdefault(condition, {})[name] = {
            "ms_per_step": statistics.median(t["wall"]) / steps * 1e3,
            "cpu_over_wall": statistics.median(c / w for c, w in zip(t["cpu"], t["wall"])),
            "minivae_threads": sorted(set(t["threads"])) if name == "minivae" else None}
    result["busy_over_quiet"] = {name: statistics.median(b / q for b, q in zip(times["busy", name]["wall"],
                                                                               times["quiet", name]["wall"]))
                                 for name in ENGINES}
    return result


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def report(r: dict) -> str:
    lines = [f"CPU: {r['cpu']}; NumPy BLAS: {r['numpy_blas']}; PyTorch: {r['torch_threads']} threads; JAX: XLA's "
             f"default pool", f"batch {r['batch']}, {r['steps']} steps per epoch, median over {r['rounds']} rounds; "
             f"ms per step (CPU time / wall time)",
             "| machine | " + " | ".join(ENGINES) + " |", "|---|" + "---:|" * len(ENGINES)]
    for condition, row in r["rows"].items():
        cells = [f"{row[e]['ms_per_step']:.1f} ({row[e]['cpu_over_wall']:.2f})" for e in ENGINES]
        lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    lines.append("| busy / quiet | " + " | ".join(f"{r['busy_over_quiet'][e]:.2f}" for e in ENGINES) + " |")
    lines.append("minivae chose " + ", ".join(f"{c}: {row['minivae']['minivae_threads']} thread(s)"
                                             for c, row in r["rows"].items())
                 + f"; load average after: {r['load_after']:.2f}; CPU: {r['cpu']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    unset = unset_openblas_vars()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke test: 500 examples, 1 round")
    p.add_argument("--batch", type=int, default=100, help="rows per step (default 100)")
    p.add_argument("--n", type=int, default=None, help="examples per epoch (default 3,000; --quick 500)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds after a warm-up (default 5; --quick 1)")
    p.add_argument("--json", type=str, default=None, help="also write the result to this JSON file")
    args = p.parse_args(argv)
    args.n, args.rounds = args.n or (500 if args.quick else 3000), args.rounds or (1 if args.quick else 5)
    import datetime

    print(f"quiet vs busy machine, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; CPU: "
          f"{cpu_model()}; {os.cpu_count()} logical CPUs; load average {os.getloadavg()[0]:.2f}")
    print("OpenBLAS variables: " + ("unset for this benchmark's process: " + ", ".join(
        f"{k}={v}" for k, v in unset.items()) if unset else "none were set"), flush=True)
    result = run(args)
    print(report(result))
    if args.json:
        import json
        from pathlib import Path

        print(f"wrote {Path(args.json)}", Path(args.json).write_text(json.dumps(result, indent=1)), "characters")


if __name__ == "__main__":
    main()
