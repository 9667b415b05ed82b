"""DCGAN (Radford et al. 2016), the feed-forward baseline, as pytorch/examples `dcgan/main.py`
builds it, generalised from 64x64 to any power-of-two image size from 8 up.

Generator: z as a 1x1 map, a 4x4 transposed convolution to ngf * 2^(k-1) channels, then
stride-2 transposed convolutions halving the channels down to ngf, then one to RGB and tanh;
k = log2(size / 4), so 64x64 is the example exactly (ngf*8 at 4x4). Discriminator: the mirror
image, strided convolutions doubling from ndf down to a 4x4 map, and a 4x4 convolution to one
logit. Both take their sizes from NetConfig (nz = z_dim, ngf = nf, ndf = d_nf or nf); the
recurrent fields (hidden, timesteps, feedback, z_decoder, d_readout) do not apply.

What the recurrent networks have beside recurrence is given to these alike, so that a pairing of
G and D compares recurrence and nothing else: the minibatch-stddev channel before D's last
layer (model.mbstd_group, as ProGAN places it) and self-modulated BatchNorm in G (model.modulation).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from rnngan.models.layers import (ModulatedBatchNorm, NetConfig, dcgan_init, discriminator_norm, finish_modulation,
                                  generator_norm, levels, minibatch_stddev)


def _levels(size: int) -> int:
    """k, the number of stride-2 layers between the 4x4 map and `size` x `size` pixels (at least one)."""
    if size < 8 or size & (size - 1):
        raise ValueError(f"dcgan: image size {size} must be a power of two, at least 8")
    return levels(size, 4)


class DCGANGenerator(nn.Module):
    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        k = _levels(cfg.image_size)
        chans = [cfg.nf * 2 ** i for i in reversed(range(k))]   # e.g. ngf*8 .. ngf at 64x64
        layers: list[nn.Module] = [
            # input is z, a z_dim x 1 x 1 map, going into a convolution
            nn.ConvTranspose2d(cfg.z_dim, chans[0], 4, 1, 0, bias=False),
            generator_norm(chans[0], cfg),
            nn.ReLU(True),
            # state size. (ngf*2^(k-1)) x 4 x 4
        ]
        for cin, cout in zip(chans, chans[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), generator_norm(cout, cfg), nn.ReLU(True)]
            # state size. each layer: half the channels, twice the side
        # state size. ngf x (size/2) x (size/2)
        layers += [nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
        # state size. 3 x size x size
        self.main = nn.Sequential(*layers)
        dcgan_init(self)
        finish_modulation(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: B x z_dim -> images B x 3 x size x size in [-1, 1]."""
        x = z.view(z.shape[0], -1, 1, 1)
        if not self.cfg.modulation:
            return self.main(x)
        for layer in self.main:
            x = layer(x, z) if isinstance(layer, ModulatedBatchNorm) else layer(x)
        return x


class DCGANDiscriminator(nn.Module):
    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        k = _levels(cfg.image_size)
        chans = [cfg.disc_nf * 2 ** i for i in range(k)]        # e.g. ndf .. ndf*8 at 64x64
        layers: list[nn.Module] = [
            # input is 3 x size x size; as DCGAN: no BatchNorm on the input layer
            nn.Conv2d(3, chans[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. ndf x (size/2) x (size/2)
        ]
        for cin, cout in zip(chans, chans[1:]):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False),
                       *([nn.BatchNorm2d(cout)] if cfg.d_norm == "batch" else []),
                       nn.LeakyReLU(0.2, inplace=True)]
            # state size. each layer: twice the channels, half the side
        # state size. (ndf*2^(k-1)) x 4 x 4, plus one minibatch-stddev channel (unless off)
        self.main = nn.Sequential(*layers)
        # note: no Sigmoid as in the example: the loss takes logits (training.d_loss, g_loss),
        # which is the numerically stable form of the same cross-entropy
        self.head = nn.Conv2d(chans[-1] + (cfg.mbstd_group > 0), 1, 4, 1, 0, bias=False)
        # state size. 1 x 1 x 1
        dcgan_init(self)
        discriminator_norm(self, cfg.d_norm)

    def forward(self, images: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
        """images B x 3 x size x size -> logits B. (`fused` is the recurrent D's; nothing to fuse here.)"""
        return self.head(minibatch_stddev(self.main(images), self.cfg.mbstd_group)).view(-1)
