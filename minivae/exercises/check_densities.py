r"""Graders for the log-densities, the closed-form KLs and the reparameterization (minivae.distributions).

Each grader compares the learner's function with minivae's own on fixed float64 inputs, after the
properties a reader can state without it (one value per row, KL ≥ 0, KL(q ‖ q) = 0, z = μ at ε = 0), and
names the mistake when the answer matches a catalogued one exactly.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy

from minivae import distributions as dist
from minivae.exercises.grading import Fail, as_array, call, diagnose, expect, fmt

L2PI = float(numpy.log(2 * numpy.pi))
NOTES = "the get_ELBO code of the notes on Auto-Encoding Variational Bayes"
ROW = "one value per row: sum over the last axis D only"


def _s(a: Any) -> Any:
    return numpy.sum(a, axis=-1)


def _rng() -> numpy.random.Generator:
    return numpy.random.default_rng(24)


def _at(names: tuple[str, ...], arrays: tuple) -> Callable[[tuple], str]:
    # "at x = [..], μ = [..], log σ² = [..]": the row of each argument where the answer is worst
    def says(i: tuple) -> str:
        return "at " + ", ".join(f"{name} = {fmt(numpy.asarray(a)[i])}" for name, a in zip(names, arrays))
    return says


# ---------------------------------------------------------------- gaussian_log_prob

def gaussian_mistakes(x: Any, m: Any, lv: Any) -> dict:
    r"""The recognisable wrong versions of log N(x; μ, diag exp(log σ²)), each by name."""
    r2 = (x - m) ** 2
    right = lambda: dist.gaussian_log_prob(x, m, lv)  # noqa: E731
    return {
        "log σ used as log σ² (log_var is log σ², so σ² = exp(log_var), not exp(2 log_var))":
            lambda: -0.5 * _s(L2PI + 2 * lv + r2 * numpy.exp(-2 * lv)),
        "the missing ½ (log N = −½ Σ [log 2π + log σ² + (x − μ)²/σ²])":
            lambda: -_s(L2PI + lv + r2 * numpy.exp(-lv)),
        "the missing ½ on the quadratic term (x − μ)²/σ²":
            lambda: -0.5 * _s(L2PI + lv) - _s(r2 * numpy.exp(-lv)),
        f"the constant log 2π counted twice (as in {NOTES})":
            lambda: -0.5 * _s(2 * L2PI + lv + r2 * numpy.exp(-lv)),
        f"the quadratic term adds 1/(2σ²) to (x − μ)² where (x − μ)²/σ² belongs (as in {NOTES})":
            lambda: -0.5 * _s(L2PI + lv + 0.5 * numpy.exp(-lv) + r2),
        f"σ from abs (as in {NOTES}): log_var is log σ², so σ² = exp(log_var), never |log_var|":
            lambda: -0.5 * _s(L2PI + numpy.log(numpy.abs(lv)) + r2 / numpy.abs(lv)),
        f"σ from abs (as in {NOTES}): σ = exp(½ log_var), never |log_var|":
            lambda: -0.5 * _s(L2PI + 2 * numpy.log(numpy.abs(lv)) + r2 / lv ** 2),
        "the sign: you return −log N, the loss, where the log-density belongs": lambda: -right(),
        "a mean over the D coordinates where a sum belongs": lambda: right() / x.shape[-1],
    }


def grade_gaussian_log_prob(fn: Callable) -> None:
    r"""One value per row; minivae's value at fixed (x, μ, log σ²); x (N, D) broadcast against (k, N, D)."""
    rng = _rng()
    x, m = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    lv = numpy.array([[0.3, -0.7], [1.1, -0.2], [-1.5, 0.4]])
    got = as_array(call(fn, x.copy(), m.copy(), lv.copy()), (3,), "your log N for x, μ, log σ² of shape (3, 2)",
                   ROW)
    expect(got, dist.gaussian_log_prob(x, m, lv), _at(("x", "μ", "log σ²"), (x, m, lv)),
           gaussian_mistakes(x, m, lv))
    # z of an IWAE: k = 2 samples of the mean and log σ² against one x per row
    m3, lv3 = rng.standard_normal((2, 3, 2)), 0.5 * rng.standard_normal((2, 3, 2))
    got = as_array(call(fn, x.copy(), m3.copy(), lv3.copy(), when="with x (3, 2) and μ, log σ² (2, 3, 2)"),
                   (2, 3), "with x (3, 2) against μ, log σ² of shape (2, 3, 2) your answer",
                   "x broadcasts against the k = 2 samples, one value per sample and row")
    expect(got, dist.gaussian_log_prob(x, m3, lv3),
           lambda i: f"with x (3, 2) broadcast against μ, log σ² (2, 3, 2), sample {i[0]}, row {i[1]}")


# ---------------------------------------------------------------- bernoulli_log_prob

def bernoulli_mistakes(x: Any, logits: Any) -> dict:
    right = lambda: dist.bernoulli_log_prob(x, logits)  # noqa: E731
    softplus = numpy.logaddexp(0.0, logits)
    return {
        "the sign: you return the binary cross-entropy −log Bern, the loss, where the log-probability belongs":
            lambda: -right(),
        "x and 1 − x swapped: log σ(l) belongs to x = 1, log(1 − σ(l)) to x = 0":
            lambda: _s((1 - x) * logits - softplus),
        "a mean over the D pixels where a sum belongs": lambda: right() / x.shape[-1],
    }


def grade_bernoulli_log_prob(fn: Callable) -> None:
    r"""One value per row; minivae's value, a logit of exactly 0 included; finite at logits ±800; broadcasting."""
    x = numpy.array([[1.0, 0.0, 1.0], [0.0, 0.25, 1.0]])
    logits = numpy.array([[0.0, 1.3, -2.1], [0.7, 0.0, 3.2]])
    got = as_array(call(fn, x.copy(), logits.copy()), (2,), "your log Bern for x, logits of shape (2, 3)", ROW)
    expect(got, dist.bernoulli_log_prob(x, logits), _at(("x", "logits"), (x, logits)), bernoulli_mistakes(x, logits))
    # far logits: log(sigmoid(l)) gives log 0 = −inf (or NaN) where the answer is about −800
    far = numpy.array([[800.0, -800.0, 40.0], [-800.0, 800.0, -40.0]])
    xs = numpy.array([[0.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    got = call(fn, xs.copy(), far.copy(), when="at logits = ±800")
    want = dist.bernoulli_log_prob(xs, far)
    a = numpy.asarray(got, dtype=numpy.float64) if got is not None else None
    if a is not None and a.shape == (2,) and not numpy.all(numpy.isfinite(a)):
        raise Fail(f"at logits = [800, −800, 40] with x = [0, 1, 0] you return {fmt(a[0])}, the answer is "
                   f"{fmt(want[0])}: log(sigmoid) overflow; write x·l − softplus(l) with softplus(l) = max(l, 0) "
                   "+ log1p(exp(−|l|)), never log(sigmoid(l)).")
    got = as_array(got, (2,), "at logits = ±800 your answer", ROW)
    expect(got, want, _at(("x", "logits"), (xs, far)))
    # IWAE: x (N, D) broadcast against logits of k = 2 samples
    l3 = numpy.random.default_rng(3).standard_normal((2, 2, 3))
    got = as_array(call(fn, x.copy(), l3.copy(), when="with x (2, 3) and logits (2, 2, 3)"), (2, 2),
                   "with x (2, 3) against logits (2, 2, 3) your answer", "one value per sample and row")
    expect(got, dist.bernoulli_log_prob(x, l3), lambda i: f"with x broadcast against logits (2, 2, 3), sample "
           f"{i[0]}, row {i[1]}")


# ---------------------------------------------------------------- kl_standard_normal

def kl_mistakes(m: Any, lv: Any) -> dict:
    right = lambda: dist.kl_standard_normal(m, lv)  # noqa: E731
    return {
        "the sign of the KL is flipped: KL = −½ Σ (1 + log σ² − μ² − σ²)": lambda: -right(),
        "log σ used as log σ² (σ² = exp(log_var), not exp(2 log_var))":
            lambda: -0.5 * _s(1 + 2 * lv - m ** 2 - numpy.exp(2 * lv)),
        "the missing ½ (KL = −½ Σ (1 + log σ² − μ² − σ²))": lambda: 2 * right(),
        "σ where σ² belongs (σ² = exp(log_var))": lambda: -0.5 * _s(1 + lv - m ** 2 - numpy.exp(0.5 * lv)),
        "a mean over the D latent coordinates where a sum belongs": lambda: right() / m.shape[-1],
    }


def _kl_properties(fn: Callable) -> None:
    # one coordinate per row: N(0, 1) itself, then μ and log σ² away from it
    m = numpy.array([[0.0], [0.0], [0.0], [1.5], [-0.8]])
    lv = numpy.array([[0.0], [1.0], [-1.0], [0.0], [0.5]])
    got = as_array(call(fn, m.copy(), lv.copy()), (5,), "your KL for μ, log σ² of shape (5, 1)", ROW)
    if abs(got[0]) > 1e-12:
        raise Fail(f"your KL of N(0, 1) from itself (μ = 0, log σ² = 0) is {fmt(got[0])}, it must be 0"
                   f"{diagnose(got, kl_mistakes(m, lv))}.")
    for i in range(1, 5):
        if got[i] < 0:
            raise Fail(f"your KL is negative for μ = {fmt(m[i, 0])}, log σ² = {fmt(lv[i, 0])} ({fmt(got[i])}; a KL "
                       f"is never negative){diagnose(got, kl_mistakes(m, lv))}.")


def grade_kl_standard_normal(fn: Callable) -> None:
    r"""KL(N(0, 1) ‖ N(0, 1)) = 0; KL ≥ 0 away from it (μ = 0, log σ² = ±1, ...); minivae's value."""
    _kl_properties(fn)
    rng = _rng()
    m, lv = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    got = as_array(call(fn, m.copy(), lv.copy()), (3,), "your KL for μ, log σ² of shape (3, 4)", ROW)
    expect(got, dist.kl_standard_normal(m, lv), _at(("μ", "log σ²"), (m, lv)), kl_mistakes(m, lv))


# ---------------------------------------------------------------- kl_diag_gaussians

def kl_diag_mistakes(mq: Any, lq: Any, mp: Any, lp: Any) -> dict:
    right = lambda: dist.kl_diag_gaussians(mq, lq, mp, lp)  # noqa: E731
    return {
        "q and p swapped: you compute KL(p ‖ q), and the KL is not symmetric":
            lambda: dist.kl_diag_gaussians(mp + 0 * mq, lp + 0 * lq, mq, lq),
        "log σ used as log σ² (σ² = exp(log_var), not exp(2 log_var))":
            lambda: dist.kl_diag_gaussians(mq, 2 * lq, mp, 2 * lp),
        "the missing ½": lambda: 2 * right(),
        "the −1 per coordinate (the −k of the general formula) is missing": lambda: right() + 0.5 * mq.shape[-1],
        "a mean over the D coordinates where a sum belongs": lambda: right() / mq.shape[-1],
    }


def grade_kl_diag_gaussians(fn: Callable) -> None:
    r"""KL(q ‖ q) = 0; KL ≥ 0; minivae's value; one prior (D,) broadcast against every row of q."""
    rng = _rng()
    mq, lq = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    got = as_array(call(fn, mq.copy(), lq.copy(), mq.copy(), lq.copy()), (3,),
                   "your KL(q ‖ q) for arguments of shape (3, 2)", ROW)
    if numpy.max(numpy.abs(got)) > 1e-12:
        raise Fail(f"your KL(q ‖ q) of a Gaussian from itself is {fmt(got)}, it must be 0"
                   f"{diagnose(got, kl_diag_mistakes(mq, lq, mq, lq))}.")
    mp, lp = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    got = as_array(call(fn, mq.copy(), lq.copy(), mp.copy(), lp.copy()), (3,), "your KL for shapes (3, 2)", ROW)
    if numpy.min(got) < 0:
        i = int(numpy.argmin(got))
        raise Fail(f"your KL is negative in row {i} ({fmt(got[i])}; a KL is never negative)"
                   f"{diagnose(got, kl_diag_mistakes(mq, lq, mp, lp))}.")
    expect(got, dist.kl_diag_gaussians(mq, lq, mp, lp), _at(("μ_q", "log σ²_q", "μ_p", "log σ²_p"), (mq, lq, mp, lp)),
           kl_diag_mistakes(mq, lq, mp, lp))
    # one prior for every row, p of shape (2,), broadcast against q (3, 2)
    got = as_array(call(fn, mq.copy(), lq.copy(), mp[0].copy(), lp[0].copy(), when="with μ_p, log σ²_p of shape (2,)"),
                   (3,), "with a prior of shape (2,) your KL", "the prior broadcasts against the rows of q")
    expect(got, dist.kl_diag_gaussians(mq, lq, mp[0], lp[0]), lambda i: f"with one prior (2,) for all rows, row {i[0]}")


# ---------------------------------------------------------------- reparameterize

def reparam_mistakes(m: Any, lv: Any, eps: Any) -> dict:
    return {
        "log σ used as log σ² (or the missing ½): σ = exp(½ log σ²), not exp(log σ²)": lambda: m + numpy.exp(lv) * eps,
        "log σ² used as σ: σ = exp(½ log σ²)": lambda: m + lv * eps,
        "σ from abs: σ = exp(½ log σ²), never |log σ²|": lambda: m + numpy.abs(lv) * eps,
        "σ from abs: σ = exp(½ log σ²), never √|log σ²|": lambda: m + numpy.sqrt(numpy.abs(lv)) * eps,
        "the sign: z = μ + σ ε": lambda: m - numpy.exp(0.5 * lv) * eps,
    }


def grade_reparameterize(fn: Callable) -> None:
    r"""z = μ at ε = 0; z moves by σ = exp(½ log σ²) per unit of ε; k draws ε (k, N, D)."""
    rng = _rng()
    m = rng.standard_normal((2, 3))
    lv = numpy.array([[0.3, -1.2, 0.8], [0.0, 1.5, -0.4]])
    zero = as_array(call(fn, m.copy(), lv.copy(), numpy.zeros((2, 3))), (2, 3), "your z for ε = 0 of shape (2, 3)",
                    "z has the shape of ε")
    expect(zero, m, lambda i: f"at ε = 0, z must be μ = {fmt(m[i])}")
    one = as_array(call(fn, m.copy(), lv.copy(), numpy.ones((2, 3))), (2, 3), "your z for ε = 1", "the shape of ε")
    step = one - zero
    sigma = numpy.exp(0.5 * lv)
    if not numpy.allclose(step, sigma, rtol=1e-7, atol=1e-9):
        # the first entry that is off, in reading order
        off = ~numpy.isclose(step, sigma, rtol=1e-7, atol=1e-9)
        i = tuple(int(j) for j in numpy.unravel_index(int(numpy.argmax(off)), step.shape))
        raise Fail(f"your z moves by {fmt(step[i])} per unit of ε at log σ² = {fmt(lv[i])}; it must move by "
                   f"σ = exp(½ log σ²) = {fmt(sigma[i])}{diagnose(one, reparam_mistakes(m, lv, 1.0))}.")
    eps = rng.standard_normal((4, 2, 3))
    got = as_array(call(fn, m.copy(), lv.copy(), eps.copy(), when="with ε of shape (4, 2, 3)"), (4, 2, 3),
                   "with k = 4 draws ε of shape (4, 2, 3) your z", "one z per draw: μ and σ broadcast against ε")
    expect(got, dist.reparameterize(m, lv, eps), lambda i: f"with ε (4, 2, 3), draw {i[0]}, entry {i[1:]}",
           reparam_mistakes(m, lv, eps))
