r"""Parameter nests: lists, tuples and dicts of arrays, walked without flattening into one vector."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable


def _describe(tree: Any) -> str:
    if isinstance(tree, dict):
        return f"dict with keys {sorted(tree)}"
    if isinstance(tree, (list, tuple)):
        return f"{type(tree).__name__} of length {len(tree)}"
    return "array"


def tree_map(f: Callable[..., Any], tree: Any, *others: Any, name: str = "trees") -> Any:
    r"""Apply ``f`` leaf by leaf to ``tree`` and the ``others``, which must share its structure.

    Lists stay lists, tuples stay tuples, dicts keep their keys. A structure mismatch raises one
    ``ValueError`` naming ``name`` and the first place where the nests differ.
    """
    return _map(f, tree, others, name, "") if others else _map_one(f, tree)


def _map_one(f: Callable[..., Any], tree: Any) -> Any:
    # one nest: nothing to compare, so no paths to build (value_and_grad maps every step twice)
    if isinstance(tree, dict):
        return {k: _map_one(f, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)([_map_one(f, t) for t in tree])
    return f(tree)


def _map(f: Callable[..., Any], tree: Any, others: tuple, name: str, path: str) -> Any:
    for other in others:
        same = (type(other) is type(tree) if isinstance(tree, (list, tuple, dict))
                else not isinstance(other, (list, tuple, dict)))
        if isinstance(tree, dict) and same:
            same = set(other) == set(tree)
        elif isinstance(tree, (list, tuple)) and same:
            same = len(other) == len(tree)
        if not same:
            where = path or "the top level"
            raise ValueError(f"{name} have different structures at {where}: {_describe(tree)} "
                             f"vs {_describe(other)}; pass nests built the same way.")
    if isinstance(tree, dict):
        return {k: _map(f, tree[k], tuple(o[k] for o in others), name, f"{path}[{k!r}]") for k in tree}
    if isinstance(tree, (list, tuple)):
        mapped = [_map(f, t, tuple(o[i] for o in others), name, f"{path}[{i}]") for i, t in enumerate(tree)]
        return type(tree)(mapped)
    return f(tree, *others)


def tree_leaves(tree: Any) -> list[Any]:
    r"""The arrays of a nest in a fixed order (dict keys sorted), as a flat list."""
    leaves: list = []
    _collect(tree, leaves)
    return leaves


def _collect(tree: Any, leaves: list) -> None:
    # depth first, dict keys sorted: the order of tree_items, without building its paths
    if isinstance(tree, dict):
        for key in sorted(tree):
            _collect(tree[key], leaves)
    elif isinstance(tree, (list, tuple)):
        for sub in tree:
            _collect(sub, leaves)
    else:
        leaves.append(tree)


def tree_structure(tree: Any) -> Any:
    r"""The nest without its arrays (containers, sorted dict keys, lengths): equal for nests built alike."""
    if isinstance(tree, dict):
        return dict, tuple((k, tree_structure(tree[k])) for k in sorted(tree))
    if isinstance(tree, (list, tuple)):
        return type(tree), tuple(tree_structure(t) for t in tree)
    return None


def tree_items(tree: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    r"""``(path, leaf)`` pairs of a nest, with paths such as ``['encoder'][0][1]``; dict keys sorted."""
    if isinstance(tree, dict):
        for key in sorted(tree):
            yield from tree_items(tree[key], f"{path}[{key!r}]")
    elif isinstance(tree, (list, tuple)):
        for i, sub in enumerate(tree):
            yield from tree_items(sub, f"{path}[{i}]")
    else:
        yield path, tree


def tree_unflatten(template: Any, leaves: list[Any]) -> Any:
    r"""The nest shaped like ``template`` holding ``leaves`` in :func:`tree_leaves` order."""
    remaining = iter(leaves)
    try:
        built = _rebuild(template, remaining)
        if next(remaining, _END) is _END:
            return built
    except StopIteration:
        pass
    raise ValueError(f"leaves has {len(leaves)} arrays but template holds {len(tree_leaves(template))}; pass "
                     "one leaf per array of template, in tree_leaves order.")


_END = object()  # the end of the leaves, for tree_unflatten


def _rebuild(tree: Any, leaves: Iterator[Any]) -> Any:
    # a module-level function, not a closure that calls itself: such a closure is a reference cycle, which
    # would keep the leaves alive until the garbage collector runs. Dicts take their leaves in sorted key order
    # (tree_leaves' order) and keep the template's own key order.
    if isinstance(tree, dict):
        built = {k: _rebuild(tree[k], leaves) for k in sorted(tree)}
        return {k: built[k] for k in tree}
    if isinstance(tree, (list, tuple)):
        return type(tree)([_rebuild(t, leaves) for t in tree])
    return next(leaves)
