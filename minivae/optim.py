r"""Stochastic gradient descent with momentum, and Adam, as on the slide: one line per formula, over ``tree_map``.

Both work on any nest of lists, tuples and dicts of arrays (the model's ``params``), keep each array's dtype
(float32 parameters get float32 moments) and *descend* the gradient of a loss. ``step`` returns new arrays and
never changes the ones it is given, so a snapshot ``kept = params`` stays what it was. The same update, on flat
buffers and faster, is :class:`minivae.fast.adam.Adam`; :func:`minivae.train.fit` uses that one.
"""

from __future__ import annotations

from typing import Any

from minivae.backend import array_module
from minivae.checks import check_adam_eps, check_lr, check_step_args, check_unit
from minivae.tree import tree_map


def zeros_like(tree: Any) -> Any:
    r"""A nest of zeros shaped like ``tree``, each on its array's own device."""
    return tree_map(lambda a: array_module(a).zeros_like(a), tree)


def copy(tree: Any) -> Any:
    r"""A copy of a nest of arrays (None stays None)."""
    return None if tree is None else tree_map(lambda a: a.copy(), tree)


class SGD:
    r"""v ← momentum · v + g;  θ ← θ − lr · v, with g = ∇L(θ) (plain SGD when momentum = 0).

    Shan, Variational Autoencoder ("Setting up the objective"): the VAE is optimized by stochastic gradient
    descent on minibatches; Zhu, Deep Generative Models, Part 2: "use stochastic gradient methods".
    ``lr`` must be finite and positive, ``momentum`` in [0, 1).
    """

    def __init__(self, lr: float, momentum: float = 0.0) -> None:
        self.lr, self.momentum = check_lr(lr), check_unit("momentum", momentum, "0.9")
        self.velocity: Any = None

    def step(self, params: Any, grads: Any) -> Any:
        r"""One update of every array in ``params`` by the matching array of ``grads``; returns new params."""
        check_step_args(params, grads, ("velocity", self.velocity))
        lr, momentum = self.lr, self.momentum
        velocity = zeros_like(params) if self.velocity is None else self.velocity
        # v ← momentum · v + g
        self.velocity = tree_map(lambda v, g: momentum * v + g, velocity, grads)
        # θ ← θ − lr · v
        return tree_map(lambda p, v: p - lr * v, params, self.velocity)

    def state(self) -> dict:
        r"""A copy of the optimizer state as a plain dict (for checkpoints)."""
        return {"velocity": copy(self.velocity)}

    def load_state(self, state: dict) -> None:
        r"""Restore (a copy of) a state produced by :meth:`state`."""
        self.velocity = copy(state["velocity"])


class Adam:
    r"""Adam, Kingma & Ba (2015) Algorithm 1: with g = ∇L(θ) at step t = 1, 2, ...

    m ← b1 m + (1 − b1) g;  v ← b2 v + (1 − b2) g²;  m̂ = m / (1 − b1^t);  v̂ = v / (1 − b2^t);
    θ ← θ − lr · m̂ / (√v̂ + eps).

    ``lr`` and ``eps`` must be finite and positive, ``b1`` and ``b2`` in [0, 1). t counts optimizer steps, not
    epochs; ``m`` and ``v`` are nests shaped like the parameters, in their dtype (None before the first step).
    """

    def __init__(self, lr: float = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
        self.lr, self.eps = check_lr(lr), check_adam_eps(eps)
        self.b1, self.b2 = check_unit("b1", b1, "0.9"), check_unit("b2", b2, "0.999")
        self.t, self.m, self.v = 0, None, None

    def step(self, params: Any, grads: Any) -> Any:
        r"""One Adam update of every array in ``params``; returns new params (same structure and dtypes)."""
        check_step_args(params, grads, ("m", self.m), ("v", self.v))
        lr, b1, b2, eps = self.lr, self.b1, self.b2, self.eps
        m, v = (zeros_like(params), zeros_like(params)) if self.m is None else (self.m, self.v)
        self.t += 1
        # m ← b1 m + (1 − b1) g
        self.m = tree_map(lambda m, g: b1 * m + (1.0 - b1) * g, m, grads)
        # v ← b2 v + (1 − b2) g²
        self.v = tree_map(lambda v, g: b2 * v + (1.0 - b2) * (g * g), v, grads)
        # the bias corrections 1 − b^t, as Python floats so that float32 stays float32
        c1, c2 = 1.0 - b1 ** self.t, 1.0 - b2 ** self.t
        # θ ← θ − lr · m̂ / (√v̂ + eps), with m̂ = m / (1 − b1^t) and v̂ = v / (1 − b2^t)
        return tree_map(lambda p, m, v: p - lr * (m / c1) / (array_module(v).sqrt(v / c2) + eps),
                        params, self.m, self.v)

    def state(self) -> dict:
        r"""A copy of the optimizer state ``{"t", "m", "v"}`` as a plain dict (for checkpoints)."""
        return {"t": self.t, "m": copy(self.m), "v": copy(self.v)}

    def load_state(self, state: dict) -> None:
        r"""Restore (a copy of) a state produced by :meth:`state`."""
        self.t, self.m, self.v = int(state["t"]), copy(state["m"]), copy(state["v"])
