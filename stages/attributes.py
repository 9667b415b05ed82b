"""DVC stage `attributes`: the attribute classifier behind mode coverage, with its held-out accuracy."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--raw", type=Path, required=True, help="data/raw/<dataset> (list_attr_celeba.txt)")
    parser.add_argument("--prepared", type=Path, required=True, help="data/prepared/<dataset>")
    parser.add_argument("--out", type=Path, required=True, help="data/attributes/<dataset>")


def work(params, args):
    from rnngan.attributes import build_attributes

    build_attributes(params.data.dataset, args.raw, args.prepared, params.metrics.real_count,
                     params.attributes, params.seed,
                     params.train.device, args.out)


if __name__ == "__main__":
    sys.exit(run_stage("attributes", build, work, numeric=True))
