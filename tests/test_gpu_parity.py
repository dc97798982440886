r"""Every differentiable function of minivae gives NumPy's numbers on a device array type.

Two devices run the same checks:

- ``strict``: :class:`strict_array.StrictArray`, a CPU stand-in that, like CuPy, refuses implicit conversion to
  NumPy and any mixing with host arrays. It runs NumPy's own kernels, so values and gradients must equal the
  NumPy backend's bit for bit. Runs everywhere.
- ``cupy``: real CuPy on a CUDA device (marked ``gpu``; skipped without CuPy or without a usable device).
  Different kernels sum in a different order, so it is compared within a relative tolerance (``RTOL``).

For each function: forward values and ``autograd.grad`` match, every gradient leaf is an array of the device
type with the parameter's dtype (float32 and float64), and ``check_grad`` passes on the device in float64.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable

import autograd
import numpy
import pytest
import strict_array

from minivae import bounds, nn, ops
from minivae import distributions as dist
from minivae.backend import Backend, get_backend, register_array_type, to_numpy
from minivae.gradcheck import check_grad
from minivae.models import AE, VAE
from minivae.objectives import ae_objective, iwae_objective, vae_objective
from minivae.optim import SGD, Adam
from minivae.train import TrainSettings, fit
from minivae.tree import tree_items, tree_leaves, tree_map

# CuPy runs other kernels (cuBLAS, its own reductions), so its results differ by rounding: a float32 dot
# product of ~10 terms differs by a few ulp (~1e-7 relative), and chained through a small network and its
# backward pass that stays well below 1e-4 (the bound the issue asks for). float64 rounding is ~1e-16 per op.
RTOL = {numpy.dtype(numpy.float32): 1e-4, numpy.dtype(numpy.float64): 1e-10}
DTYPES = (numpy.float32, numpy.float64)


@dataclass(frozen=True)
class Device:
    """A device under test: its backend, its array type, and whether results must match bit for bit."""

    backend: Backend
    array_type: type
    exact: bool

    def put(self, tree: Any) -> Any:
        """Move every host array of a nest to the device (other leaves, such as ints, stay as they are)."""
        return tree_map(lambda a: self.backend.asarray(a) if isinstance(a, numpy.ndarray) else a, tree)


def strict_device() -> Device:
    register_array_type(strict_array.StrictArray, strict_array.xp, strict_array.to_numpy)
    return Device(Backend("strict", strict_array.xp), strict_array.StrictArray, exact=True)


def cupy_device() -> Device:
    cupy = pytest.importorskip("cupy")
    try:
        usable = bool(cupy.is_available())
    except Exception:  # a broken CUDA install: treat as no device
        usable = False
    if not usable:
        pytest.skip("CuPy is installed but no CUDA device is usable")
    return Device(get_backend("cupy"), cupy.ndarray, exact=False)


@pytest.fixture(params=["strict", pytest.param("cupy", marks=pytest.mark.gpu)])
def device(request: Any) -> Device:
    return strict_device() if request.param == "strict" else cupy_device()


def assert_matches(expected: Any, actual: Any, device: Device, what: str) -> None:
    """``actual`` (device nest) equals ``expected`` (NumPy nest): same structure, type, dtype and values."""
    expected_items = list(tree_items(expected))
    actual_leaves = tree_leaves(actual)
    assert len(expected_items) == len(actual_leaves), what
    for (path, e), a in zip(expected_items, actual_leaves):
        e = numpy.asarray(e)
        assert isinstance(a, device.array_type), f"{what}{path} is a {type(a).__name__}, not a device array"
        a = to_numpy(a)
        assert (a.dtype, a.shape) == (e.dtype, e.shape), f"{what}{path}: {a.dtype}{a.shape} vs {e.dtype}{e.shape}"
        if device.exact:
            numpy.testing.assert_array_equal(a, e, err_msg=f"{what}{path}")
        else:
            scale = max(1.0, float(numpy.abs(e).max(initial=0.0)))
            numpy.testing.assert_allclose(a, e, rtol=RTOL[e.dtype], atol=RTOL[e.dtype] * scale,
                                          err_msg=f"{what}{path}")


# ----- the functions under test: name -> (f, make_args, argnums to differentiate) -----

def _normal(rng: numpy.random.Generator, dtype: Any, *shape: int) -> numpy.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def _unit(rng: numpy.random.Generator, dtype: Any, *shape: int) -> numpy.ndarray:
    # Bernoulli targets strictly inside (0, 1), so finite differences in x stay in range
    return rng.uniform(0.05, 0.95, size=shape).astype(dtype)


N, D, K = 3, 4, 5
VAES = {lik: VAE(6, [5], 2, likelihood=lik, activation="tanh" if lik == "gaussian" else "relu")
        for lik in ("bernoulli", "gaussian")}
AE_MODEL = AE(6, [5], 2)


def _vae_args(lik: str, k: int | None) -> Callable:
    vae = VAES[lik]
    noise = (N, vae.z_dim) if k is None else (k, N, vae.z_dim)
    return lambda rng, dt: (vae.init(rng, dt), _unit(rng, dt, N, vae.x_dim), _normal(rng, dt, *noise))


def _surrogate_integrand(z: Any) -> Any:
    # a smooth f(z), (k, N): log N(z; 0, I) + Σ_d tanh(z_d)
    return dist.standard_normal_log_prob(z) + ops.sum(autograd.numpy.tanh(z), axis=-1)


CASES: dict[str, tuple[Callable, Callable, tuple[int, ...]]] = {
    "gaussian_log_prob": (dist.gaussian_log_prob,
                          lambda rng, dt: (_normal(rng, dt, N, D), _normal(rng, dt, N, D), _normal(rng, dt, N, D)),
                          (0, 1, 2)),
    "gaussian_log_prob broadcast": (dist.gaussian_log_prob,
                                    lambda rng, dt: (_normal(rng, dt, K, N, D), _normal(rng, dt, N, D),
                                                     _normal(rng, dt, D)), (0, 1, 2)),
    "bernoulli_log_prob": (dist.bernoulli_log_prob,
                           lambda rng, dt: (_unit(rng, dt, N, D), 3 * _normal(rng, dt, N, D)), (0, 1)),
    "standard_normal_log_prob": (dist.standard_normal_log_prob, lambda rng, dt: (_normal(rng, dt, N, D),), (0,)),
    "kl_standard_normal": (dist.kl_standard_normal,
                           lambda rng, dt: (_normal(rng, dt, N, D), _normal(rng, dt, N, D)), (0, 1)),
    "kl_diag_gaussians": (dist.kl_diag_gaussians,
                          lambda rng, dt: tuple(_normal(rng, dt, N, D) for _ in range(4)), (0, 1, 2, 3)),
    "reparameterize": (dist.reparameterize,
                       lambda rng, dt: tuple(_normal(rng, dt, N, D) for _ in range(3)), (0, 1, 2)),
    "reparameterize k samples": (dist.reparameterize,
                                 lambda rng, dt: (_normal(rng, dt, N, D), _normal(rng, dt, N, D),
                                                  _normal(rng, dt, K, N, D)), (0, 1, 2)),
    "log_mean_exp axis 0": (bounds.log_mean_exp, lambda rng, dt: (4 * _normal(rng, dt, K, N), 0), (0,)),
    "log_mean_exp axis 1": (bounds.log_mean_exp, lambda rng, dt: (4 * _normal(rng, dt, K, N), 1), (0,)),
    "bounds.iwae_bound": (bounds.iwae_bound, lambda rng, dt: (4 * _normal(rng, dt, K, N),), (0,)),
    **{f"mlp {act}": (lambda p, x, act=act: nn.mlp(p, x, act),
                      lambda rng, dt: (nn.init_mlp([D, 5, 5, 3], rng, dt), _normal(rng, dt, N, D)), (0, 1))
       for act in nn.ACTIVATIONS},
    **{f"nn.{f.__name__}{name}": (f, lambda rng, dt, lead=lead: (_normal(rng, dt, *lead, D), _normal(rng, dt, D, 5),
                                                                 _normal(rng, dt, 5)), (0, 1, 2))
       for f in (nn.dense,) for name, lead in (("", (N,)), (" k samples", (K, N)))},
    **{f"nn.{f.__name__}": (f, lambda rng, dt: (3 * _normal(rng, dt, N, D),), (0,))
       for f in (nn.relu, nn.softplus, nn.sigmoid)},
    "bernoulli_log_prob k samples": (dist.bernoulli_log_prob,
                                     lambda rng, dt: (_unit(rng, dt, N, D), 3 * _normal(rng, dt, K, N, D)), (0, 1)),
    **{f"VAE.elbo {lik}": (VAES[lik].elbo, _vae_args(lik, None), (0,)) for lik in VAES},
    **{f"VAE.iwae_bound {lik}": (VAES[lik].iwae_bound, _vae_args(lik, K), (0,)) for lik in VAES},
    "AE.loss": (AE_MODEL.loss, lambda rng, dt: (AE_MODEL.init(rng, dt), _normal(rng, dt, N, 6)), (0,)),
}


def _optional_cases() -> dict:
    """Cases for modules that other issues add (estimators, cvae, m2), when they are present."""
    cases = {}
    estimators = _maybe_import("minivae.estimators")
    if estimators is not None:
        args = lambda rng, dt: (_normal(rng, dt, N, D), _normal(rng, dt, N, D), _normal(rng, dt, K, N, D))  # noqa: E731
        cases["estimators.reparameterization_surrogate"] = (
            lambda m, lv, e: estimators.reparameterization_surrogate(_surrogate_integrand, m, lv, e), args, (0, 1))
        cases["estimators.reinforce_surrogate leave_one_out"] = (
            lambda m, lv, e: estimators.reinforce_surrogate(_surrogate_integrand, m, lv, e, "leave_one_out"),
            args, (0, 1))
    cvae_module = _maybe_import("minivae.cvae")
    if cvae_module is not None:
        for lik in ("bernoulli", "gaussian"):
            cvae = cvae_module.CVAE(4, 3, [5], 2, likelihood=lik)

            def make(rng: numpy.random.Generator, dt: Any, cvae: Any = cvae, k: int | None = None) -> tuple:
                noise = (N, 2) if k is None else (k, N, 2)
                return cvae.init(rng, dt), _normal(rng, dt, N, 4), _unit(rng, dt, N, 3), _normal(rng, dt, *noise)

            cases[f"CVAE.elbo {lik}"] = (cvae.elbo, make, (0,))
            cases[f"CVAE.iwae_bound {lik}"] = (cvae.iwae_bound, lambda rng, dt, make=make: make(rng, dt, k=K), (0,))
    m2_module = _maybe_import("minivae.m2")
    if m2_module is not None:
        m2 = m2_module.M2(6, [5], 2, n_classes=3)
        cases["M2.objective"] = (
            lambda p, x_l, x_u, e_l, e_u: m2.objective(p, x_l, numpy.array([0, 2, 1]), x_u, e_l, e_u, 0.5),
            lambda rng, dt: (m2.init(rng, dt), _unit(rng, dt, N, 6), _unit(rng, dt, 2, 6),
                             _normal(rng, dt, N, 2), _normal(rng, dt, 3, 2, 2)), (0,))
    return cases


def _maybe_import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


CASES.update(_optional_cases())


def _scalar(f: Callable, args: tuple, argnum: int, device: Device | None) -> Callable:
    # contract the output with a fixed random vector r (so no gradient entry can cancel), on f's device
    out = f(*args)
    r = numpy.random.default_rng(99).standard_normal(numpy.shape(out)).astype(numpy.asarray(to_numpy(out)).dtype)
    r = r if device is None else device.backend.asarray(r)

    def scalar(value: Any) -> Any:
        return ops.sum(f(*args[:argnum], value, *args[argnum + 1:]) * r)

    return scalar


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: numpy.dtype(d).name)
@pytest.mark.parametrize("name", sorted(CASES))
def test_values_and_gradients_match_numpy(device: Device, name: str, dtype: Any) -> None:
    f, make_args, argnums = CASES[name]
    host = make_args(numpy.random.default_rng(0), dtype)
    moved = device.put(host)
    assert_matches(f(*host), f(*moved), device, f"{name} value")
    for argnum in argnums:
        expected = autograd.grad(_scalar(f, host, argnum, None))(host[argnum])
        actual = autograd.grad(_scalar(f, moved, argnum, device))(moved[argnum])
        assert_matches(expected, actual, device, f"{name} gradient of argument {argnum}")


# REINFORCE's surrogate has, by design, a gradient (the score-function estimate) that is not the derivative
# of its value (the Monte Carlo mean of f at constant z), so finite differences do not apply to it
NOT_FINITE_DIFFERENCES = {"estimators.reinforce_surrogate leave_one_out"}


@pytest.mark.parametrize("name", sorted(set(CASES) - NOT_FINITE_DIFFERENCES))
def test_check_grad_passes_on_the_device(device: Device, name: str) -> None:
    f, make_args, _ = CASES[name]
    check_grad(f, *device.put(make_args(numpy.random.default_rng(1), numpy.float64)))


def test_the_case_list_covers_the_public_api() -> None:
    # the parity table must not silently lose a function the issue names
    names = set(CASES)
    for required in ("gaussian_log_prob", "bernoulli_log_prob", "standard_normal_log_prob", "kl_standard_normal",
                     "kl_diag_gaussians", "reparameterize", "log_mean_exp axis 0", "AE.loss", "nn.dense",
                     "nn.dense k samples", "nn.relu", "nn.softplus",
                     "bernoulli_log_prob k samples",
                     *(f"mlp {a}" for a in ("relu", "tanh", "softplus")),
                     *(f"VAE.{m} {lik}" for m in ("elbo", "iwae_bound") for lik in ("bernoulli", "gaussian"))):
        assert required in names


# ----- optimizers, training, evaluation -----

def _vae_grads(params: Any, x: Any, eps: Any) -> Any:
    vae = VAES["bernoulli"]
    return autograd.grad(lambda p: -ops.mean(vae.elbo(p, x, eps)))(params)


@pytest.mark.parametrize("make_optimizer", [lambda: Adam(1e-2), lambda: SGD(1e-2, momentum=0.9)],
                         ids=["adam", "sgd_momentum"])
def test_optimizer_steps_match_numpy(device: Device, make_optimizer: Callable) -> None:
    vae = VAES["bernoulli"]
    rng = numpy.random.default_rng(2)
    params = vae.init(rng)
    x, eps = _unit(rng, numpy.float32, N, vae.x_dim), _normal(rng, numpy.float32, 4, N, vae.z_dim)
    # two independent copies: an optimizer may update its parameters in place
    host, moved = tree_map(numpy.copy, params), device.put(params)
    host_opt, device_opt = make_optimizer(), make_optimizer()
    for step in range(4):
        host = host_opt.step(host, _vae_grads(host, x, eps[step]))
        moved = device_opt.step(moved, _vae_grads(moved, device.backend.asarray(x),
                                                  device.backend.asarray(eps[step])))
    assert_matches(host, moved, device, "parameters after 4 steps")


def _history_numbers(history: list) -> list:
    # drop the wall-clock entries; everything else is a function of the seed
    return [{k: v for k, v in record.items() if "second" not in k} for record in history]


@pytest.mark.parametrize("objective", ["elbo", "iwae_3", "ae"])
def test_fit_matches_numpy(device: Device, objective: str) -> None:
    rng = numpy.random.default_rng(3)
    x = (rng.random((40, 6)) < 0.4).astype(numpy.float32)
    vae = VAES["bernoulli"]
    model, obj = {"elbo": (vae, vae_objective(vae)), "iwae_3": (vae, iwae_objective(vae, 3)),
                  "ae": (AE_MODEL, ae_objective(AE_MODEL))}[objective]
    params = model.init(numpy.random.default_rng(4))
    run = TrainSettings(epochs=2, batch_size=8, seed=5, progress=False)
    on_cpu = fit(obj, tree_map(numpy.copy, params), x, x_test=x[:10], settings=dataclasses.replace(run, device="cpu"))
    on_device = fit(obj, tree_map(numpy.copy, params), x, x_test=x[:10],
                    settings=dataclasses.replace(run, device=device.backend))
    # fit hands back host arrays
    assert all(type(a) is numpy.ndarray for a in tree_leaves(on_device.params))
    if device.exact:
        for a, b in zip(tree_leaves(on_cpu.params), tree_leaves(on_device.params)):
            numpy.testing.assert_array_equal(a, b)
        assert _history_numbers(on_cpu.history) == _history_numbers(on_device.history)
    else:
        for a, b in zip(tree_leaves(on_cpu.params), tree_leaves(on_device.params)):
            # 10 Adam steps of size ~1e-3 amplify float32 rounding differences; 1e-3 absolute is still far
            # below the ~1e-2 change the steps make
            numpy.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-3)


def test_log_likelihood_and_sample_match_numpy(device: Device) -> None:
    vae = VAES["gaussian"]
    rng = numpy.random.default_rng(6)
    params, x = vae.init(rng), _unit(rng, numpy.float32, 7, vae.x_dim)
    expected = vae.log_likelihood(params, x, 30, numpy.random.default_rng(7), batch_size=3)
    actual = vae.log_likelihood(device.put(params), device.backend.asarray(x), 30, numpy.random.default_rng(7),
                                batch_size=3)
    assert type(actual) is numpy.ndarray
    if device.exact:
        numpy.testing.assert_array_equal(actual, expected)
    else:
        # real CuPy: cuBLAS sums float32 products in another order than OpenBLAS, so only agreement to float32
        # rounding accumulated over a 784-wide layer can be asked for (issue 6 sets rtol 1e-4 for float32)
        numpy.testing.assert_allclose(actual, expected, rtol=1e-4)
    for lik, model in VAES.items():
        p = model.init(numpy.random.default_rng(8))
        assert_matches(model.sample(p, 4, numpy.random.default_rng(9)),
                       model.sample(device.put(p), 4, numpy.random.default_rng(9)), device, f"{lik} sample")
