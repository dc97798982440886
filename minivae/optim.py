r"""Stochastic gradient descent with momentum, and Adam, written by hand.

Both work on any nest of lists, tuples and dicts of arrays (the model's ``params``), keep each array's
dtype (float32 parameters get float32 moments), and return parameters of the same structure.
``step`` maximises nothing: it *descends* the gradient of a loss.
"""

from __future__ import annotations

from typing import Any

from minivae.tree import tree_map


def _check_lr(lr: float) -> float:
    if not lr > 0:
        raise ValueError(f"lr must be a positive learning rate, got {lr!r}.")
    return float(lr)


def _check_step_args(params: Any, grads: Any) -> None:
    # the structure check of tree_map names the mismatch; shapes are compared leaf by leaf
    def same_shape(p: Any, g: Any) -> None:
        if p.shape != g.shape:
            raise ValueError(f"grads has an array of shape {g.shape} where params has {p.shape}; pass the "
                             "gradient of the loss with respect to these params.")

    tree_map(same_shape, params, grads, name="params and grads")


class SGD:
    r"""θ ← θ − lr · v, with velocity v ← momentum · v + ∇L(θ) (plain SGD when momentum = 0)."""

    def __init__(self, lr: float, momentum: float = 0.0) -> None:
        self.lr = _check_lr(lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}.")
        self.momentum = float(momentum)
        self.velocity: Any = None

    def step(self, params: Any, grads: Any) -> Any:
        r"""One update of every array in ``params`` by the matching array of ``grads``; returns new params."""
        _check_step_args(params, grads)
        if self.velocity is None:
            self.velocity = tree_map(lambda g: g * 0, grads)
        # v ← momentum · v + g
        self.velocity = tree_map(lambda v, g: self.momentum * v + g, self.velocity, grads)
        # θ ← θ − lr · v
        return tree_map(lambda p, v: p - self.lr * v, params, self.velocity)

    def state(self) -> dict:
        """The optimizer state as a plain dict (for checkpoints)."""
        return {"velocity": self.velocity}

    def load_state(self, state: dict) -> None:
        """Restore a state produced by :meth:`state`."""
        self.velocity = state["velocity"]


class Adam:
    r"""Adam (Kingma & Ba): with g = ∇L(θ) at step t = 1, 2, ...

    m ← b1 m + (1 − b1) g;  v ← b2 v + (1 − b2) g²;  m̂ = m / (1 − b1^t);  v̂ = v / (1 − b2^t);
    θ ← θ − lr · m̂ / (√v̂ + eps).

    t counts optimizer steps, not epochs. The moments are kept per array, in the parameters' dtype.
    """

    def __init__(self, lr: float = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
        self.lr = _check_lr(lr)
        for name, b in (("b1", b1), ("b2", b2)):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {b!r}.")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}.")
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)
        self.t = 0
        self.m: Any = None
        self.v: Any = None

    def step(self, params: Any, grads: Any) -> Any:
        r"""One Adam update of every array in ``params``; returns the new params (same structure and dtypes)."""
        _check_step_args(params, grads)
        if self.m is None:
            self.m = tree_map(lambda p: p * 0, params)
            self.v = tree_map(lambda p: p * 0, params)
        self.t += 1
        # bias corrections 1 − b^t, as Python floats so float32 stays float32
        c1 = 1.0 - self.b1 ** self.t
        c2 = 1.0 - self.b2 ** self.t
        # m ← b1 m + (1 − b1) g
        self.m = tree_map(lambda m, g: self.b1 * m + (1.0 - self.b1) * g, self.m, grads)
        # v ← b2 v + (1 − b2) g²
        self.v = tree_map(lambda v, g: self.b2 * v + (1.0 - self.b2) * (g * g), self.v, grads)
        # θ ← θ − lr · m̂ / (√v̂ + eps)
        return tree_map(lambda p, m, v: p - self.lr * (m / c1) / ((v / c2) ** 0.5 + self.eps),
                        params, self.m, self.v)

    def state(self) -> dict:
        """The optimizer state ``{"t", "m", "v"}`` as a plain dict (for checkpoints)."""
        return {"t": self.t, "m": self.m, "v": self.v}

    def load_state(self, state: dict) -> None:
        """Restore a state produced by :meth:`state`."""
        self.t, self.m, self.v = int(state["t"]), state["m"], state["v"]

