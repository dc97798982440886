"""Log-densities against reference formulas, closed-form KLs against Monte Carlo, each hand-written vjp
against autograd's and finite differences, the kinks and the float32 tails, samplers."""

from __future__ import annotations

import math

import autograd
import numpy as np
import pytest
import strict_array
from vjp_check import assert_vjp_matches_traced

from minivae import distributions as dist
from minivae import ops
from minivae.backend import register_array_type, to_numpy
from minivae.gradcheck import check_grad

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 3))
MEAN = RNG.standard_normal((4, 3))
LOG_VAR = RNG.uniform(-3.0, 2.0, (4, 3))  # negative log σ² too: a log|σ| or σ-for-log σ² mix-up shows


def ref_gaussian(x, mean, log_var):
    """Elementwise log N written out with math, summed over the last axis."""
    out = np.zeros(np.broadcast_shapes(x.shape, mean.shape)[:-1])
    for idx in np.ndindex(*out.shape):
        total = 0.0
        for d in range(x.shape[-1]):
            var = math.exp(log_var[idx][d])
            total += -0.5 * math.log(2 * math.pi * var) - (x[idx][d] - mean[idx][d]) ** 2 / (2 * var)
        out[idx] = total
    return out


def test_gaussian_log_prob_matches_reference():
    np.testing.assert_allclose(dist.gaussian_log_prob(X, MEAN, LOG_VAR), ref_gaussian(X, MEAN, LOG_VAR),
                               rtol=1e-13)
    zeros = np.zeros_like(X)
    np.testing.assert_allclose(dist.standard_normal_log_prob(X), ref_gaussian(X, zeros, zeros), rtol=1e-13)


def test_gaussian_log_prob_broadcasts_samples_against_rows():
    z = RNG.standard_normal((5, 4, 3))
    got = dist.gaussian_log_prob(z, MEAN, LOG_VAR)
    assert got.shape == (5, 4)
    for i in range(5):
        np.testing.assert_allclose(got[i], ref_gaussian(z[i], MEAN, LOG_VAR), rtol=1e-13)
    np.testing.assert_allclose(dist.gaussian_log_prob(X, z, LOG_VAR)[2], ref_gaussian(X, z[2], LOG_VAR),
                               rtol=1e-13)


def test_bernoulli_log_prob_matches_reference():
    logits = RNG.uniform(-6, 6, (4, 3))
    x = RNG.random((4, 3))  # soft targets in [0, 1] are allowed (the BCE of the PyTorch example)
    p = 1.0 / (1.0 + np.exp(-logits))
    want = (x * np.log(p) + (1 - x) * np.log(1 - p)).sum(-1)
    np.testing.assert_allclose(dist.bernoulli_log_prob(x, logits), want, rtol=1e-12)


def test_bernoulli_log_prob_is_exact_at_extreme_logits():
    logits = np.array([[1e4, -1e4, 1e4, -1e4]])
    x = np.array([[1.0, 0.0, 0.0, 1.0]])
    # log σ(1e4) = log(1 − σ(−1e4)) = −log1p(e^{−1e4}) = 0 to float64; the wrong guesses cost 1e4 nats each
    got = dist.bernoulli_log_prob(x, logits)
    np.testing.assert_array_equal(got, [-2e4])
    for d in range(4):
        np.testing.assert_array_equal(dist.bernoulli_log_prob(x[:, d:d + 1], logits[:, d:d + 1]),
                                      [[0.0], [0.0], [-1e4], [-1e4]][d])
    g = autograd.grad(lambda lg: dist.bernoulli_log_prob(x, lg).sum())(logits)
    # ∂/∂l = x − σ(l): 0 for the right guesses, ∓1 for the wrong ones
    np.testing.assert_array_equal(g, [[0.0, 0.0, -1.0, 1.0]])


def test_gradients():
    check_grad(dist.gaussian_log_prob, X, MEAN, LOG_VAR)
    check_grad(dist.standard_normal_log_prob, X)
    x01 = RNG.uniform(0.1, 0.9, (4, 3))  # away from 0 and 1 so x ± h stays a valid target
    check_grad(dist.bernoulli_log_prob, x01, 3 * MEAN)
    check_grad(dist.kl_standard_normal, MEAN, LOG_VAR)
    check_grad(dist.kl_diag_gaussians, MEAN, LOG_VAR, X, -LOG_VAR)
    check_grad(dist.reparameterize, MEAN, LOG_VAR, X)
    check_grad(dist.reparameterize, MEAN, LOG_VAR, RNG.standard_normal((2, 4, 3)))
    check_grad(dist.sigmoid, X)  # σ is the activation of minivae.nn, the Bernoulli mean here


def _unit(rng, *shape):
    # Bernoulli targets strictly inside (0, 1), so finite differences in x stay in range
    return rng.uniform(0.05, 0.95, size=shape)


def _primitive_cases(rng, dtype):
    """name -> (primitive of distributions, its arguments): the shapes a VAE, an IWAE and a CVAE pass."""
    N, D, K = 4, 5, 3
    m, lv = rng.standard_normal((N, D)), rng.standard_normal((N, D))
    cases = {
        "bernoulli_log_prob": (dist.bernoulli_log_prob, (_unit(rng, N, D), 3 * rng.standard_normal((N, D)))),
        "bernoulli_log_prob k samples": (dist.bernoulli_log_prob,
                                         (_unit(rng, N, D), 3 * rng.standard_normal((K, N, D)))),
        "gaussian_log_prob": (dist.gaussian_log_prob, (rng.standard_normal((N, D)), m, lv)),
        "gaussian_log_prob broadcast": (dist.gaussian_log_prob,
                                        (rng.standard_normal((K, N, D)), m, rng.standard_normal(D))),
        "gaussian_log_prob k decoder samples": (dist.gaussian_log_prob,
                                                (rng.standard_normal((N, D)), rng.standard_normal((K, N, D)),
                                                 rng.standard_normal((K, N, D)))),
        "kl_standard_normal": (dist.kl_standard_normal, (m, lv)),
        "reparameterize": (dist.reparameterize, (m, lv, rng.standard_normal((N, D)))),
        "reparameterize k samples": (dist.reparameterize, (m, lv, rng.standard_normal((K, N, D)))),
    }
    return {name: (f, tuple(a.astype(dtype) for a in args)) for name, (f, args) in cases.items()}


PRIMITIVES = sorted(_primitive_cases(np.random.default_rng(0), np.float64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", PRIMITIVES)
def test_each_vjp_by_hand_equals_autograds_gradient_of_the_formula(name, dtype):
    f, args = _primitive_cases(np.random.default_rng(1), dtype)[name]
    assert_vjp_matches_traced(f, args)


@pytest.mark.parametrize("name", PRIMITIVES)
def test_each_primitive_passes_check_grad(name):
    f, args = _primitive_cases(np.random.default_rng(2), np.float64)[name]
    check_grad(f, *args)


@pytest.mark.parametrize("k", [None, 3])
def test_bernoulli_gradient_at_a_logit_of_exactly_zero_is_x_minus_one_half(k):
    # ∂/∂l [x l − softplus(l)] = x − σ(l) = x − ½ at l = 0 (a zero-initialised output layer starts there)
    x = np.array([[0.0, 0.3, 1.0], [1.0, 0.5, 0.0]])
    logits = np.zeros(x.shape if k is None else (k, *x.shape))
    g = autograd.grad(lambda lg: ops.sum(dist.bernoulli_log_prob(x, lg)))(logits)
    np.testing.assert_array_equal(g, np.broadcast_to(x - 0.5, logits.shape))
    check_grad(lambda lg: dist.bernoulli_log_prob(x, lg), logits)


def test_gaussian_log_prob_is_finite_for_a_tiny_float32_variance():
    # log σ² = −100: exp(−log σ²) = e^100 overflows float32 (max e^88.7), yet the density is finite
    log_var = np.full((2, 3), -100.0, np.float32)
    mean = np.array([[0.5, -1.0, 2.0], [0.0, 1.0, -3.0]], np.float32)
    x = mean.copy()
    x[1] += np.float32(1e-21)  # (x − μ)/σ = 1e-21 · e^50 ≈ 5.2, still finite in float32
    want = ref_gaussian(x.astype(np.float64), mean.astype(np.float64), log_var.astype(np.float64))
    with np.errstate(over="raise", invalid="raise"):
        got = dist.gaussian_log_prob(x, mean, log_var)
        grads = autograd.grad(lambda m, lv: ops.sum(dist.gaussian_log_prob(x, m, lv)), argnum=(0, 1))(mean, log_var)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert all(np.all(np.isfinite(g)) and g.dtype == np.float32 for g in grads)


def test_kl_diag_gaussians_with_standard_prior_is_kl_standard_normal():
    zeros = np.zeros_like(MEAN)
    np.testing.assert_allclose(dist.kl_diag_gaussians(MEAN, LOG_VAR, zeros, zeros),
                               dist.kl_standard_normal(MEAN, LOG_VAR), rtol=1e-14)
    np.testing.assert_allclose(dist.kl_diag_gaussians(MEAN, LOG_VAR, 0.0, 0.0),
                               dist.kl_standard_normal(MEAN, LOG_VAR), rtol=1e-14)
    # KL(q ‖ q) = 0 up to the rounding of σ² · (1/σ²)
    np.testing.assert_allclose(dist.kl_diag_gaussians(MEAN, LOG_VAR, MEAN, LOG_VAR), 0.0, atol=1e-15)


# (mean_q, log_var_q, mean_p, log_var_p), one row of D = 3 each; the last cases are extreme
KL_CASES = [
    ([0.3, -0.5, 1.0], [0.1, -0.4, 0.5], [0.0, 0.2, -0.3], [0.0, 0.5, -0.2]),
    ([5.0, -4.0, 0.0], [-6.0, 3.0, 0.0], [0.0, 1.0, 0.0], [2.0, -1.0, 0.0]),
    ([0.0, 0.0, 0.0], [-9.0, 4.0, -3.0], [3.0, -3.0, 0.5], [-4.0, 3.0, 1.0]),
    ([12.0, -8.0, 0.1], [2.0, -2.0, 1.0], [-5.0, 2.0, 0.0], [1.0, 0.0, -5.0]),
]


@pytest.mark.parametrize("case", range(len(KL_CASES)))
def test_closed_form_kls_against_monte_carlo(case):
    mq, lq, mp, lp = (np.array([c]) for c in KL_CASES[case])
    z = dist.reparameterize(mq, lq, np.random.default_rng(case).standard_normal((100_000, 1, 3)))
    log_q = dist.gaussian_log_prob(z, mq, lq)[:, 0]
    for closed, log_p in ((dist.kl_diag_gaussians(mq, lq, mp, lp), dist.gaussian_log_prob(z, mp, lp)[:, 0]),
                          (dist.kl_standard_normal(mq, lq), dist.standard_normal_log_prob(z)[:, 0])):
        diff = log_q - log_p
        se = diff.std(ddof=1) / np.sqrt(diff.size)
        assert abs(diff.mean() - closed[0]) < 4 * se, (diff.mean(), closed[0], se)
        assert se > 0


def test_sample_gaussian_moments():
    mean = np.array([[0.5, -3.0, 10.0]])
    log_var = np.array([[0.0, -4.0, 3.0]])
    z = dist.sample_gaussian(np.repeat(mean, 100_000, 0), np.repeat(log_var, 100_000, 0),
                             np.random.default_rng(11))
    n = z.shape[0]
    assert z.dtype == np.float64
    assert np.all(np.abs(z.mean(0) - mean[0]) < 4 * z.std(0, ddof=1) / np.sqrt(n))
    sq = (z - mean) ** 2
    assert np.all(np.abs(sq.mean(0) - np.exp(log_var[0])) < 4 * sq.std(0, ddof=1) / np.sqrt(n))
    z32 = dist.sample_gaussian(mean.astype(np.float32), log_var.astype(np.float32), np.random.default_rng(0))
    assert z32.dtype == np.float32


def test_sample_bernoulli_moments():
    probs = np.array([[0.0, 0.02, 0.5, 0.9, 1.0]], dtype=np.float32)
    x = dist.sample_bernoulli(np.repeat(probs, 100_000, 0), np.random.default_rng(12))
    assert x.dtype == np.float32
    assert set(np.unique(x)) <= {0.0, 1.0}
    p = probs[0].astype(np.float64)
    se = np.sqrt(p * (1 - p) / x.shape[0])
    np.testing.assert_array_equal(x.mean(0)[[0, 4]], [0.0, 1.0])
    assert np.all(np.abs(x.mean(0, dtype=np.float64) - p)[1:4] < 4 * se[1:4])


def test_seeded_samplers_are_reproducible():
    a = dist.sample_gaussian(MEAN, LOG_VAR, np.random.default_rng(3))
    b = dist.sample_gaussian(MEAN, LOG_VAR, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


def test_bad_input():
    with pytest.raises(ValueError, match="x has shape"):
        dist.bernoulli_log_prob(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"must hold Bernoulli targets in \[0, 1\]"):
        dist.bernoulli_log_prob(np.full((2, 3), 255.0), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="x"):
        dist.bernoulli_log_prob(np.full((2, 3), -0.5), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="do not broadcast"):
        dist.gaussian_log_prob(np.zeros((4, 3)), np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="log_var"):
        dist.gaussian_log_prob(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="log_var has shape"):
        dist.kl_standard_normal(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="log_var_q"):
        dist.kl_diag_gaussians(np.zeros((4, 3)), np.zeros((3,)), 0.0, 0.0)
    with pytest.raises(ValueError, match="mean_p"):
        dist.kl_diag_gaussians(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((4, 2)), 0.0)
    with pytest.raises(ValueError, match="log_var has shape"):
        dist.reparameterize(np.zeros((4, 3)), np.zeros((4, 2)), np.zeros((4, 3)))
    for sampler in (dist.sample_gaussian, lambda m, lv, rng: dist.sample_bernoulli(m, rng)):
        with pytest.raises(ValueError, match="rng must be a seeded numpy.random.Generator"):
            sampler(np.zeros((4, 3)), np.zeros((4, 3)), 0)
    for eps_shape in [(4, 2), (3, 3), (2, 2, 4, 3), (5, 4, 2)]:
        with pytest.raises(ValueError, match="eps has shape"):
            dist.reparameterize(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros(eps_shape))


def test_kl_diag_gaussians_is_finite_for_a_tiny_prior_variance_in_float32():
    # log σ²_p = −100 < −88.7: exp(−log σ²_p) overflows float32, and the old (σ²_q + Δ²)·exp(−log σ²_p) gave inf/NaN
    log_var_p = np.full((1, 2), -100.0, np.float32)
    mean_q, log_var_q = np.full((1, 2), 1e-20, np.float32), np.full((1, 2), -100.0, np.float32)
    got = dist.kl_diag_gaussians(mean_q, log_var_q, np.zeros((1, 2), np.float32), log_var_p)
    # float64 reference: ½ Σ [0 + 1 + (μ_q/σ_p)² − 1] = ½ Σ μ_q² e^{100}
    want = 0.5 * np.sum(np.float64(mean_q) ** 2 * np.exp(100.0), axis=-1)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-5)  # float32: a few ulps from exp(50) and the square


def _zero_row_cases(dtype):
    """name -> (function, arguments with N = 0 rows, the shape of its result)."""
    e = np.zeros((0, 3), dtype)
    ek = np.zeros((2, 0, 3), dtype)
    return {"bernoulli_log_prob": (dist.bernoulli_log_prob, (e, e), (0,)),
            "bernoulli_log_prob k samples": (dist.bernoulli_log_prob, (e, ek), (2, 0)),
            "gaussian_log_prob": (dist.gaussian_log_prob, (e, e, e), (0,)),
            "gaussian_log_prob k samples": (dist.gaussian_log_prob, (ek, e, e), (2, 0)),
            "standard_normal_log_prob": (dist.standard_normal_log_prob, (e,), (0,)),
            "kl_standard_normal": (dist.kl_standard_normal, (e, e), (0,)),
            "kl_diag_gaussians": (dist.kl_diag_gaussians, (e, e, e, e), (0,)),
            "reparameterize k samples": (dist.reparameterize, (e, e, ek), (2, 0, 3))}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(_zero_row_cases(np.float64)))
def test_zero_rows_give_empty_results_and_empty_gradients(name, dtype):
    # a batch of no examples scores no examples: an empty result, and an empty gradient for each argument
    # (the [0, 1] check of the Bernoulli targets used to fail on x.min() of an empty array)
    f, args, shape = _zero_row_cases(dtype)[name]
    out = f(*args)
    assert out.shape == shape and out.dtype == dtype
    grads = autograd.grad(lambda *a: ops.sum(f(*a)), argnum=tuple(range(len(args))))(*args)
    for g, arg in zip(grads, args):
        assert g.shape == arg.shape and g.dtype == dtype, (g.shape, g.dtype)


# x = μ exactly where 1/σ = exp(−½ log σ²) overflows (log σ² < −177.4 in float32, < −1419.6 in float64)
TINY_LOG_VAR = {np.float32: -200.0, np.float64: -1500.0}
MU = np.array([[0.5, -1.0, 0.0], [2.0, 0.0, -3.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_log_prob_at_its_mean_is_finite_for_any_tiny_variance(dtype):
    # r = (x − μ)/σ = 0, so log N = −½ Σ (log 2π + log σ²), ∂/∂x = ∂/∂μ = 0 and ∂/∂log σ² = −½ exactly
    # (it was (x − μ) · exp(−½ log σ²) = 0 · inf = NaN)
    mean, log_var = MU.astype(dtype), np.full(MU.shape, TINY_LOG_VAR[dtype], dtype)
    with np.errstate(all="raise"):
        got = dist.gaussian_log_prob(mean, mean, log_var)
        grads = autograd.grad(lambda *a: ops.sum(dist.gaussian_log_prob(*a)), argnum=(0, 1, 2))(mean, mean, log_var)
    assert got.dtype == dtype
    want = -0.5 * 3 * (np.log(2 * np.pi) + TINY_LOG_VAR[dtype])
    np.testing.assert_allclose(got, [want, want], rtol=1e-6 if dtype == np.float32 else 1e-15)
    for g, exact in zip(grads, (0.0, 0.0, -0.5)):
        assert g.dtype == dtype
        np.testing.assert_array_equal(g, np.full(MU.shape, exact))
    # finite differences in log σ², the one argument that can move without overflowing r² (float64 only)
    if dtype == np.float64:
        check_grad(lambda lv: dist.gaussian_log_prob(mean, mean, lv), log_var)
        check_grad(lambda lv: dist.gaussian_log_prob(mean[None], mean, lv), log_var)  # x broadcast along k


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kl_diag_gaussians_with_equal_means_is_finite_for_any_tiny_prior_variance(dtype):
    # μ_q = μ_p and log σ²_q = log σ²_p + 1: r = 0, so KL = ½ Σ (−1 + e − 1) = 3 (e − 2)/2 per row, with
    # ∂/∂μ_q = ∂/∂μ_p = 0, ∂/∂log σ²_q = ½ (e − 1) and ∂/∂log σ²_p = ½ (1 − e) (they were 0 · inf = NaN)
    mean, log_var_p = MU.astype(dtype), np.full(MU.shape, TINY_LOG_VAR[dtype], dtype)
    log_var_q = log_var_p + dtype(1.0)
    args = (mean, log_var_q, mean, log_var_p)
    with np.errstate(all="raise"):
        got = dist.kl_diag_gaussians(*args)
        grads = autograd.grad(lambda *a: ops.sum(dist.kl_diag_gaussians(*a)), argnum=(0, 1, 2, 3))(*args)
    assert got.dtype == dtype
    rtol = 1e-6 if dtype == np.float32 else 1e-14  # e rounded to the dtype, then a few ops
    np.testing.assert_allclose(got, [1.5 * (np.e - 2)] * 2, rtol=rtol)
    for g, exact in zip(grads, (0.0, 0.5 * (np.e - 1), 0.0, 0.5 * (1 - np.e))):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, np.full(MU.shape, exact), rtol=rtol, atol=0)
    if dtype == np.float64:
        check_grad(lambda lq, lp: dist.kl_diag_gaussians(mean, lq, mean, lp), log_var_q, log_var_p)


def test_the_tiny_variance_edge_runs_on_the_strict_device_array():
    # the guard of x = μ allocates nothing on the host: values and vjps on a CuPy-like array, in float32
    register_array_type(strict_array.StrictArray, strict_array.xp, strict_array.to_numpy)
    mean = strict_array.xp.asarray(MU.astype(np.float32))
    log_var = strict_array.xp.asarray(np.full(MU.shape, -200.0, np.float32))
    for f, args, exact in ((dist.gaussian_log_prob, (mean, mean, log_var), (0.0, 0.0, -0.5)),
                           (dist.kl_diag_gaussians, (mean, log_var, mean, log_var), (0.0, 0.0, 0.0, 0.0))):
        assert np.all(np.isfinite(to_numpy(f(*args))))
        grads = autograd.grad(lambda *a, f=f: ops.sum(f(*a)), argnum=tuple(range(len(args))))(*args)
        for g, want in zip(grads, exact):
            assert isinstance(g, strict_array.StrictArray) and g.dtype == np.float32
            np.testing.assert_array_equal(to_numpy(g), np.full(MU.shape, want))
