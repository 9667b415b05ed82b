"""DVC stage `download`: the dataset's files as the publisher ships them, in data/raw/<dataset>/."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--out", type=Path, required=True, help="data/raw/<dataset>")
    parser.add_argument("--cache", type=Path, required=True,
                        help="where downloads land (and resume) before they are verified and moved into --out")


def work(params, args):
    from rnngan.data.sources import download

    download(params.data, params.seed, args.out, args.cache)


if __name__ == "__main__":
    sys.exit(run_stage("download", build, work))
