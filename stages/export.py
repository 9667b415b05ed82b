"""DVC stage `export`: the headline variant's median-seed EMA generator as a checked ONNX file, and its summary."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--models", type=Path, required=True, help="models/ (<variant>-<seed>/generator.pt)")
    parser.add_argument("--medians", type=Path, required=True,
                        help="comparison/medians.json: names the headline variant's median-FID run")
    parser.add_argument("--out", type=Path, required=True, help="exports/generator.onnx")
    parser.add_argument("--summary", type=Path, required=True, help="exports/generator.json")


def work(params, args):
    from rnngan.comparison import median_run
    from rnngan.export import export_onnx
    from rnngan.io import read_json, write_json

    run = median_run(read_json(args.medians), params.model.cell)
    summary = export_onnx(args.models / run / "generator.pt", args.out, expect_cell=params.model.cell)
    write_json(args.summary, {**summary, "run": run})


if __name__ == "__main__":
    sys.exit(run_stage("export", build, work))
