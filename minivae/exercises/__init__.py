r"""Exercises: write minivae's lesson functions yourself, graded by the properties that test minivae.

``python -m minivae.exercises list`` shows them in course order, ``start DIR`` writes ``DIR/my_vae.py`` with
one stub per exercise, and ``check FILE [NAME ...]`` grades it: ``PASS name``, ``FAIL name: <the first
property that fails>`` or ``TODO name``, one line each (see docs/exercises.md).
"""

from minivae.exercises.catalogue import BY_NAME, EXERCISES, Exercise
from minivae.exercises.cli import grade, main

__all__ = ["BY_NAME", "EXERCISES", "Exercise", "grade", "main"]
