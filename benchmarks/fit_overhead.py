r"""What ``fit`` costs over the bare loop: an epoch through ``fit`` against value_and_grad + the fast Adam.

The 784-400-20 Bernoulli VAE of ``engines.py``, float32, batch 100, one BLAS thread, the process pinned to one
CPU. One ``fit`` call runs ``--rounds`` + 1 epochs; its ``on_epoch`` runs, right after each of fit's epochs, one
epoch of the bare loop (``minivae.grad.value_and_grad``, ``float(loss)``, ``minivae.fast.adam.Adam.step``) on
the same batches and noise, drawn beforehand, untimed, from a generator that replays fit's stream. fit's epoch
time is its own record (``seconds``: the epoch's data, shuffling, noise, the guard and the steps; under Adam the
guard checks the loss at every step and θ once, at the epoch's end, after keeping the optimizer's state). The first
pair is a warm-up; the headline is the median over the others of the paired ratio fit / bare loop (target
<= 1.05). Both runs start from the same parameters and take the same steps, so they end bit for bit equal,
which is checked. Run from the repository root: ``python benchmarks/fit_overhead.py [--rounds 9]``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _openblas import cpu_model, unset_openblas_vars  # noqa: E402

unset_openblas_vars()
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import engines  # noqa: E402
import numpy  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from minivae.fast.adam import Adam as FastAdam  # noqa: E402
from minivae.grad import value_and_grad  # noqa: E402
from minivae.models import VAE  # noqa: E402
from minivae.objectives import vae_objective  # noqa: E402
from minivae.optim import Adam  # noqa: E402
from minivae.train import TrainSettings, fit  # noqa: E402
from minivae.tree import tree_leaves  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9, help="timed pairs after the warm-up (default 9)")
    p.add_argument("--n", type=int, default=6000, help="examples per epoch (default 6,000)")
    args = p.parse_args()
    batch, seed = 100, 0
    vae, x = VAE(784, [400], 20), engines.load_x(args.n)
    params = vae.init(numpy.random.default_rng(0))
    grad_fn, optimizer = value_and_grad(vae_objective(vae).loss), FastAdam(1e-3)
    # fit's training stream, replayed: per epoch the permutation, then one noise draw per batch
    replay = numpy.random.default_rng(seed)
    bare = {"params": params, "seconds": []}
    fit_seconds: list = []

    def bare_epoch(epoch: int, _params: object, record: dict) -> None:
        fit_seconds.append(record["seconds"])
        order = replay.permutation(len(x))
        steps = [(x[order[s:s + batch]], replay.standard_normal((len(order[s:s + batch]), 20)).astype(numpy.float32))
                 for s in range(0, len(x), batch)]
        started, p = time.perf_counter(), bare["params"]
        for xb, eps in steps:
            loss, grads = grad_fn(p, xb, eps)
            float(loss)
            p = optimizer.step(p, grads)
        bare["seconds"].append(time.perf_counter() - started)
        bare["params"] = p

    with threadpool_limits(1):
        result = fit(vae_objective(vae), params, x, optimizer=Adam(1e-3), on_epoch=bare_epoch,
                     settings=TrainSettings(epochs=args.rounds + 1, batch_size=batch, seed=seed, progress=False))
    same = all(numpy.array_equal(a, b) for a, b in zip(tree_leaves(result.params), tree_leaves(bare["params"])))
    ratios = [f / b for f, b in zip(fit_seconds[1:], bare["seconds"][1:])]
    print(f"CPU: {cpu_model()}; numpy {numpy.__version__}; one BLAS thread, pinned to CPU "
          f"{min(os.sched_getaffinity(0))}; {args.n} examples, batch {batch}, {args.rounds} timed pairs")
    print(f"fit epoch  median {statistics.median(fit_seconds[1:]) * 1e3:8.1f} ms")
    print(f"bare loop  median {statistics.median(bare['seconds'][1:]) * 1e3:8.1f} ms")
    print(f"fit / bare loop: median paired ratio {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}); same final params bit for bit: {same}")


if __name__ == "__main__":
    main()
