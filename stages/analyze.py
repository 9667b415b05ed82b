"""DVC stage `analyze@<variant>-<seed>`: FID, KID, precision/recall, histogram and spectral distances, attribute coverage of one run's samples."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--run", required=True, help="<variant>-<seed>")
    parser.add_argument("--samples", type=Path, required=True, help="samples/<variant>-<seed>.npy")
    parser.add_argument("--reference", type=Path, required=True, help="reference .npz")
    parser.add_argument("--attributes", type=Path, help="data/attributes/<dataset> (mode coverage on attributes)")
    parser.add_argument("--out", type=Path, required=True, help="metrics/<variant>-<seed>.json")


def work(params, args):
    from rnngan.evaluation import analyze

    analyze(args.run, args.samples, args.reference, params.metrics, params.train.device, args.out,
            attributes=args.attributes)


if __name__ == "__main__":
    sys.exit(run_stage("analyze", build, work, numeric=True))
