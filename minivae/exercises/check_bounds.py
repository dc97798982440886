r"""Graders for the bounds: the ELBO, log_mean_exp, the IWAE bound L_k (minivae.bounds) and M2's U(x).

Properties first (one value per example, L_1 = log w_1, Jensen's L_k ≥ mean log w, the tight U at
q(y|x) ∝ exp L(x, y)), then minivae's own answer, then the catalogued mistake it matches.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy

from minivae import bounds
from minivae.exercises.grading import Fail, as_array, call, diagnose, expect, fmt
from minivae.m2 import M2

PER_EXAMPLE = "one value per example"


def _lme(a: Any, axis: int = 0) -> Any:
    return numpy.logaddexp.reduce(a, axis=axis) - numpy.log(a.shape[axis])


# ---------------------------------------------------------------- elbo

def elbo_mistakes(rec: Any, kl: Any, beta: float) -> dict:
    return {
        "you return the likelihood term E_q[log p(x|z)] instead of the ELBO (the last line of the get_ELBO code "
        "of the notes on Auto-Encoding Variational Bayes): subtract β · KL": lambda: rec,
        "the sign of the KL: the ELBO subtracts it, E_q[log p(x|z)] − β KL": lambda: rec + beta * kl,
        "you return the negative ELBO, the loss; elbo is the bound (neg_elbo is the loss)":
            lambda: -(rec - beta * kl),
        "β is ignored: ELBO_β = E_q[log p(x|z)] − β KL": lambda: rec - kl,
        "β weighs the wrong term: ELBO_β = E_q[log p(x|z)] − β KL": lambda: beta * rec - kl,
    }


def grade_elbo(fn: Callable) -> None:
    r"""One value per example; E_q[log p(x|z)] − β KL at β = 1 and β = 4."""
    rec, kl = numpy.array([-80.0, -95.5, -101.25]), numpy.array([20.125, 15.25, 25.0])
    for beta in (1.0, 4.0):
        got = as_array(call(fn, rec.copy(), kl.copy(), beta, when=f"at β = {beta:g}"), (3,),
                       f"at β = {beta:g} your ELBO of 3 examples", f"{PER_EXAMPLE}, not a batch average")
        expect(got, bounds.elbo(rec, kl, beta),
               lambda i, b=beta: f"at E_q[log p(x|z)] = {fmt(rec[i])}, KL = {fmt(kl[i])}, β = {b:g}",
               elbo_mistakes(rec, kl, beta))


# ---------------------------------------------------------------- log_mean_exp

def lme_mistakes(a: Any, axis: int) -> dict:
    k = a.shape[axis]
    return {
        f"a sum where a mean belongs: log Σ exp(a) is log {k} too large; log mean exp(a) = log Σ exp(a) − log k":
            lambda: numpy.logaddexp.reduce(a, axis=axis),
        "you return the mean of a: the log of a mean is not the mean of the logs": lambda: a.mean(axis=axis),
        "you return max a; log mean exp(a) = m + log mean exp(a − m) with m = max a": lambda: a.max(axis=axis),
        "you subtract the max m but do not add it back: log mean exp(a) = m + log mean exp(a − m)":
            lambda: _lme(a, axis) - a.max(axis=axis),
    }


def grade_log_mean_exp(fn: Callable) -> None:
    r"""Both axes; minivae's value; finite and right at a near +1000 and −1000."""
    a = numpy.array([[-1.0, 0.5, 2.0], [0.25, -3.0, 1.0], [1.5, 0.0, -0.5], [0.0, 2.5, -1.5]])
    for axis, shape in ((0, (3,)), (1, (4,))):
        got = as_array(call(fn, a.copy(), axis, when=f"on a (4, 3) with axis = {axis}"), shape,
                       f"on a (4, 3) with axis = {axis} your answer", f"axis {axis} is averaged away")
        expect(got, _lme(a, axis), lambda i, ax=axis: f"on a (4, 3) with axis = {ax}, entry {i}", lme_mistakes(a, axis))
    for shift in (1000.0, -1000.0):
        big = a[:2] + shift
        got = call(fn, big.copy(), 0, when=f"at a near {shift:g}")
        arr = numpy.asarray(got, dtype=numpy.float64) if got is not None else None
        if arr is not None and arr.shape == (3,) and not numpy.all(numpy.isfinite(arr)):
            raise Fail(f"at a = {fmt(big[:, 0])} you return {fmt(arr[0])}, the answer is {fmt(_lme(big, 0)[0])}: "
                       f"exp {'overflows' if shift > 0 else 'underflows to 0'}; subtract the max first, "
                       "log mean exp(a) = m + log mean exp(a − m).")
        got = as_array(got, (3,), f"at a near {shift:g} your answer")
        expect(got, _lme(big, 0), lambda i, s=shift: f"at a near {s:g}, column {i[0]}", lme_mistakes(big, 0))


# ---------------------------------------------------------------- iwae_bound

def iwae_mistakes(lw: Any) -> dict:
    k = lw.shape[0]
    return {
        "you return the mean of log w_i, the ELBO's estimate; L_k = log of the mean of w_i (use log_mean_exp)":
            lambda: lw.mean(axis=0),
        f"a sum where a mean belongs: log Σ w_i is log {k} too large; L_k = log (1/k) Σ w_i":
            lambda: numpy.logaddexp.reduce(lw, axis=0),
        "you return max log w_i; L_k = log (1/k) Σ w_i": lambda: lw.max(axis=0),
    }


def grade_iwae_bound(fn: Callable) -> None:
    r"""L_1 = log w_1; Jensen's L_k ≥ mean log w; minivae's value; finite at log w near −1100."""
    lw = numpy.array([[-90.5, -101.0, -87.25], [-92.0, -99.5, -88.0], [-89.0, -103.0, -86.5], [-95.0, -100.0, -90.0]])
    got = as_array(call(fn, lw[:1].copy(), when="with k = 1"), (3,), "with log_weights of shape (1, 3) your L_1",
                   f"{PER_EXAMPLE}: average over axis 0, the k samples")
    expect(got, lw[0], lambda i: f"with k = 1, L_1 is log w_1 = {fmt(lw[0, i[0]])}", iwae_mistakes(lw[:1]))
    got = as_array(call(fn, lw.copy()), (3,), "with log_weights of shape (4, 3) your L_k",
                   f"{PER_EXAMPLE}: average over axis 0, the k samples, not over the examples")
    jensen = lw.mean(axis=0)
    if numpy.any(got < jensen - 1e-9):
        i = int(numpy.argmax(jensen - got))
        raise Fail(f"your L_4 = {fmt(got[i])} for example {i} is below the mean of its log w_i, {fmt(jensen[i])}; "
                   f"by Jensen log mean w ≥ mean log w{diagnose(got, iwae_mistakes(lw))}.")
    expect(got, _lme(lw, 0), lambda i: f"with log w = {fmt(lw[:, i[0]])}", iwae_mistakes(lw))
    deep = lw - 1000.0
    got = call(fn, deep.copy(), when="at log w near −1100")
    arr = numpy.asarray(got, dtype=numpy.float64) if got is not None else None
    if arr is not None and arr.shape == (3,) and not numpy.all(numpy.isfinite(arr)):
        raise Fail(f"at log w = {fmt(deep[:, 0])} you return {fmt(arr[0])}, the answer is {fmt(_lme(deep, 0)[0])}: "
                   "exp underflows to 0; subtract the max log w first (log_mean_exp).")
    expect(as_array(got, (3,), "at log w near −1100 your L_k"), _lme(deep, 0),
           lambda i: f"at log w = {fmt(deep[:, i[0]])}", iwae_mistakes(deep))


# ---------------------------------------------------------------- M2's U(x)

def u_mistakes(log_q: Any, L: Any) -> dict:
    q = numpy.exp(log_q)
    return {
        "the entropy H(q(y|x)) = −Σ_y q log q is missing": lambda: (q * L).sum(axis=-1),
        "the sign of the entropy: H(q) = −Σ_y q log q, so U = Σ_y q (L − log q)": lambda: (q * (L + log_q)).sum(-1),
        "log q(y|x) used as the weight where q(y|x) = exp(log q) belongs": lambda: (log_q * (L - log_q)).sum(-1),
        "the weights q(y|x) are missing: U = Σ_y q(y|x) L(x, y) + H(q), not an average over y":
            lambda: L.mean(axis=-1),
        "you return max_y L(x, y); U sums the label out: Σ_y q(y|x) L(x, y) + H(q)": lambda: L.max(axis=-1),
    }


def _log_softmax(a: Any) -> Any:
    return a - numpy.logaddexp.reduce(a, axis=-1, keepdims=True)


def grade_unlabelled_bound(fn: Callable) -> None:
    r"""Tight U = log Σ_y exp L at q ∝ exp L; the value at any q; M2.unlabelled_bound on a small M2."""
    rng = numpy.random.default_rng(12)
    L = rng.normal(-90.0, 3.0, size=(4, 3))
    best = _log_softmax(L)
    got = as_array(call(fn, best.copy(), L.copy()), (4,), "your U(x) for log q(y|x), L(x, y) of shape (4, 3)",
                   f"{PER_EXAMPLE}: sum over the classes, the last axis")
    tight = numpy.logaddexp.reduce(L, axis=-1)
    expect(got, tight, lambda i: f"with q(y|x) ∝ exp L(x, y) the bound is tight, U = log Σ_y exp L(x, y), but "
           f"for L = {fmt(L[i[0]])}", u_mistakes(best, L))
    log_q = _log_softmax(rng.standard_normal((4, 3)))
    got = as_array(call(fn, log_q.copy(), L.copy()), (4,), "your U(x)", PER_EXAMPLE)
    q = numpy.exp(log_q)
    expect(got, (q * (L - log_q)).sum(-1), lambda i: f"at q(y|x) = {fmt(q[i[0]])}, L(x, y) = {fmt(L[i[0]])}",
           u_mistakes(log_q, L))
    # on a small M2: the classifier's log q(y|x) and the bound of every class give M2.unlabelled_bound
    m2 = M2(x_dim=4, hidden=[5], z_dim=2, n_classes=3)
    params = m2.init(numpy.random.default_rng(0), dtype=numpy.float64)
    x = (numpy.random.default_rng(1).random((2, 4)) > 0.5).astype(numpy.float64)
    eps = numpy.random.default_rng(2).standard_normal((3, 2, 2))
    log_q, L = m2.classify(params, x), m2.bounds_for_every_class(params, x, eps).T
    got = as_array(call(fn, log_q, L, when="on a small M2"), (2,), "on a small M2 your U(x)", PER_EXAMPLE)
    expect(got, m2.unlabelled_bound(params, x, eps), lambda i: f"on a small M2 (minivae.m2.M2), example {i[0]}")
