r"""Stochastic gradient descent with momentum, and Adam, written by hand, updating in place.

Both work on any nest of lists, tuples and dicts of arrays (the model's ``params``), keep each array's
dtype (float32 parameters get float32 moments), and return parameters of the same structure.
``step`` maximises nothing: it *descends* the gradient of a loss.

The in-place contract. To save memory traffic, ``step`` updates the moments and the parameters in place
with in-place ufuncs (``m *= b1`` ...), through each array's own module, so it works on CuPy too.
The arrays you pass to the first ``step`` (or after ``load_state``) are never modified: the optimizer
copies them and returns its copies. Every later ``step`` that receives exactly the arrays the previous
step returned updates those in place and returns the same arrays. So ``params = opt.step(params, grads)``
behaves as before; if you want to keep a snapshot of the parameters between steps, copy it. ``state()``
returns copies, and ``load_state`` copies what it is given. SGD gives the same numbers, bit for bit, as its
out-of-place formula; Adam the same up to rounding (see its docstring).

Where Adam keeps its numbers. Adam holds the parameters it returns, and its moments m and v, as views into
flat buffers, one per array module and dtype (see :class:`FlatAdamState`). A large array is updated in twelve
in-place passes over its own stretch of the buffers; the small ones (biases, narrow layers) lie next to each
other, so after their gradients are copied next to each other too, one set of twelve passes updates them all
(a 784-400-20 VAE: 3 sets of passes per step instead of 10). The arithmetic per entry is the same as array by
array, so the numbers are the same, bit for bit.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from minivae.backend import array_module
from minivae.tree import tree_leaves, tree_map

# arrays with fewer entries than this are updated together (their gradients are copied next to each other)
SMALL = 1 << 14


def _check_hyper(name: str, value: Any, rule: str, ok: Any, example: str) -> float:
    # one sentence per bad hyperparameter: a string, a bool, NaN, inf or a value outside its range
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__}); pass for example "
                         f"{name}={example}.")
    value = float(value)
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"{name} must be {rule}, got {value!r}; pass for example {name}={example}.")
    return value


def _check_lr(lr: Any) -> float:
    return _check_hyper("lr", lr, "a positive learning rate (finite and > 0)", lambda v: v > 0, "1e-3")


def _check_unit(name: str, value: Any, example: str) -> float:
    return _check_hyper(name, value, "a finite number in [0, 1)", lambda v: 0.0 <= v < 1.0, example)


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

    ``lr`` must be finite and positive, ``momentum`` in [0, 1). Updates in place; see the module docstring
    for the contract.
    """

    def __init__(self, lr: float, momentum: float = 0.0) -> None:
        self.lr = _check_lr(lr)
        self.momentum = _check_unit("momentum", momentum, "0.9")
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


class FlatAdamState:
    r"""Adam's parameters θ and moments m, v as views into flat buffers, and the stretches its update runs over.

    One flat buffer each for θ, m and v (and one for the gradients of the small arrays) per array module and
    dtype, holding the arrays of the nest one after another in ``tree_leaves`` order. ``p_leaves`` lists the
    views of θ; ``m`` and ``v`` are nests of views, shaped like the parameters. ``stretches`` lists the views
    of θ, m, v and a scratch array that one set of passes updates, and where its gradient comes from: the
    index of an array of the gradient nest, or the packed buffer the small arrays' gradients are copied into.
    """

    def __init__(self, params: Any) -> None:
        leaves: list = []
        self.structure = _flatten(params, leaves)
        self.shapes = [tuple(a.shape) for a in leaves]
        self.kinds = [(array_module(a), a.dtype) for a in leaves]
        self.stretches: list = []
        self.packed: list = []  # (leaf index, view of the packed gradient buffer shaped like the leaf)
        p_views, m_views, v_views = [None] * len(leaves), [None] * len(leaves), [None] * len(leaves)
        for xp, dtype in dict.fromkeys(self.kinds):
            members = [i for i, kind in enumerate(self.kinds) if kind == (xp, dtype)]
            self._group(xp, dtype, members, leaves, p_views, m_views, v_views)
        # the nest's skeleton (no arrays held), to build the nests of views from
        self.template = _build(params, iter([None] * len(leaves)))
        self.m = _build(params, iter(m_views))
        self.v = _build(params, iter(v_views))
        self.p_leaves = p_views

    def _group(self, xp: Any, dtype: Any, members: list, leaves: list, p_views: list, m_views: list,
               v_views: list) -> None:
        sizes = [int(math.prod(self.shapes[i])) for i in members]
        P, M, V = (xp.zeros(sum(sizes), dtype=dtype) for _ in range(3))
        small = sum(size for size in sizes if size < SMALL)
        # the small arrays first, then each large one: [small ... | large | large ...]
        order = sorted(zip(members, sizes), key=lambda item: item[1] >= SMALL)
        G = xp.empty(small, dtype=dtype)
        S = xp.empty(max(*sizes, small), dtype=dtype)
        start = 0
        for i, size in order:
            stop = start + size
            p_views[i], m_views[i], v_views[i] = (B[start:stop].reshape(self.shapes[i]) for B in (P, M, V))
            # θ starts as a copy of the caller's array
            p_views[i][...] = leaves[i]
            if size < SMALL:
                self.packed.append((i, G[start:stop].reshape(self.shapes[i])))
            else:
                self.stretches.append((i, P[start:stop], M[start:stop], V[start:stop], S[:size]))
            start = stop
        if small:
            self.stretches.append((G, P[:small], M[:small], V[:small], S[:small]))

    def check(self, structure: Any, leaves: list) -> None:
        r"""Refuse params that are not built like the ones these buffers were made for."""
        if structure != self.structure or not all(
                tuple(a.shape) == s and (array_module(a), a.dtype) == k
                for a, s, k in zip(leaves, self.shapes, self.kinds)):
            raise ValueError("params are not built like the params of this optimizer's first step (structure, "
                             "shapes or dtypes differ); use a new optimizer for a new model.")

    def take(self, leaves: list) -> None:
        r"""Copy into the buffers every array that is not already the view this state handed out."""
        for i, (leaf, view) in enumerate(zip(leaves, self.p_leaves)):
            if leaf is not view:
                if leaf.shape != view.shape or (array_module(leaf), leaf.dtype) != self.kinds[i]:
                    self.check(self.structure, leaves)
                view[...] = leaf


class Adam:
    r"""Adam (Kingma & Ba): with g = ∇L(θ) at step t = 1, 2, ...

    m ← b1 m + (1 − b1) g;  v ← b2 v + (1 − b2) g²;  m̂ = m / (1 − b1^t);  v̂ = v / (1 − b2^t);
    θ ← θ − lr · m̂ / (√v̂ + eps).

    ``lr`` and ``eps`` must be finite and positive, ``b1`` and ``b2`` in [0, 1). t counts optimizer steps,
    not epochs. The moments are kept in the parameters' dtype and updated in place, in flat buffers (see
    the module docstring and :class:`FlatAdamState`); ``m`` and ``v`` are nests shaped like the parameters.
    The last line is computed in the equivalent order Kingma & Ba give for efficiency (end of their
    Section 2): θ ← θ − lr_t · m / (√v + eps_t) with lr_t = lr √(1 − b2^t) / (1 − b1^t) and
    eps_t = eps √(1 − b2^t), which saves two passes over every array. It equals the formula above up to
    rounding (the order of the roundings differs), not bit for bit.
    """

    def __init__(self, lr: float = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
        self.lr = _check_lr(lr)
        self.b1 = _check_unit("b1", b1, "0.9")
        self.b2 = _check_unit("b2", b2, "0.999")
        self.eps = _check_hyper("eps", eps, "a small positive number (finite and > 0)", lambda v: v > 0, "1e-8")
        self.t = 0
        self._flat: FlatAdamState | None = None
        self._loaded: tuple | None = None  # (m, v) from load_state, copied into the buffers at the next step

    @property
    def m(self) -> Any:
        r"""The first moment m, a nest shaped like the parameters (None before the first step)."""
        return self._loaded[0] if self._loaded is not None else self._flat and self._flat.m

    @property
    def v(self) -> Any:
        r"""The second moment v, a nest shaped like the parameters (None before the first step)."""
        return self._loaded[1] if self._loaded is not None else self._flat and self._flat.v

    def step(self, params: Any, grads: Any) -> Any:
        r"""One Adam update of every array in ``params``; returns the params (same structure and dtypes)."""
        leaves: list = []
        g_leaves: list = []
        structure, flat = _flatten(params, leaves), self._flat
        if (flat is None or self._loaded is not None or structure != flat.structure
                or _flatten(grads, g_leaves) != structure
                or any(g.shape != s for g, s in zip(g_leaves, flat.shapes))):
            # the slow path names what differs: the first step, after load_state, or a mismatch
            _check_step_args(params, grads)
            if flat is not None and self._loaded is None:
                flat.check(structure, leaves)
            flat = self._flat = self._start(params)
            g_leaves = tree_leaves(grads)
        else:
            flat.take(leaves)
        self.t += 1
        # bias corrections 1 − b^t, as Python floats so float32 stays float32
        c1 = 1.0 - self.b1 ** self.t
        c2 = 1.0 - self.b2 ** self.t
        self._update(flat, g_leaves, c1, c2)
        # a fresh nest of the same views each step, so a caller who edits the returned nest edits only theirs
        return _build(flat.template, iter(flat.p_leaves))

    def _start(self, params: Any) -> FlatAdamState:
        # new buffers for these params: moments from load_state, or zeros
        flat = FlatAdamState(params)
        if self._loaded is not None:
            for name, tree, views in (("m", self._loaded[0], flat.m), ("v", self._loaded[1], flat.v)):
                tree_map(_load_moment(name), views, tree, name=f"params and the optimizer's {name}")
            self._loaded = None
        return flat

    def _update(self, flat: FlatAdamState, grads: list, c1: float, c2: float) -> None:
        # the small arrays' gradients next to each other, so that one set of passes updates them all
        for i, packed in flat.packed:
            packed[...] = grads[i]
        b1, b2, eps_t, lr_t = self.b1, self.b2, self.eps * c2 ** 0.5, self.lr * c2 ** 0.5 / c1
        for source, p, m, v, scratch in flat.stretches:
            g = grads[source].reshape(-1) if isinstance(source, int) else source
            xp = array_module(p)
            # m ← b1 m + (1 − b1) g
            xp.multiply(g, 1.0 - b1, out=scratch)
            m *= b1
            m += scratch
            # v ← b2 v + (1 − b2) g²
            xp.multiply(g, g, out=scratch)
            scratch *= 1.0 - b2
            v *= b2
            v += scratch
            # √v + eps_t, with eps_t = eps √(1 − b2^t)
            xp.sqrt(v, out=scratch)
            scratch += eps_t
            # θ ← θ − lr_t · m / (√v + eps_t), with lr_t = lr √(1 − b2^t) / (1 − b1^t)
            xp.divide(m, scratch, out=scratch)
            scratch *= lr_t
            p -= scratch

    def state(self) -> dict:
        r"""A copy of the optimizer state ``{"t", "m", "v"}`` as a plain dict (for checkpoints)."""
        return {"t": self.t, "m": _copy(self.m), "v": _copy(self.v)}

    def load_state(self, state: dict) -> None:
        r"""Restore (a copy of) a state produced by :meth:`state`; the next ``step`` copies the params too."""
        self.t = int(state["t"])
        m, v = _copy(state["m"]), _copy(state["v"])
        self._loaded = None if m is None else (m, v)
        self._flat = None


def _load_moment(name: str) -> Any:
    def load(view: Any, a: Any) -> None:
        if tuple(a.shape) != tuple(view.shape):
            raise ValueError(f"the optimizer's {name} holds an array of shape {tuple(a.shape)} where params has "
                             f"{tuple(view.shape)}; load a state saved for this model.")
        view[...] = a

    return load


def _flatten(tree: Any, leaves: list) -> Any:
    # the nest without its arrays (containers, dict keys, lengths); its arrays go to `leaves` in tree_leaves order
    if isinstance(tree, dict):
        return dict, tuple((k, _flatten(tree[k], leaves)) for k in sorted(tree))
    if isinstance(tree, (list, tuple)):
        return type(tree), tuple(_flatten(t, leaves) for t in tree)
    leaves.append(tree)
    return None


def _build(template: Any, leaves: Any) -> Any:
    # a nest built like `template` (dict keys in its order) from an iterator over arrays in tree_leaves order
    if isinstance(template, dict):
        built = {k: _build(template[k], leaves) for k in sorted(template)}
        return {k: built[k] for k in template}
    if isinstance(template, (list, tuple)):
        return type(template)([_build(t, leaves) for t in template])
    return next(leaves)


def _copy(tree: Any) -> Any:
    return None if tree is None else tree_map(lambda a: a.copy(), tree)
