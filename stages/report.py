"""DVC stage `report`: reports/report.md and report.html, figures, plot data and metrics.json for the PR."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--raw", type=Path, required=True, help="data/raw/<dataset> (source files)")
    parser.add_argument("--prepared", type=Path, required=True, help="data/prepared/<dataset>")
    parser.add_argument("--reference", type=Path, required=True, help="reference .npz")
    parser.add_argument("--comparison", type=Path, required=True, help="comparison/comparison.json")
    parser.add_argument("--models", type=Path, required=True, help="models/ (one folder per run)")
    parser.add_argument("--samples", type=Path, required=True, help="samples/")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics/ (one json per run, real.json)")
    parser.add_argument("--attributes", type=Path, required=True, help="data/attributes/<dataset>")
    parser.add_argument("--out", type=Path, required=True, help="reports/")


def work(params, args):
    from rnngan.report.stage import Inputs, write_report

    write_report(params, Inputs(args.raw, args.prepared, args.reference, args.comparison, args.models,
                                args.samples, args.metrics, args.attributes), args.out)


if __name__ == "__main__":
    sys.exit(run_stage("report", build, work))
