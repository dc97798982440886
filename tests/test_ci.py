"""CI: .ci/run runs the README's test command, then the fast tests on the oldest versions setup.cfg declares."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def floors() -> dict:
    """``{package: its floor}`` from setup.cfg's install_requires (every one must have a ``>=`` floor)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    found = {}
    for line in config["options"]["install_requires"].split("\n"):
        if line.strip():
            match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)\s*", line)
            assert match, f"install_requires line {line!r} has no >= floor"
            found[match[1].lower()] = match[2]
    return found


def pins() -> dict:
    lines = (ROOT / ".ci" / "minimum.txt").read_text().splitlines()
    return dict(line.lower().split("==") for line in lines if line.strip() and not line.startswith("#"))



def release(version: str) -> tuple:
    """``"1.9"`` and ``"1.9.0"`` as the same ``(1, 9, 0)``."""
    numbers = tuple(int(n) for n in version.split("."))
    return numbers + (0,) * (3 - len(numbers))


def test_the_minimum_pins_are_setup_cfgs_floors():
    declared, pinned = floors(), pins()
    assert sorted(declared) == sorted(pinned)
    for name, floor in declared.items():
        assert release(floor) == release(pinned[name]), f"{name}: >={floor} in setup.cfg, =={pinned[name]} pinned"


def test_ci_runs_the_readme_command_then_the_fast_tests_on_the_minimum_versions():
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines() if line.startswith("python3 -m") and line.endswith("pytest"))
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    commands = [line for line in lines if line.startswith("python3 ")]
    assert commands[0] == command
    assert "-c .ci/minimum.txt" in commands[1] and 'pytest -q -m "not slow"' in commands[1]
