"""Data sources for the download stage, keyed by the value of `data.dataset`."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from rnngan.config import DataParams


def synthfaces(data: DataParams, seed: int, out_dir: Path) -> dict:
    """Draw faces procedurally into CelebA's published aligned layout (offline default)."""
    from rnngan.data.synthfaces import write_synthfaces

    return write_synthfaces(out_dir, count=data.count, seed=seed, workers=data.workers)


SOURCES: dict[str, Callable[[DataParams, int, Path], dict]] = {"synthfaces": synthfaces}


def download(data: DataParams, seed: int, out_dir: Path) -> dict:
    if data.dataset not in SOURCES:
        raise ValueError(f"data.dataset={data.dataset!r} has no source; allowed: {', '.join(SOURCES)}")
    return SOURCES[data.dataset](data, seed, out_dir)
