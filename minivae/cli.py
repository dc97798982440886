r"""What every walkthrough shares: its command line, its results table, and its ``metrics.json``.

Walkthroughs import this from the installed package (never a neighbouring file), so they run from any
directory.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy


def walkthrough_parser(doc: str, default_out: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every walkthrough takes: --quick, --seed, --out, --device."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a small, fast run (seconds): fewer examples, epochs and samples; used by the tests")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--out", type=Path, default=Path(default_out),
                        help=f"folder for the PNG figures and metrics.json (default {default_out})")
    parser.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu",
                        help="cpu (NumPy), gpu (CuPy, needs minivae[gpu] and CUDA) or auto (default cpu)")
    return parser


def prepare_out(out: Path) -> Path:
    """Create the output folder (and parents) and return it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (numpy.generic, numpy.ndarray)):
        return value.tolist()
    return value


def save_metrics(out: Path, metrics: dict) -> Path:
    """Write ``metrics`` as ``out/metrics.json`` atomically (temporary file, then rename)."""
    path = Path(out) / "metrics.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_plain(metrics), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def print_table(rows: list[dict], title: str = "") -> None:
    """Print ``rows`` (dicts with the same keys) as an aligned text table; floats with 4 significant digits."""
    if title:
        print(title)
    if not rows:
        return
    keys = list(rows[0])
    cells = [[_cell(row.get(k, "")) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.rjust(w) for k, w in zip(keys, widths)))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths)))


def _cell(value: Any) -> str:
    if isinstance(value, (float, numpy.floating)):
        return f"{value:.4g}"
    return str(value)
