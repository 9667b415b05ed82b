"""How many directions a generator's samples span, against the data's (`rnngan probe`).

A generator that drops modes can still place every sample near some real image (fair precision
and coverage) while its samples lie close to one another (recall near zero). The effective rank
(Roy & Vetterli 2007: the exponential of the entropy of the normalised squared singular values
of the centred samples) says how many directions the variation spreads over: the real training
images of the default data have about 8 in pixels; a generator that collapses onto a few
prototypes has fewer. For a recurrent generator the same is measured on the cell's state after
each canvas step, with the share of its units beyond |h| = 0.9 (a saturated tanh).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SATURATED = 0.9


def effective_rank(x: torch.Tensor) -> float:
    """exp(entropy of p), p the squared singular values of the centred rows over their sum; 0 when
    every row is the same."""
    x = x.flatten(1).double()
    s = torch.linalg.svdvals(x - x.mean(0))
    total = (s ** 2).sum()
    if total <= 0:
        return 0.0
    p = s ** 2 / total
    return float(torch.exp(-(p * p.clamp_min(1e-300).log()).sum()))


@dataclass(frozen=True)
class Probe:
    count: int
    samples_rank: float                 # effective rank of the samples in pixels
    state_ranks: tuple[float, ...]      # a recurrent G's cell state after each step (empty for DCGAN)
    state_saturated: tuple[float, ...]  # the share of its units beyond |h| = SATURATED, per step


@torch.no_grad()
def probe_generator(G: torch.nn.Module, count: int = 2000, seed: int = 0) -> Probe:
    """The effective ranks of `count` samples of G (in eval mode, as sampled) and, for the
    recurrent generator, of its cell state step by step (the unfused step loop of its forward)."""
    noise = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device
    z = torch.randn(count, G.cfg.z_dim, generator=noise).to(device)
    images = G(z)
    ranks, saturated = [], []
    if hasattr(G, "cell"):
        state = G.cell.initial_state(torch.tanh(G.init_state(z)))
        canvas = z.new_zeros(count, 3, G.cfg.image_size, G.cfg.image_size)
        for t in range(G.cfg.timesteps):
            x = torch.cat([z, G.encoder(canvas)], dim=1) if G.encoder is not None else z
            state = G.cell(x, state)
            ranks.append(effective_rank(state[0]))
            saturated.append(float((state[0].abs() > SATURATED).float().mean()))
            canvas = canvas + G.decode(state[0], z, t)
    return Probe(count, effective_rank(images), tuple(ranks), tuple(saturated))


def images_rank(images: np.ndarray, count: int = 2000) -> float:
    """The effective rank of the first `count` uint8 images (N x H x W x 3), scaled to [-1, 1] as G's."""
    x = torch.from_numpy(np.array(images[:count])).float() / 127.5 - 1     # a copy: the array may be memory-mapped
    return effective_rank(x)
