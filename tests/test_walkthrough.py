"""The walkthroughs' shared command line, results table and metrics.json."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from minivae.walkthrough import print_table, save_metrics, walkthrough_parser


def test_parser_defaults_and_flags(tmp_path) -> None:
    parser = walkthrough_parser("doc", "figures/99_demo")
    args = parser.parse_args([])
    assert (args.quick, args.seed, str(args.out), args.device) == (False, 0, "figures/99_demo", "cpu")
    args = parser.parse_args(["--quick", "--seed", "3", "--out", str(tmp_path), "--device", "auto"])
    assert (args.quick, args.seed, args.out, args.device) == (True, 3, tmp_path, "auto")


def test_device_gpu_without_cupy_is_one_sentence_not_a_traceback(monkeypatch, capsys) -> None:
    # a cupy module that cannot be imported stands for a machine without CuPy
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(SystemExit) as stop:
        walkthrough_parser("doc", "figures/99_demo").parse_args(["--device", "gpu"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "CuPy could not be imported" in err and "--device cpu" in err and "Traceback" not in err


def test_save_metrics_writes_plain_json_atomically(tmp_path) -> None:
    path = save_metrics(tmp_path, {"elbo": np.float32(-1.5), "curve": np.arange(3), "nested": {"k": (1, 2)}})
    assert json.loads(path.read_text()) == {"elbo": -1.5, "curve": [0, 1, 2], "nested": {"k": [1, 2]}}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_print_table_aligns_columns(capsys) -> None:
    print_table([{"quantity": "test ELBO", "nats": -98.7654}, {"quantity": "KL", "nats": 21.0}], title="t")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "t"
    assert len({len(line) for line in lines[1:]}) == 1
    assert "-98.77" in lines[2]
