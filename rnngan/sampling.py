"""Drawing images from a trained generator, and image grids."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from rnngan.errors import UserError
from rnngan.grids import make_grid, save_grid  # noqa: F401 - re-exported for the stages
from rnngan.io import log, pick_device, progress, save_npy


class GeneratorFileError(UserError, ValueError):
    """A generator file that is missing or not one of ours."""


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float B x 3 x H x W in [-1, 1] -> uint8 B x H x W x 3."""
    x = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def load_generator(path: Path, device: torch.device):
    from rnngan.models.networks import NetConfig, build_generator

    if not Path(path).is_file():
        raise GeneratorFileError(f"{path}: no such generator file; run the train stage first")
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
        G = build_generator(NetConfig(**blob["config"]))   # a recurrent generator or DCGAN
        G.load_state_dict(blob["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise GeneratorFileError(f"{path}: not an rnngan generator file ({exc})") from exc
    return G.to(device).eval()


@torch.no_grad()
def sample_images(G, count: int, seed: int, batch_size: int = 500) -> np.ndarray:
    """`count` images from G with noise from a seeded CPU generator (the same on every device)."""
    device = next(G.parameters()).device
    noise = torch.Generator().manual_seed(seed)
    out = np.empty((count, G.cfg.image_size, G.cfg.image_size, 3), np.uint8)
    for start in progress(range(0, count, batch_size), desc="sample", unit="batch"):
        n = min(batch_size, count - start)
        z = torch.randn(n, G.cfg.z_dim, generator=noise).to(device)
        out[start:start + n] = to_uint8(G(z))
    return out


def sample(generator_path: Path, count: int, seed: int, grid: int, out_npy: Path, out_png: Path,
           device: str = "auto") -> dict:
    dev = pick_device(device)
    G = load_generator(generator_path, dev)
    images = sample_images(G, count, seed)
    save_npy(out_npy, images)
    save_grid(images[:grid], out_png, scale=2)
    log.info("sampled %d images from %s into %s", count, generator_path, out_npy)
    return {"count": count, "seed": seed}
