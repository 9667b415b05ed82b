"""The run's config (`TrainConfig`: one variant, one seed, built from the params sections) and
`TrainingError`, the refusal every part of training raises."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rnngan.data.augment import Policy
from rnngan.errors import UserError
from rnngan.models.networks import NetConfig


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (a non-finite loss, unusable data, an incompatible checkpoint)."""


@dataclass(frozen=True)
class TrainConfig:
    net: NetConfig
    seed: int
    steps: int
    batch_size: int
    lr: float
    beta1: float
    beta2: float
    ema_images: int
    ema_rampup: float | None
    real_label: float
    log_every: int
    grid_every: int
    checkpoint_every: int = 100
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    threads: int = 0
    lr_d: float | None = None      # None: lr
    lr_g: float | None = None      # None: lr
    g_steps: int = 1               # G updates per D update
    mode_seeking: float = 0.0      # weight of losses.mode_seeking in G's loss (0 = off)
    real_augment: str = "step"     # step: the real batch redrawn through the policy every step; cached: as read
    loss: str = "ns"               # a key of rnngan.training.losses.LOSSES
    r1: float = 0.0
    r2: float = 0.0
    reg_every: int = 1
    augment: Policy = Policy()     # applied to every generated batch before D, as augment cached the real

    @classmethod
    def from_params(cls, params, cell: str, seed: int) -> "TrainConfig":
        """The run (`cell`, `seed`): `seed` is one of train.seeds, and the only seed training
        reads (initialisation, batch order, noise), so seed s of any train.seeds list is the same
        run; the data seed (params.seed) reaches training only through the augmented images."""
        t, m = params.train, params.model
        net = dataclasses.replace(NetConfig.from_params(m, params.data.image_size, cell), d_norm=t.d_norm)
        if m.match_params:
            from rnngan.models.sizing import match_params

            # note: the reference is the LSTM at model.hidden/model.nf, fixed, so that changing
            # model.cell never resizes (and retrains) every variant
            net = match_params(dataclasses.replace(net, cell="lstm"), [cell])[cell]
        return cls(net=net, seed=seed, steps=t.steps, batch_size=t.batch_size, lr=t.lr,
                   beta1=t.beta1, beta2=t.beta2, lr_d=t.lr_d, lr_g=t.lr_g, g_steps=t.g_steps, mode_seeking=t.mode_seeking,
                   real_augment=params.augment.real, loss=t.loss, r1=t.r1,
                   r2=t.r2, reg_every=t.reg_every, augment=Policy.of(params.augment), ema_images=t.ema_images, ema_rampup=t.ema_rampup,
                   real_label=t.real_label,
                   log_every=t.log_every, grid_every=t.grid_every,
                   checkpoint_every=t.checkpoint_every, device=t.device, precision=t.precision,
                   compile=t.compile, threads=t.threads)
