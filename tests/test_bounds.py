"""log_mean_exp, the (β-)ELBO, the IWAE bound and the chunked importance-sampled log-likelihood."""

from __future__ import annotations

import autograd
import numpy as np
import pytest

from minivae import bounds as obj
from minivae.gradcheck import check_grad

A = np.random.default_rng(0).standard_normal((5, 3)) * 3


def test_log_mean_exp_matches_the_naive_formula():
    np.testing.assert_allclose(obj.log_mean_exp(A, axis=0), np.log(np.exp(A).mean(0)), rtol=1e-13)
    np.testing.assert_allclose(obj.log_mean_exp(A, axis=1), np.log(np.exp(A).mean(1)), rtol=1e-13)


def test_log_mean_exp_is_stable():
    a = np.array([[1000.0, -1000.0, -np.inf], [1001.0, -1001.0, -np.inf]])
    with np.errstate(divide="ignore"):  # the all −inf column takes log 0 = −inf, on purpose
        got = obj.log_mean_exp(a, axis=0)
    want = [1000 + np.log((1 + np.e) / 2), -1000 + np.log((1 + np.exp(-1)) / 2), -np.inf]
    np.testing.assert_allclose(got, want, rtol=1e-15)
    assert not np.any(np.isnan(got))


def test_log_mean_exp_gradient_is_the_softmax():
    check_grad(lambda a: obj.log_mean_exp(a, axis=0), A)
    check_grad(lambda a: obj.log_mean_exp(a, axis=1), A)
    g = autograd.grad(lambda a: obj.log_mean_exp(a, axis=0).sum())(A + 500)
    np.testing.assert_allclose(g, np.exp(A) / np.exp(A).sum(0), rtol=1e-12)


def test_log_mean_exp_keeps_float32():
    assert obj.log_mean_exp(A.astype(np.float32), axis=0).dtype == np.float32


def test_elbo_and_beta():
    rec, kl = A[:, 0], np.abs(A[:, 1])
    np.testing.assert_array_equal(obj.elbo(rec, kl), rec - kl)
    np.testing.assert_allclose(obj.elbo(rec, kl, beta=4.0), rec - 4 * kl, rtol=1e-15)
    check_grad(lambda r, k: obj.elbo(r, k, beta=0.5), rec, kl)


def test_iwae_bound_is_log_mean_of_weights_and_monotone_in_the_samples():
    np.testing.assert_allclose(obj.iwae_bound(A), np.log(np.exp(A).mean(0)), rtol=1e-13)
    check_grad(obj.iwae_bound, A)
    # L_1 on one sample is that sample's log weight; the k-sample mean of weights ≥ their geometric mean
    np.testing.assert_array_equal(obj.iwae_bound(A[:1]), A[0])
    assert np.all(obj.iwae_bound(A) >= A.mean(0))


def test_chunked_log_likelihood_equals_one_log_mean_exp():
    lw = np.random.default_rng(1).standard_normal((250, 4)) * 5 - 300
    calls = []

    def draw(m):
        calls.append(m)
        start = sum(calls[:-1])
        return np.arange(start, start + m)

    got = obj.importance_sampled_log_likelihood(lambda idx: lw[idx], draw, k=250, chunk=100)
    assert calls == [100, 100, 50]
    np.testing.assert_allclose(got, obj.log_mean_exp(lw, axis=0), rtol=1e-13)
    assert got.dtype == np.float64


def test_bad_input():
    with pytest.raises(ValueError, match="log_px_given_z has shape"):
        obj.elbo(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="log_weights has shape"):
        obj.iwae_bound(np.zeros(3))
    with pytest.raises(ValueError, match="k must be a positive"):
        obj.importance_sampled_log_likelihood(lambda e: e, lambda m: np.zeros((m, 2)), k=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_rows_give_empty_bounds_and_empty_gradients(dtype):
    # k samples of no examples: log_mean_exp over the samples, L_k and the chunked estimate are empty, not an error
    lw = np.zeros((4, 0), dtype)
    for f in (lambda a: obj.log_mean_exp(a, axis=0), obj.iwae_bound):
        out = f(lw)
        assert out.shape == (0,) and out.dtype == dtype
        g = autograd.grad(lambda a, f=f: f(a).sum())(lw)
        assert g.shape == lw.shape and g.dtype == dtype
    got = obj.importance_sampled_log_likelihood(lambda e: np.zeros((len(e), 0), dtype), lambda m: np.zeros(m), k=250)
    assert got.shape == (0,)
