"""DVC stage `analyze@<cell>`: FID, KID, histogram distances and colour moments of the samples."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--cell", required=True)
    parser.add_argument("--samples", type=Path, required=True, help="samples/<cell>.npy")
    parser.add_argument("--reference", type=Path, required=True, help="reference .npz")
    parser.add_argument("--out", type=Path, required=True, help="metrics/<cell>.json")


def work(params, args):
    from rnngan.evaluation import analyze

    analyze(args.cell, args.samples, args.reference, params.metrics, params.train.device, args.out)


if __name__ == "__main__":
    sys.exit(run_stage("analyze", build, work))
