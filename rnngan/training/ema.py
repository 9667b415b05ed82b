"""The EMA generator: weight averaging with a half-life in images and its ramp-up, and the
BatchNorm statistics it gets from its own weights."""
from __future__ import annotations

import torch

# The EMA generator's BatchNorm statistics: averaged over this many batches of this fixed noise,
# a function of its weights alone (the same for every run and seed).
BN_BATCHES = 16
# The progress grids every grid_every steps need only a picture: their statistics come from fewer
# batches (the statistics are reset at every recompute, so what sampling and export use is unchanged).
GRID_BN_BATCHES = 4
BN_NOISE_SEED = 20240601


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """Average the weights; the EMA generator's BatchNorm statistics are its own
    (recompute_batchnorm), never the raw generator's, which do not fit the averaged weights."""
    # note: one multi-tensor kernel, not one lerp per parameter: on a 2-core CPU the per-tensor
    # dispatch of EMA and a for-loop Adam cost a third of the step (benchmarks/train_throughput.py)
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)
    # note: spectral normalisation's power-iteration vectors (model.g_spectral) are not
    # averaged but taken from G, whose weights the averaged ones follow: the EMA generator never
    # runs a training forward that would update its own
    for (name, ours), theirs in zip(ema.named_buffers(), model.buffers()):
        if ".parametrizations." in f".{name}":
            ours.copy_(theirs)


def ema_half_life(step: int, batch_size: int, half_life: int, rampup: float | None) -> float:
    """The EMA's half-life in images after `step` steps: `train.ema_images`, capped during the
    ramp-up at `train.ema_rampup` times the images seen so far (StyleGAN2-ADA's ema_kimg and
    ema_rampup), so the random initialisation fades from the average at any run length."""
    return float(half_life if rampup is None else min(half_life, step * batch_size * rampup))


def ema_decay(step: int, batch_size: int, half_life: int, rampup: float | None) -> float:
    """The per-step decay whose weight halves every `ema_half_life` images: 0.5 ** (B / h)."""
    h = ema_half_life(step, batch_size, half_life, rampup)
    return 0.5 ** (batch_size / h) if h > 0 else 0.0


@torch.no_grad()
def recompute_batchnorm(G: torch.nn.Module, batch_size: int, device: torch.device, seed: int = BN_NOISE_SEED,
                        batches: int = BN_BATCHES) -> None:
    """Give G BatchNorm statistics of its own weights: the exact average of the batch statistics
    over `batches` batches of seeded noise (momentum None), then eval mode. Draws from its own
    generator, never torch's global one, so training's random stream (and exact resume) is untouched."""
    norms = [m for m in G.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    noise = torch.Generator().manual_seed(seed)
    G.train()
    for _ in range(batches):
        G(torch.randn(batch_size, G.cfg.z_dim, generator=noise).to(device))
    G.eval()
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
