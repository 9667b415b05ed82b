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
def info() -> None:
    """Print versions and the device training would use."""
    import platform

    import torch

    from rnngan.io import pick_device

    typer.echo(f"python {platform.python_version()}, torch {torch.__version__}, "
               f"device (train.device=auto): {pick_device('auto')}, CPU threads {torch.get_num_threads()}")


if __name__ == "__main__":  # pragma: no cover
    app()
