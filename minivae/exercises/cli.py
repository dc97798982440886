r"""The command line: ``list``, ``start DIR`` and ``check FILE [NAME ...]``.

``check`` imports the learner's file as a fresh module and grades each exercise it defines (or the named
ones), one line each. It exits 0 only when every graded exercise passes; 1 when one fails or is still TODO;
2 when the file cannot be graded at all (missing, does not import, an unknown name), with one sentence.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import traceback
import uuid
from pathlib import Path
from types import ModuleType
from typing import Callable

from minivae.exercises.catalogue import BY_NAME, EXERCISES, Exercise
from minivae.exercises.grading import Fail, Todo
from minivae.exercises.template import FILE, start

COMMAND = "python -m minivae.exercises"


class CannotGrade(Exception):  # noqa: N818
    r"""The file cannot be graded: one sentence saying why."""


def load(path: str) -> ModuleType:
    r"""Import the learner's file as a fresh module; a failure becomes one :class:`CannotGrade` sentence."""
    file = Path(path)
    if not file.is_file():
        raise CannotGrade(f"there is no file {file}; write one with `{COMMAND} start DIR`.")
    spec = importlib.util.spec_from_file_location(f"_minivae_exercise_{uuid.uuid4().hex}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        text = (error.text or "").strip()
        raise CannotGrade(f"{file.name} does not import: {error.msg} at line {error.lineno}"
                          f"{': ' + text if text else ''}.") from None
    except BaseException as error:  # anything the learner's top level raises, even SystemExit
        lines = [f.lineno for f in traceback.extract_tb(error.__traceback__) if Path(f.filename) == file]
        where = f" at line {lines[-1]}" if lines else ""
        message = " ".join(str(error).split())[:200]
        raise CannotGrade(f"{file.name} does not import: {type(error).__name__}{where}"
                          f"{': ' + message if message else ''}.") from None
    return module


def grade(fn: Callable, exercise: Exercise) -> str:
    r"""One line: ``PASS name``, ``FAIL name: <sentence>`` or ``TODO name``."""
    try:
        exercise.grade(fn)
    except Todo:
        return f"TODO {exercise.name}"
    except Fail as failure:
        return f"FAIL {exercise.name}: " + " ".join(str(failure).split())
    except Exception as error:  # a learner's answer so odd that a grader tripped on it is still one FAIL line
        return f"FAIL {exercise.name}: grading it raised {type(error).__name__}: " + " ".join(str(error).split())[:200]
    return f"PASS {exercise.name}"


def check(path: str, names: list[str]) -> int:
    r"""Grade the file, print one line per exercise, return the exit status."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise CannotGrade(f"there is no exercise called {', '.join(map(repr, unknown))}; "
                          f"`{COMMAND} list` shows their names.")
    module = load(path)
    chosen = [BY_NAME[n] for n in names] if names else [e for e in EXERCISES if hasattr(module, e.name)]
    if not chosen:
        raise CannotGrade(f"{Path(path).name} defines none of the exercises; `{COMMAND} start DIR` writes a file "
                          "that does.")
    status = 0
    for exercise in chosen:
        fn = getattr(module, exercise.name, None)
        line = (grade(fn, exercise) if callable(fn)
                else f"FAIL {exercise.name}: {Path(path).name} defines no function {exercise.name}.")
        print(line, flush=True)
        status = status or int(not line.startswith("PASS"))
    return status


def show_list() -> int:
    width = max(len(e.name) for e in EXERCISES)
    for i, e in enumerate(EXERCISES, 1):
        print(f"{i:2d}. {e.name:<{width}}  walkthroughs/{e.walkthrough:<27}  {e.lecture}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=COMMAND, description="Write minivae's lesson functions yourself and grade "
                                "them with the properties that test minivae.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every exercise in course order, with its lecture and walkthrough")
    s = sub.add_parser("start", help=f"write DIR/{FILE}, one stub per exercise (never overwrites)")
    s.add_argument("dir", metavar="DIR")
    c = sub.add_parser("check", help="grade FILE: PASS, FAIL (with the first failing property) or TODO per exercise")
    c.add_argument("file", metavar="FILE")
    c.add_argument("names", metavar="NAME", nargs="*", help="grade only these exercises")
    return p


def main(argv: list[str] | None = None) -> int:
    r"""Run one command; return the exit status."""
    args = parser().parse_args(argv)
    try:
        if args.command == "list":
            return show_list()
        if args.command == "start":
            try:
                target = start(args.dir)
            except FileExistsError:
                print(f"{Path(args.dir) / FILE} already exists and was left as it is; grade it with "
                      f"`{COMMAND} check {Path(args.dir) / FILE}`, or move it away to start over.", file=sys.stderr)
                return 1
            print(f"wrote {target}: {len(EXERCISES)} exercises, each raising NotImplementedError until you "
                  f"write it.\nnext: {COMMAND} check {target}")
            return 0
        return check(args.file, args.names)
    except (CannotGrade, ValueError, OSError) as error:
        print(f"{COMMAND}: {error}", file=sys.stderr)
        return 2
