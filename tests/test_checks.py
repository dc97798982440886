"""minivae.checks: each argument check refuses its mistake with one sentence and lets good input through."""

from __future__ import annotations

import numpy as np
import pytest

from minivae import checks


@pytest.mark.parametrize("value", [0, -1, 2.0, 2.5, True, "3", None])
def test_check_count_takes_positive_ints_only(value):
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        checks.check_count("epochs", value, "epochs")
    checks.check_count("epochs", 3, "epochs")
    checks.check_count("k", np.int64(2), "importance samples")


def test_check_count_names_what_is_counted_and_allows_zero_when_asked():
    checks.check_count("n", 0, "samples", minimum=0)
    with pytest.raises(ValueError, match="n must be a non-negative integer number of samples, got -1"):
        checks.check_count("n", -1, "samples", minimum=0)


@pytest.mark.parametrize("x, likelihood, width, words", [
    (np.array([[0.1, np.nan]], np.float32), None, None, "1 NaN or infinite"),
    (np.array([[0.1, np.inf]], np.float32), "gaussian", None, "NaN or infinite"),
    (np.array([[0.1, 1.5]], np.float32), "bernoulli", None, r"\[0.1, 1.5\].*Bernoulli"),
    (np.array([[-0.1, 0.5]], np.float32), "bernoulli", None, "Bernoulli"),
    (np.zeros((2, 28, 28), np.float32), None, None, "2-D"),
    (np.zeros((2, 5), np.float32), None, 784, "expects 784"),
    (np.zeros((2, 5), np.uint8), None, None, "dtype uint8"),
    (np.zeros((0, 5), np.float32), None, None, "2-D"),
])
def test_check_data_refuses_bad_input(x, likelihood, width, words):
    with pytest.raises(ValueError, match=words):
        checks.check_data(x, likelihood, width)


def test_check_data_accepts_good_input():
    checks.check_data(np.array([[0.0, 1.0]], np.float32), "bernoulli", 2)
    checks.check_data(np.array([[-3.0, 7.0]], np.float64), "gaussian", 2)


@pytest.mark.parametrize("shape, samples, ok", [
    ((3, 2), "one", True), ((4, 3, 2), "one", False), ((4, 3, 2), "k", True), ((3, 2), "k", False),
    ((3, 2), "any", True), ((4, 3, 2), "any", True), ((3, 3), "any", False), ((2, 4, 3, 2), "any", False),
    ((0, 2), "one", False), ((4, 0, 2), "k", False),
])
def test_check_eps_takes_one_or_k_draws_per_entry_of_mean(shape, samples, ok):
    mean = np.zeros((3, 2))
    if ok:
        checks.check_eps(np.zeros(shape), mean, samples)
    else:
        with pytest.raises(ValueError, match=r"eps has shape .* to match mean \(3, 2\)"):
            checks.check_eps(np.zeros(shape), mean, samples)


def test_check_eps_allows_zero_rows_when_mean_has_none():
    checks.check_eps(np.zeros((0, 2)), np.zeros((0, 2)), "one")
    checks.check_eps(np.zeros((5, 0, 2)), np.zeros((0, 2)), "k")


def test_check_unit_interval_passes_empty_data_and_refuses_values_outside():
    # zero rows hold no value outside [0, 1] (x.min() of an empty array used to raise numpy's own error)
    for empty in (np.zeros((0, 3)), np.zeros((2, 0, 3), np.float32)):
        checks.check_unit_interval("x", empty)
    checks.check_unit_interval("x", np.array([[0.0, 0.5, 1.0]]))
    with pytest.raises(ValueError, match=r"x must hold Bernoulli targets in \[0, 1\].*\[-0.5, 1\]"):
        checks.check_unit_interval("x", np.array([[-0.5, 1.0]]))
