r"""What each speed-up is worth: minivae's VAE step with its fast pieces switched off one at a time.

Variants, each timed per epoch against the same PyTorch reference in interleaved rounds (as ``epoch_time.py``):

- ``lesson``: the plain functions of ``nn`` and ``distributions`` (autograd replays every op), stock
  ``autograd.value_and_grad`` on the params nest, and Adam written out of place (new arrays every step, the
  formula of the ``Adam`` docstring line by line);
- ``+fused``: the fused primitives of ``minivae.fused`` (what ``minivae.models`` calls);
- ``+in-place Adam``: ``minivae.optim.Adam`` as shipped;
- ``+leaf-wise value_and_grad``: ``minivae.grad.value_and_grad`` (what ``minivae.train.fit`` calls): the
  shipped step, the one ``epoch_time.py`` times.

The switches swap module attributes for the run (``minivae.models.fused`` is pointed at the plain twins); the
shipped code is untouched. float32, one thread, OpenBLAS variables unset for this process::

    python benchmarks/ablation.py [--rounds 5]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _openblas import unset_openblas_vars  # noqa: E402

UNSET = unset_openblas_vars()

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from typing import Any, Callable  # noqa: E402

import autograd  # noqa: E402
import epoch_time  # noqa: E402
import numpy  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from minivae import distributions as dist  # noqa: E402
from minivae import fused, grad, models, nn  # noqa: E402
from minivae.objectives import vae_objective  # noqa: E402
from minivae.optim import Adam  # noqa: E402
from minivae.tree import tree_map  # noqa: E402

# the plain twins, under the names models.py calls on minivae.fused
PLAIN = types.SimpleNamespace(
    hidden_features=nn.hidden_features,
    linear=lambda x, W, b: nn.dense((W, b), x),
    mlp=nn.mlp,
    bernoulli_log_prob=dist.bernoulli_log_prob,
    kl_standard_normal=dist.kl_standard_normal,
    reparameterize=dist.reparameterize,
)


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


VARIANTS = {  # name: (fused primitives?, in-place Adam?, leaf-wise value_and_grad?)
    "lesson": (False, False, False),
    "+fused": (True, False, False),
    "+in-place Adam": (True, True, False),
    "+leaf-wise value_and_grad": (True, True, True),
}


def variant_epoch(vae: Any, params: Any, use_fused: bool, in_place: bool, leafwise: bool) -> Callable:
    grad_fn = (grad.value_and_grad if leafwise else autograd.value_and_grad)(vae_objective(vae).loss)
    optimizer = Adam(1e-3) if in_place else OutOfPlaceAdam(1e-3)
    state = {"params": params}

    def epoch(x: numpy.ndarray, eps: numpy.ndarray) -> float:
        models.fused = fused if use_fused else PLAIN
        try:
            params, batch = state["params"], eps.shape[1]
            for step, start in enumerate(range(0, len(x), batch)):
                value, grads = grad_fn(params, x[start:start + batch], eps[step])
                float(value)
                params = optimizer.step(params, grads)
            state["params"] = params
        finally:
            models.fused = fused
        return 0.0

    return epoch


def main() -> None:
    p = argparse.ArgumentParser(description="minivae's VAE step with its speed-ups switched off one at a time")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--n", type=int, default=5000)
    args = p.parse_args()
    print("OpenBLAS variables unset for this process:", UNSET or "none were set", flush=True)
    with threadpool_limits(limits=1, user_api="blas"):
        import torch

        torch.set_num_threads(1)
        x = epoch_time.load_data("mnist5k", args.n - args.n % 100, 0)
        vae = models.VAE(784, [400], 20)
        params = vae.init(numpy.random.default_rng(0))
        epochs = {name: variant_epoch(vae, params, *flags) for name, flags in VARIANTS.items()}
        epochs["pytorch"] = epoch_time.torch_epoch(vae, 1e-3, params)
        times: dict = {name: [] for name in epochs}
        noise = numpy.random.default_rng(1)
        for round_ in range(args.rounds + 1):
            eps = noise.standard_normal((len(x) // 100, 100, 20)).astype(numpy.float32)
            for name in (list(epochs) if round_ % 2 == 0 else list(epochs)[::-1]):
                start = time.process_time()
                epochs[name](x, eps)
                if round_ > 0:
                    times[name].append(time.process_time() - start)
    print(f"\nVAE 784-400-20, batch 100, {len(x)} examples, float32, 1 thread; CPU seconds per epoch, "
          f"median of {args.rounds} interleaved rounds\n")
    print("| variant | CPU s / epoch | × PyTorch (median paired) |\n|---|---:|---:|")
    for name in epochs:
        ratio = statistics.median(a / b for a, b in zip(times[name], times["pytorch"]))
        print(f"| {name} | {statistics.median(times[name]):.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
