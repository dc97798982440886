"""Run every walkthrough with --quick in a subprocess from a foreign working directory.

Each script must exit 0, write at least one PNG that matplotlib can read, and a metrics.json whose key
numbers point the right way (the per-script checks below).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "walkthroughs").glob("[0-9][0-9]_*.py"))
_RUNS: dict = {}


def run_quick(name: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run walkthrough ``name`` once per session with --quick; return its metrics.json (cached)."""
    if name not in _RUNS:
        script = ROOT / "walkthroughs" / f"{name}.py"
        out = tmp_path_factory.mktemp(name) / "out"
        elsewhere = tmp_path_factory.mktemp("cwd")
        env = dict(os.environ, MPLBACKEND="Agg")
        proc = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out), "--seed", "0"],
                              cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        pngs = sorted(out.glob("*.png"))
        assert pngs, f"{name} wrote no PNG to {out}"
        for png in pngs:
            assert matplotlib.image.imread(png).size > 0
        assert not list(elsewhere.iterdir()), f"{name} wrote into its working directory"
        _RUNS[name] = json.loads((out / "metrics.json").read_text())
    return _RUNS[name]


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_walkthrough_runs_quick(script: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    metrics = run_quick(script.stem, tmp_path_factory)
    assert metrics, f"{script.stem} wrote an empty metrics.json"


def test_there_are_walkthroughs() -> None:
    assert len(SCRIPTS) >= 1


# ---- per-walkthrough directional checks (each reuses the cached quick run) ----
