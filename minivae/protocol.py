r"""A selection protocol: a validation split, seeds for choosing and seeds for reporting, and mean ± sd.

Choosing settings on the test set and reporting the test error of the winner overstates how good the winner
is. The protocol this module supports: carve a validation split out of the training examples, disjoint from
the labelled examples and from the test set; choose every setting on it, with *selection* seeds; then freeze
the settings and score the test set once, over *report* seeds that played no part in the choice, each with its
own label draw and random start, as mean ± sd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy

SELECTION_BASE, REPORT_BASE = 1000, 2000  # seeds 0-999 are left to the learner's own runs


@dataclass(frozen=True)
class Split:
    r"""Index sets into the training examples: ``labelled``, ``unlabelled`` and ``validation``, pairwise disjoint."""

    labelled: numpy.ndarray
    unlabelled: numpy.ndarray
    validation: numpy.ndarray


def split_labelled(labels: numpy.ndarray, per_class: int, n_validation: int, rng: numpy.random.Generator,
                   n_classes: int = 10) -> Split:
    r"""``n_validation`` random examples for validation, then ``per_class`` random examples of each class from
    the rest as the labelled set; every other example is unlabelled. Each set is sorted.

    Raises ValueError, in one sentence, when a class has too few examples left or when nothing is left over.
    """
    n = len(labels)
    if not 0 <= n_validation < n:
        raise ValueError(f"n_validation is {n_validation}, but there are {n} examples; keep it below {n}.")
    order = rng.permutation(n)
    validation, rest = numpy.sort(order[:n_validation]), order[n_validation:]
    chosen = []
    for c in range(n_classes):
        members = rest[labels[rest] == c]
        if len(members) < per_class:
            raise ValueError(f"class {c} has {len(members)} examples outside the validation split, fewer than the "
                             f"{per_class} labelled examples per class asked for.")
        chosen.append(rng.permutation(members)[:per_class])
    labelled = numpy.sort(numpy.concatenate(chosen)) if chosen else numpy.zeros(0, int)
    unlabelled = numpy.setdiff1d(rest, labelled)
    return Split(labelled, unlabelled, validation)


def seeds(purpose: str, n: int) -> list[int]:
    r"""``n`` seeds for ``"selection"`` (1000, 1001, ...) or ``"report"`` (2000, 2001, ...): never the same seed.

    Seeds below 1000 are left to the learner's own runs (a walkthrough's default ``--seed 0``).
    """
    bases = {"selection": SELECTION_BASE, "report": REPORT_BASE}
    if purpose not in bases:
        raise ValueError(f"purpose is {purpose!r}; use 'selection' or 'report'.")
    if not 0 <= n <= REPORT_BASE - SELECTION_BASE:
        raise ValueError(f"n is {n}; ask for 0 to {REPORT_BASE - SELECTION_BASE} seeds.")
    return [bases[purpose] + i for i in range(n)]


def mean_sd(values: list[float]) -> tuple[float, float]:
    r"""The mean x̄ = (1/n) Σ x_i and the sample standard deviation s = √(Σ (x_i − x̄)² / (n − 1)) (0 for n = 1)."""
    x = numpy.asarray(values, dtype=numpy.float64)
    if x.size == 0 or not numpy.all(numpy.isfinite(x)):
        raise ValueError("mean_sd needs at least one value, all finite.")
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


def spread(values: list[float], scale: float = 100.0, unit: str = " %", digits: int = 2) -> str:
    r"""``values`` as "mean ± sd unit (n = …, min–max)", each multiplied by ``scale`` (errors as percent)."""
    mean, sd = mean_sd(values)
    low, high = min(values), max(values)
    return (f"{scale * mean:.{digits}f} ± {scale * sd:.{digits}f}{unit} (n = {len(values)}, "
            f"{scale * low:.{digits}f}–{scale * high:.{digits}f})")


def beside(value: float, reference: dict, scale: float = 100.0, unit: str = " %") -> str:
    r"""A run's ``value`` next to a reference ``{"mean", "sd", "n"}``: how many sd it lies from the mean."""
    mean, sd, n = reference["mean"], reference["sd"], reference["n"]
    if not (math.isfinite(value) and math.isfinite(mean) and math.isfinite(sd)):
        raise ValueError("beside needs finite numbers.")
    distance = "" if sd == 0 else f", {(value - mean) / sd:+.1f} sd"
    return (f"{scale * value:.2f}{unit} (full runs over {n} fresh label draws: {scale * mean:.2f} ± "
            f"{scale * sd:.2f}{unit}{distance})")
