r"""Graders for gradients written by hand: three vector-Jacobian products and the learner's own finite differences.

A vjp exercise ``name_vjp(g, *args)`` returns ∂L/∂arg for every argument, given g = ∂L/∂out. It is graded
against central finite differences in float64 of minivae's own function, ∂/∂a Σ g ⊙ f(args), with check_grad's
tolerances (rtol 1e-5, atol 1e-7: the O(h²) truncation and the rounding error ~1e-16 |f|/h at h = 1e-6 stay
below 1e-8), at the kinks (a logit of exactly 0, a zero row) and with broadcasting (a gradient is summed over
the axes broadcasting added).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy

from minivae import distributions as dist
from minivae import nn
from minivae.exercises.grading import Fail, as_array, as_tuple, call, close, diagnose, fmt, ratio_word
from minivae.exercises.grading import finite_difference_vjp as fd_vjp

FD_RTOL, FD_ATOL = 1e-5, 1e-7


def _first_big(want: numpy.ndarray) -> tuple:
    # the first entry with a clear derivative, so a constant factor is reported where a reader can check it
    big = numpy.flatnonzero(numpy.abs(want).ravel() > 1e-6)
    return tuple(int(i) for i in numpy.unravel_index(int(big[0]) if big.size else 0, want.shape))


def grade_vjp(fn: Callable, f: Callable, g: numpy.ndarray, args: tuple, names: tuple, rules: dict,
              when: str = "", rows: int = 0) -> None:
    r"""Fail unless ``fn(g, *args)`` gives the finite-difference gradient of Σ g ⊙ f(args) for every argument."""
    where = f"{when}, " if when else ""
    grads = as_tuple(call(fn, g.copy(), *(a.copy() for a in args), when=when), len(args),
                     ", ".join(f"∂L/∂{n}" for n in names) + " (one per argument, in order)")
    want = fd_vjp(f, g, args)
    ones = None
    for name, a, got, w in zip(names, args, grads, want):
        broadcast = (" (sum it over the axes that broadcasting added)"
                     if when and a.ndim < max(numpy.ndim(b) for b in args) else "")
        got = as_array(got, a.shape, f"{where}your ∂/∂{name}", f"the shape of {name}{broadcast}; {rules[name]}")
        if close(got, w, rtol=FD_RTOL, atol=FD_ATOL):
            continue
        if ones is None:
            ones = fd_vjp(f, numpy.ones_like(g), args)
        word = ratio_word(got, w, rows)
        if word:
            i = _first_big(w)
            raise Fail(f"{where}your ∂/∂{name} {word} at {name} = {fmt(a[i])}: you give {fmt(got[i])}, finite "
                       f"differences give {fmt(w[i])} ({rules[name]}).")
        i = tuple(int(j) for j in numpy.unravel_index(int(numpy.argmax(numpy.abs(got - w))), w.shape))
        unweighted = ones[names.index(name)]
        hint = diagnose(got, {"it ignores g: multiply by g = ∂L/∂out of each row": lambda u=unweighted: u})
        raise Fail(f"{where}your ∂/∂{name} at {name} = {fmt(a[i])} (index {i}) is {fmt(got[i])}, finite differences "
                   f"give {fmt(w[i])}{hint or ' (' + rules[name] + ')'}.")


# ---------------------------------------------------------------- the Gaussian log-density

GAUSSIAN_RULES = {"x": "∂/∂x = −g (x − μ)/σ²", "μ": "∂/∂μ = g (x − μ)/σ²",
                  "log σ²": "∂/∂log σ² = ½ g ((x − μ)²/σ² − 1)"}


def grade_gaussian_log_prob_vjp(fn: Callable) -> None:
    r"""Finite differences of gaussian_log_prob, then with x broadcast against k samples."""
    rng = numpy.random.default_rng(7)
    x, m = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    lv = numpy.array([[0.3, -0.7], [1.1, -0.2], [-1.5, 0.4]])
    g = numpy.array([1.5, -0.5, 2.0])
    grade_vjp(fn, dist.gaussian_log_prob, g, (x, m, lv), ("x", "μ", "log σ²"), GAUSSIAN_RULES)
    m3, lv3 = rng.standard_normal((2, 3, 2)), 0.5 * rng.standard_normal((2, 3, 2))
    grade_vjp(fn, dist.gaussian_log_prob, rng.standard_normal((2, 3)), (x, m3, lv3), ("x", "μ", "log σ²"),
              GAUSSIAN_RULES, when="with x (3, 2) against μ, log σ² of k = 2 samples (2, 3, 2)")


# ---------------------------------------------------------------- the Bernoulli log-probability

BERNOULLI_RULES = {"x": "∂/∂x = g l", "logits": "∂/∂l = g (x − σ(l)), x − ½ at l = 0"}


def grade_bernoulli_log_prob_vjp(fn: Callable) -> None:
    r"""Finite differences of bernoulli_log_prob at logits of exactly 0, then with k samples."""
    # targets inside [0, 1], so x ± h stays a valid target for the finite differences
    x = numpy.array([[0.25, 0.5, 0.9], [0.75, 0.1, 0.6]])
    logits = numpy.array([[0.0, 1.3, -2.1], [0.7, 0.0, 3.2]])
    g = numpy.array([1.5, -2.0])
    grade_vjp(fn, dist.bernoulli_log_prob, g, (x, logits), ("x", "logits"), BERNOULLI_RULES)
    l3 = numpy.random.default_rng(8).standard_normal((2, 2, 3))
    l3[0, 0, 0] = 0.0
    grade_vjp(fn, dist.bernoulli_log_prob, numpy.array([[1.0, -0.5], [2.0, 0.25]]), (x, l3), ("x", "logits"),
              BERNOULLI_RULES, when="with x (2, 3) against logits of k = 2 samples (2, 2, 3)")


# ---------------------------------------------------------------- the dense layer

DENSE_RULES = {"x": "∂L/∂x = g Wᵀ", "W": "∂L/∂W = xᵀ g, the leading axes of x being rows too",
               "b": "∂L/∂b = Σ_n g_n, summed over every row"}


def _dense(x: Any, W: Any, b: Any) -> Any:
    return nn.dense(x, W, b)


def grade_dense_vjp(fn: Callable) -> None:
    r"""Finite differences of nn.dense with a zero row of x, then with x of leading axes (2, 4, 3)."""
    rng = numpy.random.default_rng(9)
    x, W, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    x[2] = 0.0  # a zero row: it adds nothing to ∂L/∂W
    g = rng.standard_normal((4, 2))
    grade_vjp(fn, _dense, g, (x, W, b), ("x", "W", "b"), DENSE_RULES, rows=4)
    x3 = rng.standard_normal((2, 4, 3))
    grade_vjp(fn, _dense, rng.standard_normal((2, 4, 2)), (x3, W, b), ("x", "W", "b"), DENSE_RULES,
              when="with x of shape (2, 4, 3)", rows=8)


# ---------------------------------------------------------------- finite differences of the learner's own

def _cubic(x: Any) -> Any:
    return numpy.sum(x ** 3) + x.ravel()[0] * numpy.sum(numpy.sin(x))


def _central(x: numpy.ndarray, h: float) -> numpy.ndarray:
    return fd_vjp(_cubic, numpy.ones(()), (x,), h)[0]


def numerical_grad_mistakes(x: numpy.ndarray, h: float) -> dict:
    def forward() -> numpy.ndarray:
        out = numpy.zeros_like(x)
        for j in numpy.ndindex(*x.shape):
            plus = x.copy()
            plus[j] += h
            out[j] = (_cubic(plus) - _cubic(x)) / h
        return out

    return {
        "forward differences [f(x + h) − f(x)]/h have an error O(h); central differences [f(x + h) − f(x − h)]/2h "
        "have O(h²)": forward,
        "you divide by h where 2h belongs: [f(x + h) − f(x − h)]/2h": lambda: 2 * _central(x, h),
        "it ignores eps: use the step size it is given": lambda: _central(x, 1e-6),
        "you perturb every entry at once; perturb one entry x_j at a time":
            lambda: numpy.full(x.shape, (_cubic(x + h) - _cubic(x - h)) / (2 * h)),
    }


def grade_numerical_grad(fn: Callable) -> None:
    r"""Central differences of a cubic at eps = 1e-3 (exactly 3x² + h² per entry); x left unchanged."""
    x = numpy.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]])
    held = x.copy()
    h = 1e-3
    got = as_array(call(fn, _cubic, held, h, when="on f(x) = Σ x³ + x₀₀ Σ sin x with eps = 1e-3"), x.shape,
                   "your gradient of a function of x (2, 3)", "the shape of x")
    if not numpy.array_equal(held, x):
        raise Fail("numerical_grad changed the caller's x; perturb a copy (or put each entry back).")
    # central differences of a cubic are exact up to h²: 3x² + h² per entry, which this grades to 1e-7
    want = _central(x, h)
    if not close(got, want, rtol=1e-7, atol=1e-9):
        i = tuple(int(j) for j in numpy.unravel_index(int(numpy.argmax(numpy.abs(got - want))), x.shape))
        raise Fail(f"with eps = 1e-3 at x = {fmt(x[i])} (index {i}) you give {fmt(got[i])}, central differences give "
                   f"{fmt(want[i])}{diagnose(got, numerical_grad_mistakes(x, h))}.")
