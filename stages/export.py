"""DVC stage `export`: the headline cell's EMA generator as a checked ONNX file, and its summary."""
import sys
from pathlib import Path

from rnngan.stage import run_stage


def build(parser):
    parser.add_argument("--generator", type=Path, required=True, help="models/<model.cell>/generator.pt")
    parser.add_argument("--out", type=Path, required=True, help="exports/generator.onnx")
    parser.add_argument("--summary", type=Path, required=True, help="exports/generator.json")


def work(params, args):
    from rnngan.export import export_onnx
    from rnngan.io import write_json

    summary = export_onnx(args.generator, args.out, expect_cell=params.model.cell)
    write_json(args.summary, summary)


if __name__ == "__main__":
    sys.exit(run_stage("export", build, work))
