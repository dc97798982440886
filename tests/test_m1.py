"""Tests of minivae.m1: the classifier's cross-entropy, its gradients, the packed objectives, and bad input."""

from __future__ import annotations

import numpy
import pytest

from minivae.gradcheck import check_grad
from minivae.m1 import M1, Classifier, pack_labelled
from minivae.models import VAE
from minivae.objectives import classifier_objective, m1_objective
from minivae.optim import Adam
from minivae.train import TrainSettings, fit

X_DIM, Z_DIM, C, N = 6, 3, 4, 5


def _setup(seed: int = 0, hidden=(7,)):
    rng = numpy.random.default_rng(seed)
    m1 = M1(VAE(X_DIM, [8], Z_DIM), hidden, n_classes=C)
    params = m1.init(rng, numpy.float64)
    x = rng.uniform(0.1, 0.9, size=(N, X_DIM))
    labels = numpy.array([0, 3, 1, 2, 3])
    return m1, params, x, labels, rng


def test_cross_entropy_is_minus_log_softmax_at_the_label() -> None:
    m1, params, x, labels, _ = _setup()
    mean, _ = m1.features(params, x)
    # the classifier by hand: logits = relu(z W1 + b1) W2 + b2, then −log softmax at each row's label
    (W1, b1), (W2, b2) = params["classifier"]
    logits = numpy.maximum(mean @ W1 + b1, 0.0) @ W2 + b2
    expected = numpy.log(numpy.exp(logits).sum(axis=1)) - logits[numpy.arange(N), labels]
    numpy.testing.assert_allclose(m1.classifier.cross_entropy(params["classifier"], mean, labels), expected,
                                  rtol=1e-13)
    numpy.testing.assert_array_equal(m1.predict(params, x), numpy.argmax(logits, axis=1))


@pytest.mark.parametrize("hidden", [(), (7,)], ids=["softmax_regression", "mlp"])
def test_gradients_match_finite_differences(hidden) -> None:
    m1, params, x, labels, rng = _setup(1, hidden)
    mean, log_var = (numpy.asarray(a) for a in m1.features(params, x))
    eps = rng.standard_normal((N, Z_DIM))
    # in the classifier's weights and in the code's mean and log σ² (the reparameterized path)
    check_grad(lambda c, m, lv: m1.sampled_cross_entropy(c, m, lv, labels, eps), params["classifier"], mean, log_var)
    check_grad(lambda c, z: m1.classifier.cross_entropy(c, z, labels), params["classifier"], mean)


def test_sampled_cross_entropy_at_zero_noise_is_the_mean_code() -> None:
    m1, params, x, labels, _ = _setup(2)
    mean, log_var = m1.features(params, x)
    numpy.testing.assert_array_equal(
        m1.sampled_cross_entropy(params["classifier"], mean, log_var, labels, numpy.zeros((N, Z_DIM))),
        m1.classifier.cross_entropy(params["classifier"], mean, labels))


def test_packed_objectives_equal_the_direct_means() -> None:
    m1, params, x, labels, rng = _setup(3)
    mean, log_var = m1.features(params, x)
    objective = m1_objective(m1)
    assert objective.noise_shape(N) == (N, Z_DIM)
    eps = rng.standard_normal((N, Z_DIM))
    rows = pack_labelled(labels, C, mean, log_var).astype(numpy.float64)
    numpy.testing.assert_allclose(
        objective.loss(params["classifier"], rows, eps),
        numpy.mean(m1.sampled_cross_entropy(params["classifier"], mean, log_var, labels, eps)), rtol=1e-6)
    pixels = Classifier(X_DIM, (), C)
    weights = pixels.init(rng, numpy.float64)
    loss = classifier_objective(pixels).loss(weights, pack_labelled(labels, C, x).astype(numpy.float64), None)
    # pack_labelled stores float32 rows: compare at float32's precision
    numpy.testing.assert_allclose(loss, numpy.mean(pixels.cross_entropy(weights, x.astype(numpy.float32), labels)),
                                  rtol=1e-6)


def test_softmax_regression_fits_separable_classes() -> None:
    # four well-separated Gaussian blobs: softmax regression trained by fit must label every point right
    rng = numpy.random.default_rng(4)
    centres = 4.0 * numpy.eye(C, Z_DIM + 1)
    labels = numpy.repeat(numpy.arange(C), 20)
    z = (centres[labels] + 0.3 * rng.standard_normal((len(labels), Z_DIM + 1))).astype(numpy.float32)
    classifier = Classifier(Z_DIM + 1, (), C)
    result = fit(classifier_objective(classifier), classifier.init(rng), pack_labelled(labels, C, z),
                 optimizer=Adam(0.05), settings=TrainSettings(epochs=60, batch_size=len(labels), seed=0))
    numpy.testing.assert_array_equal(classifier.predict(result.params, z), labels)
    assert result.history[-1]["train_neg_cross_entropy"] > -0.1


def test_bad_input_raises_value_error() -> None:
    m1, params, x, labels, rng = _setup(5)
    mean, log_var = m1.features(params, x)
    with pytest.raises(ValueError, match="eps has shape"):
        m1.sampled_cross_entropy(params["classifier"], mean, log_var, labels, rng.standard_normal((N, Z_DIM + 1)))
    with pytest.raises(ValueError, match="labels has 2 entries"):
        m1.classifier.cross_entropy(params["classifier"], mean, labels[:2])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        m1.classifier.cross_entropy(params["classifier"], mean, numpy.array([0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match="x has shape"):
        m1.classifier.classify(params["classifier"], x)
    with pytest.raises(ValueError, match="n_classes"):
        Classifier(Z_DIM, (), 1)
