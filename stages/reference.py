"""DVC stage `reference`: real-image features, statistics and histograms, computed once."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--images", type=Path, required=True, help="prepared train.npy")
    parser.add_argument("--out", type=Path, required=True, help="reference .npz")


def work(params, args):
    from rnngan.evaluation import compute_reference

    compute_reference(args.images, params.metrics, params.seed, params.train.device, args.out)


if __name__ == "__main__":
    sys.exit(run_stage("reference", build, work, numeric=True))
