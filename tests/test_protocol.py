"""Tests of minivae.protocol: disjoint splits with the asked-for class counts, disjoint seeds, mean ± sd."""

from __future__ import annotations

import numpy
import pytest

from minivae.protocol import beside, mean_sd, seeds, split_labelled, spread


def test_split_is_disjoint_complete_and_balanced() -> None:
    labels = numpy.random.default_rng(0).integers(0, 10, 600)
    split = split_labelled(labels, 5, 100, numpy.random.default_rng(1))
    parts = [split.labelled, split.unlabelled, split.validation]
    assert [len(p) for p in parts] == [50, 450, 100]
    # pairwise disjoint, and together every example exactly once
    numpy.testing.assert_array_equal(numpy.sort(numpy.concatenate(parts)), numpy.arange(600))
    # exactly 5 labelled examples of each class
    numpy.testing.assert_array_equal(numpy.bincount(labels[split.labelled], minlength=10), [5] * 10)
    # the same seed gives the same split; another seed another one
    again = split_labelled(labels, 5, 100, numpy.random.default_rng(1))
    numpy.testing.assert_array_equal(again.validation, split.validation)
    other = split_labelled(labels, 5, 100, numpy.random.default_rng(2))
    assert not numpy.array_equal(other.validation, split.validation)


def test_split_refuses_too_few_examples_in_one_sentence() -> None:
    labels = numpy.repeat(numpy.arange(10), 3)
    labels[labels == 7] = 6  # class 7 is missing
    with pytest.raises(ValueError, match="class 7 has 0 examples outside the validation split, fewer than the 1"):
        split_labelled(labels, 1, 0, numpy.random.default_rng(0))
    with pytest.raises(ValueError, match="n_validation is 30, but there are 30 examples"):
        split_labelled(labels, 1, 30, numpy.random.default_rng(0))


def test_selection_and_report_seeds_never_meet() -> None:
    chosen, reported = seeds("selection", 20), seeds("report", 20)
    assert chosen[0] == 1000 and reported[0] == 2000 and len(set(chosen)) == 20
    assert not set(chosen) & set(reported) and min(chosen + reported) >= 1000  # 0-999: the learner's own runs
    assert not set(seeds("selection", 1000)) & set(seeds("report", 1000))
    with pytest.raises(ValueError, match="use 'selection' or 'report'"):
        seeds("test", 3)
    with pytest.raises(ValueError, match="ask for 0 to 1000 seeds"):
        seeds("report", 1001)


def test_mean_and_sample_standard_deviation_exactly() -> None:
    # 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum to 32, so s = sqrt(32 / 7)
    mean, sd = mean_sd([2, 4, 4, 4, 5, 5, 7, 9])
    assert mean == 5.0 and sd == pytest.approx(numpy.sqrt(32 / 7), rel=1e-15)
    assert mean_sd([0.25]) == (0.25, 0.0)
    for bad in ([], [1.0, float("nan")]):
        with pytest.raises(ValueError, match="at least one value, all finite"):
            mean_sd(bad)


def test_spread_and_beside_print_the_numbers() -> None:
    assert spread([0.10, 0.12, 0.14]) == "12.00 ± 2.00 % (n = 3, 10.00–14.00)"
    reference = {"mean": 0.12, "sd": 0.02, "n": 10}
    assert beside(0.15, reference) == "15.00 % (full runs over 10 fresh label draws: 12.00 ± 2.00 %, +1.5 sd)"


def _experiment():
    # walkthroughs/experiments/13_protocol.py as a module (importing it trains nothing)
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("protocol_13", root / "walkthroughs/experiments/13_protocol.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, root


def test_the_docs_print_the_tables_the_recorded_runs_give() -> None:
    # every line of the full-run table and of the second round's choices, computed from the recorded runs, is in
    # docs/semi_supervised.md exactly: the docs' numbers are the records', not numbers typed by hand
    experiment, root = _experiment()
    results = root / "walkthroughs/experiments/13_protocol_results.json"
    docs = (root / "docs/semi_supervised.md").read_text()
    lines = experiment.table([results]).splitlines() + experiment.choose([results]).splitlines()
    assert len(lines) > 12  # both tables are there: the check is not vacuous
    for line in lines:
        assert line in docs, line
