"""DVC stage `heldout`: real images outside the reference, scored exactly as a run's samples."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--prepared", type=Path, required=True, help="data/prepared/<dataset>")
    parser.add_argument("--reference", type=Path, required=True, help="reference .npz")
    parser.add_argument("--out-npy", type=Path, required=True, help="samples/real.npy")
    parser.add_argument("--out-png", type=Path, required=True, help="samples/real.png")
    parser.add_argument("--attributes", type=Path, help="data/attributes/<dataset> (mode coverage on attributes)")
    parser.add_argument("--out", type=Path, required=True, help="metrics/real.json")


def work(params, args):
    from rnngan.heldout import score_heldout

    score_heldout(args.prepared, args.reference, params.sample, params.metrics, params.train.device,
                  args.out_npy, args.out_png, args.out, attributes=args.attributes)


if __name__ == "__main__":
    sys.exit(run_stage("heldout", build, work, numeric=True))
