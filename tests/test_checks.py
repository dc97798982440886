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


# ---------------------------------------------------------------- the models' own checks


@pytest.mark.parametrize("value", [1, 0, -3, 2.5, True])
def test_check_classes_wants_an_integer_of_at_least_two(value):
    with pytest.raises(ValueError, match=f"n_classes must be an integer of at least 2, got {value!r}"):
        checks.check_classes(value)
    checks.check_classes(2)
    checks.check_classes(np.int64(10))


def test_check_two_input_hidden_wants_a_layer_for_the_two_inputs_to_meet_in():
    with pytest.raises(ValueError, match="hidden must list at least one layer width: the first layer takes two"):
        checks.check_two_input_hidden(())
    checks.check_two_input_hidden((4,))


def test_check_choice_lists_the_choices():
    with pytest.raises(ValueError, match="prior must be 'learned' or 'standard', got 'flat'"):
        checks.check_choice("prior", "flat", ("learned", "standard"))
    with pytest.raises(ValueError, match="got None"):
        checks.check_choice("prior", None, ("learned", "standard"))
    checks.check_choice("prior", "standard", ("learned", "standard"))


@pytest.mark.parametrize("value, high, high_open, words", [
    (-0.1, float("inf"), False, r"alpha must be a number at least 0, got -0.1"),
    (float("nan"), float("inf"), False, "at least 0, got nan"),
    (1.0, 1.0, True, r"alpha must be a number in \[0, 1\), got 1.0"),
    (1.5, 1.0, False, r"in \[0, 1\], got 1.5"),
])
def test_check_interval_refuses_values_outside_and_nan(value, high, high_open, words):
    with pytest.raises(ValueError, match=words):
        checks.check_interval("alpha", value, 0.0, high, high_open)
    checks.check_interval("alpha", 0.0, 0.0, high, high_open)
    checks.check_interval("alpha", 0.999, 0.0, high, high_open)


def test_check_same_rows_wants_one_entry_per_row():
    with pytest.raises(ValueError, match="labels has 2 entries but x has 3 rows; pass exactly one per row"):
        checks.check_same_rows("labels", np.array([0, 1]), "x", np.zeros((3, 4)))
    checks.check_same_rows("labels", [0, 1, 2], "x", np.zeros((3, 4)))


@pytest.mark.parametrize("labels, words", [
    (np.array([[0, 1]]), "1-D array of integer class indices, got shape"),
    (np.array([0.0, 1.0]), "dtype float64"),
    (np.array([0, 3]), r"labels must lie in \[0, 3\), but they range over \[0, 3\]"),
    (np.array([-1, 0]), r"range over \[-1, 0\]"),
])
def test_check_labels_wants_int_classes_in_range(labels, words):
    with pytest.raises(ValueError, match=words):
        checks.check_labels(labels, 3)
    checks.check_labels(np.array([0, 2, 1]), 3)
    checks.check_labels(np.array([], np.int64), 3)


@pytest.mark.parametrize("shape, rows, ok", [
    ((3, 2), None, True), ((4, 3, 2), None, True), ((3, 5), None, False), ((2,), None, False),
    ((4, 3, 2), 3, True), ((4, 5, 2), 3, False), ((2, 4, 3, 2), None, False),
])
def test_check_codes_takes_one_or_k_codes_per_row(shape, rows, ok):
    if ok:
        checks.check_codes(np.zeros(shape), 2, rows)
    else:
        with pytest.raises(ValueError, match=r"z has shape .* expects \(N, 2\) or \(k, N, 2\)"):
            checks.check_codes(np.zeros(shape), 2, rows)


def test_check_width_checks_the_last_axis():
    with pytest.raises(ValueError, match=r"y has shape \(3, 4\), but this model expects 5 values in its last axis"):
        checks.check_width("y", np.zeros((3, 4)), 5, "a one-hot class")
    checks.check_width("y", np.zeros((5, 1, 5)), 5, "a one-hot class")


def test_check_per_sample_and_check_k_samples():
    with pytest.raises(ValueError, match=r"f returned shape \(4, 3, 2\) for z of shape \(4, 3, 2\)"):
        checks.check_per_sample(np.zeros((4, 3, 2)), np.zeros((4, 3, 2)))
    checks.check_per_sample(np.zeros((4, 3)), np.zeros((4, 3, 2)))
    with pytest.raises(ValueError, match=r"fz has shape \(1, 3\); a leave-one-out baseline needs \(k, N\) with k ≥ 2"):
        checks.check_k_samples(np.zeros((1, 3)))
    checks.check_k_samples(np.zeros((2, 3)))


def test_check_unit_interval_passes_empty_data_and_refuses_values_outside():
    # zero rows hold no value outside [0, 1] (x.min() of an empty array used to raise numpy's own error)
    for empty in (np.zeros((0, 3)), np.zeros((2, 0, 3), np.float32)):
        checks.check_unit_interval("x", empty)
    checks.check_unit_interval("x", np.array([[0.0, 0.5, 1.0]]))
    with pytest.raises(ValueError, match=r"x must hold Bernoulli targets in \[0, 1\].*\[-0.5, 1\]"):
        checks.check_unit_interval("x", np.array([[-0.5, 1.0]]))


# ------------------------------------------------------------------ caps with reasons, another model's params

def test_caps_name_the_memory_they_would_need_instead_of_a_memory_error():
    from minivae.models import VAE
    from minivae.nn import init_mlp
    from minivae.objectives import iwae_objective

    rng = np.random.default_rng(0)
    # widths of 10^9 need terabytes for their weights alone: one sentence before anything is drawn
    with pytest.raises(ValueError, match=r"layers of widths \[784, 1000000000, 20\] would need at least "
                                         r"[\d,.]+ GiB \([\d,]+ weights of 4 bytes\), more than this machine's"):
        VAE(784, [10**9], 20)
    with pytest.raises(ValueError, match=r"\([\d,]+ weights of 8 bytes\).* lower the widths"):
        init_mlp([784, 10**9, 10], rng, np.float64)
    vae = VAE(784, [16], 2)
    params = vae.init(rng)
    # IWAE: k·n rows through the decoder, refused when the trainer asks for the noise (before drawing it)
    objective = iwae_objective(vae, 10**9)
    with pytest.raises(ValueError, match=r"iwae_objective\(k=1,000,000,000\) on 100 rows would need at least "
                                         r"[\d,.]+ GiB \(100,000,000,000 rows x 800 values x 4 bytes\)"):
        objective.noise_shape(100)
    assert iwae_objective(vae, 50).noise_shape(100) == (50, 100, 2)
    with pytest.raises(ValueError, match=r"sample\(n=10,000,000,000\) would need at least"):
        vae.sample(params, 10**10, rng)
    # a broadcast view stands in for huge noise: the bound refuses it by its shape before any layer runs
    eps = np.broadcast_to(np.zeros((1, 1, 2), np.float32), (10**9, 3, 2))
    with pytest.raises(ValueError, match=r"the IWAE bound for eps \(1000000000, 3, 2\) would need at least"):
        vae.iwae_bound(params, np.zeros((3, 784), np.float32), eps)
    # log p(x) is batched (bounded memory) but k decoder passes per row take time: capped at 10^6
    with pytest.raises(ValueError, match=r"k=10,000,000 importance samples would take 10,000,000 decoder passes"):
        vae.log_likelihood(params, np.zeros((1, 784), np.float32), 10**7, rng)


def test_the_params_of_another_kind_of_model_are_one_sentence_not_a_key_error():
    from minivae.fantasies import fantasies_html
    from minivae.m1 import M1
    from minivae.models import AE, VAE

    rng = np.random.default_rng(0)
    x = np.zeros((2, 6), np.float32)
    vae, gaussian, ae = VAE(6, [4], 2), VAE(6, [4], 2, likelihood="gaussian"), AE(6, [4], 2)
    eps = np.zeros((2, 2), np.float32)
    cases = [(lambda: vae.elbo(ae.init(rng), x, eps), r"params\['encoder'\] has a list where a VAE keeps the keys"),
             (lambda: vae.elbo(gaussian.init(rng), x, eps),
              r"params\['decoder'\] has the keys \['hidden', 'log_var', 'mean'\] where a VAE with a bernoulli "
              r"decoder keeps the keys \['hidden', 'logits'\]"),
             (lambda: ae.loss(vae.init(rng), x), r"params\['encoder'\] has the keys .* where a AE keeps a list"),
             (lambda: M1(vae).predict(vae.init(rng), x), r"params has the keys \['decoder', 'encoder'\] where a M1"),
             (lambda: fantasies_html(VAE(784, [4], 2), {"encoder": {}}),
              r"params has the keys \['encoder'\] where a VAE")]
    for call, words in cases:
        with pytest.raises(ValueError, match=words + ".*another kind of model"):
            call()


def test_predict_refuses_non_finite_pixels():
    from minivae.m1 import M1, Classifier
    from minivae.models import VAE

    rng = np.random.default_rng(0)
    x = rng.random((3, 6)).astype(np.float32)
    x[1, 2] = np.nan
    m1, classifier = M1(VAE(6, [4], 2)), Classifier(6, [4], 3)
    for model in (m1, classifier):
        with pytest.raises(ValueError, match="x holds 1 NaN or infinite values"):
            model.predict(model.init(rng), x)
        assert model.predict(model.init(rng), np.nan_to_num(x)).shape == (3,)
