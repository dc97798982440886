"""Parameter nests: structure-preserving maps, clear mismatch errors, flatten/unflatten round trips."""

from __future__ import annotations

import numpy as np
import pytest

from minivae.tree import tree_items, tree_leaves, tree_map, tree_structure, tree_unflatten


def nest():
    return {"b": [(np.ones(2), np.zeros(3))], "a": {"x": np.arange(4.0)}}


def test_tree_map_keeps_structure_and_types():
    out = tree_map(lambda a, b: a + 2 * b, nest(), nest())
    assert isinstance(out["b"], list) and isinstance(out["b"][0], tuple)
    np.testing.assert_array_equal(out["b"][0][0], 3 * np.ones(2))
    np.testing.assert_array_equal(out["a"]["x"], 3 * np.arange(4.0))


@pytest.mark.parametrize("other,where", [
    ({"b": [(np.ones(2),)], "a": {"x": np.ones(4)}}, r"\['b'\]\[0\]: tuple of length 2 vs tuple of length 1"),
    ({"b": [[np.ones(2), np.zeros(3)]], "a": {"x": np.ones(4)}}, r"\['b'\]\[0\]: tuple of length 2 vs list"),
    ({"b": [(np.ones(2), np.zeros(3))], "a": {"y": np.ones(4)}}, r"\['a'\]: dict with keys \['x'\] vs dict"),
    ([1], "the top level"),
])
def test_tree_map_names_the_mismatch(other, where):
    with pytest.raises(ValueError, match="grads have different structures at " + where):
        tree_map(lambda a, b: a, nest(), other, name="grads")


def test_leaves_are_in_sorted_key_order_and_round_trip():
    tree = nest()
    paths = [p for p, _ in tree_items(tree)]
    assert paths == ["['a']['x']", "['b'][0][0]", "['b'][0][1]"]
    leaves = tree_leaves(tree)
    rebuilt = tree_unflatten(tree, [2 * a for a in leaves])
    assert list(rebuilt) == list(tree)  # dict order of the template kept
    assert isinstance(rebuilt["b"][0], tuple)
    for (p1, a), (p2, b) in zip(tree_items(rebuilt), tree_items(tree)):
        assert p1 == p2
        np.testing.assert_array_equal(a, 2 * b)


def test_tree_unflatten_refuses_the_wrong_number_of_leaves():
    for leaves in ([np.ones(1)] * 2, [np.ones(1)] * 4):
        with pytest.raises(ValueError, match="leaves has .* arrays but template holds 3"):
            tree_unflatten(nest(), leaves)


def test_tree_unflatten_keeps_no_leaf_alive_after_its_nest_is_gone():
    # a nest is freed as soon as nobody holds it, without waiting for the garbage collector: the fast Adam reuses
    # a parameter buffer only when no array of it is alive (a reference cycle here made it allocate every step)
    import gc
    import weakref

    leaf = np.ones(3)
    alive = weakref.ref(leaf)
    gc.disable()
    try:
        nest = tree_unflatten({"a": [None, (None,)]}, [np.zeros(2), leaf])
        del leaf, nest
        assert alive() is None
    finally:
        gc.enable()



def test_tree_structure_is_equal_exactly_for_nests_built_alike():
    a = {"b": [np.ones(2), (np.ones(3),)], "a": np.ones(1)}
    assert tree_structure(a) == tree_structure({"a": np.zeros(5), "b": [np.zeros(1), (np.zeros(1),)]})
    assert tree_structure(a) != tree_structure({"a": np.ones(1), "b": [np.ones(2), [np.ones(3)]]})  # tuple vs list
    assert tree_structure(a) != tree_structure({"a": np.ones(1), "c": [np.ones(2), (np.ones(3),)]})
    assert tree_structure(a) != tree_structure({"a": np.ones(1), "b": [np.ones(2)]})
