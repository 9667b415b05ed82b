"""One training run's state and its step: the networks and their optimisers, then per step an
update of D (with R1/R2 every reg_every steps), an update of G, and the EMA.

The loop around it (`rnngan.training.loop`) feeds batches and noise, logs, draws grids and
checkpoints; the checkpoint round trip of this state is `rnngan.training.checkpoint`.
"""
from __future__ import annotations

import copy

import torch

from rnngan.data.augment import augment_batch, step_draws
from rnngan.models.networks import build_discriminator, build_generator
from rnngan.training.config import TrainConfig
from rnngan.training.distributed import Dist
from rnngan.training.ema import ema_decay, update_ema
from rnngan.training.losses import LOSSES, gradient_penalty, mode_seeking

# Per-step statistics kept on the device and read back only when logging (no sync per step).
STATS = ("loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g")


class DStep(torch.nn.Module):
    """D on the real and on the fake batch in one forward, so that DistributedDataParallel sees
    one forward per backward. BatchNorm still sees real and fake separately, as in DCGAN."""

    def __init__(self, D: torch.nn.Module):
        super().__init__()
        self.D = D

    def forward(self, real, fake, fused: bool | None = None):
        return self.D(real, fused=fused), self.D(fake, fused=fused)


class Run:
    """The state of one training run: networks, optimisers, log history, and the step."""

    def __init__(self, cfg: TrainConfig, device: torch.device, d: Dist):
        self.cfg, self.device, self.dist = cfg, device, d
        torch.manual_seed(cfg.seed)
        self.G = build_generator(cfg.net).to(device)
        self.D = build_discriminator(cfg.net).to(device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        betas = (cfg.beta1, cfg.beta2)
        # note: fused Adam (one kernel for all parameters, on CPU and CUDA) instead of torch's
        # CPU default, a Python loop of small ops per parameter
        self.opt_g = torch.optim.Adam(self.G.parameters(), cfg.lr if cfg.lr_g is None else cfg.lr_g, betas=betas,
                                      fused=True)
        self.opt_d = torch.optim.Adam(self.D.parameters(), cfg.lr if cfg.lr_d is None else cfg.lr_d, betas=betas,
                                      fused=True)
        self.step = 0
        self.history: list[list[float]] = []     # one row per log: step, STATS..., images/s
        self.window = [0.0] * len(STATS)         # sums since the last log row
        self.window_rows = 0
        self.seconds = 0.0                       # training time before this process

    def wrap(self, d: Dist) -> None:
        """The modules the training step calls: DDP and torch.compile wrap them; the state is
        always saved from the bare modules."""
        self.G_train, self.D_train = self.G, DStep(self.D)
        if d.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # note: buffers are not broadcast at each forward; broadcasting BatchNorm statistics
            # in place between D's forward and backward is the known in-place autograd error of
            # GANs under DDP. They are averaged before sampling and saving instead.
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.G_train = DDP(self.G_train, device_ids=ids, broadcast_buffers=False)
            self.D_train = DDP(self.D_train, device_ids=ids, broadcast_buffers=False)
        # The R1/R2 steps need D's double backward, which compiled code lacks: they call D uncompiled
        self.D_reg = self.D_train
        if self.cfg.compile:
            self.G_train, self.D_train = torch.compile(self.G_train), torch.compile(self.D_train)

    def train_step(self, real: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """One D update, one G update (train.g_steps of them) and the EMA; returns the step's
        STATS as a device tensor (no sync)."""
        step = self.step + 1
        fake, real, loss_d, real_logits, fake_logits, grad_norm_d = self.update_d(real, z, step)
        loss_g, grad_norm_g = self.update_g(fake, real, z, step)
        update_ema(self.G_ema, self.G, ema_decay(step, self.cfg.batch_size, self.cfg.ema_images, self.cfg.ema_rampup))
        self.step = step
        with torch.no_grad():
            return torch.stack([loss_d.detach(), loss_g.detach(),
                                torch.sigmoid(real_logits.detach().float()).mean(),
                                torch.sigmoid(fake_logits.detach().float()).mean(),
                                grad_norm_d, grad_norm_g])

    def update_d(self, real: torch.Tensor, z: torch.Tensor, step: int):
        """D on real against fake; every reg_every steps with R1 (on real) and R2 (on fake) added,
        times reg_every (StyleGAN2's lazy regularisation). Returns G's images, the real batch as D
        saw it, D's loss and logits and its gradient norm."""
        cfg, device = self.cfg, self.device
        loss_fn = LOSSES[cfg.loss]
        regularise = (cfg.r1 > 0 or cfg.r2 > 0) and step % cfg.reg_every == 0
        with autocast(device, cfg.precision):
            fake = self.G_train(z)
        fake_d = self.augment(fake.detach(), step, 0)
        if cfg.real_augment == "step":
            # note: fresh draws every step, as the fakes get: a cached real side would show D one
            # fixed augmented copy of each image for the whole run
            real = self.augment(real, step, 2)
        if regularise:
            real_in = real.detach().requires_grad_(cfg.r1 > 0)
            fake_in = fake_d.detach().requires_grad_(cfg.r2 > 0)
            # note: the penalty needs D's double backward, which cuDNN's fused RNN, the compiled
            # SRU recurrence and torch.compile lack: this forward runs D uncompiled and the cell
            # step by step, on CUDA too
            with autocast(device, cfg.precision):
                real_logits, fake_logits = self.D_reg(real_in, fake_in, fused=False)
            loss_d = loss_fn.d(real_logits.float(), fake_logits.float(), cfg.real_label)
            penalty = loss_d.new_zeros(())
            if cfg.r1 > 0:
                penalty = penalty + cfg.r1 / 2 * gradient_penalty(real_logits.float(), real_in)
            if cfg.r2 > 0:
                penalty = penalty + cfg.r2 / 2 * gradient_penalty(fake_logits.float(), fake_in)
            loss_d_total = loss_d + cfg.reg_every * penalty
        else:
            with autocast(device, cfg.precision):
                real_logits, fake_logits = self.D_train(real, fake_d)
            loss_d = loss_d_total = loss_fn.d(real_logits.float(), fake_logits.float(), cfg.real_label)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d_total.backward()
        grad_norm_d = grad_norm(self.D)
        self.opt_d.step()
        return fake, real, loss_d, real_logits, fake_logits, grad_norm_d

    def update_g(self, fake: torch.Tensor, real: torch.Tensor, z: torch.Tensor, step: int):
        """Make D call G's images real, train.g_steps times (fresh noise after the first);
        returns G's last loss and gradient norm."""
        cfg, device = self.cfg, self.device
        loss_fn = LOSSES[cfg.loss]
        # note: D without its DDP wrapper and without weight gradients: only G learns here
        self.D.requires_grad_(False)
        for k in range(cfg.g_steps):
            if k:
                z = torch.randn_like(z)
                with autocast(device, cfg.precision):
                    fake = self.G_train(z)
            fake_g = self.augment(fake, step, 1 if k == 0 else 2 + k)
            with autocast(device, cfg.precision):
                fake_logits_g = self.D(fake_g).float()
                real_logits_g = self.D(real).float() if loss_fn.needs_real_for_g else None
                loss_g = loss_fn.g(fake_logits_g, real_logits_g)
            if cfg.mode_seeking > 0:
                # on G's images before augmentation, in float32: pairs of its own outputs
                loss_g = loss_g + cfg.mode_seeking * mode_seeking(fake.float(), z)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            grad_norm_g = grad_norm(self.G)
            self.opt_g.step()
        self.D.requires_grad_(True)
        return loss_g, grad_norm_g

    def augment(self, images: torch.Tensor, step: int, which: int) -> torch.Tensor:
        """The augmentation policy on a batch (this process's share of it), differentiably, in
        float32 with autocast off on every side (D's fakes, G's fakes, the real batch): the same
        function the augment stage caches the real images with. which: 0 D's fakes, 1 G's fakes,
        2 the real batch, 3.. G's further updates."""
        policy = self.cfg.augment
        if not policy.active():
            return images
        d = self.dist
        share = images.shape[0]
        u = step_draws(self.cfg.seed, step, which, share * d.world)[d.rank * share:(d.rank + 1) * share]
        with torch.autocast(images.device.type, enabled=False):
            return augment_batch(images.float(), policy, u.to(images.device))

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for m in (self.G, self.D, self.G_ema) for p in m.parameters())


def uses_bf16(device: torch.device, precision: str) -> bool:
    """bf16 autocast on CUDA unless train.precision says fp32; fp32 on CPU unless it says bf16."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def autocast(device: torch.device, precision: str):
    # note: bf16 keeps float32's exponent range, so unlike float16 it needs no GradScaler
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(device, precision))


def grad_norm(module: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad.float() for p in module.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
