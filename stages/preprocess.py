"""DVC stage `preprocess`: aligned uint8 arrays per split, index.csv and stats.json."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--raw", type=Path, required=True, help="data/raw/<dataset>")
    parser.add_argument("--out", type=Path, required=True, help="data/prepared/<dataset>")


def work(params, args):
    from rnngan.data.preprocess import preprocess_celeba_layout

    preprocess_celeba_layout(args.raw, args.out, params.data.image_size, params.data.workers)


if __name__ == "__main__":
    sys.exit(run_stage("preprocess", build, work))
