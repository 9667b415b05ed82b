"""DVC stage `compare`: every run's metrics across seeds, seed-level tests and tiers, the real row."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--models", type=Path, required=True, help="models/ (<variant>-<seed>/train.json)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics/ (<variant>-<seed>.json, real.json)")
    parser.add_argument("--out", type=Path, required=True, help="comparison/comparison.json")
    parser.add_argument("--medians", type=Path, required=True,
                        help="comparison/medians.json: each variant's median-FID run (what export reads)")


def work(params, args):
    from rnngan.comparison import compare_runs, medians
    from rnngan.io import write_json

    comparison = compare_runs(params, args.models, args.metrics)
    write_json(args.out, comparison)
    # note: a file of its own, so that new metrics rerun the export only when a median run changes
    write_json(args.medians, medians(comparison))


if __name__ == "__main__":
    sys.exit(run_stage("compare", build, work))
