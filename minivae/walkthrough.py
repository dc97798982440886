r"""What every walkthrough shares: its settings and flags, its progress bars, its lesson number, how it ends.

A walkthrough (``walkthroughs/NN_name.py``) is one lesson in the percent format: ``# %% [markdown]`` cells
carry the text, ``# %%`` cells the steps, so the same file runs as a script and opens as a notebook. Each is
written **notebook first**:

1. **Settings, first code cell** (imports and settings: at most 15 lines before the first lesson cell)::

       S = settings(__name__, "01_ring_mapping", {  # name: (quick, full, what it is)
           "epochs": (40, 150, "passes over the training points"), ...})

   :func:`settings` makes each entry a flag (``--epochs``; int, float, tuple or choices, see ``types``),
   checks every flag and the output folder (and ``--data-dir`` with ``mnist=True``) before any data is
   loaded, and returns :class:`Settings` (``S.epochs``, ``S.seed``, ``S.out``, ...). An explicit flag beats
   ``--quick``. A script reads ``sys.argv`` (a bad flag: one argparse line, exit 2); a notebook (or an
   import) reads ``$MINIVAE_WALKTHROUGH_ARGS`` and **runs quick when it is unset** (``""``: the full run).
   ``--quick`` writes to ``figures/NN_name_quick``, never over the full run's ``params.npz``. ``--help`` is
   the first paragraph of the first markdown cell and the flags.
2. **Lesson cells at module level**, top to bottom: the data (MNIST: :mod:`minivae.walkthrough_data`), the
   model, training (one bar per run: ``fit(..., progress=False, on_epoch=epoch_bar(S.epochs, "VAE"))``), each
   figure in the cell that makes it (``S.figure(fig, "NN_what.png")``), the table (:func:`print_table`), and
   the lesson as a number (:func:`lesson_check`, stored as ``metrics["lesson"]``).
3. **One script-only last code cell**: ``if S.script: S.finish(params, metrics, "walkthroughs/NN_next.py: ...")``
   saves ``params.npz`` and ``metrics.json``, lists every file written and names the next walkthrough.

Progress bars are plain ``tqdm`` (never ``tqdm.auto``): on stderr on a terminal, on stdout in ASCII in a
notebook, never in a log. Walkthroughs import this from the installed package, never a neighbouring file.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

import numpy

from minivae.backend import get_backend
from minivae.console import bar, guard_streams, in_notebook, show_progress
from minivae.threads import set_blas_threads
from minivae.walkthrough_data import add_mnist_flags, data_dir_problem
from minivae.walkthrough_files import Run, finish, save_params

ARGS_VARIABLE = "MINIVAE_WALKTHROUGH_ARGS"


# ---- progress: bar() and show_progress() live in minivae.console, which data/ and train.py use too ----

def progress(items: Iterable, desc: str, total: int | None = None) -> Iterable:
    r"""``items`` wrapped in a :func:`bar` labelled ``desc`` when :func:`show_progress`, else unchanged."""
    return bar(items, desc, total, leave=False) if show_progress() else items


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


def whole_number_in(low: int, high: int) -> Callable[[str], int]:
    r"""An argparse ``type=`` factory: a whole number from ``low`` to ``high`` (e.g. pixels of a shift)."""
    def convert(text: str) -> int:
        return _number(text, int, f"a whole number from {low} to {high}", lambda v: low <= v <= high)

    return convert


def decay(text: str) -> float:
    r"""An argparse ``type=``: a decay in [0, 1), the weight a moving average keeps on its past."""
    return _number(text, float, "a decay in [0, 1)", lambda v: 0 <= v < 1)


def out_folder(text: str) -> Path:
    r"""An argparse ``type=``: the output folder, never empty (``--out ''`` would scatter files in the current
    folder; ``--out .`` says so on purpose)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder for the figures, got an empty name; give one, e.g. "
                                         "--out figures/run1 (or --out . for the current folder)")
    return Path(text)


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
        problem = data_dir_problem(getattr(parsed, "data_dir", None))
        if problem:
            self.error(problem)
        try:
            # NumPy's BLAS threads for the whole run: --threads, else $MINIVAE_THREADS, else 1
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


def _show(value: Any, shown: dict) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return shown.get(value, str(value)) if value is None or isinstance(value, bool) else f"{value:g}"


def kernel_argv() -> list[str]:
    r"""The flags of a walkthrough run inside a notebook: ``$MINIVAE_WALKTHROUGH_ARGS`` split like a shell line."""
    text = os.environ.get(ARGS_VARIABLE, "")
    try:
        return shlex.split(text)
    except ValueError as error:
        raise ValueError(f"${ARGS_VARIABLE} = {text!r} is not a line of flags ({error}); quote it as in a shell, "
                         "e.g. MINIVAE_WALKTHROUGH_ARGS='--quick --out \"my figures\"'.") from None


# ---- the results table ----

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


# ---- notebook-first walkthroughs: settings(), Settings, epoch_bar(), lesson_check() ----

NOTEBOOK_HINT = ("The lesson is this file's text: open it as a notebook (Jupyter with jupytext, or VS Code), "
                 "where the flags come from $MINIVAE_WALKTHROUGH_ARGS (a quick run when it is unset).")


class Settings(argparse.Namespace):
    r"""The settings of one run (``S.epochs``, ``S.seed``, ``S.out``, ``S.quick``, ``S.device``, ...), and
    ``S.script``: True when run as ``python walkthroughs/NN_name.py``, False in a notebook or on import."""

    def figure(self, fig: Any, name: str) -> None:
        r"""Save ``fig`` as ``S.out / name`` (PNG), show it inline in a notebook, close it, and remember the file
        for :meth:`finish` (returns None, so a cell that ends with it shows the figure, not its path)."""
        from minivae.plotting import save_figure

        self.written.append(save_figure(fig, self.out / name))

    def finish(self, params: Any, metrics: dict, next_step: str, variant: str = "") -> Run:
        r"""End a script run: add the settings, ``seed``, ``quick`` and ``wall_seconds`` to ``metrics`` (a key
        already there wins), save params.npz and metrics.json in ``S.out``, list the files, name the next one;
        a ``variant`` goes into both names, as in :func:`minivae.walkthrough_files.finish`."""
        every = {name: getattr(self, name) for name in self.names}
        every.update(seed=self.seed, quick=self.quick, wall_seconds=time.perf_counter() - self.started)
        return finish(self.out, params, {**every, **metrics}, self.written, next_step, variant)


class _SettingsParser(WalkthroughParser):
    # fills in the --out folder that --quick implies before WalkthroughParser checks it
    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple:
        parsed, extra = super().parse_known_args(args, namespace)
        if parsed.out == "":
            self.error("--out is empty; give a folder for the figures, e.g. --out figures/run1.")
        if parsed.out is None:
            parsed.out = f"figures/{self.prog[:-3]}{'_quick' if parsed.quick else ''}"
        return parsed, extra


def settings(module: str, name: str, values: dict, *, types: dict | None = None, mnist: bool = False,
             argv: list[str] | None = None, binarize: str = "threshold") -> Settings:
    r"""The run's :class:`Settings`, every flag and the output folder checked before any data is loaded.

    ``module``: the walkthrough's ``__name__``; ``name``: its file name without ``.py`` (default ``--out``:
    ``figures/<name>``, or ``figures/<name>_quick`` under ``--quick``). ``values``: ``{"n_train": (quick, full,
    "what it is"), ...}``; each entry becomes a flag ``--n-train`` whose type follows the values (int: a whole
    number >= 1, float: a finite number > 0, tuple: one or more of those, bool: on/off, None: all) unless
    ``types`` names a type function (e.g. ``{"beta": non_negative_float}``) or a tuple of choices for it.
    ``mnist=True`` adds ``--data-dir`` (an existing folder, never created) and ``--binarize`` (default
    ``binarize``). ``argv``: the
    flags; by default ``sys.argv[1:]`` when run as a script, else ``$MINIVAE_WALKTHROUGH_ARGS`` (``--quick``
    when unset). A bad flag or variable is one argparse line and exit status 2.
    """
    parser = _SettingsParser(prog=f"{name}.py", description=f"{_title(module)} {NOTEBOOK_HINT}".strip())
    parser.add_argument("--quick", action="store_true",
                        help="a run of seconds whose figures and lesson number still show the lesson")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--out", type=out_folder, default=None,
                        help=f"folder for the figures, params.npz and metrics.json (default figures/{name}, "
                             f"--quick: figures/{name}_quick)")
    parser.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu",
                        help="cpu (NumPy), gpu (CuPy, needs minivae[gpu] and CUDA) or auto (default cpu)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="NumPy's BLAS threads (default: $MINIVAE_THREADS, else 1)")
    if mnist:
        add_mnist_flags(parser, binarize)
    for key, (quick, full, *about) in values.items():
        _add_value_flag(parser, key, quick, full, " ".join(about), (types or {}).get(key))
    if argv is None and module == "__main__" and not in_notebook():
        # a closed or broken stdout/stderr, or an ASCII console, must never cost the run its files
        guard_streams()
        argv = sys.argv[1:]
    elif argv is None:
        try:
            argv = kernel_argv() if ARGS_VARIABLE in os.environ else ["--quick"]
        except ValueError as error:
            parser.error(str(error))
    S = parser.parse_args(argv, Settings())
    for key, (quick, full, *_) in values.items():
        if getattr(S, key) is None:
            setattr(S, key, quick if S.quick else full)
    S.out, S.names, S.written, S.started = Path(S.out).expanduser(), list(values), [], time.perf_counter()
    S.script = module == "__main__" and not in_notebook()
    if S.script:
        sys.excepthook = _stopped_run_hook(S, sys.excepthook)
    return S


def _stopped_run_hook(S: Settings, previous: Callable) -> Callable:
    r"""A script's last word when training hits NaN or inf (the guard's NonFiniteLossError): save the last good
    parameters next to the figures, say so and what to change in one sentence, exit with status 1."""
    def hook(kind: type, error: BaseException, trace: Any) -> None:
        last_good = getattr(error, "params", None)
        if not isinstance(error, FloatingPointError) or last_good is None:
            return previous(kind, error, trace)
        path = save_params(S.out, last_good, "params_last_good.npz")
        lower = f"--lr {S.lr / 10:g}" if isinstance(getattr(S, "lr", None), float) else "a lower --lr"
        what = str(error).split(";")[0]
        print(f"stopped: {what}; the last good parameters are in {path}; try {lower}.", file=sys.stderr)
        raise SystemExit(1)

    return hook


def _title(module: str) -> str:
    # the first paragraph of the walkthrough's first markdown cell (its title), without the '#'; '' in a notebook
    path = getattr(sys.modules.get(module), "__file__", None)
    if not path or not Path(path).is_file():
        return ""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("# %% [markdown]")), len(lines))
    title: list[str] = []
    for line in lines[start + 1:]:
        text = line[2:] if line.startswith("# ") else line.lstrip("#")
        if line.startswith("# %%") or (title and not text.strip()):
            break
        title.append(text.strip())
    return " ".join(t for t in title if t).lstrip("# ")


def _add_value_flag(parser: argparse.ArgumentParser, key: str, quick: Any, full: Any, about: str,
                    kind: Any) -> None:
    # one flag --key-name for a (quick, full) setting, its type from `kind` or from the values themselves
    sample = full if full is not None else quick
    many = isinstance(sample, (tuple, list))
    one = sample[0] if many else sample
    if isinstance(kind, tuple):
        options = {"choices": kind}
    elif isinstance(one, bool):
        options = {"action": argparse.BooleanOptionalAction}
    else:
        convert = kind or (positive_int if isinstance(one, int) else positive_float if isinstance(one, float)
                           else str)
        metavar = "N" if isinstance(one, int) else "X" if isinstance(one, float) else None
        options = {"type": convert, "metavar": metavar, **({"nargs": "+"} if many else {})}
    def show(value: Any) -> str:
        return value if isinstance(value, str) else _show(value, {None: "all", True: "on", False: "off"})

    parser.add_argument(f"--{key.replace('_', '-')}", default=None,
                        help=f"{about} (default {show(full)}; --quick: {show(quick)})".lstrip(), **options)


class EpochBar:
    r"""One progress bar for a whole ``fit`` run: pass it as ``on_epoch`` (with ``progress=False``); it moves
    one step per epoch, shows the epoch's bound, and closes itself after the last epoch."""

    def __init__(self, epochs: int, desc: str) -> None:
        self.bar = bar(desc=desc, total=epochs, unit="epoch") if show_progress() else None

    def __call__(self, epoch: int, params: Any, record: dict) -> None:
        if self.bar is None:
            return
        # the epoch's bound: on the test set when fit has one, else on the training set
        key = next((k for k in record if k.startswith("test_")), next(k for k in record if k.startswith("train_")))
        self.bar.set_postfix_str(f"{key} {record[key]:.3f}", refresh=False)
        self.bar.update(1)
        if self.bar.n >= self.bar.total:
            self.bar.close()


def epoch_bar(epochs: int, desc: str) -> EpochBar:
    r"""``fit(..., progress=False, on_epoch=epoch_bar(epochs, "VAE"))``: one bar per run (see :class:`EpochBar`)."""
    return EpochBar(epochs, desc)


def lesson_check(claim: str, value: float, threshold: float, above: bool = True) -> dict:
    r"""The walkthrough's lesson as a number: holds = value > threshold (value < threshold when ``above`` is
    False). Prints it and returns ``{"claim", "value", "threshold", "holds"}`` for ``metrics["lesson"]``; the
    claim says in words what the number is and which way it must point."""
    holds = bool(value > threshold) if above else bool(value < threshold)
    print(f"lesson: {claim}\n  {value:.4g} {'>' if above else '<'} {threshold:g}: "
          f"{'holds' if holds else 'DOES NOT HOLD'}")
    return {"claim": claim, "value": float(value), "threshold": float(threshold), "holds": holds}
