"""The exercises' grader, tested both ways: minivae's own answers pass, and planted mistakes fail with their message.

Each planted mistake is a small function in tests/exercise_mistakes.py, written as a learner would; the test asserts the
exact phrase of the FAIL line that names it. The command line runs in a subprocess: an all-TODO file exits non-zero
and lists every exercise, a file of minivae's own answers passes, a syntax error is one sentence naming the line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from autograd.misc.optimizers import adam
from exercise_mistakes import PLANTED, own_unlabelled_bound, vjp_of

from minivae import bounds, estimators, nn
from minivae import distributions as dist
from minivae.exercises import BY_NAME, EXERCISES, grade, main
from minivae.exercises.check_training import adam_step
from minivae.gradcheck import numerical_grad

ROOT = Path(__file__).resolve().parents[1]


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


def exits(*args):
    sys.exit(3)


def ragged(*args):
    return [[1.0, 2.0], [3.0]]


def complex_answer(*args):
    return np.ones(3) + 1j


@pytest.mark.parametrize("wrong", [crashes, nan_answer, returns_none, returns_text, exits, ragged, complex_answer])
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


def test_the_fail_lines_in_the_docs_are_what_the_grader_prints() -> None:
    printed = {grade(wrong, BY_NAME[name]) for name, wrong, _ in PLANTED}
    shown = [line for line in (ROOT / "docs" / "exercises.md").read_text(encoding="utf-8").splitlines()
             if line.startswith("FAIL ")]
    assert len(shown) >= 6 and not [line for line in shown if line not in printed]
    assert f"{len(PLANTED)} in all" in (ROOT / "docs" / "exercises.md").read_text(encoding="utf-8")
