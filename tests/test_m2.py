"""Tests of minivae.m2: the unlabelled bound's identity, Gibbs' inequality, gradients, and bad input."""

from __future__ import annotations

import numpy
import pytest

from minivae.distributions import categorical_log_prob, categorical_mode, log_softmax, one_hot
from minivae.gradcheck import check_grad
from minivae.m2 import M2
from minivae.objectives import m2_objective

X_DIM, Z_DIM, C, N = 5, 2, 3, 4


def _setup(seed: int = 0, **kwargs):
    rng = numpy.random.default_rng(seed)
    m2 = M2(X_DIM, [6], Z_DIM, n_classes=C, **kwargs)
    params = m2.init(rng, numpy.float64)
    # Bernoulli targets strictly inside (0, 1), so the ±1e-6 steps of the finite differences stay valid
    x = rng.uniform(0.2, 0.8, size=(N, X_DIM))
    labels = numpy.array([0, 2, 1, 2])
    return m2, params, x, labels, rng


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_unlabelled_bound_is_expected_labelled_bound_plus_entropy(likelihood: str) -> None:
    m2, params, x, _, rng = _setup(likelihood=likelihood)
    eps_u = rng.standard_normal((C, N, Z_DIM))
    q = numpy.exp(m2.classify(params, x))
    # L(x, y) for each class, computed one class at a time through the labelled bound, with the same noise
    per_class = numpy.stack([m2.labelled_bound(params, x, numpy.full(N, c), eps_u[c]) for c in range(C)], axis=1)
    entropy = -numpy.sum(q * numpy.log(q), axis=1)
    numpy.testing.assert_allclose(m2.unlabelled_bound(params, x, eps_u), numpy.sum(q * per_class, axis=1) + entropy,
                                  rtol=1e-13)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_unlabelled_bound_obeys_gibbs_inequality(likelihood: str) -> None:
    # Σ_y q(y)(L_y − log q(y)) ≤ log Σ_y exp(L_y), with equality only at q = softmax(L)
    m2, params, x, _, rng = _setup(1, likelihood=likelihood)
    eps_u = rng.standard_normal((C, N, Z_DIM))
    per_class = m2.bounds_for_every_class(params, x, eps_u)
    upper = numpy.logaddexp.reduce(per_class, axis=0)
    assert numpy.all(m2.unlabelled_bound(params, x, eps_u) < upper)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_bounds_gradients_match_finite_differences(likelihood: str) -> None:
    m2, params, x, labels, rng = _setup(2, likelihood=likelihood)
    eps_l, eps_u = rng.standard_normal((N, Z_DIM)), rng.standard_normal((C, N, Z_DIM))
    check_grad(lambda p, x, e: m2.labelled_bound(p, x, labels, e), params, x, eps_l)
    check_grad(lambda p, x, e: m2.unlabelled_bound(p, x, e), params, x, eps_u)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_objective_gradient_and_alpha_weighting(likelihood: str) -> None:
    m2, params, x, labels, rng = _setup(3, likelihood=likelihood)
    x_u = rng.uniform(0.2, 0.8, size=(2, X_DIM))
    eps_l, eps_u = rng.standard_normal((N, Z_DIM)), rng.standard_normal((C, 2, Z_DIM))
    check_grad(lambda p: m2.objective(p, x, labels, x_u, eps_l, eps_u, 0.7), params)
    # α multiplies the mean cross-entropy −log q(y|x) of the labelled batch, and nothing else
    cross_entropy = -numpy.mean(m2.classify(params, x)[numpy.arange(N), labels])
    difference = (m2.objective(params, x, labels, x_u, eps_l, eps_u, 2.5)
                  - m2.objective(params, x, labels, x_u, eps_l, eps_u, 0.0))
    numpy.testing.assert_allclose(difference, 2.5 * cross_entropy, rtol=1e-12)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_the_two_weightings_of_j_alpha_by_hand(likelihood: str) -> None:
    # the exact arithmetic of each weighting, from the three per-example terms computed separately
    m2, params, x, labels, rng = _setup(9, likelihood=likelihood)
    x_u = rng.uniform(0.2, 0.8, size=(3, X_DIM))
    eps_l, eps_u = rng.standard_normal((N, Z_DIM)), rng.standard_normal((C, 3, Z_DIM))
    bound_l = numpy.mean(m2.labelled_bound(params, x, labels, eps_l))
    bound_u = numpy.mean(m2.unlabelled_bound(params, x_u, eps_u))
    cross_entropy = -numpy.mean(m2.classify(params, x)[numpy.arange(N), labels])
    # equal means: mean_l −L + mean_u −U + α mean_l −log q
    numpy.testing.assert_allclose(m2.objective(params, x, labels, x_u, eps_l, eps_u, 3.0, "equal_means"),
                                  -bound_l - bound_u + 3.0 * cross_entropy, rtol=1e-13)
    # the paper: (Σ_l −L + Σ_u −U + 0.1·N·mean_l −log q) / N, here N_l = 4 labelled and N_u = 46 unlabelled
    n_u = 46
    n = N + n_u
    by_hand = (N * -bound_l + n_u * -bound_u + 0.1 * n * cross_entropy) / n
    numpy.testing.assert_allclose(m2.objective(params, x, labels, x_u, eps_l, eps_u, 0.1, "paper", n_unlabelled=n_u),
                                  by_hand, rtol=1e-13)
    # so each labelled digit's −L weighs N_u/N_l times less, relative to an unlabelled digit's −U, than under
    # equal means; and the default is equal means
    numpy.testing.assert_allclose(m2.objective(params, x, labels, x_u, eps_l, eps_u, 3.0),
                                  m2.objective(params, x, labels, x_u, eps_l, eps_u, 3.0, "equal_means"), rtol=0)
    check_grad(lambda p: m2.objective(p, x, labels, x_u, eps_l, eps_u, 0.1, "paper", n_u), params)


def test_a_bad_weighting_is_one_sentence() -> None:
    m2, params, x, labels, rng = _setup(10)
    eps_l, eps_u = rng.standard_normal((N, Z_DIM)), rng.standard_normal((C, N, Z_DIM))
    with pytest.raises(ValueError, match="weighting is 'sum'; use one of 'paper', 'equal_means'"):
        m2.objective(params, x, labels, x, eps_l, eps_u, 0.1, "sum")
    for bad in (None, -1, 2.5):
        with pytest.raises(ValueError, match="needs n_unlabelled, the size of the whole unlabelled set"):
            m2.objective(params, x, labels, x, eps_l, eps_u, 0.1, "paper", bad)
    # and m2_objective refuses it when built, not at the first step
    with pytest.raises(ValueError, match="needs n_unlabelled"):
        m2_objective(m2, x, labels, 0.1, "paper")


def test_m2_objective_splits_its_noise() -> None:
    m2, params, x, labels, rng = _setup(4)
    x_u = rng.uniform(0.2, 0.8, size=(2, X_DIM))
    objective = m2_objective(m2, x, labels, alpha=1.5)
    eps = rng.standard_normal(objective.noise_shape(2))
    assert eps.shape == (C * 2 + N, Z_DIM)
    expected = m2.objective(params, x, labels, x_u, eps[C * 2:], eps[:C * 2].reshape(C, 2, Z_DIM), 1.5)
    numpy.testing.assert_allclose(objective.loss(params, x_u, eps), expected, rtol=1e-13)
    # the paper's weighting passes through, with the size of the whole unlabelled set (not the batch's)
    paper = m2_objective(m2, x, labels, 0.1, "paper", n_unlabelled=30)
    expected = m2.objective(params, x, labels, x_u, eps[C * 2:], eps[:C * 2].reshape(C, 2, Z_DIM), 0.1, "paper", 30)
    numpy.testing.assert_allclose(paper.loss(params, x_u, eps), expected, rtol=1e-13)
    # and survives map_data (fit's binarization of the labelled digits)
    numpy.testing.assert_allclose(paper.map_data(lambda a: a).loss(params, x_u, eps), expected, rtol=1e-13)


def test_gaussian_m2_on_codes_the_stacked_m1_m2() -> None:
    # M1+M2: x is now a code z1 of M1, unbounded (here N(0, 3²)), and p(z1|y, z2) is a Gaussian with learned
    # diagonal variance: L(z1, y) = log N(z1; μ(y, z2), σ²(y, z2)) + log p(y) − KL(q(z2|z1, y) ‖ N(0, I))
    rng = numpy.random.default_rng(8)
    m2 = M2(X_DIM, [6], Z_DIM, n_classes=C, likelihood="gaussian")
    params = m2.init(rng, numpy.float64)
    z1, labels = 3.0 * rng.standard_normal((N, X_DIM)), numpy.array([1, 0, 2, 1])
    eps = rng.standard_normal((N, Z_DIM))
    # the bound term by term, from the networks' outputs and the density written out
    mean_q, log_var_q = m2.encode(params, z1, one_hot(labels, C, z1))
    z2 = mean_q + numpy.exp(log_var_q / 2) * eps
    mean_p, log_var_p = m2.decode(params, one_hot(labels, C, z1), z2)
    log_density = -0.5 * numpy.sum(numpy.log(2 * numpy.pi) + log_var_p + (z1 - mean_p) ** 2 / numpy.exp(log_var_p),
                                   axis=1)
    kl = 0.5 * numpy.sum(numpy.exp(log_var_q) + mean_q ** 2 - 1.0 - log_var_q, axis=1)
    numpy.testing.assert_allclose(m2.labelled_bound(params, z1, labels, eps), log_density - numpy.log(C) - kl,
                                  rtol=1e-12)
    # its gradient in every parameter and in the codes themselves, and generate gives the mean μ(y, z2)
    check_grad(lambda p, x: m2.labelled_bound(p, x, labels, eps), params, z1)
    numpy.testing.assert_array_equal(m2.generate(params, labels, z2), mean_p)


def test_log_softmax_is_normalised_and_stable() -> None:
    logits = numpy.array([[1.0, 2.0, 3.0], [1e4, -1e4, 0.0]])
    log_p = log_softmax(logits)
    numpy.testing.assert_allclose(numpy.exp(log_p).sum(axis=1), 1.0, rtol=1e-15)
    numpy.testing.assert_allclose(log_p[0], logits[0] - numpy.log(numpy.exp(logits[0]).sum()), rtol=1e-14)
    numpy.testing.assert_array_equal(log_p[1], [0.0, -2e4, -1e4])


def test_generate_gives_probabilities_per_class() -> None:
    m2, params, _, labels, rng = _setup(5)
    images = m2.generate(params, labels, rng.standard_normal((N, Z_DIM)))
    assert images.shape == (N, X_DIM) and numpy.all((images > 0) & (images < 1))
    numpy.testing.assert_array_equal(one_hot(numpy.array([2, 0]), 3, images), [[0, 0, 1], [1, 0, 0]])


def test_bad_input_raises_value_error() -> None:
    m2, params, x, labels, rng = _setup(6)
    eps_l = rng.standard_normal((N, Z_DIM))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        m2.labelled_bound(params, x, numpy.array([0, 1, 2, 3]), eps_l)
    with pytest.raises(ValueError, match="integer class indices"):
        m2.labelled_bound(params, x, labels.astype(float), eps_l)
    with pytest.raises(ValueError, match="labels has 2 entries"):
        m2.labelled_bound(params, x, labels[:2], eps_l)
    with pytest.raises(ValueError, match="eps has shape"):
        m2.unlabelled_bound(params, x, eps_l)
    with pytest.raises(ValueError, match="x has shape"):
        m2.classify(params, x[:, :2])
    with pytest.raises(ValueError, match="alpha"):
        m2.objective(params, x, labels, x, eps_l, rng.standard_normal((C, N, Z_DIM)), -1.0)
    with pytest.raises(ValueError, match="n_classes"):
        M2(X_DIM, [6], Z_DIM, n_classes=1)


def test_gradient_is_device_safe_on_a_strict_stand_in_array() -> None:
    # the strict stand-in refuses host arrays like CuPy does: J^α and its gradient stay on its "device"
    from autograd import grad
    from strict_array import StrictArray, to_numpy, xp

    from minivae.backend import register_array_type
    from minivae.tree import tree_map

    register_array_type(StrictArray, xp, to_numpy)
    m2, params, x, labels, rng = _setup(7)
    eps_l, eps_u = rng.standard_normal((N, Z_DIM)), rng.standard_normal((C, N, Z_DIM))
    host_grad = grad(lambda p: m2.objective(p, x, labels, x, eps_l, eps_u, 1.0))(params)
    dev = [tree_map(xp.asarray, a) for a in (params, x, eps_l, eps_u)]
    device_grad = grad(lambda p: m2.objective(p, dev[1], labels, dev[1], dev[2], dev[3], 1.0))(dev[0])
    tree_map(lambda d, h: numpy.testing.assert_allclose(to_numpy(d), h, rtol=1e-13), device_grad, host_grad)
    assert isinstance(m2.generate(dev[0], labels, dev[2]), StrictArray)


NO_ROWS_LIKELIHOODS = ["gaussian", "bernoulli"]


@pytest.mark.parametrize("likelihood", NO_ROWS_LIKELIHOODS)
def test_a_batch_of_no_unlabelled_rows_adds_nothing_to_the_objective(likelihood: str) -> None:
    m2, params, x, labels, rng = _setup(likelihood=likelihood)
    eps_l = rng.standard_normal((N, Z_DIM))
    assert m2.unlabelled_bound(params, x[:0], numpy.zeros((C, 0, Z_DIM))).shape == (0,)
    assert m2.labelled_bound(params, x[:0], labels[:0], numpy.zeros((0, Z_DIM))).shape == (0,)
    # J^α with no unlabelled rows: the labelled terms alone, −mean L(x, y) + α mean −log q(y|x)
    cross_entropy = -m2.classify(params, x)[numpy.arange(N), labels]
    expected = -numpy.mean(m2.labelled_bound(params, x, labels, eps_l)) + 0.5 * numpy.mean(cross_entropy)
    objective = m2_objective(m2, x, labels, 0.5)
    got = objective.loss(params, x[:0], eps_l)
    assert numpy.isfinite(got)
    numpy.testing.assert_allclose(got, expected, rtol=1e-14)


def test_categorical_log_prob_picks_each_rows_log_probability_and_the_mode_its_largest() -> None:
    log_q = log_softmax(numpy.random.default_rng(4).standard_normal((5, C)))
    labels = numpy.array([0, 2, 1, 2, 0])
    numpy.testing.assert_array_equal(categorical_log_prob(labels, log_q), log_q[numpy.arange(5), labels])
    numpy.testing.assert_array_equal(categorical_mode(log_q), [list(row).index(max(row)) for row in log_q])
