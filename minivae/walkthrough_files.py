r"""A walkthrough run's files: metrics.json (strict JSON), params.npz, and the last lines that list them.

Every file goes through :func:`minivae.files.atomic_write` (or :func:`minivae.save_params`, which uses it), so a
run that stops never leaves a half-written file; :func:`finish` is what ``Settings.finish`` of
:mod:`minivae.walkthrough` calls at the end of a script run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy

from minivae.files import atomic_write


class Run(NamedTuple):
    """What :func:`finish` returns: the trained parameters (a nest, or a dict of nests) and the metrics."""

    params: Any
    metrics: dict


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (numpy.generic, numpy.ndarray)):
        return _plain(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        # strict JSON has no NaN or Infinity: write null
        return None
    return value


def save_metrics(out: Path, metrics: dict, name: str = "metrics.json") -> Path:
    r"""Write ``metrics`` as ``out/name`` (strict JSON: non-finite numbers become null), atomically."""
    path = Path(out) / name
    text = json.dumps(_plain(metrics), indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


def save_params(out: Path, params: Any, name: str = "params.npz") -> Path:
    r"""Save the trained ``params`` nest as ``out/name`` with :func:`minivae.save_params` (an ``.npz`` with the
    nest's structure as JSON, no pickle, written atomically); ``minivae.load_params`` reads it back."""
    from minivae.checkpoint import save_params as save

    path = Path(out) / name
    save(path, params)
    return path


def finish(out: Path, params: Any, metrics: dict, figures: Iterable[Path], next_step: str, variant: str = "") -> Run:
    r"""End a run: save ``params`` (params.npz) and ``metrics`` (metrics.json), list every file written
    (``figures`` first), name the next walkthrough, and return the :class:`Run`.

    A ``variant`` (e.g. ``"square"`` for a non-default mask) goes into both names (params_square.npz,
    metrics_square.json), so a variant never overwrites the default run's files; name its figures likewise.
    """
    tag = f"_{variant}" if variant else ""
    written = [*figures, save_params(out, params, f"params{tag}.npz"), save_metrics(out, metrics, f"metrics{tag}.json")]
    print("wrote:")
    for path in written:
        print(f"  {path}")
    print(f"next: {next_step}")
    return Run(params, metrics)
