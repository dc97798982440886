r"""Adam on flat buffers: :class:`minivae.optim.Adam`'s update in fewer and larger passes.

The same interface and the same numbers up to rounding as the lesson's Adam: m and v bit for bit, and θ in the
order Kingma & Ba give in their Section 2 for speed, θ ← θ − lr_t · m / (√v + eps_t) with
lr_t = lr √(1 − b2^t) / (1 − b1^t) and eps_t = eps √(1 − b2^t), which equals Algorithm 1's last three lines
exactly in real numbers and saves two passes over every array (``tests/test_optim.py`` bounds the difference over
100 steps). Checkpoints of the one load into the other (both are called ``Adam`` and keep ``{"t", "m", "v"}``).

Where the numbers live. Per array module and dtype there is one flat buffer each for m and v, holding the arrays
of the nest one after another in ``tree_leaves`` order. A large array is updated in twelve passes over its own
stretch; the small ones (biases, narrow layers) lie next to each other, so after their gradients are copied next
to each other too, one set of passes updates them all (a 784-400-20 VAE: 3 sets of passes per step, not 10).
Each pass is one ufunc.

Nothing a caller holds is changed. The new θ goes into another flat buffer than the old θ, whose stretch
of each array also serves as that array's scratch: the passes build the step there, and the last one writes the
old θ minus the step over it, so the new buffer costs no extra stream of memory. ``step`` returns views of it;
the next ``step`` reads those (when it is handed exactly them) without copying. The buffer it writes is the one
of two steps ago when no array of it is alive any more (its reference count says so: every view counts), else a
new one, so a snapshot a caller kept is never written. Any other arrays it is given are copied in first.
``state()`` copies.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from minivae.backend import array_module
from minivae.checks import check_adam_eps, check_like, check_lr, check_step_args, check_unit
from minivae.optim import copy
from minivae.tree import tree_leaves, tree_map, tree_structure, tree_unflatten

# arrays with fewer entries than this are updated together (their gradients are copied next to each other)
SMALL = 1 << 14


class _Group:
    r"""The flat m and v of the arrays of one array module and dtype, and the stretches to update."""

    def __init__(self, xp: Any, dtype: Any, members: list, shapes: list) -> None:
        sizes = {i: math.prod(shapes[i]) for i in members}
        # the small arrays first, then each large one: [small ... | large | large ...]
        self.order = sorted(members, key=lambda i: sizes[i] >= SMALL)
        self.small = sum(size for size in sizes.values() if size < SMALL)
        self.xp, self.dtype, self.size = xp, dtype, sum(sizes.values())
        self.m, self.v = xp.zeros(self.size, dtype=dtype), xp.zeros(self.size, dtype=dtype)
        self.packed = xp.empty(self.small, dtype=dtype)
        self.spans, start = {}, 0  # leaf index -> (start, stop) in the flat buffers
        for i in self.order:
            self.spans[i], start = (start, start + sizes[i]), start + sizes[i]
        # (gradient source, start, stop): a leaf index, or None for the packed small gradients
        self.stretches = [(i, *self.spans[i]) for i in self.order if sizes[i] >= SMALL]
        if self.small:
            self.stretches.insert(0, (None, 0, self.small))


class Adam:
    r"""Adam (Kingma & Ba, Algorithm 1, in the order of their Section 2) on flat buffers.

    m ← b1 m + (1 − b1) g;  v ← b2 v + (1 − b2) g²;  θ ← θ − lr_t · m / (√v + eps_t), with
    lr_t = lr √(1 − b2^t) / (1 − b1^t) and eps_t = eps √(1 − b2^t).
    ``step`` returns new arrays and never changes the ones it is given.
    """

    def __init__(self, lr: float = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
        self.lr, self.eps = check_lr(lr), check_adam_eps(eps)
        self.b1, self.b2 = check_unit("b1", b1, "0.9"), check_unit("b2", b2, "0.999")
        self.t = 0
        self._groups: list | None = None
        self._shape: tuple | None = None  # (structure, shapes, kinds) of the params of the first step
        self._loaded: tuple | None = None  # (m, v) from load_state, copied into the buffers at the next step
        self._returned: list = []  # the leaves the last step returned: views of its new θ buffers, one per group
        self._buffers: list = []
        self._spares: list = []  # θ buffers of two steps ago, reused when nothing refers to them

    @property
    def m(self) -> Any:
        r"""A copy of the first moment m, a nest shaped like the parameters (None before the first step)."""
        return self.state()["m"]

    @property
    def v(self) -> Any:
        r"""A copy of the second moment v, a nest shaped like the parameters (None before the first step)."""
        return self.state()["v"]

    def step(self, params: Any, grads: Any) -> Any:
        r"""One Adam update of every array in ``params``; returns new params (same structure and dtypes)."""
        leaves, g_leaves = tree_leaves(params), tree_leaves(grads)
        # params that are exactly the views the last step returned: known shapes and kinds, no copy needed
        mine = len(leaves) == len(self._returned) and all(a is b for a, b in zip(leaves, self._returned))
        if self._groups is None or self._loaded is not None or not self._fits(params, grads, leaves, g_leaves, mine):
            self._start(params, grads, leaves)
            mine = False
        self.t += 1
        # the bias corrections 1 − b^t, as Python floats so that float32 stays float32
        c1, c2 = 1.0 - self.b1 ** self.t, 1.0 - self.b2 ** self.t
        views: list = [None] * len(leaves)
        buffers: list = []
        for k, group in enumerate(self._groups):
            p_in = self._buffers[k] if mine else self._gather(group, leaves)
            p_out = self._free_buffer(k, p_in)
            self._update(group, g_leaves, p_in, p_out, c1, c2)
            buffers.append(p_out)
            for i, (start, stop) in group.spans.items():
                views[i] = p_out[start:stop].reshape(self._shape[1][i])
        # the θ buffers of this step's input become the spares of the next step
        self._spares = self._buffers if mine else []
        self._returned, self._buffers = views, buffers
        return tree_unflatten(params, views)

    def _free_buffer(self, k: int, like: Any) -> Any:
        # the buffer of two steps ago, warm in the cache, when no array of it is alive any more (a caller's
        # snapshot holds a view, and every view counts in its refcount: then a new buffer, so it never changes)
        spare = self._spares[k] if k < len(self._spares) else None
        if spare is not None and sys.getrefcount(spare) <= 3:  # the list, this name, getrefcount's argument
            return spare
        return array_module(like).empty_like(like)

    def _fits(self, params: Any, grads: Any, leaves: list, g_leaves: list, mine: bool) -> bool:
        # the cheap test of every step: gradients shaped like the first step's params, and params too unless
        # they are the last step's own views
        structure, shapes, kinds = self._shape
        if len(g_leaves) != len(leaves) or tree_structure(grads) != structure:
            return False
        if not mine and (tree_structure(params) != structure or not all(
                tuple(a.shape) == s and (array_module(a), a.dtype) == k for a, s, k in zip(leaves, shapes, kinds))):
            return False
        return all(tuple(g.shape) == s for g, s in zip(g_leaves, shapes))

    def _start(self, params: Any, grads: Any, leaves: list) -> None:
        # the slow path names what differs: the first step, after load_state, or a mismatch
        check_step_args(params, grads)
        shape = (tree_structure(params), [tuple(a.shape) for a in leaves], [(array_module(a), a.dtype) for a in leaves])
        if self._shape is not None and self._loaded is None and shape != self._shape:
            raise ValueError("params are not built like the params of this optimizer's first step (structure, "
                             "shapes or dtypes differ); use a new optimizer for a new model.")
        self._shape, kinds = shape, shape[2]
        self._groups = [_Group(xp, dtype, [i for i, k in enumerate(kinds) if k == (xp, dtype)], shape[1])
                        for xp, dtype in dict.fromkeys(kinds)]
        # the nest's skeleton (no arrays held), to build the moments of state() from
        self._template, self._returned, self._buffers, self._spares = tree_map(lambda a: None, params), [], [], []
        if self._loaded is not None:
            for name, tree in zip("mv", self._loaded):
                check_like(params, tree, f"the optimizer's {name}", "load a state saved for this model")
                for group in self._groups:
                    getattr(group, name)[...] = self._gather(group, tree_leaves(tree))
            self._loaded = None

    def _gather(self, group: _Group, leaves: list) -> Any:
        # a new flat buffer holding copies of the group's arrays
        flat = group.xp.empty(group.size, dtype=group.dtype)
        for i, (start, stop) in group.spans.items():
            flat[start:stop] = leaves[i].reshape(-1)
        return flat

    def _update(self, group: _Group, grads: list, p_in: Any, p_out: Any, c1: float, c2: float) -> None:
        xp, b1, b2 = group.xp, self.b1, self.b2
        # Kingma & Ba, Section 2: the last three lines of Algorithm 1 in the faster order, with
        # lr_t = lr √(1 − b2^t) / (1 − b1^t) and eps_t = eps √(1 − b2^t) (two passes fewer per array)
        lr_t, eps_t = self.lr * c2 ** 0.5 / c1, self.eps * c2 ** 0.5
        # the small arrays' gradients next to each other, so that one set of passes updates them all
        for i, (start, stop) in group.spans.items():
            if stop <= group.small:
                group.packed[start:stop] = grads[i].reshape(-1)
        for source, start, stop in group.stretches:
            g = group.packed if source is None else grads[source].reshape(-1)
            # the new θ's own stretch serves as the scratch, so the last pass writes where the one before wrote
            m, v, s = group.m[start:stop], group.v[start:stop], p_out[start:stop]
            # m ← b1 m + (1 − b1) g
            xp.multiply(g, 1.0 - b1, out=s)
            m *= b1
            m += s
            # v ← b2 v + (1 − b2) g²
            xp.multiply(g, g, out=s)
            s *= 1.0 - b2
            v *= b2
            v += s
            # √v + eps_t
            xp.sqrt(v, out=s)
            s += eps_t
            # θ − lr_t · m / (√v + eps_t): the step, then the old θ minus it, over the step in the new buffer
            xp.divide(m, s, out=s)
            s *= lr_t
            xp.subtract(p_in[start:stop], s, out=s)

    def state(self) -> dict:
        r"""A copy of the optimizer state ``{"t", "m", "v"}`` as a plain dict (for checkpoints)."""
        if self._loaded is not None:
            return {"t": self.t, "m": copy(self._loaded[0]), "v": copy(self._loaded[1])}
        if self._groups is None:
            return {"t": self.t, "m": None, "v": None}
        moments = []
        for name in "mv":
            leaves: list = [None] * len(self._shape[1])
            for group in self._groups:
                for i, (start, stop) in group.spans.items():
                    leaves[i] = getattr(group, name)[start:stop].reshape(self._shape[1][i]).copy()
            moments.append(leaves)
        template = self._template
        return {"t": self.t, "m": tree_unflatten(template, moments[0]), "v": tree_unflatten(template, moments[1])}

    def load_state(self, state: dict) -> None:
        r"""Restore (a copy of) a state produced by :meth:`state`; the next ``step`` copies the params too."""
        self.t = int(state["t"])
        m, v = copy(state["m"]), copy(state["v"])
        self._loaded = None if m is None else (m, v)
        self._groups, self._returned, self._buffers, self._spares = None, [], [], []
