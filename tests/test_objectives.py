"""minivae.objectives: each objective is minus its model's mean bound, carries its model's init, and hands its
own data (M2's labelled digits) to the trainer through map_data; kl_warmup's β schedule; count checks."""

from __future__ import annotations

import numpy
import pytest

from minivae.cvae import CVAE, pack_pairs
from minivae.m2 import M2
from minivae.models import AE, VAE
from minivae.objectives import (
    Objective,
    ae_objective,
    cvae_objective,
    iwae_objective,
    kl_warmup,
    m2_objective,
    vae_objective,
)
from minivae.tree import tree_map


def test_each_objective_is_minus_its_models_mean_bound_and_knows_its_init():
    rng = numpy.random.default_rng(0)
    x = rng.random((5, 6))
    vae, ae = VAE(6, [4], 2), AE(6, [4], 2)
    cvae, m2 = CVAE(6, 3, [4], 2), M2(6, [4], 2, n_classes=3)
    y = rng.random((5, 3))
    x_l, labels = rng.random((4, 6)), numpy.array([0, 2, 1, 1])
    eps = rng.standard_normal((5, 2))
    eps_k = rng.standard_normal((3, 5, 2))
    eps_m2 = rng.standard_normal((3 * 5 + 4, 2))
    cases = [
        (vae_objective(vae), vae, x, eps, lambda p: -numpy.mean(vae.elbo(p, x, eps)), (5, 2)),
        (vae_objective(vae, 0.5), vae, x, eps, lambda p: -numpy.mean(vae.elbo(p, x, eps, 0.5)), (5, 2)),
        (iwae_objective(vae, 3), vae, x, eps_k, lambda p: -numpy.mean(vae.iwae_bound(p, x, eps_k)), (3, 5, 2)),
        (ae_objective(ae), ae, x, None, lambda p: numpy.mean(ae.loss(p, x)), None),
        (cvae_objective(cvae), cvae, pack_pairs(x, y), eps, lambda p: -numpy.mean(cvae.elbo(p, x, y, eps)), (5, 2)),
        (m2_objective(m2, x_l, labels, 0.5), m2, x, eps_m2,
         lambda p: m2.objective(p, x_l, labels, x, eps_m2[15:], eps_m2[:15].reshape(3, 5, 2), 0.5), (19, 2)),
    ]
    for objective, model, data, noise, expected, noise_shape in cases:
        params = model.init(numpy.random.default_rng(1), numpy.float64)
        assert objective.loss(params, data, noise) == expected(params)
        assert (objective.noise_shape(5) if objective.noise_shape else None) == noise_shape
        # the trainer compares params against the model's init: same nest, same shapes
        tree_map(lambda a, b: a.shape == b.shape or pytest.fail("shapes differ"), objective.init(rng), params)
    assert [c[0].bound for c in cases] == ["elbo", "elbo_beta0.5", "iwae_3", "neg_squared_error", "elbo",
                                           "neg_j_alpha"]


def test_map_data_hands_m2s_labelled_digits_to_the_trainer():
    rng = numpy.random.default_rng(2)
    m2 = M2(6, [4], 2, n_classes=3)
    params = m2.init(rng, numpy.float64)
    x_l, labels, x_u = rng.random((4, 6)), numpy.array([0, 2, 1, 1]), rng.random((5, 6))
    eps = rng.standard_normal((3 * 5 + 4, 2))
    objective = m2_objective(m2, x_l, labels, 1.0)
    seen = []

    def binarize(x):
        seen.append(x)
        return (x > 0.5).astype(x.dtype)

    mapped = objective.map_data(binarize)
    # f is applied to the labelled digits, and the loss then scores those
    assert len(seen) == 1 and seen[0] is x_l
    by_hand = m2_objective(m2, (x_l > 0.5).astype(x_l.dtype), labels, 1.0)
    assert mapped.loss(params, x_u, eps) == by_hand.loss(params, x_u, eps)
    assert mapped.loss(params, x_u, eps) != objective.loss(params, x_u, eps)
    # an objective without data of its own is returned as it is
    vae_obj = vae_objective(VAE(6, [4], 2))
    assert vae_obj.map_data(binarize) is vae_obj and len(seen) == 1


def test_objective_positional_fields_stay_as_they_were():
    # (loss, noise_shape, bound, likelihood, x_dim): callers build Objectives positionally
    objective = Objective(lambda p, x, eps: 0.0, None, "neg_loss", "gaussian", 3)
    assert (objective.likelihood, objective.x_dim, objective.init, objective.data_map) == ("gaussian", 3, None, None)


def test_kl_warmup_steps_beta_from_beta_start_to_one():
    vae = VAE(12, [8], 2)
    schedule = kl_warmup(vae, 4)
    # beta_e = 0.1 + 0.9 (e - 1) / 4: 0.1, 0.325, 0.55, 0.775, then exactly 1 (the plain ELBO)
    assert [schedule(e).bound for e in range(1, 8)] == [
        "elbo_beta0.1", "elbo_beta0.325", "elbo_beta0.55", "elbo_beta0.775", "elbo", "elbo", "elbo"]
    assert kl_warmup(vae, 2, beta_start=0.0)(2).bound == "elbo_beta0.5"
    betas = []
    kl_warmup(vae, 3, 0.4, objective=lambda v, beta: betas.append(beta) or vae_objective(v, beta))(2)
    assert betas == [pytest.approx(0.6, abs=1e-15)]
    for kw, words in (({"warmup_epochs": 0}, "warmup_epochs"), ({"warmup_epochs": 2.0}, "warmup_epochs"),
                      ({"warmup_epochs": 2, "beta_start": 1.5}, "beta_start")):
        with pytest.raises(ValueError, match=words):
            kl_warmup(vae, **kw)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        iwae_objective(vae, 0)
