r"""What every grader shares: calling a learner's function safely, reading its answer, and saying what is wrong.

A grader is a function ``grade(fn)`` that raises :class:`Fail` with one sentence (the first property that
fails, with the numbers) or returns when every property holds. A learner's mistake never escapes as a
traceback: :func:`call` turns an exception into a :class:`Fail` naming the learner's line, and a body that
still raises ``NotImplementedError`` into :class:`Todo`. Answers are compared in float64 with tolerances
far below any mistake worth naming (rtol 1e-7: float64 rounding of a correct formula written in another
order stays below 1e-12 relative; every catalogued mistake is off by more than 1e-3).
"""

from __future__ import annotations

import contextlib
import io
import traceback
import warnings
from typing import Any, Callable

import numpy

RTOL, ATOL = 1e-7, 1e-9


class Fail(Exception):  # noqa: N818 (the grader's verdict, read as a word)
    r"""The first property that failed, in one sentence."""


class Todo(Exception):  # noqa: N818
    r"""The learner's function still raises ``NotImplementedError``."""


def fmt(value: Any) -> str:
    r"""A number with 4 significant digits, or a short list of them."""
    a = numpy.asarray(value, dtype=numpy.float64)
    if a.ndim == 0:
        return f"{float(a):.4g}"
    return "[" + ", ".join(fmt(v) for v in a.ravel()[:6]) + (", ...]" if a.size > 6 else "]")


def _learner_line(error: BaseException, fn: Callable) -> str:
    # the last frame of the traceback that lies in the learner's own file
    source = getattr(getattr(fn, "__code__", None), "co_filename", None)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == source]
    return f" at line {frames[-1].lineno}" if frames else ""


def call(fn: Callable, *args: Any, when: str = "") -> Any:
    r"""``fn(*args)`` with the learner's prints and warnings silenced; an exception becomes one :class:`Fail`."""
    try:
        with numpy.errstate(all="ignore"), warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            return fn(*args)
    except NotImplementedError:
        raise Todo() from None
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # a learner's bug of any kind, sys.exit() too, is one FAIL line
        message = " ".join(str(error).split())[:200]
        raise Fail(f"{when and when + ', '}it raised {type(error).__name__}{_learner_line(error, fn)}"
                   f"{': ' + message if message else ''}") from None


def as_array(value: Any, shape: tuple[int, ...], what: str, why: str = "") -> numpy.ndarray:
    r"""The learner's answer as a float64 array of exactly ``shape``, finite; else one :class:`Fail`."""
    if value is None:
        raise Fail(f"{what} is None; return the array (a missing `return`?).")
    try:
        is_complex = numpy.iscomplexobj(value)
        a = numpy.array(value, dtype=numpy.complex128 if is_complex else numpy.float64)
    except (TypeError, ValueError):
        raise Fail(f"{what} is not an array of numbers (got {type(value).__name__}).") from None
    if is_complex:
        raise Fail(f"{what} holds complex numbers; return real ones.")
    if a.shape != tuple(shape):
        raise Fail(f"{what} has shape {a.shape}, expected {tuple(shape)}{why and ': ' + why}.")
    if not numpy.all(numpy.isfinite(a)):
        bad = numpy.unravel_index(int(numpy.argmin(numpy.isfinite(a))), a.shape) if a.ndim else ()
        raise Fail(f"{what} holds {fmt(a[bad])} at index {tuple(int(i) for i in bad)}, where the answer is "
                   "finite.")
    return a


def as_tuple(value: Any, n: int, names: str) -> tuple:
    r"""The learner's tuple of ``n`` answers (gradients, or Adam's three arrays); else one :class:`Fail`."""
    if not isinstance(value, (tuple, list)) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, (tuple, list)) else f"one {type(value).__name__}"
        raise Fail(f"it returned {got}; return a tuple of {n}: {names}.")
    return tuple(value)


def close(got: Any, want: Any, rtol: float = RTOL, atol: float = ATOL) -> bool:
    r"""Same shape and every entry within ``atol + rtol |want|``."""
    got, want = numpy.asarray(got, dtype=numpy.float64), numpy.asarray(want, dtype=numpy.float64)
    return got.shape == want.shape and bool(numpy.all(numpy.abs(got - want) <= atol + rtol * numpy.abs(want)))


def worst(got: numpy.ndarray, want: numpy.ndarray) -> tuple:
    r"""The index where ``got`` is farthest from ``want``, relative to the tolerance."""
    excess = numpy.abs(got - want) / (ATOL + RTOL * numpy.abs(want))
    return tuple(int(i) for i in numpy.unravel_index(int(numpy.argmax(excess)), excess.shape)) if got.ndim else ()


def diagnose(got: numpy.ndarray, mistakes: dict[str, Callable[[], Any]]) -> str:
    r"""The name of the first catalogued mistake that gives exactly ``got``, as ``": name"``; else ``""``."""
    with numpy.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, wrong in mistakes.items():
            try:
                if close(got, wrong(), rtol=1e-6, atol=1e-9):
                    return f": {name}"
            except (ValueError, TypeError, FloatingPointError):
                continue
    return ""


def expect(got: numpy.ndarray, want: Any, says: Callable[[tuple], str], mistakes: dict | None = None) -> None:
    r"""Raise :class:`Fail` unless ``got`` is ``want``: ``says(index)`` words the worst entry, then the mistake."""
    want = numpy.asarray(want, dtype=numpy.float64)
    if close(got, want):
        return
    i = worst(got, want)
    raise Fail(f"{says(i)}: you return {fmt(got[i])}, the answer is {fmt(want[i])}"
               f"{diagnose(got, mistakes or {})}.")


def ratio_word(got: numpy.ndarray, want: numpy.ndarray, rows: int = 0) -> str:
    r"""How ``got`` relates to ``want`` when it is a constant multiple of it: a sign, a factor 2, a mean, or ``""``."""
    big = numpy.abs(want) > 1e-6
    if not big.any():
        return ""
    r = got[big] / want[big]
    if numpy.ptp(r) > 1e-5 * max(1.0, abs(float(r.mean()))):
        return ""
    c = float(r.mean())
    words = {-1.0: "has the wrong sign", 2.0: "is off by a factor of 2 (twice too large)",
             0.5: "is off by a factor of 2 (half the answer)", 0.0: "is zero"}
    if rows > 1:
        words[1.0 / rows] = f"is 1/{rows} of the answer (a mean over the rows where a sum belongs)"
    for value, word in words.items():
        if abs(c - value) < 1e-5:
            return word
    return f"is {c:.4g} times the answer" if abs(c - 1.0) > 1e-5 else ""


def finite_difference_vjp(f: Callable, g: numpy.ndarray, args: tuple, h: float = 1e-6) -> list:
    r"""∂/∂args of Σ g ⊙ f(args) by central differences [F(a + h e_j) − F(a − h e_j)] / 2h in float64."""
    def total(values: tuple) -> float:
        return float(numpy.sum(g * numpy.asarray(f(*values))))

    grads = []
    for i, a in enumerate(args):
        d = numpy.zeros_like(a)
        for j in numpy.ndindex(*a.shape):
            plus, minus = a.copy(), a.copy()
            plus[j] += h
            minus[j] -= h
            d[j] = (total(args[:i] + (plus,) + args[i + 1:]) - total(args[:i] + (minus,) + args[i + 1:])) / (2 * h)
        grads.append(d)
    return grads
