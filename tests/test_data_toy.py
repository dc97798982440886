"""minivae.data.toy: two Gaussian clusters and the ring, against their definitions."""

from __future__ import annotations

import numpy
import pytest

from minivae import data


def test_two_gaussians_clusters():
    x, labels = data.two_gaussians(20000, numpy.random.default_rng(1))
    assert x.shape == (20000, 2) and x.dtype == numpy.float32 and labels.dtype == numpy.int64
    for c, mean in ((0, [-2.0, 0.0]), (1, [2.0, 0.0])):
        rows = x[labels == c]
        # each coordinate has unit variance: the mean is within 4 standard errors 1/sqrt(n)
        assert numpy.all(numpy.abs(rows.mean(axis=0) - mean) < 4 / numpy.sqrt(len(rows)))
        assert numpy.all(numpy.abs(rows.std(axis=0) - 1.0) < 0.05)
    assert abs(labels.mean() - 0.5) < 4 * 0.5 / numpy.sqrt(len(labels))
    x2, labels2 = data.two_gaussians(20000, numpy.random.default_rng(1))
    numpy.testing.assert_array_equal(x, x2)
    numpy.testing.assert_array_equal(labels, labels2)


def test_ring_is_g_of_standard_normal():
    x = data.ring(1000, numpy.random.default_rng(2))
    z = numpy.random.default_rng(2).standard_normal((1000, 2))
    norm = numpy.linalg.norm(z, axis=1, keepdims=True)
    assert x.shape == (1000, 2) and x.dtype == numpy.float32
    numpy.testing.assert_allclose(x, z / 10 + z / norm, rtol=1e-6, atol=1e-7)
    # ‖g(z)‖ = 1 + ‖z‖/10 ≥ 1: a ring, not a blob
    assert numpy.linalg.norm(x, axis=1).min() >= 1.0 - 1e-6


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_toys_refuse_bad_counts(n):
    with pytest.raises(ValueError, match="n must be"):
        data.ring(n, numpy.random.default_rng(0))
