"""DVC stage `download`: the dataset's files as the publisher ships them, in data/raw/<dataset>/."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--out", type=Path, required=True, help="data/raw/<dataset>")


def work(params, args):
    from rnngan.data.sources import download

    download(params.data, params.seed, args.out)


if __name__ == "__main__":
    sys.exit(run_stage("download", build, work))
