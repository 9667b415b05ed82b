"""DVC stage `train@<cell>`: one recurrent GAN variant; EMA generator, checkpoint, dvclive log."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--cell", required=True, help="one of model.variants")
    parser.add_argument("--data", type=Path, required=True, help="augmented train.npy")
    parser.add_argument("--out", type=Path, required=True, help="models/<cell>")


def work(params, args):
    from rnngan.config import ParamsError
    from rnngan.training import TrainConfig, train

    if args.cell not in params.model.variants:
        raise ParamsError(f"--cell {args.cell!r} is not in model.variants {params.model.variants}")
    train(TrainConfig.from_params(params, args.cell), args.data, args.out)


if __name__ == "__main__":
    sys.exit(run_stage("train", build, work))
