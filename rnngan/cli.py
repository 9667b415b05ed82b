"""The `rnngan` command: helpers around the DVC pipeline (the pipeline itself is `dvc repro`)."""
from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="rnngan: recurrent GANs (RNN, LSTM, GRU, SRU) as a DVC pipeline. "
                       "Run the study with `dvc repro`; these commands help around it.")


def _fail(message: str) -> None:
    typer.echo(f"rnngan: error: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def check(params: Path = typer.Option(Path("params.yaml"), help="params file to validate")) -> None:
    """Validate params.yaml and print the resolved values (what every stage checks first)."""
    import yaml

    from rnngan.config import ParamsError, load_params

    try:
        p = load_params(params)
    except ParamsError as exc:
        _fail(str(exc))
    typer.echo(yaml.safe_dump(p.to_dict(), sort_keys=False).rstrip())
    typer.echo(f"# {params}: valid; headline cell '{p.model.cell}' of {p.model.variants}")


@app.command()
def synthfaces(out: Path = typer.Argument(..., help="folder to write the CelebA-layout files into"),
               count: int = typer.Option(1000, min=1, help="number of faces"),
               seed: int = typer.Option(0, help="faces are deterministic by seed"),
               workers: int = typer.Option(0, min=0, help="processes; 0 = one per core")) -> None:
    """Draw procedural faces in CelebA's published aligned layout (zip + annotation files)."""
    from rnngan.data.synthfaces import write_synthfaces

    summary = write_synthfaces(out, count=count, seed=seed, workers=workers)
    typer.echo(f"wrote {count} faces to {out} ({summary.get('images_per_s', 0):.0f} images/s)")


@app.command()
def generate(generator: Path = typer.Argument(..., help="a generator.pt written by the train stage, or a "
                                                        ".onnx written by the export stage (needs only numpy "
                                                        "and onnxruntime, no torch)"),
             out: Path = typer.Option(Path("grid.png"), help="a .png grid, or .npy for the raw uint8 array"),
             count: int = typer.Option(64, min=1, help="images to draw"),
             seed: int = typer.Option(0, help="noise seed; a .onnx draws numpy's default_rng(seed) noise and a "
                                              ".pt torch's, so the two files of one generator draw other images"),
             device: str = typer.Option("auto", help="auto | cpu | cuda (.onnx: cuda needs onnxruntime-gpu)"),
             ) -> None:
    """Draw images from a trained generator into a PNG grid or a .npy array (uint8 N x H x W x 3)."""
    from rnngan.grids import save_grid
    from rnngan.io import save_npy

    if out.suffix not in (".png", ".npy"):
        _fail(f"--out {out}: must end in .png or .npy")
    if generator.suffix.lower() == ".onnx":
        images = _generate_onnx(generator, count, seed, device)
    else:
        images = _generate_torch(generator, count, seed, device)
    if out.suffix == ".npy":
        save_npy(out, images)
    else:
        save_grid(images, out, scale=2)
    typer.echo(f"wrote {count} images to {out}")


def _generate_onnx(path: Path, count: int, seed: int, device: str):
    """numpy + onnxruntime only: importing torch here would defeat the exported file."""
    from rnngan.export import OnnxGenerator, OnnxGeneratorError, sample_onnx

    try:
        G = OnnxGenerator.open(path, device)
    except OnnxGeneratorError as exc:
        _fail(str(exc))
    return sample_onnx(G, count, seed)


def _generate_torch(path: Path, count: int, seed: int, device: str):
    from rnngan.io import pick_device
    from rnngan.sampling import GeneratorFileError, load_generator, sample_images

    try:
        G = load_generator(path, pick_device(device))
    except GeneratorFileError as exc:
        _fail(str(exc))
    return sample_images(G, count, seed)


@app.command()
def compare(
    json_file: Path | None = typer.Option(None, "--json", help="a saved `dvc exp show --json` output "
                                          "('-' = stdin) instead of running it here"),
    all_commits: bool = typer.Option(False, "--all-commits", "-A", help="all experiments in the repository "
                                     "(dvc exp show -A; overrides --rev and -n)"),
    rev: list[str] | None = typer.Option(None, "--rev", help="experiments derived from this commit "
                                         "(HEAD by default); repeatable, as in dvc exp show"),
    num: int = typer.Option(1, "--num", "-n", help="experiments from the last N commits from --rev "
                            "(negative: all first-parent commits), as in dvc exp show"),
    variants: bool = typer.Option(False, "--variants", help="one row per variant (`cells.*`) of each "
                                  "experiment, not the headline (`model.cell`) only"),
    fmt: str = typer.Option("md", "--format", help="md (GitHub markdown) | html (a standalone page) | csv | json"),
    out: Path | None = typer.Option(None, "--out", help="write here (atomically) instead of to stdout"),
    metrics_file: str = typer.Option("reports/metrics.json", "--metrics-file",
                                     help="the metrics file to read, as dvc exp show names it"),
) -> None:
    """Compare DVC experiments and revisions (e.g. a queued sweep) in the report's table, sorted by FID."""
    import sys

    from rnngan import compare as cmp

    if fmt not in cmp.FORMATS:
        _fail(f"--format {fmt!r} must be one of: {', '.join(cmp.FORMATS)}")
    try:
        if json_file is not None:
            if all_commits or rev or num != 1:
                _fail("--all-commits/--rev/-n select what `dvc exp show` reads; with --json pass them "
                      "to the `dvc exp show --json` that wrote the file")
            if str(json_file) == "-":
                data = cmp.load_exp_show(sys.stdin.read(), "stdin")
            elif not json_file.is_file():
                _fail(f"--json {json_file}: no such file")
            else:
                data = cmp.load_exp_show(json_file.read_text(), str(json_file))
        else:
            data = cmp.exp_show(all_commits=all_commits, revs=rev, num=num)
        rows, notes = cmp.parse_exp_show(data, metrics_file, variants=variants)
        text = cmp.render(cmp.compare(rows, notes, metrics_file=metrics_file, variants=variants), fmt)
    except cmp.CompareError as exc:
        _fail(str(exc))
    if out is None:
        typer.echo(text, nl=False)
        return
    from rnngan.io import atomic_path

    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}", err=True)


@app.command()
def screen(plan: Path = typer.Argument(..., help="a plan file (YAML): named configurations with g, d, seeds, "
                                                 "steps and params overrides; see docs/recipe/plans/"),
           commit: str = typer.Option("HEAD", help="the commit every run of this call uses (its own git worktree "
                                                   "under .screen/)"),
           runs: Path = typer.Option(Path("docs/recipe/runs.csv"), help="the table a row is appended to the "
                                                                         "moment its run finishes"),
           recipe: Path = typer.Option(Path("docs/recipe.md"), help="the page whose run tables are re-rendered "
                                                                    "after every row"),
           only: list[str] = typer.Option([], help="run only these configurations (repeatable)"),
           dry_run: bool = typer.Option(False, "--dry-run", help="list the runs still to do and stop"),
           ) -> None:
    """Run a recipe screen: each configuration and seed of PLAN through `dvc repro` in a worktree at one
    commit, one row in runs.csv per finished run; rows already there are skipped."""
    from rnngan.screen import ScreenError, run_plan

    try:
        rows = run_plan(plan, Path.cwd(), runs, recipe, commit, only or None, dry_run)
    except ScreenError as exc:
        _fail(str(exc))
    typer.echo(f"{len(rows)} new rows in {runs}")


@app.command()
def info() -> None:
    """Print versions and the device training would use."""
    import platform

    import torch

    from rnngan.io import pick_device

    typer.echo(f"python {platform.python_version()}, torch {torch.__version__}, "
               f"device (train.device=auto): {pick_device('auto')}, CPU threads {torch.get_num_threads()}")


if __name__ == "__main__":  # pragma: no cover
    app()
