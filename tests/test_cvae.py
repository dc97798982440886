"""Tests of minivae.cvae: gradients by finite differences, an exact case, and the bound's direction."""

from __future__ import annotations

import numpy
import pytest
from autograd import grad

from minivae import distributions as dist
from minivae.cvae import CVAE, pack_pairs
from minivae.gradcheck import check_grad
from minivae.nn import init_joint_linear, init_linear, joint_dense, sigmoid
from minivae.objectives import cvae_objective

X_DIM, Y_DIM, Z_DIM, N = 5, 4, 2, 3


def _setup(seed: int = 0, **kwargs):
    rng = numpy.random.default_rng(seed)
    cvae = CVAE(X_DIM, Y_DIM, [6], Z_DIM, **kwargs)
    params = cvae.init(rng, numpy.float64)
    x = rng.standard_normal((N, X_DIM))
    # Bernoulli targets strictly inside (0, 1), so the ±1e-6 steps of the finite differences stay valid
    y = rng.uniform(0.2, 0.8, size=(N, Y_DIM))
    return cvae, params, x, y, rng


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("prior", ["learned", "standard"])
def test_elbo_gradient_matches_finite_differences(likelihood: str, prior: str) -> None:
    cvae, params, x, y, rng = _setup(likelihood=likelihood, prior=prior)
    eps = rng.standard_normal((N, Z_DIM))
    check_grad(lambda p, x, y, e: cvae.elbo(p, x, y, e), params, x, y, eps)


def test_a_zero_initialised_output_layer_gets_the_gradient_of_the_formula() -> None:
    # logits l = h W + b = 0 exactly: ∂ELBO_n/∂b_d = y_nd − σ(0) = y_nd − ½, so the loss −mean_n ELBO_n has
    # ∂/∂b = −mean_n (y_n − ½); taking the subgradient 0 of max(l, 0) and |l| there would give −mean_n y_n
    cvae, params, x, y, rng = _setup(2)
    W, b = params["decoder"]["logits"]
    params["decoder"]["logits"] = (numpy.zeros_like(W), numpy.zeros_like(b))
    loss = cvae_objective(cvae).loss
    grads = grad(loss)(params, pack_pairs(x, y), rng.standard_normal((N, Z_DIM)))
    numpy.testing.assert_allclose(grads["decoder"]["logits"][1], -(y - 0.5).mean(axis=0), rtol=1e-14)
    check_grad(lambda p: cvae.elbo(p, x, y, numpy.zeros((N, Z_DIM))), params)


def test_iwae_bound_gradient_matches_finite_differences() -> None:
    cvae, params, x, y, rng = _setup(1)
    eps = rng.standard_normal((3, N, Z_DIM))
    check_grad(lambda p: cvae.iwae_bound(p, x, y, eps), params)


def test_joint_layer_equals_layer_on_concatenated_input() -> None:
    rng = numpy.random.default_rng(2)
    a, b = rng.standard_normal((N, 3)), rng.standard_normal((N, 2))
    layer = init_joint_linear(3, 2, 4, numpy.random.default_rng(7), numpy.float64)
    W, c = init_linear(5, 4, numpy.random.default_rng(7), numpy.float64)
    # the same draw as one layer of fan-in 5, and the same output as that layer on [a, b]
    numpy.testing.assert_array_equal(numpy.vstack([layer["W_a"], layer["W_b"]]), W)
    numpy.testing.assert_allclose(joint_dense(layer, a, b), numpy.hstack([a, b]) @ W + c, rtol=1e-13)


def test_elbo_is_exact_when_decoder_ignores_z() -> None:
    # with W_z = 0 the decoder is p(y|x), so ELBO = log p(y|x) − KL(q ‖ p(z|x)) for every eps, exactly
    cvae, params, x, y, rng = _setup(3)
    params["decoder"]["input"]["W_b"] = numpy.zeros_like(params["decoder"]["input"]["W_b"])
    log_py = dist.bernoulli_log_prob(y, cvae.decode(params, x, numpy.zeros((N, Z_DIM))))
    kl = dist.kl_diag_gaussians(*cvae.encode(params, x, y), *cvae.prior_params(params, x))
    for _ in range(3):
        numpy.testing.assert_allclose(cvae.elbo(params, x, y, rng.standard_normal((N, Z_DIM))), log_py - kl,
                                      rtol=1e-13)
    # and the importance-sampled log p(y|x) converges to log p(y|x): weights p(z|x)/q(z|x,y) have mean 1.
    # q and p are 2-D Gaussians here, so 20,000 samples put the estimate within ~0.015 nats (checked over
    # seeds 3-7: the largest error was 0.013); 0.05 nats is loose but non-vacuous (the KL is 0.17-0.40).
    estimate = cvae.log_likelihood(params, x, y, 20_000, rng)
    numpy.testing.assert_allclose(estimate, log_py, atol=0.05)
    assert numpy.all(kl > 0.1)


def test_importance_sampled_log_likelihood_exceeds_mean_elbo() -> None:
    # E[ELBO] ≤ log p(y|x): the mean of 4,000 one-sample ELBOs, plus 4 standard errors, stays below the
    # importance-sampled estimate with k = 4,000
    cvae, params, x, y, rng = _setup(4)
    elbos = numpy.stack([cvae.elbo(params, x, y, rng.standard_normal((N, Z_DIM))) for _ in range(4000)])
    log_lik = cvae.log_likelihood(params, x, y, 4000, rng)
    se = elbos.std(axis=0) / numpy.sqrt(len(elbos))
    assert numpy.all(elbos.mean(axis=0) <= log_lik + 4 * se)


def test_sample_draws_from_the_prior_and_decodes() -> None:
    cvae, params, x, y, _ = _setup(5)
    samples = cvae.sample(params, x, 7, numpy.random.default_rng(11))
    eps = numpy.random.default_rng(11).standard_normal((7, N, Z_DIM))
    mean, log_var = cvae.prior_params(params, x)
    expected = sigmoid(cvae.decode(params, x, mean + numpy.exp(0.5 * log_var) * eps))
    assert samples.shape == (7, N, Y_DIM)
    numpy.testing.assert_allclose(samples, expected, rtol=1e-13)


def test_standard_prior_is_zero_mean_unit_variance() -> None:
    cvae, params, x, _, _ = _setup(6, prior="standard")
    mean, log_var = cvae.prior_params(params, x)
    assert "prior" not in params and mean.shape == (N, Z_DIM)
    assert not mean.any() and not log_var.any()


def test_objective_on_packed_rows_equals_mean_negative_elbo() -> None:
    cvae, params, x, y, rng = _setup(7)
    eps = rng.standard_normal((N, Z_DIM))
    objective = cvae_objective(cvae)
    assert objective.noise_shape(N) == (N, Z_DIM)
    numpy.testing.assert_allclose(objective.loss(params, pack_pairs(x, y), eps),
                                  -numpy.mean(cvae.elbo(params, x, y, eps)), rtol=1e-13)


def test_bad_input_raises_value_error() -> None:
    cvae, params, x, y, rng = _setup(8)
    eps = rng.standard_normal((N, Z_DIM))
    with pytest.raises(ValueError, match="y has shape"):
        cvae.elbo(params, x, y[:, :2], eps)
    with pytest.raises(ValueError, match="rows"):
        cvae.elbo(params, x, y[:2], eps)
    with pytest.raises(ValueError, match="eps has shape"):
        cvae.elbo(params, x, y, eps[:, :1])
    with pytest.raises(ValueError, match="eps has shape"):
        cvae.log_weights(params, x, y, eps)
    with pytest.raises(ValueError, match="prior"):
        CVAE(X_DIM, Y_DIM, [6], Z_DIM, prior="flat")
    with pytest.raises(ValueError, match="hidden"):
        CVAE(X_DIM, Y_DIM, [], Z_DIM)
    with pytest.raises(ValueError, match="y_dim"):
        CVAE(X_DIM, 0, [6], Z_DIM)
    with pytest.raises(ValueError, match="pack_pairs"):
        cvae_objective(cvae).loss(params, x, eps)
    with pytest.raises(ValueError, match="Bernoulli targets"):
        cvae.elbo(params, x, y + 1.0, eps)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        cvae.log_likelihood(params, x, y, 2, rng, batch_size=0)
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        cvae.sample(params, x, -1, rng)


def test_gradient_is_device_safe_on_a_strict_stand_in_array() -> None:
    # the strict stand-in refuses host arrays like CuPy does: the whole forward and backward pass of the
    # ELBO and of the importance-sampled estimate must stay on its "device", and agree with NumPy
    from autograd import grad
    from strict_array import StrictArray, to_numpy, xp

    from minivae import ops
    from minivae.backend import register_array_type
    from minivae.tree import tree_map

    register_array_type(StrictArray, xp, to_numpy)
    cvae, params, x, y, rng = _setup(9)
    eps = rng.standard_normal((N, Z_DIM))
    on_device = [tree_map(xp.asarray, a) for a in (params, x, y, eps)]
    host_grad = grad(lambda p: ops.sum(cvae.elbo(p, x, y, eps)))(params)
    device_grad = grad(lambda p: ops.sum(cvae.elbo(p, *on_device[1:])))(on_device[0])
    tree_map(lambda d, h: numpy.testing.assert_allclose(to_numpy(d), h, rtol=1e-13), device_grad, host_grad)
    assert cvae.log_likelihood(on_device[0], *on_device[1:3], 5, rng).shape == (N,)
    assert isinstance(cvae.sample(on_device[0], on_device[1], 2, rng), StrictArray)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_log_likelihood_of_no_rows_is_empty(likelihood: str) -> None:
    cvae, params, x, y, rng = _setup(likelihood=likelihood)
    out = cvae.log_likelihood(params, x[:0], y[:0], 5, rng)
    assert out.shape == (0,) and out.dtype == numpy.float64
