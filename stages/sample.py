"""DVC stage `sample@<variant>-<seed>`: images from the EMA generator with a fixed seed, .npy and a grid."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--generator", type=Path, required=True, help="models/<variant>-<seed>/generator.pt")
    parser.add_argument("--out-npy", type=Path, required=True, help="samples/<variant>-<seed>.npy")
    parser.add_argument("--out-png", type=Path, required=True, help="samples/<variant>-<seed>.png")


def work(params, args):
    from rnngan.sampling import sample

    s = params.sample
    sample(args.generator, s.count, s.seed, s.grid, args.out_npy, args.out_png, params.train.device)


if __name__ == "__main__":
    sys.exit(run_stage("sample", build, work, numeric=True))
