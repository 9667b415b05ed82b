"""Image grids as PNG files, in numpy and OpenCV only (no torch): the train and sample stages,
the report and `rnngan generate` on an exported ONNX file all draw them."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rnngan.io import atomic_path


def make_grid(images: np.ndarray, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """uint8 N x H x W x 3 -> one RGB image with the N images on a grid (white gutters)."""
    n, h, w, _ = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y:y + h, x:x + w] = img
    return grid


def save_grid(images: np.ndarray, path: str | Path, nrow: int | None = None, scale: int = 1) -> None:
    """A PNG grid of uint8 N x H x W x 3 images, pixels enlarged `scale` times (nearest
    neighbour: the pixels as generated); written atomically."""
    import cv2

    grid = make_grid(images, nrow)
    if scale > 1:
        grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    ok, data = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
