"""Walkthrough 13 under the selection protocol: the runs behind docs/semi_supervised.md's tables.

    python walkthroughs/experiments/13_protocol.py select --seeds 1000 1001 --json /tmp/select.json --data-dir DIR
    python walkthroughs/experiments/13_protocol.py select2 --stage m1 --seeds 1000 --json /tmp/m1.json --data-dir DIR
    ... select2 --stage stack --m1-epochs 120 --batch-size 50 ...   (then pixels --batch-size 50, and classifiers
    with the stack's flags), each for seeds 1000-1003; then: choose RESULTS.json
    python walkthroughs/experiments/13_protocol.py report --seeds 2000 ... --shift 1 --json /tmp/report.json ...

``table`` prints the docs' table from report records, e.g. from 13_protocol_results.json (the runs behind the
docs). ``select`` (round 1) and ``select2`` (round 2, stage by stage, starting from round 1's settings) train on
selection seeds (minivae.protocol.seeds("selection", n)) and record only errors on the validation digits; they
never score the test digits. ``choose`` prints round 2's choices from its records by the rule fixed beforehand.
``report`` trains, with the frozen full settings of the walkthrough's VALUES, on report seeds, each a new label
draw and random start,
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
    """Validation errors only (the first selection round, kept as history): M1+M2's alpha, equal means."""
    args, data, split, rng = setup(w, seed, [*ROUND_1, *flags])
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


# The second round: every setting of the table, one at a time around the earlier values, the others held.
# (setting, values, flags or module constants for each value); the first value of each is the earlier choice. A
# winner at the edge of its grid got the next value (M1's 120 epochs, after 80 won), where the run's time allowed.
M1_GRID = (("z1", (16, 8, 32), "Z1_DIM"), ("m1_epochs", (50, 30, 80, 120), "--m1-epochs"),
           ("hidden", (500, 250), "--hidden"), ("lr", (1e-3, 3e-4), "--lr"), ("batch_size", (100, 50), "--batch-size"))
STACK_GRID = (("z2", (10, 4, 20), "Z2_DIM"), ("stack_alpha", (1.0, 3.0, 10.0), "--stack-alpha"),
              ("stack_average", (0.9, 0.99), "--stack-average"), ("code_shift", (0, 1), "CODE_SHIFT"),
              ("weighting", ("equal_means", "paper"), "--weighting"))
PIXEL_GRID = (("m2_alpha", (50.0, 10.0, 200.0), "alpha"), ("m2_z", (4, 10), "z"), ("m2_hidden", (250, 500), "hidden"),
              ("m2_weighting", ("equal_means", "paper"), "weighting"))
CLASSIFIER_STEPS = (300, 1000, 3000, 10000)  # 10000 added after 3000 won at the edge for the labels alone
# round 1's settings, where round 2 started: the flags of a stage's command line (and its varied value) come after
ROUND_1 = ["--m1-epochs", "50", "--batch-size", "100", "--stack-epochs", "60", "--weighting", "equal_means",
           "--classifier-steps", "1000", "--m1-classifier-steps", "1000", "--epochs", "15", "--m2-hidden", "250"]


def _variant(w, setting: tuple, value, flags: list[str]) -> list[str]:
    # the flags of one value of one setting; a module constant of the walkthrough is set in place
    name, _, where = setting
    if where.startswith("--"):
        return [*flags, where, str(value)]
    setattr(w, where, value)
    return flags


def select_round2(w, seed: int, stage: str, flags: list[str], out: Path) -> None:
    """One stage of the second selection round: validation error of each value of each setting, others held.

    ``m1``: M1's settings, judged by the M1+M2 stack trained on it (and M1 + MLP's own error); ``stack``: the
    stack's settings on the M1 of ``flags``, each a 90-epoch run whose validation curve also gives the epochs and
    the average's use (0 = the last epoch's params); ``pixels``: M2 on pixels, a 30-epoch curve each; and
    ``classifiers``: the full-batch steps of the two classifiers. Every run starts from the same generator.
    """
    defaults, flags = {"Z1_DIM": w.Z1_DIM, "Z2_DIM": w.Z2_DIM, "CODE_SHIFT": w.CODE_SHIFT}, [*ROUND_1, *flags]
    args, data, split, _ = setup(w, seed, flags)
    lab, unl, y_l = split.labelled, split.unlabelled, data.y_train[split.labelled]
    err = lambda model, p, x: w.error_rate(model.predict(p, x), data.y_val)  # noqa: E731
    base = {"round": 2, "stage": stage, "seed": seed, "shift": args.shift}
    grids = {"m1": M1_GRID, "stack": STACK_GRID, "pixels": PIXEL_GRID, "classifiers": ()}
    done = {(r.get("stage"), r["seed"], r.get("setting"), r.get("value")) for r in _records(out)}
    for setting in grids[stage]:
        for value in setting[1]:
            if value == setting[1][0] and setting is not grids[stage][0]:
                continue  # every earlier value at once is one run: the first value of the first setting
            if (stage, seed, setting[0], value) in done:
                continue  # a run cut short keeps what finished
            for name, constant in defaults.items():
                setattr(w, name, constant)
            tick, record = time.perf_counter(), {**base, "setting": setting[0], "value": value}
            if stage == "pixels":
                record.update(_pixels(w, setting, value, args, data, split, numpy.random.default_rng([seed, 100])))
            else:
                extra = ["--stack-epochs", "90"] if stage == "stack" else []
                vargs = setup(w, seed, _variant(w, setting, value, [*flags, *extra]))[0]
                m1, m1p, pool = _m1(w, seed, vargs, data, split, numpy.random.default_rng([seed, 100]),
                                    cache=stage == "stack" and out.parent)
                val_codes = numpy.asarray(m1.features(m1p, data.x_val)[0])
                alpha = w.alpha_for(vargs.weighting, vargs.stack_alpha)
                _, _, history = w.train_stack(m1, pool, lab, unl, y_l, val_codes, data.y_val, vargs,
                                              numpy.random.default_rng([seed, 101]), vargs.weighting, alpha)
                record.update({"m1_validation": err(m1, m1p, data.x_val), "validation": history[-1]["validation_error"],
                               "history": [h["validation_error"] for h in history],
                               "history_last_params": [h.get("validation_error_last_params") for h in history]})
            append(out, {**record, "seconds": time.perf_counter() - tick})
    if stage == "classifiers":
        for steps in CLASSIFIER_STEPS:
            if (stage, seed, "classifier_steps", steps) in done:
                continue
            vargs = setup(w, seed, [*flags, "--classifier-steps", str(steps), "--m1-classifier-steps", str(steps)])[0]
            baseline, bp = w.train_baseline(data.x_train[lab], y_l, vargs, numpy.random.default_rng([seed, 102]))
            m1, m1p, pool = _m1(w, seed, args, data, split, numpy.random.default_rng([seed, 100]), cache=out.parent)
            m1p["classifier"] = w.m1_classifier(m1, m1p, pool, lab, y_l, vargs, numpy.random.default_rng([seed, 103]))
            append(out, {**base, "setting": "classifier_steps", "value": steps,
                         "labels_only_validation": err(baseline, bp, data.x_val),
                         "m1_validation": err(m1, m1p, data.x_val)})


def _records(path: Path) -> list:
    # the records of a run's JSON list, or of a results file {"about", "selection", "report"}
    loaded = json.loads(path.read_text()) if path.exists() else []
    return loaded["selection"] + loaded["report"] if isinstance(loaded, dict) else loaded


def _m1(w, seed: int, args, data, split, rng, cache):
    # M1 for these settings; with ``cache`` (a folder), trained once per seed and kept for the later stages
    path = cache and Path(cache) / f"select_m1_{seed}_shift{args.shift}.pickle"
    if path and path.exists():
        return pickle.loads(path.read_bytes())
    lab, unl = split.labelled, split.unlabelled
    trained = w.train_m1(data.x_train, lab, unl, data.y_train[lab], args, rng, data.fit_binarize)
    if path:
        path.write_bytes(pickle.dumps(trained))
    return trained


def _pixels(w, setting: tuple, value, args, data, split, rng) -> dict:
    # M2 on pixels for 30 epochs, one setting changed from the earlier ones (each the first of its grid); its
    # validation curve
    chosen = {where: values[0] for _, values, where in PIXEL_GRID} | {setting[2]: value}
    chosen["alpha"] = w.alpha_for(chosen["weighting"], chosen["alpha"])
    lab, unl, y_l = split.labelled, split.unlabelled, data.y_train[split.labelled]
    m2 = M2(784, [chosen["hidden"]], chosen["z"])
    _, history = w.train_m2(m2, m2.init(rng), lambda i: w.shifted(data.x_train[i], args.shift, rng), lab, unl, y_l,
                            data.x_val, data.y_val, 30, chosen["alpha"], args, data.fit_binarize,
                            weighting=chosen["weighting"])
    return {"validation": history[-1]["validation_error"], "history": [h["validation_error"] for h in history]}


EPOCHS = {"stack": (30, 45, 60, 75, 90), "pixels": (10, 15, 20, 30)}
CURVES = {"history": "average 0.9", "history_last_params": "last epoch's params", "history@0.99": "average 0.99"}
NAMES = {"z1": "z₁", "m1_epochs": "epochs", "hidden": "hidden units", "lr": "learning rate", "batch_size": "batch",
         "z2": "z₂", "stack_alpha": "α", "code_shift": "codes moved by", "m2_alpha": "α", "m2_z": "z",
         "m2_hidden": "hidden units", "weighting": "weighting of J^α", "m2_weighting": "weighting of J^α"}
STAGES = {"m1": "M1 (judged by M1+M2)", "stack": "M1+M2", "pixels": "M2 on pixels"}


def choose(paths: list[Path]) -> str:
    """The second round's choices from its records, as markdown tables, the way the docs print them.

    The rule, fixed before the runs: for each setting, the value with the lowest validation error, mean over the
    selection seeds, wins (a tie keeps the earlier value). M1's settings are judged by the stack trained on each
    M1 (after 60 epochs, averaged at 0.9, the earlier stack settings); the stack's epochs and its average by the
    validation curves of the run with every earlier stack setting (and of the run with the average at 0.99),
    then its other settings at the chosen epochs; M2 on pixels likewise, its epochs on the earlier settings' curve.
    """
    records = [r for path in paths for r in _records(path) if r.get("round") == 2]
    seeds = sorted({r["seed"] for r in records})
    span = f"{seeds[0]}–{seeds[-1]}"
    table = [f"| model | setting | validation error by value (mean of seeds {span}) | chosen |", "|---|---|---|---|"]
    curves = [f"| validation curve (mean of seeds {span}) | error after so many epochs | chosen |", "|---|---|---|"]
    for stage in ("m1", "stack", "pixels"):
        runs = [r for r in records if r["stage"] == stage]
        first = runs[0]["setting"]
        base = [r for r in runs if r["setting"] == first and r["value"] == _earlier(first)]
        at = None
        if stage != "m1":
            at, rows = _choose_epochs(stage, base, [r for r in runs if r["setting"] == "stack_average"])
            curves += rows
        for name in dict.fromkeys(r["setting"] for r in runs):
            if name == "stack_average":
                continue  # chosen with the epochs, from the curves
            values = {_earlier(name): base}
            for r in runs:
                if r["setting"] == name and r["value"] != _earlier(name):
                    values.setdefault(r["value"], []).append(r)
            means = {v: _mean_error(rs, at) for v, rs in values.items()}
            table.append(_row(STAGES[stage], NAMES[name], means))
    for key, name in (("labels_only_validation", "steps"), ("m1_validation", "steps")):
        means: dict = {}
        for r in records:
            if r["stage"] == "classifiers":
                means.setdefault(r["value"], []).append(r[key])
        model = "classifier on the labels alone" if key.startswith("labels") else "M1's classifier (M1 + MLP)"
        table.append(_row(model, name, {v: sum(e) / len(e) for v, e in means.items()}))
    return "\n".join(table) + "\n\n" + "\n".join(curves)


def _row(model: str, setting: str, means: dict) -> str:
    # the first value is the earlier one, which a tie keeps
    best = min(means, key=lambda v: (means[v], v != next(iter(means))))
    shown = {v: v.replace("_", " ") if isinstance(v, str) else f"{v:g}" for v in means}
    cells = ", ".join(f"**{shown[v]}: {100 * e:.2f} %**" if v == best else f"{shown[v]}: {100 * e:.2f} %"
                      for v, e in means.items())
    return f"| {model} | {setting} | {cells} | {shown[best]} |"


def _earlier(name: str):
    # the value each setting had before the second round: the first of its grid
    grid = {setting[0]: setting[1] for setting in (*M1_GRID, *STACK_GRID, *PIXEL_GRID)}
    return grid[name][0]


def _mean_error(runs: list, at) -> float:
    # mean validation error over the runs: at the end (M1's stage), or at the chosen epoch and curve
    if at is None:
        return sum(r["validation"] for r in runs) / len(runs)
    epoch, curve = at
    return sum(r[curve][epoch - 1] for r in runs) / len(runs)


def _choose_epochs(stage: str, base: list, averaged: list) -> tuple:
    # ((epoch, curve key), table rows): the lowest mean validation error over the earlier settings' runs, among
    # the stack's curves averaged at 0.9 ("history"), not averaged ("history_last_params") and the
    # average-at-0.99 runs' curves; M2 on pixels has one curve
    curves = {"history": base} if stage == "pixels" else {"history": base, "history_last_params": base,
                                                          "history@0.99": averaged}
    scores = {(epoch, key): sum(r[key.split("@")[0]][epoch - 1] for r in runs) / len(runs)
              for key, runs in curves.items() for epoch in EPOCHS[stage]}
    best = min(scores, key=scores.get)
    rows = []
    for key in curves:
        name = "M2 on pixels" if stage == "pixels" else f"M1+M2, {CURVES[key]}"
        cells = ", ".join(f"**{e}: {100 * scores[(e, key)]:.2f} %**" if (e, key) == best else
                          f"{e}: {100 * scores[(e, key)]:.2f} %" for e in EPOCHS[stage])
        rows.append(f"| {name} | {cells} | {'**' + str(best[0]) + ' epochs**' if best[1] == key else ''} |")
    return (best[0], best[1].split("@")[0]), rows


PHASES = ("baseline", "m1", "stack_equal_means", "stack_paper", "m2_equal_means", "m2_paper")


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
        if phase == "baseline":
            baseline, bp = w.train_baseline(data.x_train[lab], y_l, args, rng)
            scored("labels only", baseline, bp, data.x_val, data.x_test)
        elif phase == "m1":
            cache.write_bytes(b"")  # claimed: no other process starts this M1
            m1, m1p, pool = w.train_m1(data.x_train, lab, unl, y_l, args, rng, data.fit_binarize)
            scored("M1", m1, m1p, data.x_val, data.x_test)
            cache.with_suffix(".part").write_bytes(pickle.dumps((m1, m1p, pool)))
            cache.with_suffix(".part").replace(cache)
        elif phase.startswith("stack"):
            while not cache.exists() or cache.stat().st_size == 0:
                time.sleep(20)  # M1 is still being trained by another process
            m1, m1p, pool = pickle.loads(cache.read_bytes())
            weighting = phase[len("stack_"):]
            alpha = w.alpha_for(weighting, args.stack_alpha)
            val_codes, test_codes = (numpy.asarray(m1.features(m1p, x)[0]) for x in (data.x_val, data.x_test))
            stack, sp, _ = w.train_stack(m1, pool, lab, unl, y_l, val_codes, data.y_val, args, rng, weighting,
                                         alpha)
            scored("M1+M2", stack, sp, val_codes, test_codes, weighting=weighting)
        else:
            weighting = phase[len("m2_"):]
            alpha = w.alpha_for(weighting, args.alpha)
            m2 = w.pixel_m2(args)
            m2p, _ = w.train_m2(m2, m2.init(rng), lambda i, rng=rng: w.shifted(data.x_train[i], args.shift, rng),
                                lab, unl, y_l, data.x_val, data.y_val, args.epochs, alpha, args, data.fit_binarize,
                                weighting=weighting)
            scored("M2", m2, m2p, data.x_val, data.x_test, weighting=weighting)


ROWS = (("labels only", None, "classifier on the 100 labels alone"), ("M1", None, "M1 + MLP"),
        ("M2", "equal_means", "M2 on pixels, equal means (alpha 50)"),
        ("M2", "paper", "M2 on pixels, paper (alpha 0.1)"),
        ("M1+M2", "equal_means", "M1+M2, equal means (alpha 1)"),
        ("M1+M2", "paper", "**M1+M2, paper (alpha 0.1): the walkthrough's default**"))


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
    if sys.argv[1:2] == ["choose"]:
        print(choose([Path(p) for p in sys.argv[2:]]))
        raise SystemExit(0)
    if sys.argv[1:2] == ["table"]:
        paths = [Path(p) for p in sys.argv[2:]]
        if not paths or not all(p.is_file() for p in paths):
            # one sentence, not a traceback: --help or a mistyped file name
            raise SystemExit("usage: 13_protocol.py table RESULTS.json [...]: the report records to tabulate, e.g. "
                             "walkthroughs/experiments/13_protocol_results.json")
        print(table(paths))
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("select", "select2", "report"))
    parser.add_argument("--stage", choices=("m1", "stack", "pixels", "classifiers"), default="m1",
                        help="select2's stage (see select_round2)")
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
        elif cli.mode == "select2":
            select_round2(module, seed, cli.stage, flags, cli.json)
        else:
            report(module, seed, flags, cli.json, cli.phases)
