"""GAN training: non-saturating loss, Adam, an EMA generator, dvclive logs, fixed-noise grids.

`train(cfg, data_path, out_dir)` does the whole job for one cell; stages/train.py calls it.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnngan.io import atomic_path, load_images, log, pick_device, progress, set_threads, write_json
from rnngan.models.networks import Discriminator, Generator, NetConfig, count_parameters
from rnngan.sampling import save_grid, to_uint8

GRID_COUNT = 64  # fixed-noise grid: 8 x 8


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, unusable data)."""


@dataclass(frozen=True)
class TrainConfig:
    net: NetConfig
    seed: int
    steps: int
    batch_size: int
    lr: float
    beta1: float
    beta2: float
    ema: float
    real_label: float
    log_every: int
    grid_every: int
    device: str = "auto"
    threads: int = 0

    @classmethod
    def from_params(cls, params, cell: str) -> "TrainConfig":
        t = params.train
        return cls(net=NetConfig.from_params(params.model, params.data.image_size, cell),
                   seed=params.seed, steps=t.steps, batch_size=t.batch_size, lr=t.lr,
                   beta1=t.beta1, beta2=t.beta2, ema=t.ema, real_label=t.real_label,
                   log_every=t.log_every,
                   grid_every=t.grid_every, device=t.device, threads=t.threads)


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """Cross-entropy of D on real (target `real_label`) and fake (target 0) images.

    With real_label 1 this is -log D(x) - log(1 - D(G(z))). A real_label below 1 is one-sided
    label smoothing (Salimans et al. 2016): D is never rewarded for certainty on real images.
    note: at 0.9 it rescued an LSTM run whose D won outright within 100 steps in calibration.
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_label))
    return real + F.softplus(fake_logits).mean()


def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(z)) (Goodfellow et al. 2014)."""
    return F.softplus(-fake_logits).mean()


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1.0 - decay)
    for be, b in zip(ema.buffers(), model.buffers()):   # BatchNorm statistics: copied, not averaged
        be.copy_(b)


def ema_decay(step: int, decay: float) -> float:
    """Ramp the decay up over the first steps (as TF's ExponentialMovingAverage with num_updates),
    so a short run's EMA is not dominated by the random initialisation."""
    return min(decay, (1.0 + step) / (10.0 + step))


class BatchSampler:
    """Random batches without replacement, epoch by epoch, from a seeded generator."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < batch_size:
            raise TrainingError(f"the training set has {n} images, fewer than one batch ({batch_size})")
        self.n, self.batch_size = n, batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(n)
        self.pos = 0

    def next(self) -> np.ndarray:
        if self.pos + self.batch_size > self.n:
            self.order, self.pos = self.rng.permutation(self.n), 0
        idx = self.order[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return np.sort(idx)  # sorted reads are kinder to a memory map


def to_tensor(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 B x H x W x 3 -> float B x 3 x H x W in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def _checkpoint(cfg, step, G, D, G_ema, opt_g, opt_d) -> dict:
    # Plain data only, so it loads with weights_only=True.
    return {
        "config": dataclasses.asdict(cfg), "step": step,
        "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
        "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }


def save_generator(path: Path, cfg: NetConfig, G_ema: torch.nn.Module) -> None:
    with atomic_path(path) as tmp:
        torch.save({"config": dataclasses.asdict(cfg), "state_dict": G_ema.state_dict()}, tmp)


def train(cfg: TrainConfig, data_path: Path, out_dir: Path) -> dict:
    """Train one variant on the images in `data_path`; write everything under `out_dir`:
    generator.pt (EMA generator), checkpoint.pt, train.json, live/ (dvclive), grids/."""
    from dvclive import Live

    threads = set_threads(cfg.threads)
    device = pick_device(cfg.device)
    images = load_images(data_path)
    size = cfg.net.image_size
    if images.shape[1:3] != (size, size):
        raise TrainingError(f"{data_path}: images are {images.shape[1]}x{images.shape[2]}, "
                            f"the model is built for {size}x{size} (data.image_size)")
    torch.manual_seed(cfg.seed)
    G, D = Generator(cfg.net).to(device), Discriminator(cfg.net).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), cfg.lr, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), cfg.lr, betas=(cfg.beta1, cfg.beta2))
    sampler = BatchSampler(len(images), cfg.batch_size, cfg.seed)
    noise = torch.Generator().manual_seed(cfg.seed)
    fixed_z = torch.randn(GRID_COUNT, cfg.net.z_dim, generator=noise).to(device)
    n_g, n_d = count_parameters(G), count_parameters(D)
    log.info("train %s on %s: %d images %dx%d, G %d params, D %d params, device %s, %d threads",
             cfg.net.cell, data_path, len(images), size, size, n_g, n_d, device, threads)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "grids").mkdir(exist_ok=True)
    live = Live(str(out_dir / "live"), report=None, save_dvc_exp=False, dvcyaml=None)
    live.log_params({"cell": cfg.net.cell, "params_g": n_g, "params_d": n_d})
    sums = {"loss_d": 0.0, "loss_g": 0.0, "d_real": 0.0, "d_fake": 0.0}
    start = window_start = time.perf_counter()
    last_logged = 0
    bar = progress(range(1, cfg.steps + 1), desc=f"train {cfg.net.cell}", unit="step")
    for step in bar:
        real = to_tensor(images[sampler.next()], device)
        z = torch.randn(cfg.batch_size, cfg.net.z_dim, device=device)

        # (1) Update D: maximize log D(x) + log(1 - D(G(z)))
        fake = G(z)
        real_logits, fake_logits = D(real), D(fake.detach())
        loss_d = d_loss(real_logits, fake_logits, cfg.real_label)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        # (2) Update G: maximize log D(G(z))
        loss_g = g_loss(D(fake))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        update_ema(G_ema, G, ema_decay(step, cfg.ema))

        values = {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
                  "d_real": torch.sigmoid(real_logits).mean().item(),
                  "d_fake": torch.sigmoid(fake_logits).mean().item()}
        if not all(np.isfinite(v) for v in values.values()):
            raise TrainingError(f"non-finite loss at step {step}: {values}")
        for k, v in values.items():
            sums[k] += v
        if step % cfg.log_every == 0 or step == cfg.steps:
            now = time.perf_counter()
            rows = step - last_logged
            live.step = step
            for k in sums:
                live.log_metric(f"train/{k}", sums[k] / rows)
            live.log_metric("train/images_per_s", rows * cfg.batch_size / (now - window_start))
            bar.set_postfix(loss_d=f"{sums['loss_d'] / rows:.3f}", loss_g=f"{sums['loss_g'] / rows:.3f}")
            sums = dict.fromkeys(sums, 0.0)
            window_start, last_logged = now, step
        if step % cfg.grid_every == 0 or step == cfg.steps:
            with torch.no_grad():
                grid = to_uint8(G_ema(fixed_z))
            save_grid(grid, out_dir / "grids" / f"step_{step:06d}.png")
    seconds = time.perf_counter() - start
    live.end()

    with atomic_path(out_dir / "checkpoint.pt") as tmp:
        torch.save(_checkpoint(cfg, cfg.steps, G, D, G_ema, opt_g, opt_d), tmp)
    save_generator(out_dir / "generator.pt", cfg.net, G_ema)
    summary = {"cell": cfg.net.cell, "params_g": n_g, "params_d": n_d, "steps": cfg.steps,
               "batch_size": cfg.batch_size, "seconds": round(seconds, 2),
               "images_per_s": round(cfg.steps * cfg.batch_size / seconds, 1),
               "device": str(device), "threads": threads}
    write_json(out_dir / "train.json", summary)
    log.info("trained %s: %d steps in %.0f s (%.0f images/s)", cfg.net.cell, cfg.steps, seconds,
             summary["images_per_s"])
    return summary
