r"""Graders for training: the REINFORCE surrogate with a baseline (minivae.estimators) and one Adam step.

The surrogate is graded by autograd's gradient of the learner's function against minivae's own
``reinforce_surrogate``, on the same noise. Adam is the pure function
``adam_step(theta, g, m, v, t, lr, b1, b2, eps) -> (theta, m, v)``, graded against :func:`adam_step` below,
written from Kingma & Ba's Algorithm 1 (and checked against ``autograd.misc.optimizers.adam`` in the tests).
"""

from __future__ import annotations

from typing import Any, Callable

import autograd
import autograd.numpy as anp
import numpy
from autograd.tracer import getval

from minivae.distributions import gaussian_log_prob, reparameterize
from minivae.estimators import reinforce_surrogate, reparameterization_surrogate
from minivae.exercises.grading import Fail, as_array, as_tuple, call, close, diagnose, expect, fmt, ratio_word

CENTRE = numpy.array([0.5, -1.0])
SURROGATE = "(1/k) Σ_i [f(z_i) + (f(z_i) − b)(log q(z_i) − getval(log q(z_i)))], z_i = getval(μ + σ ε_i)"


def _f(z: Any) -> Any:
    # f(z) = −‖z − c‖², one value per sample and row: (k, N, D) -> (k, N)
    return -anp.sum((z - CENTRE) ** 2, axis=-1)


def _setup() -> tuple:
    rng = numpy.random.default_rng(4)
    return rng.standard_normal((2, 2)), 0.5 * rng.standard_normal((2, 2)), rng.standard_normal((5, 2, 2))


def _grad(surrogate: Callable, baseline: Any) -> numpy.ndarray:
    # ∂/∂(μ, log σ²) of Σ_n surrogate_n, flattened: μ's 4 entries, then log σ²'s 4
    m, lv, eps = _setup()
    gm, glv = autograd.grad(lambda p: anp.sum(surrogate(_f, p[0], p[1], eps, baseline)))((m, lv))
    return numpy.concatenate([numpy.ravel(gm), numpy.ravel(glv)]).astype(numpy.float64)


def _pathwise(f: Callable, m: Any, lv: Any, eps: Any, baseline: Any) -> Any:
    return reparameterization_surrogate(f, m, lv, eps)


def _z_not_held(f: Callable, m: Any, lv: Any, eps: Any, baseline: Any) -> Any:
    # the REINFORCE surrogate with z left differentiable: a recognisable mistake, never a lesson
    z = reparameterize(m, lv, eps)
    fz, log_q = f(z), gaussian_log_prob(z, m, lv)
    return anp.mean(fz + getval(fz - (0.0 if baseline is None else baseline)) * (log_q - getval(log_q)), axis=0)


def grade_reinforce_surrogate(fn: Callable) -> None:
    r"""Value (1/k) Σ f(z_i) with and without a baseline; autograd's gradient equals minivae's estimator."""
    m, lv, eps = _setup()
    want = numpy.mean(_f(m + numpy.exp(0.5 * lv) * eps), axis=0)
    for b in (None, 2.5):
        got = as_array(call(fn, _f, m.copy(), lv.copy(), eps.copy(), b, when=f"with baseline {b}"), (2,),
                       f"with baseline {b} your surrogate", "one value per example, averaged over the k samples")
        expect(got, want, lambda i, b=b: f"with baseline {b}, its value for example {i[0]} must be (1/k) Σ f(z_i)",
               {"a sum over the k samples where a mean belongs": lambda: 5 * want,
                "the baseline must not change the value, only the gradient": lambda b=b: want - (b or 0.0)})
    for b, label in ((None, "without a baseline"), (2.5, "with baseline b = 2.5"),
                     (numpy.array([[1.0, -3.0]]), "with baseline b = [[1, −3]] (one per example)")):
        got = call(lambda b=b: _grad(fn, b), when=f"when autograd differentiates it {label} (use autograd.numpy "
                   "and autograd.tracer.getval inside)")
        want_g = _grad(reinforce_surrogate, b)
        if close(got, want_g, rtol=1e-7, atol=1e-9):
            continue
        i = int(numpy.argmax(numpy.abs(got - want_g)))
        name, j = ("μ", i) if i < 4 else ("log σ²", i - 4)
        word = ratio_word(got, want_g, 0)
        mistakes = {
            "your gradient flows through z (the reparameterization gradient): hold the sample constant, "
            "z = getval(μ + σ ε), so the gradient comes from log q only": lambda b=b: _grad(_pathwise, b),
            "z is not held constant, so your gradient flows through z into f and log q: z = getval(μ + σ ε)":
                lambda b=b: _grad(_z_not_held, b),
            "your gradient ignores the baseline: weight the score by f(z) − b":
                lambda: _grad(reinforce_surrogate, None),
            "the baseline's sign: the weight is f(z) − b":
                lambda b=b: _grad(reinforce_surrogate, None if b is None else -b),
            "a sum over the k samples where a mean belongs": lambda w=want_g: 5 * w,
        }
        hint = diagnose(got, mistakes) or (f": it {word}" if word else f": the surrogate is {SURROGATE}")
        raise Fail(f"{label} your ∂/∂{name} (entry {j // 2, j % 2}) is {fmt(got[i])}, the REINFORCE estimate "
                   f"(1/k) Σ (f(z_i) − b) ∇ log q(z_i) gives {fmt(want_g[i])}{hint}.")


# ---------------------------------------------------------------- Adam

def adam_step(theta: Any, g: Any, m: Any, v: Any, t: int, lr: float, b1: float, b2: float, eps: float) -> tuple:
    r"""One step of Adam, Kingma & Ba (2015), Algorithm 1, at step t = 1, 2, ...:

    m ← β₁ m + (1 − β₁) g,  v ← β₂ v + (1 − β₂) g²,  m̂ = m/(1 − β₁ᵗ),  v̂ = v/(1 − β₂ᵗ),
    θ ← θ − α m̂ / (√v̂ + ε). Returns new arrays ``(theta, m, v)``; the caller's arrays are untouched.
    """
    # biased first and second moment estimates
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    # bias-corrected estimates
    m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
    # the update
    return theta - lr * m_hat / (numpy.sqrt(v_hat) + eps), m, v


def adam_mistakes(theta: Any, g: Any, m: Any, v: Any, t: int, lr: float, b1: float, b2: float, eps: float) -> dict:
    m1, v1 = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    mh, vh = m1 / (1 - b1 ** t), v1 / (1 - b2 ** t)
    return {
        "the bias correction m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ) is missing":
            lambda: theta - lr * m1 / (numpy.sqrt(v1) + eps),
        "the sign: Adam steps against the gradient, θ − α m̂/(√v̂ + ε)": lambda: theta + lr * mh / (numpy.sqrt(vh) + eps),
        "ε inside the square root: θ − α m̂/(√v̂ + ε)": lambda: theta - lr * mh / numpy.sqrt(vh + eps),
        "the bias correction without v̂: both moments are corrected": lambda: theta - lr * mh / (numpy.sqrt(v1) + eps),
        "the raw gradient g where m̂ belongs": lambda: theta - lr * g / (numpy.sqrt(vh) + eps),
    }


def _grade_adam_at(fn: Callable, args: tuple, label: str) -> None:
    theta, g, m, v, t, lr, b1, b2, eps = args
    held = [a.copy() for a in (theta, g, m, v)]
    out = as_tuple(call(fn, theta, g, m, v, t, lr, b1, b2, eps, when=label), 3, "the new theta, m and v")
    if not all(numpy.array_equal(a, b) for a, b in zip((theta, g, m, v), held)):
        raise Fail(f"{label} adam_step changed an array the caller holds (theta, g, m or v); return new arrays.")
    want = adam_step(*args)
    rules = {"m": "m ← β₁ m + (1 − β₁) g", "v": "v ← β₂ v + (1 − β₂) g²",
             "theta": "θ ← θ − α m̂/(√v̂ + ε) with m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ)"}
    for k, name in ((1, "m"), (2, "v"), (0, "theta")):
        got = as_array(out[k], theta.shape, f"{label} your new {name}", "the shape of theta")
        mistakes = adam_mistakes(*args) if name == "theta" else {}
        expect(got, want[k], lambda i, n=name: f"{label} your new {n} at index {i} ({rules[n]})", mistakes)


def grade_adam_step(fn: Callable) -> None:
    r"""Algorithm 1 at t = 1 from m = v = 0, at t = 3, and with a large ε; the caller's arrays untouched."""
    rng = numpy.random.default_rng(5)
    theta, g = rng.standard_normal(4), rng.standard_normal(4)
    zeros = numpy.zeros(4)
    # the first step from m = v = 0: bias-corrected, every parameter moves by about lr against its gradient
    _grade_adam_at(fn, (theta.copy(), g, zeros.copy(), zeros.copy(), 1, 0.01, 0.9, 0.999, 1e-8),
                   "at t = 1 from m = v = 0,")
    m, v = 0.1 * rng.standard_normal(4), 0.01 * rng.random(4)
    _grade_adam_at(fn, (theta.copy(), g, m, v, 3, 0.01, 0.9, 0.999, 1e-8), "at t = 3,")
    # a large ε, where ε inside the square root differs clearly from ε outside it
    _grade_adam_at(fn, (theta.copy(), 0.01 * g, zeros.copy(), zeros.copy(), 2, 0.1, 0.8, 0.99, 0.05),
                   "at t = 2 with ε = 0.05,")
