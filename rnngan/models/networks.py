"""The recurrent-canvas generator and the recurrent-reader discriminator.

Generator (GRAN, Im et al. 2016; DRAW, Gregor et al. 2015): z sets the cell's initial state;
at each of T steps the cell updates its state, reading z and (with feedback) an encoding of the
canvas so far, and a deconvolutional decoder shared across steps turns the state into a canvas
update. The image is tanh(sum of updates).

Discriminator: a strided convolutional trunk down to an 8x8 feature map, then the same kind of
cell reads the map row by row (8 steps); a linear head on the last state gives the logit.

`build_generator(cfg)` / `build_discriminator(cfg)` pick the networks for a variant name: a cell
name gives these recurrent networks, "dcgan" the feed-forward baseline (rnngan.models.dcgan).
A variant may pair a generator of one kind with a discriminator of another, spelled
`<generator>+<discriminator>` (`lstm+dcgan`: the LSTM generator against DCGAN's discriminator),
so the study can say whose fault a failure is; a pure variant (`lstm`) is both of one kind.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from rnngan.config import PAIR, READOUTS, VariantError, split_variant  # noqa: F401 (re-exported)
from rnngan.models.cells import make_cell
from rnngan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from rnngan.models.layers import (VARIANTS, ModulatedBatchNorm, NetConfig, dcgan_init,  # noqa: F401 (re-exported)
                                  discriminator_norm, finish_modulation, generator_norm, levels, minibatch_stddev,
                                  spectral_norm_weights)


class CanvasDecoder(nn.Module):
    """state -> canvas update, shared across steps; BatchNorm statistics kept per step.

    note: canvas updates at step 1 and step T have different statistics, so one set of running
    statistics would mismatch every step at eval time (Cooijmans et al. 2016, Recurrent Batch
    Normalization, keep them per time step for the same reason).
    """

    def __init__(self, cfg: NetConfig):
        super().__init__()
        ups = levels(cfg.image_size, 4)
        chans = [cfg.nf * 2 ** i for i in reversed(range(ups))]   # e.g. 128, 64, 32 for 32x32
        self.start = chans[0]
        self.modulated = cfg.modulation
        # with z_decoder the decoder reads z beside the state (GRAN's decoder sees z directly)
        self.fc = nn.Linear(cfg.hidden + (cfg.z_dim if cfg.z_decoder else 0), chans[0] * 16, bias=False)
        # state size. (nf*2^(ups-1)) x 4 x 4
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False) for cin, cout in zip(chans, chans[1:])
        )
        # state size. nf x (size/2) x (size/2)
        self.to_rgb = nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1, bias=False)
        # state size. 3 x size x size
        self.norms = nn.ModuleList(
            nn.ModuleList(generator_norm(c, cfg) for c in chans) for _ in range(cfg.timesteps)
        )
        self.act = nn.ReLU(inplace=True)

    def _norm(self, norm: nn.Module, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return norm(x, z) if self.modulated else norm(x)

    def forward(self, h: torch.Tensor, t: int, z: torch.Tensor | None = None) -> torch.Tensor:
        """h: the cell's state; z: the noise (read with model.modulation)."""
        norms = self.norms[t]
        x = self.act(self._norm(norms[0], self.fc(h).view(-1, self.start, 4, 4), z))
        for up, norm in zip(self.ups, norms[1:]):
            x = self.act(self._norm(norm, up(x), z))
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
        self.cell = make_cell(cfg.g_kind, in_size, cfg.hidden)
        self.decoder = CanvasDecoder(cfg)
        self.encoder = CanvasEncoder(cfg) if cfg.feedback else None
        dcgan_init(self)
        finish_modulation(self)

    def decode(self, h: torch.Tensor, z: torch.Tensor, t: int) -> torch.Tensor:
        """The canvas update of step t from the cell's output h (and z, with z_decoder)."""
        return self.decoder(torch.cat([h, z], dim=1) if self.cfg.z_decoder else h, t, z)

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
                canvas = canvas + self.decode(hs[t], z, t)
            return torch.tanh(canvas)
        # note: unfused, the step loop runs even without feedback, so CPU results stay bit for bit
        # what they were (SRU's forward_sequence batches its input projection over the steps,
        # and a larger matrix product need not round the same)
        for t in range(self.cfg.timesteps):
            x = torch.cat([z, self.encoder(canvas)], dim=1) if self.encoder is not None else z
            state = self.cell(x, state)
            canvas = canvas + self.decode(state[0], z, t)
        return torch.tanh(canvas)


class Discriminator(nn.Module):
    ROWS = 8  # the trunk stops at an 8x8 map; the cell reads its 8 rows

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        downs = levels(cfg.image_size, self.ROWS)
        layers: list[nn.Module] = []
        cin, cout = 3, cfg.disc_nf
        for i in range(downs):
            layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=i == 0))
            if i > 0 and cfg.d_norm == "batch":  # as DCGAN: no BatchNorm on the input layer
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            cin, cout = cout, cout * 2
        self.trunk = nn.Sequential(*layers)
        # state size. C x 8 x 8, C = d_nf * 2^(downs-1), plus one minibatch-stddev channel (unless off)
        if cfg.d_readout not in READOUTS:
            raise ValueError(f"unknown readout {cfg.d_readout!r}; allowed: {', '.join(READOUTS)}")
        self.read = nn.Linear((cin + (cfg.mbstd_group > 0)) * self.ROWS, cfg.disc_hidden)
        self.cell = make_cell(cfg.d_kind, cfg.disc_hidden, cfg.disc_hidden)
        self.head = nn.Linear(cfg.disc_hidden, 1)
        dcgan_init(self)
        discriminator_norm(self, cfg.d_norm)

    def forward(self, images: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
        """images B x 3 x size x size -> logits B. fused: see Cell.forward_sequence."""
        f = minibatch_stddev(self.trunk(images), self.cfg.mbstd_group)
        rows = f.permute(2, 0, 1, 3).flatten(2)               # 8 x B x (C*8): one step per row
        xs = nn.functional.leaky_relu(self.read(rows), 0.2)
        h0 = xs.new_zeros(images.shape[0], self.cell.hidden_size)
        hs, state = self.cell.forward_sequence(xs, self.cell.initial_state(h0), fused)
        # last: the state after the last row; mean: every row's state alike (C-RNN-GAN, RGAN)
        return self.head(state[0] if self.cfg.d_readout == "last" else hs.mean(dim=0)).squeeze(1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _network_classes(cfg: NetConfig) -> tuple[type[nn.Module], type[nn.Module]]:
    g, d = split_variant(cfg.cell)
    return (DCGANGenerator if g == "dcgan" else Generator), (DCGANDiscriminator if d == "dcgan" else Discriminator)


def build_generator(cfg: NetConfig) -> nn.Module:
    """The generator of cfg.cell (its <G> part): z (B x z_dim) -> images B x 3 x size x size in [-1, 1].
    Every generator keeps its NetConfig as `.cfg` (sampling reads image_size and z_dim there).
    With cfg.g_spectral every weight is spectrally normalised after its initialisation (SAGAN's G,
    Zhang et al. 2019; BigGAN's): in a recurrent G this bounds how far the cell's gates can be
    driven into saturation."""
    G = _network_classes(cfg)[0](cfg)
    if cfg.g_spectral:
        spectral_norm_weights(G)
    return G


def build_discriminator(cfg: NetConfig) -> nn.Module:
    """The discriminator of cfg.cell (its <D> part): images B x 3 x size x size -> logits B."""
    return _network_classes(cfg)[1](cfg)
