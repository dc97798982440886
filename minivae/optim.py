r"""Stochastic gradient descent with momentum, and Adam, written by hand, updating in place.

Both work on any nest of lists, tuples and dicts of arrays (the model's ``params``), keep each array's
dtype (float32 parameters get float32 moments), and return parameters of the same structure.
``step`` maximises nothing: it *descends* the gradient of a loss.

The in-place contract. To save memory traffic, ``step`` updates the moments and the parameters array by
array with in-place ufuncs (``m *= b1`` ...), through each array's own module, so it works on CuPy too.
The arrays you pass to the first ``step`` (or after ``load_state``) are never modified: the optimizer
copies them and returns its copies. Every later ``step`` that receives exactly the arrays the previous
step returned updates those in place and returns the same arrays. So ``params = opt.step(params, grads)``
behaves as before; if you want to keep a snapshot of the parameters between steps, copy it. ``state()``
returns copies, and ``load_state`` copies what it is given. SGD gives the same numbers, bit for bit, as its
out-of-place formula; Adam the same up to rounding (see its docstring).
"""

from __future__ import annotations

from typing import Any

from minivae.backend import array_module
from minivae.tree import tree_leaves, tree_map


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


class _Owned:
    """Which parameter arrays an optimizer may update in place: exactly those its last ``step`` returned."""

    def __init__(self) -> None:
        self.arrays: list = []  # held so that their ids stay theirs
        self.ids: set = set()

    def take(self, p: Any) -> Any:
        r"""``p`` itself if the optimizer returned it last step, otherwise a copy it can own."""
        return p if id(p) in self.ids else p.copy()

    def remember(self, params: Any) -> None:
        self.arrays = tree_leaves(params)
        self.ids = {id(a) for a in self.arrays}


def _zeros_like(p: Any) -> Any:
    return array_module(p).zeros_like(p)


class SGD:
    r"""θ ← θ − lr · v, with velocity v ← momentum · v + ∇L(θ) (plain SGD when momentum = 0).

    Updates in place; see the module docstring for the contract.
    """

    def __init__(self, lr: float, momentum: float = 0.0) -> None:
        self.lr = _check_lr(lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}.")
        self.momentum = float(momentum)
        self.velocity: Any = None
        self._owned = _Owned()

    def step(self, params: Any, grads: Any) -> Any:
        r"""One update of every array in ``params`` by the matching array of ``grads``; returns the params."""
        _check_step_args(params, grads)
        if self.velocity is None:
            self.velocity = tree_map(_zeros_like, grads)
        new = tree_map(self._update, params, grads, self.velocity)
        self._owned.remember(new)
        return new

    def _update(self, p: Any, g: Any, v: Any) -> Any:
        p = self._owned.take(p)
        # v ← momentum · v + g
        v *= self.momentum
        v += g
        # θ ← θ − lr · v
        p -= self.lr * v
        return p

    def state(self) -> dict:
        r"""A copy of the optimizer state as a plain dict (for checkpoints)."""
        return {"velocity": _copy(self.velocity)}

    def load_state(self, state: dict) -> None:
        r"""Restore (a copy of) a state produced by :meth:`state`."""
        self.velocity = _copy(state["velocity"])
        self._owned = _Owned()


class Adam:
    r"""Adam (Kingma & Ba): with g = ∇L(θ) at step t = 1, 2, ...

    m ← b1 m + (1 − b1) g;  v ← b2 v + (1 − b2) g²;  m̂ = m / (1 − b1^t);  v̂ = v / (1 − b2^t);
    θ ← θ − lr · m̂ / (√v̂ + eps).

    t counts optimizer steps, not epochs. The moments are kept per array, in the parameters' dtype, and
    updated in place with one scratch array per parameter; see the module docstring for the contract.
    The last line is computed in the equivalent order Kingma & Ba give for efficiency (end of their
    Section 2): θ ← θ − lr_t · m / (√v + eps_t) with lr_t = lr √(1 − b2^t) / (1 − b1^t) and
    eps_t = eps √(1 − b2^t), which saves two passes over every array. It equals the formula above up to
    rounding (the order of the roundings differs), not bit for bit.
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
        self._owned = _Owned()

    def step(self, params: Any, grads: Any) -> Any:
        r"""One Adam update of every array in ``params``; returns the params (same structure and dtypes)."""
        _check_step_args(params, grads)
        if self.m is None:
            self.m = tree_map(_zeros_like, params)
            self.v = tree_map(_zeros_like, params)
        self.t += 1
        # bias corrections 1 − b^t, as Python floats so float32 stays float32
        c1 = 1.0 - self.b1 ** self.t
        c2 = 1.0 - self.b2 ** self.t
        new = tree_map(lambda p, g, m, v: self._update(p, g, m, v, c1, c2), params, grads, self.m, self.v)
        self._owned.remember(new)
        return new

    def _update(self, p: Any, g: Any, m: Any, v: Any, c1: float, c2: float) -> Any:
        xp = array_module(p)
        p = self._owned.take(p)
        # m ← b1 m + (1 − b1) g
        scratch = g * (1.0 - self.b1)
        m *= self.b1
        m += scratch
        # v ← b2 v + (1 − b2) g²
        xp.multiply(g, g, out=scratch)
        scratch *= 1.0 - self.b2
        v *= self.b2
        v += scratch
        # √v + eps_t, with eps_t = eps √(1 − b2^t)
        xp.sqrt(v, out=scratch)
        scratch += self.eps * c2 ** 0.5
        # θ ← θ − lr_t · m / (√v + eps_t), with lr_t = lr √(1 − b2^t) / (1 − b1^t)
        xp.divide(m, scratch, out=scratch)
        scratch *= self.lr * c2 ** 0.5 / c1
        p -= scratch
        return p

    def state(self) -> dict:
        r"""A copy of the optimizer state ``{"t", "m", "v"}`` as a plain dict (for checkpoints)."""
        return {"t": self.t, "m": _copy(self.m), "v": _copy(self.v)}

    def load_state(self, state: dict) -> None:
        r"""Restore (a copy of) a state produced by :meth:`state`."""
        self.t, self.m, self.v = int(state["t"]), _copy(state["m"]), _copy(state["v"])
        self._owned = _Owned()


def _copy(tree: Any) -> Any:
    return None if tree is None else tree_map(lambda a: a.copy(), tree)
