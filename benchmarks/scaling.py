r"""The scaling table of ``benchmarks/README.md``: epoch_time.py over batch sizes and hidden widths.

For each batch size in ``--batch-sizes`` and each hidden width in ``--hiddens`` it runs the same interleaved
comparison as ``epoch_time.py`` (minivae, PyTorch, matmul floor; ``--rounds`` rounds after a warm-up) and
prints one Markdown row per configuration. Like ``epoch_time.py`` it unsets ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` for its own process and says so::

    python benchmarks/scaling.py --json scaling.json
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _openblas import unset_openblas_vars  # noqa: E402

UNSET = unset_openblas_vars()

import argparse  # noqa: E402
import json  # noqa: E402

import epoch_time  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description="epoch time over batch sizes and hidden widths")
    p.add_argument("--batch-sizes", type=str, default="32,100,500")
    p.add_argument("--hiddens", type=str, default="400,1000")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=str, default=None)
    p.add_argument("--from-json", type=str, default=None, help="print the table of a saved --json run and stop")
    args = p.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            print("\n".join([HEADER, RULE, *map(row, json.load(f))]))
        return
    print("OpenBLAS variables unset for this process:", UNSET or "none were set", flush=True)
    rows, results = [], []
    for hidden in args.hiddens.split(","):
        for batch in args.batch_sizes.split(","):
            run_args = epoch_time.parse_args(["--batch-size", batch, "--hidden", hidden, "--n", str(args.n),
                                              "--rounds", str(args.rounds), "--threads", str(args.threads)])
            with threadpool_limits(limits=args.threads, user_api="blas"):
                result = epoch_time.run(run_args)
            results.append(result)
            rows.append(row(result))
            print(rows[-1], flush=True)
    print("\n" + "\n".join([HEADER, RULE, *rows]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"wrote {args.json}")


HEADER = ("| hidden | batch | minivae s/epoch (wall, CPU) | PyTorch s/epoch (wall, CPU) | floor s/epoch (wall, CPU) "
          "| minivae ex/s (CPU) | minivae / PyTorch (wall, CPU) | minivae / floor (wall, CPU) |")
RULE = "|---:|---:|---:|---:|---:|---:|---:|---:|"


def row(result: dict) -> str:
    """One Markdown row: median epoch times and median paired ratios, each in wall-clock and in CPU time."""
    c, t, tc = result["config"], result["median_epoch_seconds"], result["median_cpu_epoch_seconds"]
    r, rc = result["median_paired_ratio"], result["median_paired_cpu_ratio"]
    times = " | ".join(f"{t[name]:.3f}, {tc[name]:.3f}" for name in ("minivae", "pytorch", "floor"))
    return (f"| {','.join(map(str, c['hidden']))} | {c['batch_size']} | {times} | {c['n'] / tc['minivae']:.0f} | "
            f"{r['minivae/pytorch']:.2f}, {rc['minivae/pytorch']:.2f} | "
            f"{r['minivae/floor']:.2f}, {rc['minivae/floor']:.2f} |")


if __name__ == "__main__":
    main()
