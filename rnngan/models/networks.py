"""The recurrent-canvas generator and the recurrent-reader discriminator.

Generator (GRAN, Im et al. 2016; DRAW, Gregor et al. 2015): z sets the cell's initial state;
at each of T steps the cell updates its state, reading z and (with feedback) an encoding of the
canvas so far, and a deconvolutional decoder shared across steps turns the state into a canvas
update. The image is tanh(sum of updates).

Discriminator: a strided convolutional trunk down to an 8x8 feature map, then the same kind of
cell reads the map row by row (8 steps); a linear head on the last state gives the logit.

`build_generator(cfg)` / `build_discriminator(cfg)` pick the networks for a variant name: a cell
name gives these recurrent networks, "dcgan" the feed-forward baseline (rnngan.models.dcgan).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from rnngan.models.cells import CELLS, make_cell

VARIANTS = (*CELLS, "dcgan")  # what model.variants may name: the recurrent cells and the baseline


@dataclass(frozen=True)
class NetConfig:
    cell: str               # a key of cells.CELLS, or "dcgan" for the feed-forward baseline
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

    @property
    def disc_hidden(self) -> int:
        return self.hidden if self.d_hidden is None else self.d_hidden

    @property
    def disc_nf(self) -> int:
        return self.nf if self.d_nf is None else self.d_nf

    @classmethod
    def from_params(cls, model_params, image_size: int, cell: str) -> "NetConfig":
        return cls(cell=cell, image_size=image_size, hidden=model_params.hidden,
                   timesteps=model_params.timesteps, z_dim=model_params.z_dim,
                   nf=model_params.nf, feedback=model_params.feedback)


def _levels(size: int, base: int) -> int:
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
        for m in list(D.modules()):
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.utils.parametrizations.spectral_norm(m)


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
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class CanvasDecoder(nn.Module):
    """state -> canvas update, shared across steps; BatchNorm statistics kept per step.

    note: canvas updates at step 1 and step T have different statistics, so one set of running
    statistics would mismatch every step at eval time (Cooijmans et al. 2016, Recurrent Batch
    Normalization, keep them per time step for the same reason).
    """

    def __init__(self, cfg: NetConfig):
        super().__init__()
        ups = _levels(cfg.image_size, 4)
        chans = [cfg.nf * 2 ** i for i in reversed(range(ups))]   # e.g. 128, 64, 32 for 32x32
        self.start = chans[0]
        self.fc = nn.Linear(cfg.hidden, chans[0] * 16, bias=False)
        # state size. (nf*2^(ups-1)) x 4 x 4
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False) for cin, cout in zip(chans, chans[1:])
        )
        # state size. nf x (size/2) x (size/2)
        self.to_rgb = nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1, bias=False)
        # state size. 3 x size x size
        self.norms = nn.ModuleList(
            nn.ModuleList(nn.BatchNorm2d(c) for c in chans) for _ in range(cfg.timesteps)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, h: torch.Tensor, t: int) -> torch.Tensor:
        norms = self.norms[t]
        x = self.act(norms[0](self.fc(h).view(-1, self.start, 4, 4)))
        for up, norm in zip(self.ups, norms[1:]):
            x = self.act(norm(up(x)))
        return self.to_rgb(x)


class CanvasEncoder(nn.Module):
    """canvas -> a vector the cell reads (GRAN's feedback): two strided convs, a linear map and
    LayerNorm.

    note: without the LayerNorm the feedback's scale is free to grow and swamp z in the cell's
    input; every variant then collapsed onto one image within 100 steps in calibration runs.
    """

    def __init__(self, cfg: NetConfig):
        super().__init__()
        c = max(cfg.nf // 2, 8)
        self.net = nn.Sequential(
            nn.Conv2d(3, c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            # state size. (nf/2) x (size/2) x (size/2)
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            # state size. nf x (size/4) x (size/4)
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * c * 16, cfg.z_dim),
            nn.LayerNorm(cfg.z_dim),
        )

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        return self.net(torch.tanh(canvas))


class Generator(nn.Module):
    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        self.init_state = nn.Linear(cfg.z_dim, cfg.hidden)
        in_size = cfg.z_dim * (2 if cfg.feedback else 1)
        self.cell = make_cell(cfg.cell, in_size, cfg.hidden)
        self.decoder = CanvasDecoder(cfg)
        self.encoder = CanvasEncoder(cfg) if cfg.feedback else None
        dcgan_init(self)

    def forward(self, z: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
        """z: B x z_dim -> images B x 3 x size x size in [-1, 1].

        fused: without feedback, run the cell over all T steps in one fused call (None: on CUDA
        only; see Cell.forward_sequence). With feedback each step's input depends on the canvas
        so far, so the cell steps one at a time.
        """
        state = self.cell.initial_state(torch.tanh(self.init_state(z)))
        canvas = z.new_zeros(z.shape[0], 3, self.cfg.image_size, self.cfg.image_size)
        if self.encoder is None and (z.is_cuda if fused is None else fused):
            # the cell reads z at every step: the whole input sequence is known ahead of time
            hs, _ = self.cell.forward_sequence(z.expand(self.cfg.timesteps, *z.shape), state, fused=True)
            for t in range(self.cfg.timesteps):
                canvas = canvas + self.decoder(hs[t], t)
            return torch.tanh(canvas)
        # note: unfused, the step loop runs even without feedback, so CPU results stay bit for bit
        # what they were (SRU's forward_sequence batches its input projection over the steps,
        # and a larger matrix product need not round the same)
        for t in range(self.cfg.timesteps):
            x = torch.cat([z, self.encoder(canvas)], dim=1) if self.encoder is not None else z
            state = self.cell(x, state)
            canvas = canvas + self.decoder(state[0], t)
        return torch.tanh(canvas)


def minibatch_stddev(f: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append the features' standard deviation across a group of samples as one more channel
    (Karras et al. 2018, ProGAN), so D can see a batch that lacks variety.

    note: without it the RNN and GRU generators collapsed onto one image within 300 steps.
    """
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


class Discriminator(nn.Module):
    ROWS = 8  # the trunk stops at an 8x8 map; the cell reads its 8 rows

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        downs = _levels(cfg.image_size, self.ROWS)
        layers: list[nn.Module] = []
        cin, cout = 3, cfg.disc_nf
        for i in range(downs):
            layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=i == 0))
            if i > 0 and cfg.d_norm == "batch":  # as DCGAN: no BatchNorm on the input layer
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            cin, cout = cout, cout * 2
        self.trunk = nn.Sequential(*layers)
        # state size. C x 8 x 8, C = d_nf * 2^(downs-1), plus one minibatch-stddev channel
        self.read = nn.Linear((cin + 1) * self.ROWS, cfg.disc_hidden)
        self.cell = make_cell(cfg.cell, cfg.disc_hidden, cfg.disc_hidden)
        self.head = nn.Linear(cfg.disc_hidden, 1)
        dcgan_init(self)
        discriminator_norm(self, cfg.d_norm)

    def forward(self, images: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
        """images B x 3 x size x size -> logits B. fused: see Cell.forward_sequence."""
        f = minibatch_stddev(self.trunk(images))
        rows = f.permute(2, 0, 1, 3).flatten(2)               # 8 x B x (C*8): one step per row
        xs = nn.functional.leaky_relu(self.read(rows), 0.2)
        h0 = xs.new_zeros(images.shape[0], self.cell.hidden_size)
        _, state = self.cell.forward_sequence(xs, self.cell.initial_state(h0), fused)
        return self.head(state[0]).squeeze(1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _network_classes(cfg: NetConfig) -> tuple[type[nn.Module], type[nn.Module]]:
    # note: imported here, not at the top, because dcgan.py imports NetConfig from this module
    from rnngan.models.dcgan import DCGANDiscriminator, DCGANGenerator

    networks = {**{c: (Generator, Discriminator) for c in CELLS},
                "dcgan": (DCGANGenerator, DCGANDiscriminator)}
    if cfg.cell not in networks:
        raise ValueError(f"unknown model variant {cfg.cell!r}; allowed: {', '.join(networks)}")
    return networks[cfg.cell]


def build_generator(cfg: NetConfig) -> nn.Module:
    """The generator for cfg.cell: z (B x z_dim) -> images B x 3 x size x size in [-1, 1].
    Every generator keeps its NetConfig as `.cfg` (sampling reads image_size and z_dim there)."""
    return _network_classes(cfg)[0](cfg)


def build_discriminator(cfg: NetConfig) -> nn.Module:
    """The discriminator for cfg.cell: images B x 3 x size x size -> logits B."""
    return _network_classes(cfg)[1](cfg)
