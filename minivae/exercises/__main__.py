r"""``python -m minivae.exercises list | start DIR | check FILE [NAME ...]``."""

from minivae.exercises.cli import main

raise SystemExit(main())
