r"""Gradients of a loss of a params nest: micrograd's ``backward()`` run over autograd's graph.

:func:`value_and_grad` is the one gradient function of minivae: ``fit`` uses it, and so should a
hand-written training loop. It returns the same numbers as ``autograd.value_and_grad``, faster, because each
array of the params nest is traced as its own root (see its docstring). Like JAX's ``jit``, it is applied
from outside: the model code never knows.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy
from autograd.core import VJPNode, add_outgrads, vspace
from autograd.tracer import isbox, new_box, trace_stack
from autograd.util import toposort

from minivae.tree import tree_map


def value_and_grad(fun: Callable[..., Any]) -> Callable[..., tuple[Any, Any]]:
    r"""``(fun(params, *args), ∇_params fun(params, *args))`` for a scalar ``fun`` of a params nest.

    Klushyn, "A brief introduction to (variational) autoencoders": backprop, the chain rule from the loss
    back to every weight. This is the gradient ``fit`` uses, and the one to use in a training loop of your
    own, which is then as fast as ``fit``::

        grad_fn = value_and_grad(lambda p, x, eps: -ops.mean(vae.elbo(p, x, eps)))
        optimizer = Adam(1e-3)
        for start in range(0, len(x_train), 100):
            x = x_train[start:start + 100]
            eps = rng.standard_normal((len(x), vae.z_dim)).astype(numpy.float32)
            loss, grads = grad_fn(params, x, eps)
            params = optimizer.step(params, grads)

    (``ops`` is ``minivae.ops``, ``Adam`` is ``minivae.optim.Adam``, ``rng`` a ``numpy.random.Generator``.)

    The same numbers as ``autograd.value_and_grad(fun)``, bit for bit, and the same backward pass
    (autograd's ``backward_pass`` loop over the traced graph, in topological order). The difference is
    where the trace starts. autograd boxes the whole nest as one value, so every ``params["encoder"]``,
    ``[0]``, ``W`` look-up becomes a node of the graph, and the backward pass assembles the nest's gradient
    level by level, each level allocating zeros for its whole subtree and adding the leaf gradients into
    them: for a 784-400-20 VAE that is about 30 full-size zero arrays and additions per step. Here each
    array of the nest is boxed on its own, as the root of its own branch of the same trace; its gradient
    is simply the gradient that reaches that root. An array the loss does not use gets zeros.

    Uses autograd's tracer API (``trace_stack``, ``new_box``, ``VJPNode``, ``toposort``, ``add_outgrads``),
    which ``autograd.core.make_vjp`` is built from.
    """

    def value_and_grad_fun(params: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        end, trace, roots = trace_per_leaf(fun, params, *args, **kwargs)
        if isbox(end) and end._trace == trace:
            value = end._value
            if numpy.ndim(value) != 0:
                raise ValueError(f"value_and_grad needs a scalar loss, but fun returned shape "
                                 f"{numpy.shape(value)}; reduce it with minivae.ops.mean or sum.")
            backward_to_leaves(end, roots)
        else:
            value = end
        grads = iter(roots.values())
        # the same traversal order as the boxing; an array the loss does not use gets zeros
        return value, tree_map(lambda leaf: _or_zeros(next(grads), leaf), params)

    return value_and_grad_fun


def trace_per_leaf(fun: Callable[..., Any], params: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any, dict]:
    r"""The forward pass of :func:`value_and_grad`: ``fun(params, *args)`` with each array of ``params`` boxed
    as its own root. Returns ``(end, trace, roots)``: the output (a box if it depends on params), the trace,
    and ``{root node: None}`` in the nest's order, to be filled by :func:`backward_to_leaves`."""
    roots: dict = {}

    def boxed(leaf: Any) -> Any:
        root = VJPNode.new_root()
        roots[root] = None
        return new_box(leaf, trace, root)

    with trace_stack.new_trace() as trace:
        end = fun(tree_map(boxed, params), *args, **kwargs)
    return end, trace, roots


def backward_to_leaves(end: Any, roots: dict) -> None:
    r"""The backward pass of :func:`value_and_grad`: from ∂L/∂L = 1 at the box ``end``, every node after all
    the nodes that use it; the gradient reaching each root is stored in ``roots``."""
    outgrads = {end._node: (vspace(end._value).ones(), False)}
    for node in toposort(end._node):
        g = outgrads.pop(node)[0]
        if node in roots:
            roots[node] = g
            continue
        for parent, parent_grad in zip(node.parents, node.vjp(g)):
            outgrads[parent] = add_outgrads(outgrads.get(parent), parent_grad)


def _or_zeros(g: Any, leaf: Any) -> Any:
    return vspace(leaf).zeros() if g is None else g
