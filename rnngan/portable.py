"""`train.portable`: the CPU mode in which training computes the same bits on any x86 CPU.

The kernels that differ between an Intel and an AMD CPU are each pinned to one code path:
MKL's SGEMM (Linear layers, recurrent cells) by its conditional numerical reproducibility
branch, ATen's vectorised kernels (BatchNorm, activations, Adam, EMA) by the scalar `default`
capability, oneDNN's convolutions by the SSE4.1 ISA that every x86-64 CPU since 2008 has. All
three are read once, at process start, so a stage in this mode starts itself again with them
set; the thread count is fixed too (the reductions split by thread). Measured by
`benchmarks/portable_cpu.py`: identical weights across the emulated CPUs, about 3x the time.
"""
from __future__ import annotations

import os
import sys

from rnngan.config import Params, ParamsError
# (MKL_CBWR=COMPATIBLE is the only MKL branch its guide says matches Intel and AMD)
from rnngan.environment import PORTABLE_ENV


def portable_env(threads: int) -> dict[str, str]:
    """The environment variables of the portable mode at `threads` CPU threads."""
    return {**PORTABLE_ENV, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def check_portable(params: Params) -> None:
    """The mode needs one thread count wherever it runs, and a CPU: refuse before any work."""
    t = params.train
    if not t.portable:
        return
    if t.threads < 1:
        raise ParamsError("train.portable: true needs a fixed train.threads (>= 1), not 0 (one per core): "
                          "results depend on the thread count")
    if t.device == "cuda":
        raise ParamsError("train.portable: true is a CPU mode; set train.device to cpu (or auto on a CPU machine)")


def enter_portable(params: Params) -> None:
    """With train.portable, replace this process by itself with the mode's environment set
    (a no-op when it already is); without it, leave the process as it is."""
    check_portable(params)
    if not params.train.portable:
        return
    wanted = portable_env(params.train.threads)
    if all(os.environ.get(k) == v for k, v in wanted.items()):  # started again already
        return
    from rnngan.io import log

    log.info("train.portable: starting again with %s", " ".join(f"{k}={v}" for k, v in wanted.items()))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, **wanted})

