r"""Run a benchmark without ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` (import this before NumPy), and name the CPU.

OpenBLAS reads both variables once, when NumPy loads it. A machine that pins ``OPENBLAS_CORETYPE=Haswell``
makes OpenBLAS use its AVX2 kernels even on an AVX-512 CPU. :func:`unset_openblas_vars` re-executes the
running script with the two variables removed from its environment (only for that process and its children),
and returns what was removed so the benchmark can say so in its output.
"""

from __future__ import annotations

import os
import sys

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_FLAG = "MINIVAE_BENCH_UNSET_OPENBLAS"


def unset_openblas_vars() -> dict[str, str]:
    """Re-exec this script without the OpenBLAS variables (once); return ``{name: old value}`` of those removed."""
    if "numpy" in sys.modules and os.environ.get(_FLAG) is None and any(k in os.environ for k in OPENBLAS_VARS):
        raise RuntimeError("unset_openblas_vars() must run before NumPy is imported.")
    if os.environ.get(_FLAG) is None:
        found = {k: os.environ[k] for k in OPENBLAS_VARS if k in os.environ}
        if found:
            env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
            env[_FLAG] = ",".join(f"{k}={v}" for k, v in found.items())
            os.execve(sys.executable, [sys.executable, *sys.argv], env)
        os.environ[_FLAG] = ""
    return dict(item.split("=", 1) for item in os.environ[_FLAG].split(",") if item)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, with its family and model numbers (a Zen 4 EPYC and a Zen 5
    EPYC both call themselves "AMD EPYC" on some machines; family 25 is Zen 3/4, family 26 Zen 5)."""
    fields: dict = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
                if not line.strip():
                    break
    except OSError:
        pass
    import platform

    name = fields.get("model name") or platform.processor() or "unknown"
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return name
