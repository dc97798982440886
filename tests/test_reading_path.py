r"""What trains is what the formula table shows: the lesson functions and their hand-written vjps run in a
training step, and no second copy of a formula does.

One step of a VAE, a CVAE and M2 runs through :func:`minivae.grad.value_and_grad` of the objective's loss,
exactly as ``fit`` runs it, under ``sys.setprofile``, which records every Python function that is called. The
forward pass is everything before ``backward_to_leaves``, the backward pass everything after it. Then:

- each lesson function of the step ran in the forward pass (a primitive runs its own body, ``f.fun``);
- each primitive's hand-written vjp (the functions of its "backprop by hand" block that take g) ran in the
  backward pass;
- every function that ran under the name of a formula of the table is the lesson function of that formula,
  in the lesson module (no twin in another module, no second definition).
"""

from __future__ import annotations

import sys
from types import CodeType
from typing import Any, Callable

import autograd.numpy as anp
import numpy
import pytest
from autograd.core import primitive_vjps

from minivae import bounds, grad, models, nn, ops
from minivae import distributions as dist
from minivae.cvae import CVAE, pack_pairs
from minivae.m2 import M2
from minivae.models import VAE
from minivae.objectives import cvae_objective, m2_objective, vae_objective

# formula (qualified name) -> the one module that defines it, as in the README's formula table
LESSON_MODULES = {
    **dict.fromkeys(["dense", "relu", "softplus", "sigmoid", "hidden_layer", "hidden_features", "mlp",
                     "trunk_heads", "joint_dense", "two_input_net"], nn),
    **dict.fromkeys(["bernoulli_log_prob", "gaussian_log_prob", "standard_normal_log_prob", "kl_standard_normal",
                     "kl_diag_gaussians", "reparameterize", "log_softmax", "categorical_log_prob"], dist),
    **dict.fromkeys(["elbo", "iwae_bound", "log_mean_exp"], bounds),
}


def _body(f: Callable) -> CodeType:
    # a primitive keeps the function it wraps in .fun; a plain function is its own body
    return getattr(f, "fun", f).__code__


# formula -> the code of its lesson function, taken once at import (before any test patches a module)
LESSON_CODE = {name: _body(getattr(module, name)) for name, module in LESSON_MODULES.items()}


def _hand_vjps(primitive: Callable) -> set[CodeType]:
    r"""The code of the vjp functions (the ones that take g) of ``primitive``'s "backprop by hand" block: what
    its ``defvjp`` line registered, the functions that refers to in the same module, and the functions nested
    in those."""
    module_file = _body(primitive).co_filename
    found: set[CodeType] = set()
    todo: list[Any] = [primitive_vjps[primitive]]
    seen: set[int] = set()
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):  # autograd's defvjp keeps one vjp maker per argument in a dict
            todo.extend(obj.values())
            continue
        code = getattr(obj, "__code__", None) if callable(obj) else obj if isinstance(obj, CodeType) else None
        if code is None:
            continue
        if callable(obj):
            todo.extend(cell.cell_contents for cell in obj.__closure__ or ())
        if code.co_filename != module_file:
            continue
        found.add(code)
        todo.extend(c for c in code.co_consts if isinstance(c, CodeType))
        todo.extend(v for name in code.co_names if callable(v := primitive.fun.__globals__.get(name)))
    # the vjps proper are the functions of one argument, g
    return {c for c in found if c.co_argcount == 1 and c.co_varnames[0] == "g"}


def record_step(loss: Callable, params: Any, *args: Any) -> tuple[list[CodeType], list[CodeType]]:
    r"""The Python functions called during one ``value_and_grad(loss)(params, *args)``: (forward, backward)."""
    calls: list[CodeType] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            calls.append(frame.f_code)

    sys.setprofile(profile)
    try:
        value, _ = grad.value_and_grad(loss)(params, *args)
    finally:
        sys.setprofile(None)
    assert numpy.isfinite(value)
    split = calls.index(grad.backward_to_leaves.__code__)
    return calls[:split], calls[split:]


def reading_path_faults(forward: list[CodeType], backward: list[CodeType], lessons: list[Callable],
                        primitives: list[Callable]) -> list[str]:
    r"""What contradicts the formula table in a recorded step; an empty list when nothing does."""
    faults = [f"{f.__name__} did not run in the forward pass" for f in lessons if _body(f) not in forward]
    ran_backward = set(backward)
    faults += [f"the hand-written vjp of {f.__name__} did not run in the backward pass"
               for f in primitives if not _hand_vjps(f) & ran_backward]
    for code in set(forward) | ran_backward:
        lesson = LESSON_CODE.get(code.co_qualname)
        if lesson is not None and code is not lesson:
            faults.append(f"a second {code.co_qualname} ran, from {code.co_filename}:{code.co_firstlineno}")
    return faults


def _vae_step() -> tuple:
    vae = VAE(12, [8], 3)
    rng = numpy.random.default_rng(0)
    x = (rng.random((5, 12)) < 0.4).astype(numpy.float32)
    return vae_objective(vae).loss, vae.init(rng), x, rng.standard_normal((5, 3)).astype(numpy.float32)


def _cvae_step(prior: str) -> tuple:
    cvae = CVAE(6, 4, [8, 7], 3, prior=prior)
    rng = numpy.random.default_rng(1)
    xy = pack_pairs(rng.standard_normal((5, 6)).astype(numpy.float32), (rng.random((5, 4)) < 0.5).astype(numpy.float32))
    return cvae_objective(cvae).loss, cvae.init(rng), xy, rng.standard_normal((5, 3)).astype(numpy.float32)


def _m2_step() -> tuple:
    model = M2(12, [8, 7], 3, n_classes=3)
    rng = numpy.random.default_rng(2)
    x_l, x_u = ((rng.random((n, 12)) < 0.4).astype(numpy.float32) for n in (4, 5))
    objective = m2_objective(model, x_l, numpy.array([0, 1, 2, 1]), 0.5)
    return objective.loss, model.init(rng), x_u, rng.standard_normal(objective.noise_shape(5)).astype(numpy.float32)


PRIMITIVES = [nn.dense, nn.relu, dist.bernoulli_log_prob, dist.reparameterize]
STEPS = {
    "VAE": (_vae_step, [nn.softplus, dist.kl_standard_normal, bounds.elbo, nn.trunk_heads],
            [dist.kl_standard_normal]),
    "CVAE learned prior": (lambda: _cvae_step("learned"), [nn.softplus, dist.kl_diag_gaussians, bounds.elbo,
                                                           nn.joint_dense, nn.relu], [nn.relu]),
    "CVAE standard prior": (lambda: _cvae_step("standard"), [nn.softplus, dist.kl_standard_normal, bounds.elbo,
                                                             nn.joint_dense, nn.relu],
                            [nn.relu, dist.kl_standard_normal]),
    "M2": (_m2_step, [nn.softplus, dist.kl_standard_normal, dist.log_softmax, dist.categorical_log_prob,
                      nn.mlp, nn.joint_dense, nn.relu],
           [nn.relu, dist.kl_standard_normal]),
}


@pytest.mark.parametrize("name", sorted(STEPS))
def test_a_training_step_runs_the_lesson_functions_and_their_hand_written_vjps(name: str) -> None:
    make, lessons, primitives = STEPS[name]
    forward, backward = record_step(*make())
    assert not reading_path_faults(forward, backward, PRIMITIVES + lessons, PRIMITIVES + primitives)


def test_every_primitive_of_the_table_has_hand_written_vjps() -> None:
    # the check above is only as good as _hand_vjps: each primitive has at least one vjp of g, in its own module
    for f in (nn.dense, nn.relu, nn.softplus, nn.sigmoid, dist.bernoulli_log_prob,
              dist.gaussian_log_prob, dist.kl_standard_normal, dist.reparameterize):
        vjps = _hand_vjps(f)
        assert vjps and all(c.co_filename == _body(f).co_filename for c in vjps), f.__name__


def test_the_check_sees_a_formula_that_autograd_traces_instead_of_its_primitive(monkeypatch: Any) -> None:
    # not vacuous: with the Bernoulli term traced op by op, its hand-written vjp does not run, and the check says so
    primitive = dist.bernoulli_log_prob
    monkeypatch.setattr(dist, "bernoulli_log_prob", primitive.fun)
    forward, backward = record_step(*_vae_step())
    assert reading_path_faults(forward, backward, [primitive], [primitive]) == [
        "the hand-written vjp of bernoulli_log_prob did not run in the backward pass"]


def test_the_check_sees_a_second_copy_of_a_formula(monkeypatch: Any) -> None:
    # not vacuous: a twin of kl_standard_normal defined elsewhere (here), put where the VAE looks it up, is caught
    def kl_standard_normal(mean: Any, log_var: Any) -> Any:
        return -0.5 * ops.sum(1.0 + log_var - mean * mean - anp.exp(log_var), axis=-1)

    kl_standard_normal.__code__ = kl_standard_normal.__code__.replace(co_qualname="kl_standard_normal")
    monkeypatch.setattr(models, "kl_standard_normal", kl_standard_normal)
    forward, backward = record_step(*_vae_step())
    faults = reading_path_faults(forward, backward, [], [])
    assert len(faults) == 1 and faults[0].startswith("a second kl_standard_normal ran, from " + __file__)
