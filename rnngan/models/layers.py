"""What every network shares, recurrent and DCGAN alike: the network config (`NetConfig`), the
layer counts of an image size, the normalisations (D's batch/spectral/none, G's BatchNorm or
self-modulated BatchNorm, spectral normalisation of every weight), DCGAN's initialisation and
the minibatch-standard-deviation channel."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from rnngan.config import KINDS, split_variant
from rnngan.models.cells import SRUCell

# note: the kinds, the pair spelling and its parser live with the params (rnngan.config, no torch)
VARIANTS = KINDS              # the pure variants; model.variants may also name a pair (split_variant)


@dataclass(frozen=True)
class NetConfig:
    cell: str               # the variant: a kind (a key of cells.CELLS, or "dcgan"), or <G>+<D> (split_variant)
    image_size: int = 32
    hidden: int = 128       # the generator's cell size (and the discriminator's, unless d_hidden)
    timesteps: int = 4
    z_dim: int = 64
    nf: int = 32            # base width of the generator (and the discriminator, unless d_nf)
    feedback: bool = True
    # note: set apart from hidden/nf only when parameter budgets are matched (rnngan.models.sizing)
    d_hidden: int | None = None   # the discriminator's cell size; None = hidden
    d_nf: int | None = None       # the discriminator's base width; None = nf
    d_norm: str = "batch"         # the discriminator's normalisation: batch | spectral | none (train.d_norm)
    # note: the defaults below are the networks before these knobs existed, so a generator.pt
    # saved without them loads as what it was (mbstd_group: the recurrent D always had 4)
    z_decoder: bool = False       # the recurrent G's decoder reads z beside the state at every step (GRAN)
    modulation: bool = False      # self-modulated BatchNorm in G: scale and shift from z (Chen et al. 2019)
    g_spectral: bool = False      # spectral normalisation of every weight of G, its cell's too (SAGAN)
    mbstd_group: int = 4          # minibatch-stddev group in both discriminators; 0 = off
    d_readout: str = "last"       # the recurrent D's head reads: last (state) | mean (over every row)

    @property
    def g_kind(self) -> str:
        return split_variant(self.cell)[0]

    @property
    def d_kind(self) -> str:
        return split_variant(self.cell)[1]

    @property
    def disc_hidden(self) -> int:
        return self.hidden if self.d_hidden is None else self.d_hidden

    @property
    def disc_nf(self) -> int:
        return self.nf if self.d_nf is None else self.d_nf

    @classmethod
    def from_params(cls, model_params, image_size: int, cell: str) -> "NetConfig":
        m = model_params
        return cls(cell=cell, image_size=image_size, hidden=m.hidden, timesteps=m.timesteps, z_dim=m.z_dim,
                   nf=m.nf, feedback=m.feedback, z_decoder=m.z_decoder, modulation=m.modulation,
                   g_spectral=m.g_spectral,
                   mbstd_group=m.mbstd_group, d_readout=m.d_readout)


def levels(size: int, base: int) -> int:
    """How many stride-2 layers take `base` pixels to `size` pixels."""
    n = int(round(math.log2(size / base)))
    if n < 0 or base * 2 ** n != size:
        raise ValueError(f"image size {size} must be {base} times a power of two")
    return n


def discriminator_norm(D: nn.Module, d_norm: str) -> None:
    """`spectral`: every convolution and linear layer of D divided by its largest singular value
    (Miyato et al. 2018; one power iteration per forward); `batch` and `none` are built in place
    (BatchNorm layers, or none: R3GAN's D has no normalisation layers)."""
    if d_norm not in ("batch", "spectral", "none"):
        raise ValueError(f"unknown discriminator normalisation {d_norm!r}; allowed: batch, spectral, none")
    if d_norm == "spectral":
        spectral_norm_weights(D)


def spectral_norm_weights(module: nn.Module) -> None:
    """Divide every weight matrix of `module` by its largest singular value (Miyato et al. 2018;
    one power iteration per training forward): convolutions, transposed convolutions, linear
    layers and the recurrent cells' matrices. A ModulatedBatchNorm's MLP is left as it is: its
    output layer starts at zero, which has no direction to normalise."""
    modulation = {id(m) for mod in module.modules() if isinstance(mod, ModulatedBatchNorm) for m in mod.modules()}
    for m in list(module.modules()):
        if id(m) in modulation:
            continue
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(m)
        elif isinstance(m, nn.RNNCellBase):
            # note: the cell's input and recurrent matrices too, each over all its gates (as
            # SNGAN normalises every weight of D): without them the recurrence is the one
            # unconstrained part of a spectrally normalised network
            nn.utils.parametrizations.spectral_norm(m, "weight_ih")
            nn.utils.parametrizations.spectral_norm(m, "weight_hh")
        elif isinstance(m, SRUCell):
            # its recurrence is elementwise (v); every matrix is in `weight`
            nn.utils.parametrizations.spectral_norm(m, "weight")


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation (Radford et al. 2016): N(0, 0.02) weights, BN scale N(1, 0.02).

    note: with PyTorch's default init these GANs collapsed completely in calibration runs.
    Recurrent cells keep their own initialisation.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class ModulatedBatchNorm(nn.Module):
    """Self-modulated BatchNorm (Chen et al. 2019, "On Self Modulation for GANs"): batch
    normalisation without its own affine, then a scale 1 + gamma(z) and shift beta(z) from a
    one-hidden-layer MLP of z, per channel.

    note: the MLP's output layer starts at zero, so a new generator is the plain BatchNorm one
    (scale 1, shift 0) and learns how far z modulates it.
    """

    HIDDEN = 32

    def __init__(self, channels: int, z_dim: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.mlp = nn.Sequential(nn.Linear(z_dim, self.HIDDEN), nn.ReLU(inplace=True),
                                 nn.Linear(self.HIDDEN, 2 * channels))
        self.channels = channels
        self.reset_output()

    def reset_output(self) -> None:
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.mlp(z).view(-1, 2 * self.channels, 1, 1).chunk(2, dim=1)
        return self.norm(x) * (1 + gamma) + beta


def generator_norm(channels: int, cfg: "NetConfig") -> nn.Module:
    """G's normalisation layer: BatchNorm, or its self-modulated form (model.modulation)."""
    return ModulatedBatchNorm(channels, cfg.z_dim) if cfg.modulation else nn.BatchNorm2d(channels)


def finish_modulation(module: nn.Module) -> None:
    """After dcgan_init (which redraws every Linear): every ModulatedBatchNorm starts as the
    identity modulation again."""
    for m in module.modules():
        if isinstance(m, ModulatedBatchNorm):
            m.reset_output()


def minibatch_stddev(f: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append the features' standard deviation across a group of samples as one more channel
    (Karras et al. 2018, ProGAN), so D can see a batch that lacks variety. group 0: off, no channel.

    note: without it the RNN and GRU generators collapsed onto one image within 300 steps.
    """
    if group == 0:
        return f
    b, c, h, w = f.shape
    g = min(group, b)
    if b % g:
        g = 1 if b == 1 else math.gcd(b, g)
    if g < 2:
        return torch.cat([f, f.new_zeros(b, 1, h, w)], dim=1)
    y = f.view(g, b // g, c, h, w)
    # note: the variance written out, not Tensor.var over the outer dim, whose CPU kernel (and
    # its backward) ran 10x slower here and cost a tenth of the training step
    var = (y - y.mean(dim=0)).square().mean(dim=0)
    std = (var + 1e-8).sqrt().mean(dim=(1, 2, 3))   # b/g
    std = std.view(1, b // g, 1, 1, 1).expand(g, -1, 1, h, w).reshape(b, 1, h, w)
    return torch.cat([f, std], dim=1)
