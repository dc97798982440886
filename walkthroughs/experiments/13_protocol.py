"""Walkthrough 13 under the selection protocol: the runs behind docs/semi_supervised.md's tables.

    python walkthroughs/experiments/13_protocol.py select --seeds 1000 1001 --json /tmp/select.json --data-dir DIR
    python walkthroughs/experiments/13_protocol.py report --seeds 2000 ... --shift 1 --json /tmp/report.json ...

``table`` prints the docs' table from report records, e.g. from 13_protocol_results.json (the runs behind the
docs). ``select`` trains on selection seeds (minivae.protocol.seeds("selection", n)) and records only errors on the
validation digits, for a small grid of settings (M1+M2's alpha, 60 epochs of validation curve each); it never
scores the test digits. ``report`` trains, with the
frozen settings of the walkthrough's SETTINGS block, on report seeds, each a new label draw and random start,
and scores the validation and test digits once per model, for both weightings of J^alpha. Each result is
appended to the JSON file as soon as it is known, so a run cut short keeps what finished.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy

from minivae.m2 import M2
from minivae.protocol import mean_sd, split_labelled
from minivae.walkthrough import ARGS_VARIABLE, decay, settings, whole_number_in
from minivae.walkthrough_data import load_mnist_split

ROOT = Path(__file__).resolve().parents[2]


IMPORT_FLAGS = ("--quick --n-train 400 --n-test 100 --n-validation 100 --m1-epochs 1 --classifier-steps 2 "
                "--epochs 1 --stack-epochs 1 --hidden 8 --out /tmp/minivae_13_protocol_import")


def walkthrough():
    """Walkthrough 13 as a module: importing runs its cells, so with tiny flags (a second), for its functions."""
    os.environ[ARGS_VARIABLE] = IMPORT_FLAGS
    spec = importlib.util.spec_from_file_location("walkthrough_13", ROOT / "walkthroughs" / "13_m1_m2_stacked.py")
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(module)
    return module


def append(path: Path, record: dict) -> None:
    records = json.loads(path.read_text()) if path.exists() else []
    records.append(record)
    path.write_text(json.dumps(records, indent=1))
    print(json.dumps({k: v for k, v in record.items() if k != "history"}), flush=True)


def setup(w, seed: int, flags: list[str]):
    # the walkthrough's settings, full unless flags say otherwise, with the walkthrough's own flag types
    types = {"stack_average": decay, "weighting": ("equal_means", "paper"), "labels_per_class": whole_number_in(1, 300),
             "shift": whole_number_in(0, 4)}
    args = settings("walkthrough_13", "13_m1_m2_stacked", w.VALUES, mnist=True, binarize="stochastic", types=types,
                    argv=["--seed", str(seed), "--out", f"/tmp/minivae_13_protocol_{seed}", *flags])
    data = load_mnist_split(args, n_test=args.n_test)
    rng = numpy.random.default_rng(args.seed)
    split = split_labelled(data.y_train, args.labels_per_class, args.n_validation, rng)
    data.x_val, data.y_val = data.x_train[split.validation], data.y_train[split.validation]
    if data.fit_binarize == "stochastic":
        data.x_val = (rng.random(data.x_val.shape) < data.x_val).astype(data.x_val.dtype)
    return args, data, split, rng


def select(w, seed: int, flags: list[str], out: Path) -> None:
    """Validation errors only, for the grid that was run: M1+M2's alpha (equal means), and the paper's weighting."""
    args, data, split, rng = setup(w, seed, flags)
    lab, unl, y_l = split.labelled, split.unlabelled, data.y_train[split.labelled]
    err = lambda model, p, x: w.error_rate(model.predict(p, x), data.y_val)  # noqa: E731
    base = {"seed": seed, "shift": args.shift, "code_shift": w.CODE_SHIFT}
    baseline, bp = w.train_baseline(data.x_train[lab], y_l, args, rng)
    append(out, {**base, "model": "labels only", "validation": err(baseline, bp, data.x_val)})
    m1, m1p, pool = w.train_m1(data.x_train, lab, unl, y_l, args, rng, data.fit_binarize)
    append(out, {**base, "model": "M1", "validation": err(m1, m1p, data.x_val)})
    val_codes = numpy.asarray(m1.features(m1p, data.x_val)[0])
    for weighting, alpha in (("equal_means", 1.0), ("equal_means", 3.0), ("equal_means", 10.0),
                             ("paper", w.PAPER_ALPHA)):
        tick = time.perf_counter()
        _, _, history = w.train_stack(m1, pool, lab, unl, y_l, val_codes, data.y_val, args, rng, weighting, alpha)
        append(out, {**base, "model": "M1+M2", "weighting": weighting, "alpha": alpha,
                     "validation": history[-1]["validation_error"], "seconds": time.perf_counter() - tick,
                     "history": [h["validation_error"] for h in history]})


PHASES = ("m1", "stack_equal_means", "stack_paper", "m2_equal_means", "m2_paper")


def report(w, seed: int, flags: list[str], out: Path, phases=PHASES) -> None:
    """Frozen settings: validation and test error of every model, both weightings, scored once each.

    The phases run in the order given; M1 (its params and pool of codes) is kept in a cache file between them.
    """
    args, data, split, _ = setup(w, seed, flags)
    lab, unl, y_l = split.labelled, split.unlabelled, data.y_train[split.labelled]
    base = {"seed": seed, "shift": args.shift, "code_shift": w.CODE_SHIFT}
    cache = out.parent / f"m1_{seed}_shift{args.shift}.pickle"

    def scored(name, model, p, x_val, x_test, **extra):
        append(out, {**base, "model": name, **extra,
                     "validation": w.error_rate(model.predict(p, x_val), data.y_val),
                     "test": w.error_rate(model.predict(p, x_test), data.y_test)})

    for phase in phases:
        rng = numpy.random.default_rng([seed, PHASES.index(phase)])
        if phase == "m1" and cache.exists():
            continue  # another process trained this M1 already
        if phase == "m1":
            cache.write_bytes(b"")  # claimed: no other process starts this M1
            baseline, bp = w.train_baseline(data.x_train[lab], y_l, args, rng)
            scored("labels only", baseline, bp, data.x_val, data.x_test)
            m1, m1p, pool = w.train_m1(data.x_train, lab, unl, y_l, args, rng, data.fit_binarize)
            scored("M1", m1, m1p, data.x_val, data.x_test)
            cache.with_suffix(".part").write_bytes(pickle.dumps((m1, m1p, pool)))
            cache.with_suffix(".part").replace(cache)
        elif phase.startswith("stack"):
            while not cache.exists() or cache.stat().st_size == 0:
                time.sleep(20)  # M1 is still being trained by another process
            m1, m1p, pool = pickle.loads(cache.read_bytes())
            weighting = phase[len("stack_"):]
            alpha = w.PAPER_ALPHA if weighting == "paper" else args.stack_alpha
            val_codes, test_codes = (numpy.asarray(m1.features(m1p, x)[0]) for x in (data.x_val, data.x_test))
            stack, sp, _ = w.train_stack(m1, pool, lab, unl, y_l, val_codes, data.y_val, args, rng, weighting,
                                         alpha)
            scored("M1+M2", stack, sp, val_codes, test_codes, weighting=weighting)
        else:
            weighting = phase[len("m2_"):]
            alpha = w.PAPER_ALPHA if weighting == "paper" else args.alpha
            m2 = M2(784, [args.hidden // 2], 4)
            m2p, _ = w.train_m2(m2, m2.init(rng), lambda i, rng=rng: w.shifted(data.x_train[i], args.shift, rng),
                                lab, unl, y_l, data.x_val, data.y_val, args.epochs, alpha, args, data.fit_binarize,
                                weighting=weighting)
            scored("M2", m2, m2p, data.x_val, data.x_test, weighting=weighting)


ROWS = (("labels only", None, "classifier on the 100 labels alone"), ("M1", None, "M1 + MLP"),
        ("M2", "equal_means", "M2 on pixels, equal means (alpha 50)"),
        ("M2", "paper", "M2 on pixels, paper (alpha 0.1)"),
        ("M1+M2", "equal_means", "**M1+M2, equal means (alpha 1)**"), ("M1+M2", "paper", "M1+M2, paper (alpha 0.1)"))


def table(paths: list[Path]) -> str:
    """The report records of ``paths`` as a markdown table: test and validation error, mean ± sd (n), per treatment."""
    records = {}
    for path in paths:
        loaded = json.loads(path.read_text())
        for r in loaded["report"] if isinstance(loaded, dict) else loaded:
            if "test" in r:
                records[(r["seed"], r["shift"], r["model"], r.get("weighting"))] = r
    lines = ["| model (100 labels) | test, with the shifts | test, without | validation, with | validation, without |",
             "|---|---|---|---|---|"]
    for model, weighting, name in ROWS:
        cells = []
        for key in ("test", "validation"):
            for shift in (1, 0):
                values = [r[key] for (_, s, m, w), r in records.items() if (s, m, w) == (shift, model, weighting)]
                cells.append(_cell(values))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(values: list[float]) -> str:
    if not values:
        return "not run"
    mean, sd = mean_sd(values)
    return f"{100 * mean:.2f} ± {100 * sd:.2f} % ({len(values)})"


if __name__ == "__main__":
    if sys.argv[1:2] == ["table"]:
        paths = [Path(p) for p in sys.argv[2:]]
        if not paths or not all(p.is_file() for p in paths):
            # one sentence, not a traceback: --help or a mistyped file name
            raise SystemExit("usage: 13_protocol.py table RESULTS.json [...]: the report records to tabulate, e.g. "
                             "walkthroughs/experiments/13_protocol_results.json")
        print(table(paths))
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("select", "report"))
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--shift", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    cli, rest = parser.parse_known_args()
    flags = [*rest, "--shift", str(cli.shift)] + (["--data-dir", cli.data_dir] if cli.data_dir else [])
    module = walkthrough()
    for seed in cli.seeds:
        if cli.mode == "select":
            select(module, seed, flags, cli.json)
        else:
            report(module, seed, flags, cli.json, cli.phases)
