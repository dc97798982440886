r"""minivae against JAX and PyTorch on the same CPU, one core and all cores, with the matmul floor and sgemm peak.

The 784-400-20 Bernoulli VAE of ``engines.py`` (identical initial parameters, batches and noise in every
engine, float32, Adam(1e-3)) is trained in rounds of one epoch per engine and row:

- rows: batch 32, 100 and 500 (the negative ELBO), and the IWAE bound with k = 5 at batch 100;
- columns: minivae's ``fit`` path (``minivae.grad.value_and_grad`` + ``Adam.step``, also the README's
  hand-written loop), the same step written out in NumPy with a hand-derived backward pass and no tracer
  (``numpy by hand``: what any engine built on NumPy's kernels needs), the loop a reader would write with
  stock ``autograd.value_and_grad``, JAX (the whole step, loss, gradient and Adam, under one ``jax.jit``;
  compile time reported on its own), PyTorch 2.13 eager, and the NumPy matmul floor (the step's matrix products alone);
- the single-core (and all-core) sgemm peak of this machine, measured with NumPy's BLAS on 1024×1024 float32
  matrices, so each engine's rate of matmul FLOPs reads as a fraction of the physical limit.

Each thread count runs in its own process (XLA reads its flags when JAX is imported): every engine there gets
that many threads, set explicitly (threadpoolctl for NumPy's BLAS, ``torch.set_num_threads``, XLA's
``--xla_cpu_multi_thread_eigen`` and ``intra_op_parallelism_threads``), and with one thread the process is
pinned to one CPU (``os.sched_setaffinity``), because XLA's flags alone still let JAX use two cores. Each
engine's CPU time over wall time is printed, to prove the count. Inside a process the engines are interleaved
(the order alternates between rounds, after one untimed warm-up round), and the headline numbers are medians
over rounds of the paired ratios. The script unsets ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` for its own
processes (by re-executing itself) and says so. Run from the repository root, with ``pip install -e '.[bench]'``::

    python benchmarks/vs_jax.py                 # the full table: about 5 minutes on 2 cores
    python benchmarks/vs_jax.py --quick         # a smoke test: seconds
    python benchmarks/vs_jax.py --json benchmarks/results/vs_jax.json
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _openblas import cpu_model, unset_openblas_vars  # noqa: E402

ROWS = {"b32": (32, None), "b100": (100, None), "b500": (500, None), "iwae5-b100": (100, 5)}
ENGINES = ("minivae", "numpy by hand", "autograd loop", "jax", "pytorch", "floor")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke test: 1,000 examples, 2 rounds")
    p.add_argument("--threads", type=str, default="1,all",
                   help="comma-separated thread counts, one process each ('all' = every CPU this process may "
                        "use; default 1,all)")
    p.add_argument("--rows", type=str, default=",".join(ROWS), help=f"subset of {','.join(ROWS)}")
    p.add_argument("--n", type=int, default=None, help="examples per epoch (default 6,000; --quick 1,000)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds after the warm-up (default 5; --quick 2)")
    p.add_argument("--cpu", type=int, default=None, help="the CPU the one-thread process is pinned to "
                   "(default: the first this process may use)")
    p.add_argument("--no-autograd-loop", action="store_true", help="skip the stock-autograd loop (the slowest)")
    p.add_argument("--json", type=str, default=None, help="also write all results to this JSON file")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=str, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.n = args.n or (1000 if args.quick else 6000)
    args.rounds = args.rounds or (2 if args.quick else 5)
    unknown = set(args.rows.split(",")) - set(ROWS)
    if unknown:
        p.error(f"--rows: unknown {sorted(unknown)}; choose from {','.join(ROWS)}")
    return args


def thread_counts(spec: str) -> list[int]:
    allowed = len(os.sched_getaffinity(0))
    return [allowed if t == "all" else int(t) for t in spec.split(",")]


def xla_flags(threads: int) -> str:
    return (f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
            f"intra_op_parallelism_threads={threads}")


# ---------------------------------------------------------------- the parent: one worker process per thread count


def main(argv: list[str] | None = None) -> None:
    unset = unset_openblas_vars()
    args = parse_args(argv)
    if args.worker is not None:
        return worker(args)
    import datetime
    import json
    import subprocess
    import tempfile

    print(f"minivae vs JAX vs PyTorch, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"CPU: {cpu_model()}; {os.cpu_count()} logical CPUs, this process may use "
          f"{sorted(os.sched_getaffinity(0))}; load average {os.getloadavg()[0]:.2f}")
    print("OpenBLAS variables: " + ("unset for this benchmark's processes: " + ", ".join(
        f"{k}={v}" for k, v in unset.items()) if unset else "none were set"), flush=True)
    results = []
    for threads in thread_counts(args.threads):
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            out = f.name
        env = dict(os.environ, XLA_FLAGS=xla_flags(threads), OMP_NUM_THREADS=str(threads),
                   OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        cmd = [sys.executable, os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:]),
               "--worker", str(threads), "--worker-out", out]
        subprocess.run(cmd, env=env, check=True)
        with open(out) as f:
            results.append(json.load(f))
        os.unlink(out)
        if args.json:
            # after every thread count, so that an interrupted run keeps what it measured
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
    print("\n" + summary(results))
    if args.json:
        print(f"wrote {args.json}")


# ---------------------------------------------------------------- the worker: every engine on `threads` threads


def worker(args: argparse.Namespace) -> None:
    threads = args.worker
    allowed = sorted(os.sched_getaffinity(0))
    cpus = {args.cpu if args.cpu is not None else allowed[0]} if threads == 1 else set(allowed[:threads])
    # pinned before NumPy, torch and JAX start their threads, so every thread inherits it
    os.sched_setaffinity(0, cpus)

    import json

    import numpy
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        import jax

        result = {"threads": threads, "cpus": sorted(cpus), "xla_flags": os.environ.get("XLA_FLAGS"),
                  "blas": [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                           for i in threadpool_info() if i.get("user_api") == "blas"],
                  "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                  "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "jax": jax.__version__,
                  "numpy": numpy.__version__, "cpu": cpu_model(), "load_before": os.getloadavg()[0]}
        result["sgemm_peak_gflops"] = sgemm_peak()
        print(header(result), flush=True)
        result["rows"] = run_rows(args, result)
        result["load_after"] = os.getloadavg()[0]
    print(row_table(result) + "\n\n" + summary([result]), flush=True)
    with open(args.worker_out, "w") as f:
        json.dump(result, f, indent=1)


def sgemm_peak(size: int = 1024, repeats: int = 15) -> float:
    """The best rate of ``A @ B`` for float32 ``size × size`` matrices, in GFLOP/s, over ``repeats`` tries."""
    import time

    import numpy

    a = numpy.random.default_rng(0).random((size, size), dtype=numpy.float32)
    a @ a
    best = min(_seconds(lambda: a @ a, time.perf_counter) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _seconds(fn, clock) -> float:
    start = clock()
    fn()
    return clock() - start


def build(name: str, params: dict, batch: int, k: int | None) -> tuple:
    """``(epoch, compile seconds or None)`` for one engine and row."""
    import engines

    from minivae.models import VAE

    vae = VAE(784, [400], 20)
    if name == "minivae":
        return engines.minivae_fit_path(vae, params, k), None
    if name == "numpy by hand":
        return engines.numpy_by_hand(vae, params, k), None
    if name == "autograd loop":
        return engines.autograd_loop(vae, params, k), None
    if name == "pytorch":
        return engines.torch_engine(params, k), None
    if name == "floor":
        return engines.floor_engine(params, batch, k), None
    return engines.jax_engine(params, k), "compile"


def run_rows(args: argparse.Namespace, env: dict) -> dict:
    import statistics
    import time

    import engines
    import numpy

    from minivae.models import VAE

    names = [e for e in ENGINES if not (args.no_autograd_loop and e == "autograd loop")]
    params = VAE(784, [400], 20).init(numpy.random.default_rng(0))
    rows = {}
    for label in args.rows.split(","):
        batch, k = ROWS[label]
        steps = args.n // batch
        x = engines.load_x(steps * batch)
        shape = (steps, batch, 20) if k is None else (steps, k, batch, 20)
        noise = numpy.random.default_rng(1)
        epochs, compile_s = {}, None
        for name in names:
            epochs[name], how = build(name, params, batch, k)
            if how == "compile":
                epochs[name], compile_step = epochs[name]
                compile_s = compile_step(x[:batch], noise.standard_normal(shape[1:]).astype(numpy.float32))
        rows[label] = {"batch": batch, "k": k, "steps": steps, "n": steps * batch, "epochs": epochs,
                       "noise": noise, "shape": shape, "compile_s": compile_s,
                       "flops_per_step": engines.step_flops(params, batch, k),
                       "wall": {n: [] for n in names}, "cpu": {n: [] for n in names}, "loss": {}, "x": x}
    # round 0 is the warm-up; rows and engines interleave, the engine order alternating between rounds
    for round_ in range(args.rounds + 1):
        for row in rows.values():
            eps = row["noise"].standard_normal(row["shape"]).astype(numpy.float32)
            for name in (names if round_ % 2 == 0 else names[::-1]):
                wall, cpu = time.perf_counter(), time.process_time()
                loss = row["epochs"][name](row["x"], eps)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                if round_ > 0:
                    row["wall"][name].append(wall)
                    row["cpu"][name].append(cpu)
                    row["loss"][name] = loss
        done = "warm-up" if round_ == 0 else f"round {round_}/{args.rounds}"
        print(f"  [{env['threads']} thread(s)] {done} done, load average {os.getloadavg()[0]:.2f}",
              file=sys.stderr, flush=True)
    out = {}
    for label, row in rows.items():
        wall, cpu, steps = row["wall"], row["cpu"], row["steps"]
        med = {n: statistics.median(t) / steps for n, t in wall.items()}

        def paired(a: str, b: str, wall: dict = wall) -> float | None:
            return statistics.median(p / q for p, q in zip(wall[a], wall[b])) if a in wall and b in wall else None

        out[label] = {
            "batch": row["batch"], "k": row["k"], "n": row["n"], "steps": steps, "jax_compile_s": row["compile_s"],
            "flops_per_step": row["flops_per_step"], "ms_per_step": {n: t * 1e3 for n, t in med.items()},
            "cpu_over_wall": {n: statistics.median(c / w for c, w in zip(cpu[n], wall[n])) for n in wall},
            "gflops": {n: row["flops_per_step"] / t / 1e9 for n, t in med.items()},
            "ratios": {f"{a}/{b}": paired(a, b) for a, b in (("minivae", "jax"), ("minivae", "pytorch"),
                                                             ("minivae", "floor"), ("minivae", "numpy by hand"),
                                                             ("numpy by hand", "jax"), ("autograd loop", "pytorch"),
                                                             ("jax", "floor"), ("pytorch", "floor"))
                       if paired(a, b) is not None},
            "last_loss": row["loss"], "epoch_wall_s": wall, "epoch_cpu_s": cpu,
        }
    return out


# ---------------------------------------------------------------- reports


def header(r: dict) -> str:
    blas = ", ".join(f"{b['internal_api']} {b['version']} kernel {b['architecture']}, {b['num_threads']} thread(s)"
                     for b in r["blas"])
    pin = f"pinned to CPU {r['cpus'][0]}" if r["threads"] == 1 else f"on CPUs {r['cpus']}"
    return "\n".join([
        f"\n== {r['threads']} thread(s) per engine, process {pin} (sched_setaffinity)",
        f"NumPy {r['numpy']} BLAS (threadpoolctl): {blas}",
        f"PyTorch {r['torch']}: torch.set_num_threads({r['torch_threads']}), CPU capability "
        f"{r['torch_cpu_capability']}; JAX {r['jax']}: XLA_FLAGS='{r['xla_flags']}'",
        f"sgemm peak (NumPy, 1024x1024 float32, {r['threads']} thread(s)): {r['sgemm_peak_gflops']:.1f} GFLOP/s",
    ])


def row_table(r: dict) -> str:
    peak = r["sgemm_peak_gflops"]
    names = list(next(iter(r["rows"].values()))["ms_per_step"])
    lines = [f"\n{r['threads']} thread(s): ms per step (wall, median over rounds), and CPU time / wall time",
             "| row | " + " | ".join(names) + " | JAX compile (s) |", "|---|" + "---:|" * (len(names) + 1)]
    for label, row in r["rows"].items():
        cells = [f"{row['ms_per_step'][n]:.2f} ({row['cpu_over_wall'][n]:.2f})" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {row['jax_compile_s']:.2f} |")
    lines += ["", f"{r['threads']} thread(s): matmul GFLOP/s of each engine (fraction of the measured "
              f"{peak:.0f} GFLOP/s sgemm peak)", "| row | MFLOP/step | " + " | ".join(names) + " |",
              "|---|---:|" + "---:|" * len(names)]
    for label, row in r["rows"].items():
        cells = [f"{row['gflops'][n]:.0f} ({row['gflops'][n] / peak:.0%})" for n in names]
        lines.append(f"| {label} | {row['flops_per_step'] / 1e6:.0f} | " + " | ".join(cells) + " |")
    lines += ["", "last-batch loss (nats per example; the engines train the same model on the same batches):"]
    for label, row in r["rows"].items():
        lines.append(f"  {label}: " + ", ".join(f"{n} {v:.3f}" for n, v in row["last_loss"].items() if n != "floor"))
    lines.append(f"load average before/after: {r['load_before']:.2f} / {r['load_after']:.2f}")
    return "\n".join(lines)


def summary(results: list[dict]) -> str:
    keys = list(next(iter(results[0]["rows"].values()))["ratios"])
    lines = ["median paired ratios (wall time, same round; < 1 means the first is faster)",
             "| threads | row | " + " | ".join(keys) + " |", "|---:|---|" + "---:|" * len(keys)]
    for r in results:
        for label, row in r["rows"].items():
            lines.append(f"| {r['threads']} | {label} | " + " | ".join(f"{row['ratios'][k]:.2f}" for k in keys) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
