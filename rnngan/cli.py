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
def generate(generator: Path = typer.Argument(..., help="a generator.pt written by the train stage"),
             out: Path = typer.Option(Path("grid.png"), help="a .png grid, or .npy for the raw uint8 array"),
             count: int = typer.Option(64, min=1, help="images to draw"),
             seed: int = typer.Option(0, help="noise seed"),
             device: str = typer.Option("auto", help="auto | cpu | cuda")) -> None:
    """Draw images from a trained generator into a PNG grid or a .npy array."""
    from rnngan.io import pick_device, save_npy
    from rnngan.sampling import GeneratorFileError, load_generator, sample_images, save_grid

    if out.suffix not in (".png", ".npy"):
        _fail(f"--out {out}: must end in .png or .npy")
    try:
        G = load_generator(generator, pick_device(device))
    except GeneratorFileError as exc:
        _fail(str(exc))
    images = sample_images(G, count, seed)
    if out.suffix == ".npy":
        save_npy(out, images)
    else:
        save_grid(images, out, scale=2)
    typer.echo(f"wrote {count} images to {out}")


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
