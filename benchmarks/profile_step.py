r"""Where the time of minivae's VAE training step goes: a phase breakdown and a cProfile listing.

Phases, each timed in CPU time of this process over the same batches (median of ``--repeats`` epochs; CPU
time, because on a shared machine wall time mostly measures the other processes):

- ``forward``: the loss alone, ``vae_objective(vae).loss(params, x, eps)``, no tracing;
- ``value_and_grad``: autograd's forward trace plus backward pass, and the two halves of it: ``trace`` (the
  forward pass on autograd's boxes) and ``backward`` (the vjps and the bookkeeping between them), timed by
  :func:`split_value_and_grad`: ``minivae.grad.value_and_grad``'s two halves with a clock in between;
- ``adam``: ``Adam.step`` on gradients of the right shapes;
- ``matmuls``: the step's matrix products alone (the floor of ``epoch_time.py``).

Then cProfile (CPU-time clock) of full training epochs, sorted by own time (``tottime``), so the Python
overhead of autograd's tracer shows next to the NumPy kernels. Like ``epoch_time.py`` it unsets
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` for its own process and uses one BLAS thread unless
``--threads`` says otherwise::

    python benchmarks/profile_step.py [--hidden 400] [--batch-size 100] [--top 25]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _openblas import unset_openblas_vars  # noqa: E402

UNSET = unset_openblas_vars()

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import engines  # noqa: E402
import epoch_time  # noqa: E402
import numpy  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from minivae.grad import (  # noqa: E402
    backward_to_leaves,
    trace_per_leaf,
    value_and_grad,
)
from minivae.models import VAE  # noqa: E402
from minivae.objectives import vae_objective  # noqa: E402
from minivae.optim import Adam  # noqa: E402
from minivae.tree import tree_leaves  # noqa: E402


def split_value_and_grad(loss: Any, params: Any, x: Any, eps: Any) -> tuple[float, float]:
    """CPU seconds of the trace and of the backward pass of ``minivae.grad.value_and_grad(loss)``."""
    start = time.process_time()
    end, _, roots = trace_per_leaf(loss, params, x, eps)
    middle = time.process_time()
    backward_to_leaves(end, roots)
    return middle - start, time.process_time() - middle


def main() -> None:
    p = argparse.ArgumentParser(description="phase breakdown and cProfile of minivae's VAE step")
    p.add_argument("--hidden", type=str, default="400")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--z-dim", type=int, default=20)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    hidden = [int(h) for h in args.hidden.split(",")]
    print("OpenBLAS variables unset for this process:", UNSET or "none were set")
    with threadpool_limits(limits=args.threads, user_api="blas"):
        profile(args, hidden)


def profile(args: argparse.Namespace, hidden: list[int]) -> None:
    x = epoch_time.load_data("mnist5k", args.n, 0)
    vae = VAE(784, hidden, args.z_dim)
    params = vae.init(numpy.random.default_rng(0))
    loss = vae_objective(vae).loss
    grad_fn = value_and_grad(loss)
    steps = len(x) // args.batch_size
    eps = numpy.random.default_rng(1).standard_normal((steps, args.batch_size, args.z_dim)).astype(numpy.float32)
    batches = [x[i * args.batch_size:(i + 1) * args.batch_size] for i in range(steps)]
    _, grads = grad_fn(params, batches[0], eps[0])
    opt = Adam(1e-3)
    state = {"p": params}

    def adam_epoch() -> None:
        for _ in range(steps):
            state["p"] = opt.step(state["p"], grads)

    def run_each(fn: Any) -> None:
        # results are dropped step by step, as in training (keeping 50 steps of gradients alive would make
        # every step write to fresh memory and time the page faults)
        for b, e in zip(batches, eps):
            fn(params, b, e)

    enc, dec = [784, *hidden], [args.z_dim, *reversed(hidden), 784]
    floor = epoch_time.floor_epoch(enc, dec, args.z_dim, args.batch_size, 0)
    phases = {
        "forward": lambda: run_each(loss),
        "value_and_grad": lambda: run_each(grad_fn),
        "adam": adam_epoch,
        "matmuls": lambda: floor(x, eps),
    }
    times = {name: [] for name in [*phases, "  trace", "  backward"]}
    for _ in range(args.repeats + 1):
        for name, fn in phases.items():
            start = time.process_time()
            fn()
            times[name].append((time.process_time() - start) / steps)
        halves = [split_value_and_grad(loss, params, b, e) for b, e in zip(batches, eps)]
        times["  trace"].append(sum(h[0] for h in halves) / steps)
        times["  backward"].append(sum(h[1] for h in halves) / steps)
    print(f"\nCPU time per step (median of {args.repeats}), VAE 784-{args.hidden}-{args.z_dim}, "
          f"batch {args.batch_size}:")
    for name, t in times.items():
        print(f"  {name:<16} {statistics.median(t[1:]) * 1e3:8.3f} ms")
    adam_roofline(params, statistics.median(times["adam"][1:]))

    train = engines.minivae_fit_path(vae, params, None)
    train(x, eps)
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(args.repeats):
        train(x, eps)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
    print(f"\ncProfile of {args.repeats} training epochs ({args.repeats * steps} steps), by own time:")
    print(out.getvalue())


def adam_roofline(params: Any, adam_seconds: float, repeats: int = 51) -> None:
    """Adam's memory traffic against one NumPy pass: any Adam must read θ, g, m, v and write θ, m, v (7 array
    streams); NumPy's twelve in-place passes stream about 31. One pass ``c = a + b`` over as many float32
    entries as the params (3 streams) is timed, and the fused minimum estimated as 7/3 of it."""
    n = sum(a.size for a in tree_leaves(params))
    a, b, c = (numpy.ones(n, numpy.float32) for _ in range(3))
    passes = []
    for _ in range(repeats):
        start = time.process_time()
        numpy.add(a, b, out=c)
        passes.append(time.process_time() - start)
    one = statistics.median(passes)
    print(f"\nAdam roofline, {n:,} float32 parameters ({4 * n / 2**20:.1f} MiB per array):")
    print(f"  one pass c = a + b (3 array streams)     {one * 1e3:8.3f} ms")
    print(f"  fused Adam, 7 streams (7/3 of that)      {one * 7 / 3 * 1e3:8.3f} ms  (what JAX's one kernel needs)")
    print(f"  minivae's Adam.step, 12 NumPy passes     {adam_seconds * 1e3:8.3f} ms  "
          f"({adam_seconds / one:.1f} x one pass)")


if __name__ == "__main__":
    main()
