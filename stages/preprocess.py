"""DVC stage `preprocess`: square uint8 arrays per split, index.csv and stats.json."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--raw", type=Path, required=True, help="data/raw/<dataset>")
    parser.add_argument("--out", type=Path, required=True, help="data/prepared/<dataset>")


def work(params, args):
    from rnngan.data.preprocess import preprocess

    data = params.data
    preprocess(data.dataset, args.raw, args.out, data.image_size, crop=data.crop, workers=data.workers,
               limit=data.limit)


if __name__ == "__main__":
    sys.exit(run_stage("preprocess", build, work))
