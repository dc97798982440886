r"""A hand-written vjp against autograd's gradient of the same formula (``f.fun``), used by test_nn and
test_distributions.

A primitive made with ``autograd.extend.primitive`` keeps its undecorated function in ``.fun``: the formula as
autograd would trace it, op by op. Both gradients are taken of Σ r ⊙ f(...) for a fixed random r, so no entry
of the gradient can cancel out of the comparison.
"""

from __future__ import annotations

from typing import Any, Callable

import autograd
import numpy as np

from minivae import ops


def contracted_grad(f: Callable, args: tuple, argnum: int) -> Any:
    r"""∂/∂args[argnum] of Σ r ⊙ f(*args), for r drawn once from a fixed seed."""
    out = f(*args)
    r = np.random.default_rng(7).standard_normal(np.shape(out)).astype(out.dtype)
    return autograd.grad(lambda a: ops.sum(f(*args[:argnum], a, *args[argnum + 1:]) * r))(args[argnum])


def assert_vjp_matches_traced(f: Callable, args: tuple) -> None:
    r"""Every argument's gradient through ``f``'s hand-written vjp equals autograd's through ``f.fun``.

    float64: the two are the same formula up to the rounding order of a few ops (rtol 1e-12). float32: ~6e-8
    relative per op, a few ops deep (rtol 2e-6, atol 1e-6 for entries that nearly cancel).
    """
    dtype = np.asarray(args[0]).dtype
    rtol, atol = (1e-12, 1e-13) if dtype == np.float64 else (2e-6, 1e-6)
    np.testing.assert_array_equal(f(*args), f.fun(*args))
    for argnum in range(len(args)):
        got, want = contracted_grad(f, args, argnum), contracted_grad(f.fun, args, argnum)
        assert got.dtype == dtype and got.shape == np.shape(args[argnum]), (f.__name__, argnum, got.dtype)
        assert np.abs(want).max() > 0, (f.__name__, argnum)  # not vacuous: the gradient flows
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"{f.__name__}, argument {argnum}")
