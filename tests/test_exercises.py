"""The exercises' grader, tested both ways: minivae's own answers pass, and planted mistakes fail with their message.

Each planted mistake is a small function below, written as a learner would; the test asserts the exact
phrase of the FAIL line that names it. The command line runs in a subprocess: an all-TODO file exits non-zero
and lists every exercise, a file of minivae's own answers passes, a syntax error is one sentence naming the line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import make_vjp
from autograd.misc.optimizers import adam
from autograd.tracer import getval

from minivae import bounds, estimators, nn
from minivae import distributions as dist
from minivae.exercises import BY_NAME, EXERCISES, grade, main
from minivae.exercises.check_training import adam_step
from minivae.gradcheck import numerical_grad

ROOT = Path(__file__).resolve().parents[1]
L2PI = np.log(2 * np.pi)


def vjp_of(f, n):
    def vjp(g, *args):
        return tuple(make_vjp(f, argnum=i)(*args)[0](g) for i in range(n))
    return vjp


def own_unlabelled_bound(log_q_y, L):
    return np.sum(np.exp(log_q_y) * (L - log_q_y), axis=-1)


# minivae's own functions as the answers (a vjp through autograd, which calls minivae's hand-written one)
OWN = {
    "gaussian_log_prob": dist.gaussian_log_prob, "gaussian_log_prob_vjp": vjp_of(dist.gaussian_log_prob, 3),
    "elbo": bounds.elbo, "reparameterize": dist.reparameterize, "reinforce_surrogate": estimators.reinforce_surrogate,
    "bernoulli_log_prob": dist.bernoulli_log_prob, "bernoulli_log_prob_vjp": vjp_of(dist.bernoulli_log_prob, 2),
    "kl_standard_normal": dist.kl_standard_normal, "adam_step": adam_step, "dense_vjp": vjp_of(nn.dense, 3),
    "numerical_grad": numerical_grad, "log_mean_exp": bounds.log_mean_exp, "iwae_bound": bounds.iwae_bound,
    "kl_diag_gaussians": dist.kl_diag_gaussians, "unlabelled_bound": own_unlabelled_bound,
}


def test_there_are_at_least_twelve_exercises_in_course_order() -> None:
    assert len(EXERCISES) >= 12 and set(OWN) == set(BY_NAME)
    numbers = [int(e.walkthrough[:2]) for e in EXERCISES]
    assert numbers == sorted(numbers)
    for e in EXERCISES:
        assert (ROOT / "walkthroughs" / e.walkthrough).is_file()


@pytest.mark.parametrize("name", list(OWN))
def test_minivae_s_own_function_passes(name: str) -> None:
    assert grade(OWN[name], BY_NAME[name]) == f"PASS {name}"


# ---------------------------------------------------------------- planted mistakes, as a learner writes them

def gauss_log_sigma(x, m, lv):  # log σ used as log σ²
    return -0.5 * np.sum(L2PI + 2 * lv + (x - m) ** 2 * np.exp(-2 * lv), axis=-1)


def gauss_constant_twice(x, m, lv):  # get_ELBO: const_term added again
    return -0.5 * np.sum(L2PI + lv + (x - m) ** 2 / np.exp(lv), axis=-1) - x.shape[-1] / 2 * L2PI


def gauss_quadratic(x, m, lv):  # get_ELBO: 1/(2σ²) + (x − μ)²
    return -0.5 * np.sum(L2PI + lv + 1 / (2 * np.exp(lv)) + (x - m) ** 2, axis=-1)


def gauss_abs(x, m, lv):  # get_ELBO: σ made positive with abs
    sigma = np.abs(lv)
    return -0.5 * np.sum(L2PI + 2 * np.log(sigma) + (x - m) ** 2 / sigma ** 2, axis=-1)


def gauss_no_sum(x, m, lv):
    return -0.5 * (L2PI + lv + (x - m) ** 2 / np.exp(lv))


def elbo_likelihood(rec, kl, beta=1.0):  # get_ELBO: returns the likelihood term
    return rec


def elbo_kl_sign(rec, kl, beta=1.0):
    return rec + beta * kl


def elbo_batch_mean(rec, kl, beta=1.0):
    return np.mean(rec - beta * kl)


def reparam_log_sigma(m, lv, eps):
    return m + np.exp(lv) * eps


def reparam_abs(m, lv, eps):
    return m + np.abs(lv) * eps


def reinforce_pathwise(f, m, lv, eps, baseline=None):  # no getval: the reparameterization gradient
    z = m + anp.exp(0.5 * lv) * eps
    fz = f(z)
    log_q = dist.gaussian_log_prob(z, m, lv)
    return anp.mean(fz + (fz - (0.0 if baseline is None else baseline)) * (log_q - getval(log_q)), axis=0)


def reinforce_no_baseline(f, m, lv, eps, baseline=None):
    return estimators.reinforce_surrogate(f, m, lv, eps, None)


def reinforce_sum(f, m, lv, eps, baseline=None):
    return eps.shape[0] * estimators.reinforce_surrogate(f, m, lv, eps, baseline)


def bern_log_sigmoid(x, logits):
    s = 1 / (1 + np.exp(-logits))
    return np.sum(x * np.log(s) + (1 - x) * np.log(1 - s), axis=-1)


def bern_bce(x, logits):
    return -dist.bernoulli_log_prob(x, logits)


def bern_swapped(x, logits):
    return np.sum((1 - x) * logits - np.logaddexp(0, logits), axis=-1)


def kl_sign(m, lv):
    return 0.5 * np.sum(1 + lv - m ** 2 - np.exp(lv), axis=-1)


def kl_log_sigma(m, lv):
    return -0.5 * np.sum(1 + 2 * lv - m ** 2 - np.exp(2 * lv), axis=-1)


def kl_no_half(m, lv):
    return -np.sum(1 + lv - m ** 2 - np.exp(lv), axis=-1)


def kl_mean(m, lv):
    return -0.5 * np.mean(1 + lv - m ** 2 - np.exp(lv), axis=-1)


def adam_no_correction(theta, g, m, v, t, lr, b1, b2, eps):
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    return theta - lr * m / (np.sqrt(v) + eps), m, v


def adam_eps_inside(theta, g, m, v, t, lr, b1, b2, eps):
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    return theta - lr * (m / (1 - b1 ** t)) / np.sqrt(v / (1 - b2 ** t) + eps), m, v


def adam_in_place(theta, g, m, v, t, lr, b1, b2, eps):
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    return theta - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps), m, v


def dense_b_mean(g, x, W, b):
    return g @ W.T, x.reshape(-1, x.shape[-1]).T @ g.reshape(-1, g.shape[-1]), g.reshape(-1, g.shape[-1]).mean(0)


def dense_w_transposed(g, x, W, b):
    return g @ W.T, g.T @ x, g.sum(0)


def dense_x_sign(g, x, W, b):
    gx, gW, gb = vjp_of(nn.dense, 3)(g, x, W, b)
    return -gx, gW, gb


def gauss_vjp_no_half(g, x, m, lv):
    gx, gm, glv = vjp_of(dist.gaussian_log_prob, 3)(g, x, m, lv)
    return gx, gm, 2 * glv


def gauss_vjp_mu_sign(g, x, m, lv):
    gx, gm, glv = vjp_of(dist.gaussian_log_prob, 3)(g, x, m, lv)
    return gx, -gm, glv


def gauss_vjp_no_broadcast_sum(g, x, m, lv):
    r = (x - m) * np.exp(-0.5 * lv)
    g = g[..., None]
    return -g * r * np.exp(-0.5 * lv), g * r * np.exp(-0.5 * lv), 0.5 * g * (r * r - 1)


def bern_vjp_sign(g, x, logits):
    gx, gl = vjp_of(dist.bernoulli_log_prob, 2)(g, x, logits)
    return gx, -gl


def bern_vjp_no_x(g, x, logits):
    gx, gl = vjp_of(dist.bernoulli_log_prob, 2)(g, x, logits)
    return np.zeros_like(x), gl


def numgrad_forward(f, x, eps=1e-6):
    out, base = np.zeros_like(x), f(x)
    for j in np.ndindex(*x.shape):
        p = x.copy()
        p[j] += eps
        out[j] = (f(p) - base) / eps
    return out


def numgrad_over_h(f, x, eps=1e-6):
    return 2 * numerical_grad(f, x, eps)


def numgrad_mutates(f, x, eps=1e-6):
    out = np.zeros_like(x)
    for j in np.ndindex(*x.shape):
        x[j] += eps
        up = f(x)
        x[j] -= 2 * eps
        out[j] = (up - f(x)) / (2 * eps)
    return out


def lme_naive(a, axis=0):
    return np.log(np.mean(np.exp(a), axis=axis))


def lme_sum(a, axis=0):
    m = a.max(axis=axis, keepdims=True)
    return np.log(np.sum(np.exp(a - m), axis=axis)) + np.squeeze(m, axis)


def iwae_mean_log(lw):
    return lw.mean(axis=0)


def iwae_sum(lw):
    return lme_sum(lw, 0)


def iwae_naive(lw):
    return lme_naive(lw, 0)


def kld_swapped(mq, lq, mp, lp):
    return dist.kl_diag_gaussians(mp + 0 * mq, lp + 0 * lq, mq, lq)


def kld_no_minus_one(mq, lq, mp, lp):
    return 0.5 * np.sum(lp - lq + (np.exp(lq) + (mq - mp) ** 2) / np.exp(lp), axis=-1)


def u_no_entropy(log_q, L):
    return np.sum(np.exp(log_q) * L, axis=-1)


def u_entropy_sign(log_q, L):
    return np.sum(np.exp(log_q) * (L + log_q), axis=-1)


PLANTED = [
    ("gaussian_log_prob", gauss_log_sigma, "log σ used as log σ²"),
    ("gaussian_log_prob", gauss_constant_twice, "the constant log 2π counted twice (as in the get_ELBO code"),
    ("gaussian_log_prob", gauss_quadratic, "the quadratic term adds 1/(2σ²) to (x − μ)²"),
    ("gaussian_log_prob", gauss_abs, "σ from abs (as in the get_ELBO code"),
    ("gaussian_log_prob", gauss_no_sum, "has shape (3, 2), expected (3,): one value per row"),
    ("elbo", elbo_likelihood, "you return the likelihood term E_q[log p(x|z)] instead of the ELBO"),
    ("elbo", elbo_kl_sign, "the sign of the KL"),
    ("elbo", elbo_batch_mean, "has shape (), expected (3,)"),
    ("reparameterize", reparam_log_sigma, "at log σ² = 0.3; it must move by σ = exp(½ log σ²) = 1.162: log σ used"),
    ("reparameterize", reparam_abs, "σ from abs"),
    ("reinforce_surrogate", reinforce_pathwise, "your gradient flows through z"),
    ("reinforce_surrogate", reinforce_no_baseline, "your gradient ignores the baseline"),
    ("reinforce_surrogate", reinforce_sum, "a sum over the k samples where a mean belongs"),
    ("bernoulli_log_prob", bern_log_sigmoid, "log(sigmoid) overflow"),
    ("bernoulli_log_prob", bern_bce, "the sign: you return the binary cross-entropy"),
    ("bernoulli_log_prob", bern_swapped, "x and 1 − x swapped"),
    ("bernoulli_log_prob_vjp", bern_vjp_sign, "your ∂/∂logits has the wrong sign at logits = 0: you give 0.375, "
                                              "finite differences give -0.375"),
    ("bernoulli_log_prob_vjp", bern_vjp_no_x, "your ∂/∂x is zero"),
    ("kl_standard_normal", kl_sign, "your KL is negative for μ = 0, log σ² = 1 (-0.3591; a KL is never negative): "
                                    "the sign of the KL is flipped"),
    ("kl_standard_normal", kl_log_sigma, "log σ used as log σ²"),
    ("kl_standard_normal", kl_no_half, "the missing ½"),
    ("kl_standard_normal", kl_mean, "a mean over the D latent coordinates where a sum belongs"),
    ("adam_step", adam_no_correction, "the bias correction m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ) is missing"),
    ("adam_step", adam_eps_inside, "ε inside the square root"),
    ("adam_step", adam_in_place, "changed an array the caller holds"),
    ("dense_vjp", dense_b_mean, "your ∂/∂b is 1/4 of the answer (a mean over the rows where a sum belongs)"),
    ("dense_vjp", dense_w_transposed, "your ∂/∂W has shape (2, 3), expected (3, 2)"),
    ("dense_vjp", dense_x_sign, "your ∂/∂x has the wrong sign"),
    ("gaussian_log_prob_vjp", gauss_vjp_no_half, "your ∂/∂log σ² is off by a factor of 2 (twice too large) at "
                                                 "log σ² = 0.3"),
    ("gaussian_log_prob_vjp", gauss_vjp_mu_sign, "your ∂/∂μ has the wrong sign"),
    ("gaussian_log_prob_vjp", gauss_vjp_no_broadcast_sum, "your ∂/∂x has shape (2, 3, 2), expected (3, 2)"),
    ("numerical_grad", numgrad_forward, "forward differences"),
    ("numerical_grad", numgrad_over_h, "you divide by h where 2h belongs"),
    ("numerical_grad", numgrad_mutates, "changed the caller's x"),
    ("log_mean_exp", lme_naive, "exp overflows; subtract the max first"),
    ("log_mean_exp", lme_sum, "a sum where a mean belongs"),
    ("iwae_bound", iwae_mean_log, "you return the mean of log w_i, the ELBO's estimate"),
    ("iwae_bound", iwae_sum, "a sum where a mean belongs"),
    ("iwae_bound", iwae_naive, "exp underflows to 0"),
    ("kl_diag_gaussians", kld_swapped, "q and p swapped"),
    ("kl_diag_gaussians", kld_no_minus_one, "must be 0: the −1 per coordinate"),
    ("unlabelled_bound", u_no_entropy, "the entropy H(q(y|x)) = −Σ_y q log q is missing"),
    ("unlabelled_bound", u_entropy_sign, "the sign of the entropy"),
]


@pytest.mark.parametrize(("name", "wrong", "phrase"), PLANTED, ids=[f"{n}-{w.__name__}" for n, w, _ in PLANTED])
def test_a_planted_mistake_fails_with_its_message(name: str, wrong, phrase: str) -> None:
    line = grade(wrong, BY_NAME[name])
    assert line.startswith(f"FAIL {name}: ") and "\n" not in line
    assert phrase in line, line


def test_every_exercise_has_at_least_two_planted_mistakes() -> None:
    counts = {n: sum(1 for p in PLANTED if p[0] == n) for n in BY_NAME}
    assert min(counts.values()) >= 2, counts


# ---------------------------------------------------------------- a wrong answer never crashes the grader

def crashes(*args):
    return 1 / 0


def nan_answer(*args):
    return np.full(3, np.nan)


def returns_none(*args):
    pass


def returns_text(*args):
    return "ELBO"


@pytest.mark.parametrize("wrong", [crashes, nan_answer, returns_none, returns_text])
@pytest.mark.parametrize("name", list(OWN))
def test_any_wrong_answer_is_one_fail_line(name: str, wrong) -> None:
    line = grade(wrong, BY_NAME[name])
    assert line.startswith(f"FAIL {name}: ") and "\n" not in line and "Traceback" not in line


def test_a_crash_names_the_learner_s_line() -> None:
    line = grade(crashes, BY_NAME["elbo"])
    assert f"it raised ZeroDivisionError at line {crashes.__code__.co_firstlineno + 1}: division by zero" in line


# ---------------------------------------------------------------- the reference Adam

def test_adam_step_is_autograd_s_adam() -> None:
    # the same problem, 5 steps of each: a quadratic bowl with gradient 2 (θ − c)
    c, theta0 = np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.1, -0.7])
    expected = adam(lambda th, i: 2 * (th - c), theta0, num_iters=5, step_size=0.1)
    theta, m, v = theta0.copy(), np.zeros(3), np.zeros(3)
    for t in range(1, 6):
        theta, m, v = adam_step(theta, 2 * (theta - c), m, v, t, 0.1, 0.9, 0.999, 1e-8)
    # the same arithmetic in the same order: equal to the last bits but for one rounding
    np.testing.assert_allclose(theta, expected, rtol=1e-14, atol=0)


# ---------------------------------------------------------------- the command line

def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "minivae.exercises", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


ANSWERS = '''
import numpy as np
from autograd import make_vjp
from minivae import nn
from minivae.bounds import elbo, iwae_bound, log_mean_exp
from minivae.distributions import (bernoulli_log_prob, gaussian_log_prob, kl_diag_gaussians, kl_standard_normal,
                                   reparameterize)
from minivae.estimators import reinforce_surrogate
from minivae.exercises.check_training import adam_step
from minivae.gradcheck import numerical_grad


def _vjp(f, n):
    return lambda g, *args: tuple(make_vjp(f, argnum=i)(*args)[0](g) for i in range(n))


gaussian_log_prob_vjp = _vjp(gaussian_log_prob, 3)
bernoulli_log_prob_vjp = _vjp(bernoulli_log_prob, 2)
dense_vjp = _vjp(nn.dense, 3)


def unlabelled_bound(log_q_y, bounds):
    return np.sum(np.exp(log_q_y) * (bounds - log_q_y), axis=-1)
'''


def test_the_three_commands(tmp_path: Path) -> None:
    listed = run_cli("list", cwd=tmp_path)
    assert listed.returncode == 0 and [line.split()[1] for line in listed.stdout.splitlines()] == list(BY_NAME)
    assert run_cli("start", "work", cwd=tmp_path).returncode == 0
    # everything still TODO: every exercise listed, in course order, and a non-zero exit
    todo = run_cli("check", "work/my_vae.py", cwd=tmp_path)
    assert todo.returncode == 1 and todo.stdout.splitlines() == [f"TODO {n}" for n in BY_NAME]
    (tmp_path / "answers.py").write_text(ANSWERS, encoding="utf-8")
    done = run_cli("check", "answers.py", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.splitlines() == [f"PASS {n}" for n in BY_NAME], done.stdout
    # named exercises only, in the order given
    some = run_cli("check", "work/my_vae.py", "elbo", "adam_step", cwd=tmp_path)
    assert some.returncode == 1 and some.stdout.splitlines() == ["TODO elbo", "TODO adam_step"]


def test_start_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    mine = tmp_path / "my_vae.py"
    mine.write_text("def elbo(rec, kl, beta=1.0):\n    return rec - beta * kl\n", encoding="utf-8")
    assert main(["start", str(tmp_path)]) == 1
    assert "already exists and was left as it is" in capsys.readouterr().err
    assert mine.read_text(encoding="utf-8").startswith("def elbo(") and os.listdir(tmp_path) == ["my_vae.py"]
    # a file that defines one exercise is graded on that one
    assert main(["check", str(mine)]) == 0 and capsys.readouterr().out == "PASS elbo\n"


def test_a_file_that_does_not_import_gets_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "my_vae.py"
    bad.write_text("import numpy as np\n\ndef elbo(rec, kl, beta=1.0:\n    return rec\n", encoding="utf-8")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "my_vae.py does not import" in err and "at line 3" in err
    bad.write_text("import numpy as np\nx = np.zeros(2)\ny = x + undefined_name\n", encoding="utf-8")
    assert main(["check", str(bad)]) == 2
    assert "NameError at line 3" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "my_vae.py"), "no_such_exercise"]) == 2
    assert "there is no exercise called 'no_such_exercise'" in capsys.readouterr().err


def test_a_named_exercise_the_file_lacks_fails(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    mine = tmp_path / "mine.py"
    mine.write_text("def elbo(rec, kl, beta=1.0):\n    return rec - beta * kl\n", encoding="utf-8")
    assert main(["check", str(mine), "elbo", "iwae_bound"]) == 1
    assert capsys.readouterr().out.splitlines() == ["PASS elbo", "FAIL iwae_bound: mine.py defines no function "
                                                    "iwae_bound."]


def test_each_walkthrough_with_an_exercise_ends_with_a_try_it_yourself_cell() -> None:
    for walkthrough in sorted({e.walkthrough for e in EXERCISES}):
        text = (ROOT / "walkthroughs" / walkthrough).read_text(encoding="utf-8")
        last = text.rsplit("# %%", 1)[1]
        assert last.startswith(" [markdown]") and "Try it yourself" in last, walkthrough
        for e in EXERCISES:
            if e.walkthrough == walkthrough:
                assert f"python -m minivae.exercises check my_vae.py {e.name}" in last, (walkthrough, e.name)


def test_the_package_ships_the_exercises() -> None:
    setuptools = pytest.importorskip("setuptools")
    assert "minivae.exercises" in setuptools.find_packages(str(ROOT), include=["minivae*"])
