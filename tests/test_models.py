"""AE and VAE: gradients, an exact linear-Gaussian model, the IWAE bound, float32 discipline, bad input."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pytest
from autograd.core import VJPNode, add_outgrads
from autograd.extend import vspace
from autograd.numpy.numpy_vjps import nograd_functions
from autograd.tracer import register_notrace, toposort, trace

from minivae import distributions as dist
from minivae import nn, ops
from minivae.gradcheck import check_grad
from minivae.models import AE, VAE, active_units, unit_activity
from minivae.tree import tree_leaves

LOG_2PI = np.log(2 * np.pi)


def small(likelihood, activation="tanh", dtype=np.float64, n=3):
    vae = VAE(4, [3], 2, likelihood=likelihood, activation=activation)
    params = vae.init(np.random.default_rng(0), dtype)
    x = np.random.default_rng(1).uniform(0.1, 0.9, (n, 4)).astype(dtype)
    return vae, params, x


# ---------------------------------------------------------------- gradients (float64, fixed eps)

@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_vae_elbo_and_iwae_gradients(likelihood, activation):
    vae, params, x = small(likelihood, activation)
    rng = np.random.default_rng(2)
    check_grad(lambda p, x, e: vae.elbo(p, x, e), params, x, rng.standard_normal((3, 2)))
    check_grad(lambda p, x, e: vae.elbo(p, x, e, beta=0.3), params, x, rng.standard_normal((3, 2)))
    check_grad(lambda p, x, e: vae.iwae_bound(p, x, e), params, x, rng.standard_normal((4, 3, 2)))


def test_ae_loss_gradient_and_value():
    ae = AE(4, [3], 2, activation="tanh")
    params = ae.init(np.random.default_rng(0), np.float64)
    x = np.random.default_rng(1).standard_normal((3, 4))
    check_grad(ae.loss, params, x)
    x_hat = nn.mlp(params["decoder"], nn.mlp(params["encoder"], x, "tanh"), "tanh")
    np.testing.assert_allclose(ae.loss(params, x), ((x - x_hat) ** 2).sum(-1), rtol=1e-13)


# ---------------------------------------------------------------- the ELBO's terms

@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_elbo_is_reconstruction_minus_beta_kl(likelihood):
    vae, params, x = small(likelihood)
    eps = np.random.default_rng(3).standard_normal((3, 2))
    mean, log_var = vae.encode(params, x)
    z = mean + np.exp(0.5 * log_var) * eps
    kl = 0.5 * (np.exp(log_var) + mean ** 2 - 1 - log_var).sum(-1)
    if likelihood == "bernoulli":
        p = 1 / (1 + np.exp(-vae.decode(params, z)))
        rec = (x * np.log(p) + (1 - x) * np.log(1 - p)).sum(-1)
    else:
        mu, lv = vae.decode(params, z)
        rec = (-0.5 * (LOG_2PI + lv + (x - mu) ** 2 / np.exp(lv))).sum(-1)
    assert np.all(kl > 0.01)
    for beta in (1.0, 0.25, 4.0):
        np.testing.assert_allclose(vae.elbo(params, x, eps, beta=beta), rec - beta * kl, rtol=1e-12)


def test_gaussian_elbo_catches_each_get_elbo_mistake_of_the_aevb_notes():
    """The AEVB notes' get_ELBO: each of its four mistakes gives a different number on these inputs.

    minivae's ELBO must equal the formula; each mutant below is that code's mistake written against the
    same encoder/decoder outputs, and each must differ from minivae's value by far more than rounding.
    """
    vae, params, x = small("gaussian", n=5)
    eps = np.random.default_rng(4).standard_normal((5, 2))
    mean, log_var = vae.encode(params, x)
    z = mean + np.exp(0.5 * log_var) * eps
    mu_x, h = vae.decode(params, z)  # h: the decoder's log σ² head
    sigma = np.exp(0.5 * h)
    D = x.shape[1]
    neg_kl = 0.5 * (1 + log_var - mean ** 2 - np.exp(log_var)).sum(-1)
    const = -D / 2 * LOG_2PI
    log_sigma = np.log(sigma).sum(-1)
    right_quadratic = -(0.5 * (x - mu_x) ** 2 / sigma ** 2).sum(-1)
    right = const - log_sigma + right_quadratic + neg_kl
    mutants = {
        # 1/(2σ²) added to (x − μ)² instead of multiplying it
        "quadratic added": const - log_sigma - (0.5 * (1 / (2 * sigma ** 2) + (x - mu_x) ** 2)).sum(-1) + neg_kl,
        # the −(D/2) log 2π constant counted twice
        "constant twice": 2 * const - log_sigma + right_quadratic + neg_kl,
        # σ made positive with abs of the head's output, log|h| in place of ½ log σ²
        "abs for sigma": const - np.log(np.abs(h)).sum(-1) - (0.5 * (x - mu_x) ** 2 / h ** 2).sum(-1) + neg_kl,
        # the likelihood term returned instead of the ELBO
        "likelihood only": const - log_sigma + right_quadratic,
    }
    got = vae.elbo(params, x, eps)
    np.testing.assert_allclose(got, right, rtol=1e-12)
    for name, wrong in mutants.items():
        assert np.min(np.abs(wrong - got)) > 0.05, name


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_iwae_at_k1_equals_elbo_in_expectation_not_per_sample(likelihood):
    """L_1 = log p(x|z) + log p(z) − log q(z|x); the ELBO uses the closed-form KL instead of its estimate."""
    vae, params, x = small(likelihood, n=1)
    rows = 100_000
    xr = np.repeat(x, rows, 0)
    eps = np.random.default_rng(5).standard_normal((rows, 2))
    d = vae.iwae_bound(params, xr, eps[None]) - vae.elbo(params, xr, eps)
    se = d.std(ddof=1) / np.sqrt(rows)
    assert d.std() > 0.05  # they differ sample by sample ...
    assert abs(d.mean()) < 4 * se  # ... but agree in expectation


# ---------------------------------------------------------------- an exact answer: linear-Gaussian

SIGMA2 = 0.3
S = np.array([1.5, 0.7])
W = np.linalg.qr(np.random.default_rng(6).standard_normal((3, 2)))[0] * S  # (x_dim, z_dim), WᵀW = diag(S²)
B = np.array([0.2, -0.4, 1.0])
LAMBDA = 1 + S ** 2 / SIGMA2  # posterior precision I + WᵀW/σ², diagonal because W's columns are orthogonal
X_LG = np.array([[0.5, 1.0, -1.5], [2.0, -0.3, 0.8]])
LG = VAE(3, [], 2, likelihood="gaussian")


def lg_params(shift=0.0, scale=1.0, log_var_shift=0.0):
    """p(z) = N(0, I), p(x|z) = N(W z + b, σ² I); q is the exact posterior, then shifted and rescaled.

    The posterior is N(Λ⁻¹ Wᵀ(x − b)/σ², Λ⁻¹): a linear encoder x ↦ x E + e with E = W Λ⁻¹/σ², e = −b E.
    """
    E = W / LAMBDA / SIGMA2 * scale
    encoder = {"hidden": [], "mean": (E, -B @ E + shift),
               "log_var": (np.zeros((3, 2)), -np.log(LAMBDA) + log_var_shift)}
    decoder = {"hidden": [], "mean": (W.T.copy(), B.copy()),
               "log_var": (np.zeros((2, 3)), np.full(3, np.log(SIGMA2)))}
    return {"encoder": encoder, "decoder": decoder}


def exact_log_px(x):
    """log N(x; b, W Wᵀ + σ² I)."""
    C = W @ W.T + SIGMA2 * np.eye(3)
    r = x - B
    return -0.5 * (3 * LOG_2PI + np.linalg.slogdet(C)[1] + np.einsum("nd,de,ne->n", r, np.linalg.inv(C), r))


def exact_elbo(params, x):
    """E_ε[ELBO(ε)] exactly: the ELBO is quadratic in ε here, and the 2d points ±√d e_j match ε's moments."""
    d = 2
    points = [sign * np.sqrt(d) * np.eye(d)[j] for j in range(d) for sign in (1, -1)]
    return np.mean([LG.elbo(params, x, np.broadcast_to(p, (len(x), d))) for p in points], axis=0)


def kl_to_posterior(params, x):
    mean, log_var = LG.encode(params, x)
    post_mean, post_log_var = LG.encode(lg_params(), x)
    return dist.kl_diag_gaussians(mean, log_var, post_mean, post_log_var)


def test_linear_gaussian_elbo_is_log_px_minus_kl_to_the_posterior():
    log_px = exact_log_px(X_LG)
    # at the exact posterior: ELBO = log p(x) to float64 precision
    np.testing.assert_allclose(exact_elbo(lg_params(), X_LG), log_px, rtol=0, atol=1e-12)
    # and the log weight log p(x, z) − log q(z|x) is log p(x) for every z: the bound has zero variance
    eps = np.random.default_rng(7).standard_normal((5, 2, 2))
    np.testing.assert_allclose(LG.iwae_bound(lg_params(), X_LG, eps), log_px, rtol=0, atol=1e-12)
    np.testing.assert_allclose(LG.log_weights(lg_params(), X_LG, eps), np.broadcast_to(log_px, (5, 2)),
                               rtol=0, atol=1e-12)
    # for other q: ELBO = log p(x) − KL(q ‖ p(z|x)) < log p(x)
    for shift, scale, lv in [(0.3, 1.0, 0.0), (0.0, 0.5, 1.0), (-1.0, 2.0, -2.0)]:
        params = lg_params(shift, scale, lv)
        gap = kl_to_posterior(params, X_LG)
        assert np.all(gap > 0.05)
        np.testing.assert_allclose(exact_elbo(params, X_LG), log_px - gap, rtol=0, atol=1e-12)


def test_linear_gaussian_iwae_bound_increases_with_k_towards_log_px():
    params = lg_params(0.5, 1.0, 0.7)  # a wider, shifted q: finite-variance weights, visible gaps
    rows = 4000
    x = np.repeat(X_LG, rows, 0)
    log_px = exact_log_px(X_LG)
    elbo = exact_elbo(params, X_LG)
    means, ses = {}, {}
    for k, seed in ((1, 8), (5, 9), (50, 10)):
        eps = np.random.default_rng(seed).standard_normal((k, 2 * rows, 2))
        L = LG.iwae_bound(params, x, eps).reshape(2, rows)
        means[k], ses[k] = L.mean(1), L.std(1, ddof=1) / np.sqrt(rows)
    # E[L_1] is the ELBO
    assert np.all(np.abs(means[1] - elbo) < 4 * ses[1])
    # E[L_1] < E[L_5] < E[L_50] ≤ log p(x), each step beyond 4 standard errors of the difference
    for a, b in ((1, 5), (5, 50)):
        assert np.all(means[b] - means[a] > 4 * np.hypot(ses[a], ses[b])), (a, b, means, ses)
    assert np.all(means[50] < log_px + 4 * ses[50])
    # and the gap to log p(x) shrinks: at k = 50 it is under a tenth of the ELBO's
    assert np.all(log_px - means[50] < 0.1 * (log_px - elbo))


def test_linear_gaussian_log_likelihood_converges_to_log_px():
    log_px = exact_log_px(X_LG)
    # exact posterior: every weight is p(x), so any k (here 3 chunks of ≤ 100) gives log p(x) exactly
    got = LG.log_likelihood(lg_params(), X_LG, 250, np.random.default_rng(11), batch_size=1)
    np.testing.assert_allclose(got, log_px, rtol=0, atol=1e-12)
    # a poor q: the estimate's standard error is std(w)/(p(x)·√k) by the delta method; measure std(w)/p(x)
    # from independent draws, and ask for the k = 20,000 estimate within 4 standard errors of log p(x)
    params = lg_params(0.5, 1.0, 0.7)
    k = 20_000
    w = np.exp(LG.log_weights(params, X_LG, np.random.default_rng(13).standard_normal((k, 2, 2))) - log_px)
    se = w.std(0, ddof=1) / np.sqrt(k)
    assert np.all(se < 0.02)  # the weights' spread is moderate, so the check is tight
    coarse = LG.log_likelihood(params, X_LG, 2, np.random.default_rng(12))
    fine = LG.log_likelihood(params, X_LG, k, np.random.default_rng(12))
    assert np.all(np.abs(fine - log_px) < 4 * se), (fine - log_px, se)
    assert np.all(np.abs(fine - log_px) < np.abs(coarse - log_px))


# ---------------------------------------------------------------- float32 discipline

class NamedVJPNode(VJPNode):
    """autograd's backward-pass node, also remembering which primitive made it."""

    __slots__ = ["name"]

    def __init__(self, value, fun, args, kwargs, parent_argnums, parents):
        super().__init__(value, fun, args, kwargs, parent_argnums, parents)
        self.name = getattr(fun, "__name__", repr(fun))


# comparisons such as a > 0 are not traced by autograd's own node type; the same holds for this one
for _fun in nograd_functions:
    register_notrace(NamedVJPNode, _fun)


def backward_dtypes(fun, x):
    """Run autograd's backward pass of ``fun`` at ``x`` by hand; (primitive, dtype) of every vjp output.

    Same loop as ``autograd.core.backward_pass``. SparseObjects (the routing of leaf gradients into
    the params nest by container_take) carry no arithmetic and are not listed.
    """
    end_value, end_node = trace(NamedVJPNode.new_root(), fun, x)
    seen = []
    outgrads = {end_node: (vspace(end_value).ones(), False)}
    for node in toposort(end_node):
        g = outgrads.pop(node)[0]
        for parent, ingrad in zip(node.parents, node.vjp(g)):
            if hasattr(ingrad, "dtype"):
                seen.append((node.name, np.dtype(ingrad.dtype)))
            outgrads[parent] = add_outgrads(outgrads.get(parent), ingrad)
    return seen


def float32_loss(likelihood, activation="relu"):
    vae, params, x = small(likelihood, activation, np.float32, n=4)
    eps = np.random.default_rng(13).standard_normal((4, 2)).astype(np.float32)
    return (lambda p: -ops.mean(vae.elbo(p, x, eps))), params


def traced_float32_loss(likelihood):
    """The same ELBO with every primitive replaced by its formula as autograd traces it (``f.fun``)."""
    vae, params, x = small(likelihood, "relu", np.float32, n=4)
    eps = np.random.default_rng(13).standard_normal((4, 2)).astype(np.float32)

    def layers(hidden, h):
        for W, b in hidden:
            h = nn.relu.fun(nn.dense.fun(h, W, b))
        return h

    def loss(p):
        enc, dec = p["encoder"], p["decoder"]
        h = layers(enc["hidden"], x)
        mean, log_var = nn.dense.fun(h, *enc["mean"]), nn.dense.fun(h, *enc["log_var"])
        g = layers(dec["hidden"], dist.reparameterize.fun(mean, log_var, eps))
        if likelihood == "bernoulli":
            rec = dist.bernoulli_log_prob.fun(x, nn.dense.fun(g, *dec["logits"]))
        else:
            rec = dist.gaussian_log_prob.fun(x, nn.dense.fun(g, *dec["mean"]), nn.dense.fun(g, *dec["log_var"]))
        return -ops.mean(rec - dist.kl_standard_normal.fun(mean, log_var))

    np.testing.assert_allclose(loss(params), float32_loss(likelihood)[0](params), rtol=1e-6)
    return loss, params


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("make", [float32_loss, traced_float32_loss], ids=["VAE.elbo", "traced formulas"])
def test_float32_vae_backward_pass_stays_float32(likelihood, make):
    loss, params = make(likelihood)
    seen = backward_dtypes(loss, params)
    # not vacuous: the walk saw at least one float array per parameter, and several kinds of node
    assert len(seen) >= len(tree_leaves(params)) and len({name for name, _ in seen}) >= 5, seen
    leaks = sorted({name for name, dtype in seen if dtype != np.float32})
    assert not leaks, f"float64 in the backward pass of {leaks}"


def test_the_walk_catches_relu_by_np_maximum(monkeypatch):
    """Stock np.maximum's vjp returns float64 for float32 inputs: nn.relu's own vjp and its clip form avoid that."""
    x = np.ones((3, 2), np.float32) - np.arange(6, dtype=np.float32).reshape(3, 2)
    V = np.ones((2, 2), np.float32)
    clean = backward_dtypes(lambda W: ops.sum(nn.relu(x @ W) @ V), V)
    assert {d for _, d in clean} == {np.dtype(np.float32)}
    leaky = backward_dtypes(lambda W: ops.sum(anp.maximum(x @ W, 0.0) @ V), V)
    assert np.dtype(np.float64) in {d for _, d in leaky}
    # and the VAE walk itself would fail with such a ReLU
    monkeypatch.setitem(nn.ACTIVATIONS, "relu", lambda a: anp.maximum(a, 0.0))
    loss, params = float32_loss("gaussian")
    assert any(d != np.float32 for _, d in backward_dtypes(loss, params))


def test_float32_gradients_and_values_stay_float32():
    import autograd

    for likelihood in ("bernoulli", "gaussian"):
        loss, params = float32_loss(likelihood)
        assert loss(params).dtype == np.float32
        assert all(g.dtype == np.float32 for g in tree_leaves(autograd.grad(loss)(params)))


# ---------------------------------------------------------------- shapes, sampling, bad input

def test_shapes_and_sampling():
    vae, params, x = small("bernoulli")
    mean, log_var = vae.encode(params, x)
    assert mean.shape == log_var.shape == (3, 2)
    assert vae.decode(params, np.zeros((5, 3, 2))).shape == (5, 3, 4)
    s = vae.sample(params, 7, np.random.default_rng(0))
    assert s.shape == (7, 4) and np.all((s > 0) & (s < 1))
    np.testing.assert_array_equal(s, vae.sample(params, 7, np.random.default_rng(0)))
    g_vae, g_params, _ = small("gaussian")
    assert g_vae.sample(g_params, 2, np.random.default_rng(0)).shape == (2, 4)


def test_bad_input():
    for kwargs, name in [({"z_dim": 0}, "z_dim"), ({"z_dim": -2}, "z_dim"), ({"x_dim": 0}, "x_dim"),
                         ({"hidden": [0]}, "hidden"), ({"hidden": 3}, "hidden must be a sequence"),
                         ({"likelihood": "poisson"}, "likelihood"),
                         ({"activation": "sigmoid"}, "activation")]:
        args = {"x_dim": 4, "hidden": [3], "z_dim": 2, **kwargs}
        with pytest.raises(ValueError, match=name):
            VAE(**args)
    with pytest.raises(ValueError, match="z_dim"):
        AE(4, [3], 0)
    vae, params, x = small("bernoulli")
    eps = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"x has shape \(3, 5\)"):
        vae.elbo(params, np.zeros((3, 5)), eps)
    with pytest.raises(ValueError, match=r"eps has shape \(3, 3\)"):
        vae.elbo(params, x, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"eps has shape \(3, 2\)"):
        vae.iwae_bound(params, x, eps)
    with pytest.raises(ValueError, match=r"Bernoulli targets in \[0, 1\]"):
        vae.elbo(params, 255 * x, eps)
    with pytest.raises(ValueError, match="z has shape"):
        vae.decode(params, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="k must be a positive"):
        vae.log_likelihood(params, x, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="params do not fit this model"):
        VAE(5, [3], 2).elbo(params, np.zeros((3, 5)), eps)
    with pytest.raises(ValueError, match="batch_size must be a positive"):
        vae.log_likelihood(params, x, 2, np.random.default_rng(0), batch_size=0)
    with pytest.raises(ValueError, match="n must be a non-negative"):
        vae.sample(params, -1, np.random.default_rng(0))


def test_active_units_counts_encoder_means_whose_variance_over_x_exceeds_the_threshold() -> None:
    # columns with variance 4, 0.0225 (just active), 0.0064 (inactive) and 0 over the rows
    rows = np.array([-1.0, 1.0] * 50)[:, None]
    mean = np.hstack([2.0 * rows, 0.15 * rows, 0.08 * rows, np.full_like(rows, 3.0)])
    np.testing.assert_allclose(unit_activity(mean), [4.0, 0.0225, 0.0064, 0.0], atol=1e-12)
    assert active_units(mean) == 2
    assert active_units(mean, threshold=0.005) == 3


# ---------------------------------------------------------------- no rows, and the one decoder likelihood

NO_ROWS_LIKELIHOODS = ["gaussian", "bernoulli"]


@pytest.mark.parametrize("likelihood", NO_ROWS_LIKELIHOODS)
def test_elbo_and_iwae_bound_of_no_rows_are_empty(likelihood):
    vae, params, _ = small(likelihood)
    assert vae.elbo(params, np.zeros((0, 4)), np.zeros((0, 2))).shape == (0,)
    assert vae.iwae_bound(params, np.zeros((0, 4)), np.zeros((3, 0, 2))).shape == (0,)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_log_likelihood_of_no_rows_is_empty(likelihood):
    vae, params, _ = small(likelihood)
    out = vae.log_likelihood(params, np.zeros((0, 4)), 5, np.random.default_rng(0))
    assert out.shape == (0,) and out.dtype == np.float64


def test_the_decoder_likelihood_is_the_bernoulli_or_the_gaussian_density():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.1, 0.9, (3, 4))
    logits, mean, log_var = (rng.standard_normal((2, 3, 4)) for _ in range(3))
    np.testing.assert_array_equal(dist.decoder_log_prob("bernoulli", x, logits), dist.bernoulli_log_prob(x, logits))
    np.testing.assert_array_equal(dist.decoder_log_prob("gaussian", x, (mean, log_var)),
                                  dist.gaussian_log_prob(x, mean, log_var))
    # the mean of Bern(σ(l)) is σ(l) = 1/(1 + e^{−l}); that of N(μ, σ²) is μ itself
    np.testing.assert_allclose(dist.decoder_mean("bernoulli", logits), 1.0 / (1.0 + np.exp(-logits)), rtol=1e-15)
    assert dist.decoder_mean("gaussian", (mean, log_var)) is mean
    assert dist.decoder_out("bernoulli", (logits,)) is logits
    out = dist.decoder_out("gaussian", [mean, log_var])
    assert isinstance(out, tuple) and out[0] is mean and out[1] is log_var
    for f, args in ((dist.decoder_log_prob, (x, logits)), (dist.decoder_mean, (logits,)),
                    (dist.decoder_out, ((logits,),))):
        with pytest.raises(ValueError, match="likelihood must be 'bernoulli' or 'gaussian', got 'poisson'"):
            f("poisson", *args)
