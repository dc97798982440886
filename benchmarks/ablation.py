r"""What each speed-up is worth: minivae's VAE step with its fast pieces switched on one at a time.

Variants, cumulative, each timed per epoch against the same PyTorch and JAX references in interleaved rounds
(784-400-20 Bernoulli VAE, batch ``--batch-size``, float32, one thread, the process pinned to one CPU):

- ``lesson``: the formulas of ``nn`` and ``distributions`` as autograd would trace them (each primitive's
  ``.fun``: autograd replays every op), stock ``autograd.value_and_grad`` on the params nest, and Adam written
  out of place (new arrays for every term, the formula of the ``Adam`` docstring line by line);
- ``+ hand-written vjps``: the lesson functions as shipped, autograd primitives with their vjps by hand;
- ``+ in-place Adam, array by array``: the in-place Adam minivae shipped before its flat buffers (twelve
  in-place passes over each array, :class:`PerArrayAdam` below);
- ``+ leaf-wise value_and_grad``: ``minivae.grad.value_and_grad`` (each params array traced on its own);
- ``+ Adam on flat buffers``: ``minivae.fast.adam.Adam``, what ``fit`` runs: the lesson Adam's formula bit for
  bit in fourteen passes, the small arrays next to each other in flat buffers and updated together (3 sets of
  passes instead of 10), θ written into a new buffer. This is the shipped step, the one ``vs_jax.py`` times.

For reference, ``minivae.train.train_epoch`` itself (what ``fit`` runs: the shipped step plus shuffling, noise
drawn per step and the guard, which checks the loss, the gradients and the new θ).

The switches swap module attributes for the run; the shipped code is untouched. CPU seconds of the process
per epoch, medians over rounds; ratios are medians of paired ratios (same round). OpenBLAS variables unset
for this process::

    python benchmarks/ablation.py [--rounds 5] [--batch-size 100]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _openblas import unset_openblas_vars  # noqa: E402

UNSET = unset_openblas_vars()
# one thread for every engine, set before NumPy, torch and JAX start theirs
os.environ.update(XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
                  OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import contextlib  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import autograd  # noqa: E402
import engines  # noqa: E402
import numpy  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from minivae import distributions as dist  # noqa: E402
from minivae import grad, nn  # noqa: E402
from minivae.backend import array_module  # noqa: E402
from minivae.fast.adam import Adam  # noqa: E402
from minivae.models import VAE  # noqa: E402
from minivae.objectives import vae_objective  # noqa: E402
from minivae.tree import tree_leaves, tree_map  # noqa: E402

# the lesson functions that are autograd primitives with a hand-written vjp; `.fun` is the traced formula
PRIMITIVES = [(nn, "relu"), (nn, "softplus"), (nn, "dense"), (dist, "bernoulli_log_prob"),
              (dist, "gaussian_log_prob"), (dist, "kl_standard_normal"), (dist, "reparameterize")]


@contextlib.contextmanager
def traced_formulas() -> Iterator[None]:
    """Every primitive of ``PRIMITIVES`` replaced by its formula as autograd traces it, for the duration."""
    saved = [(module, name, getattr(module, name)) for module, name in PRIMITIVES if hasattr(module, name)]
    activations = dict(nn.ACTIVATIONS)
    try:
        for module, name, f in saved:
            setattr(module, name, getattr(f, "fun", f))
        nn.ACTIVATIONS.update({k: getattr(f, "fun", f) for k, f in activations.items()})
        yield
    finally:
        for module, name, f in saved:
            setattr(module, name, f)
        nn.ACTIVATIONS.update(activations)


class OutOfPlaceAdam:
    """The Adam docstring's formula, one new array per term (how minivae's Adam was first written)."""

    def __init__(self, lr: float) -> None:
        self.lr, self.b1, self.b2, self.eps, self.t, self.m, self.v = lr, 0.9, 0.999, 1e-8, 0, None, None

    def step(self, params: Any, grads: Any) -> Any:
        if self.m is None:
            self.m, self.v = tree_map(lambda p: p * 0, params), tree_map(lambda p: p * 0, params)
        self.t += 1
        c1, c2 = 1.0 - self.b1 ** self.t, 1.0 - self.b2 ** self.t
        self.m = tree_map(lambda m, g: self.b1 * m + (1.0 - self.b1) * g, self.m, grads)
        self.v = tree_map(lambda v, g: self.b2 * v + (1.0 - self.b2) * (g * g), self.v, grads)
        return tree_map(lambda p, m, v: p - self.lr * (m / c1) / ((v / c2) ** 0.5 + self.eps), params, self.m, self.v)


class PerArrayAdam:
    """minivae's in-place Adam before the flat buffers (commit ec6311e), as it was: the structure and shape
    check of both nests with ``tree_map``, then twelve in-place passes over each array in turn."""

    def __init__(self, lr: float) -> None:
        self.lr, self.b1, self.b2, self.eps, self.t, self.m, self.v = lr, 0.9, 0.999, 1e-8, 0, None, None
        self.owned: list = []
        self.owned_ids: set = set()

    def step(self, params: Any, grads: Any) -> Any:
        def same_shape(p: Any, g: Any) -> None:
            if p.shape != g.shape:
                raise ValueError("shape mismatch")

        tree_map(same_shape, params, grads, name="params and grads")
        if self.m is None:
            self.m, self.v = tree_map(numpy.zeros_like, params), tree_map(numpy.zeros_like, params)
        self.t += 1
        c1, c2 = 1.0 - self.b1 ** self.t, 1.0 - self.b2 ** self.t
        new = tree_map(lambda p, g, m, v: self._update(p, g, m, v, c1, c2), params, grads, self.m, self.v)
        self.owned = tree_leaves(new)
        self.owned_ids = {id(a) for a in self.owned}
        return new

    def _update(self, p: Any, g: Any, m: Any, v: Any, c1: float, c2: float) -> Any:
        xp = array_module(p)
        p = p if id(p) in self.owned_ids else p.copy()
        scratch = g * (1.0 - self.b1)
        m *= self.b1
        m += scratch
        xp.multiply(g, g, out=scratch)
        scratch *= 1.0 - self.b2
        v *= self.b2
        v += scratch
        xp.sqrt(v, out=scratch)
        scratch += self.eps * c2 ** 0.5
        xp.divide(m, scratch, out=scratch)
        scratch *= self.lr * c2 ** 0.5 / c1
        p -= scratch
        return p


VARIANTS = {  # name: (hand-written vjps?, Adam, leaf-wise value_and_grad?)
    "lesson (autograd traces every formula, stock value_and_grad, out-of-place Adam)": (False, OutOfPlaceAdam,
                                                                                       False),
    "+ hand-written vjps (the lesson functions are primitives)": (True, OutOfPlaceAdam, False),
    "+ in-place Adam, array by array": (True, PerArrayAdam, False),
    "+ leaf-wise value_and_grad (minivae.grad)": (True, PerArrayAdam, True),
    "+ Adam on flat buffers, small arrays together: as shipped": (True, Adam, True),
}


def variant_epoch(vae: VAE, params: Any, vjps: bool, adam: type, leafwise: bool) -> Callable:
    grad_fn = (grad.value_and_grad if leafwise else autograd.value_and_grad)(vae_objective(vae).loss)
    optimizer = adam(1e-3)
    state = {"params": params}

    def epoch(x: numpy.ndarray, eps: numpy.ndarray) -> float:
        with contextlib.nullcontext() if vjps else traced_formulas():
            params, batch, loss = state["params"], eps.shape[1], 0.0
            for step, start in enumerate(range(0, len(x), batch)):
                value, grads = grad_fn(params, x[start:start + batch], eps[step])
                loss = float(value)
                params = optimizer.step(params, grads)
            state["params"] = params
        return loss

    return epoch


def train_epoch_engine(vae: VAE, params: Any) -> Callable:
    """``minivae.train.train_epoch`` itself, what ``fit`` runs per epoch: the shipped step plus shuffling, noise
    drawn per step from its own generator, and the guard (gradients and new θ checked)."""
    from minivae.train import train_epoch

    state = {"params": params, "optimizer": Adam(1e-3), "rng": numpy.random.default_rng(2)}

    def epoch(x: numpy.ndarray, eps: numpy.ndarray) -> float:
        state["params"], loss = train_epoch(vae_objective(vae), state["params"], x, state["optimizer"],
                                            state["rng"], batch_size=eps.shape[1])
        return loss

    return epoch


def main() -> None:
    p = argparse.ArgumentParser(description="minivae's VAE step with its speed-ups switched on one at a time")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--no-jax", action="store_true")
    args = p.parse_args()
    print("OpenBLAS variables unset for this process:", UNSET or "none were set", flush=True)
    print(f"pinned to CPU {sorted(os.sched_getaffinity(0))}; one thread for NumPy's BLAS, PyTorch and XLA")
    with threadpool_limits(limits=1, user_api="blas"):
        import torch

        torch.set_num_threads(1)
        batch = args.batch_size
        steps = args.n // batch
        x = engines.load_x(steps * batch)
        vae = VAE(784, [400], 20)
        params = vae.init(numpy.random.default_rng(0))
        epochs = {name: variant_epoch(vae, params, *flags) for name, flags in VARIANTS.items()}
        epochs["fit's train_epoch (shuffle, noise, guard)"] = train_epoch_engine(vae, params)
        epochs["PyTorch 2.13 eager"] = engines.torch_engine(params, None)
        if not args.no_jax:
            epochs["JAX (jit of the whole step)"] = engines.jax_engine(params, None)[0]
        times: dict = {name: [] for name in epochs}
        losses: dict = {}
        noise = numpy.random.default_rng(1)
        for round_ in range(args.rounds + 1):
            eps = noise.standard_normal((steps, batch, 20)).astype(numpy.float32)
            for name in (list(epochs) if round_ % 2 == 0 else list(epochs)[::-1]):
                start = time.process_time()
                losses[name] = epochs[name](x, eps)
                if round_ > 0:
                    times[name].append(time.process_time() - start)
            print(f"  round {round_}/{args.rounds} done", file=sys.stderr, flush=True)
    refs = [r for r in ("PyTorch 2.13 eager", "JAX (jit of the whole step)") if r in times]
    print(f"\nVAE 784-400-20, batch {batch}, {len(x)} examples, float32, 1 thread; CPU seconds per epoch, "
          f"median of {args.rounds} interleaved rounds; load average {os.getloadavg()[0]:.2f}\n")
    print("| variant | CPU s / epoch | ms / step | " + " | ".join(f"× {r.split(' (')[0]}" for r in refs) + " |")
    print("|---|---:|---:|" + "---:|" * len(refs))
    for name in epochs:
        ratios = " | ".join(f"{statistics.median(a / b for a, b in zip(times[name], times[r])):.2f}" for r in refs)
        med = statistics.median(times[name])
        print(f"| {name} | {med:.3f} | {med / steps * 1e3:.2f} | {ratios} |")
    print("\nlast-batch losses (the same model on the same batches): "
          + ", ".join(f"{v:.3f}" for v in losses.values()))


if __name__ == "__main__":
    main()
