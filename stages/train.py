"""DVC stage `train@<variant>-<seed>`: one run of one GAN variant; EMA generator, checkpoint, dvclive log.

With train.gpus > 1 the stage runs itself again under torchrun (one process per GPU, or per
CPU process on gloo when train.device is cpu). Started by torchrun directly (multi-node), it
trains in the process group torchrun set up.
"""
import os
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--cell", required=True, help="one of model.variants")
    parser.add_argument("--seed", type=int, required=True, help="one of train.seeds: the replicate")
    parser.add_argument("--data", type=Path, required=True, help="augmented train.npy")
    parser.add_argument("--out", type=Path, required=True,
                        help="models/<variant>-<seed>: published at the end, whole")
    parser.add_argument("--checkpoints", type=Path, required=True,
                        help="checkpoints/<variant>-<seed>: where a run keeps its resumable state until it finishes")


def work(params, args):
    from rnngan.config import ParamsError
    from rnngan.training import TrainConfig, train

    if args.cell not in params.model.variants:
        raise ParamsError(f"--cell {args.cell!r} is not in model.variants {params.model.variants}")
    if args.seed not in params.train.seeds:
        raise ParamsError(f"--seed {args.seed} is not in train.seeds {params.train.seeds}")
    if params.train.gpus > 1 and "WORLD_SIZE" not in os.environ:
        relaunch_under_torchrun(params.train.gpus)
    train(TrainConfig.from_params(params, args.cell, args.seed), args.data, args.out, args.checkpoints)


def relaunch_under_torchrun(processes: int):
    """Replace this process by torchrun running this same stage `processes` times."""
    from rnngan.io import log

    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={processes}", "-m", "stages.train", *sys.argv[1:]]
    log.info("train.gpus=%d: running under torchrun: %s", processes, " ".join(argv[1:]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


if __name__ == "__main__":
    sys.exit(run_stage("train", build, work, numeric=True))
