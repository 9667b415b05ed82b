"""GAN losses and gradient penalties, chosen by `train.loss`, `train.r1`, `train.r2`.

Each loss is a pair of functions of D's logits (real, fake), the registry keyed by the string a
user writes in params.yaml:

- `ns`: the non-saturating loss of Goodfellow et al. 2014 (DCGAN's), with one-sided label
  smoothing through `train.real_label` (Salimans et al. 2016);
- `hinge`: D's hinge loss and G's -D(G(z)) (Lim & Ye 2017; Miyato et al. 2018, SN-GAN);
- `rpgan`: the relativistic pairing loss (Jolicoeur-Martineau 2018; Sun et al. 2020), which with
  R1 + R2 is R3GAN's regularised objective (Huang et al. 2024); G's loss needs D's logits on
  real images too.

The penalties are zero-centred gradient penalties on D's input (Mescheder et al. 2018): R1 on
real images, R2 on generated ones, gamma/2 * E||grad_x D(x)||^2. They need the double backward
through D, which cuDNN's fused RNN kernels and the compiled SRU recurrence do not have: the
penalty's forward always takes the step-by-step path (`fused=False`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Loss:
    d: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]   # (real, fake, real_label) -> D's loss
    g: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]    # (fake, real or None) -> G's loss
    needs_real_for_g: bool = False
    label_smoothing: bool = False        # whether train.real_label means anything to it


def _ns_d(real: torch.Tensor, fake: torch.Tensor, real_label: float) -> torch.Tensor:
    """Cross-entropy of D on real (target `real_label`) and fake (target 0) images.

    With real_label 1 this is -log D(x) - log(1 - D(G(z))). A real_label below 1 is one-sided
    label smoothing: D is never rewarded for certainty on real images.
    note: at 0.9 it rescued an LSTM run whose D won outright within 100 steps in calibration.
    """
    return F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_label)) + F.softplus(fake).mean()


def _ns_g(fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    """-log D(G(z))."""
    return F.softplus(-fake).mean()


def _hinge_d(real: torch.Tensor, fake: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def _hinge_g(fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    return -fake.mean()


def _rp_d(real: torch.Tensor, fake: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """-log sigmoid(D(x) - D(G(z))), pairing the i-th real with the i-th fake image."""
    return F.softplus(fake - real).mean()


def _rp_g(fake: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
    return F.softplus(real - fake).mean()


LOSSES: dict[str, Loss] = {
    "ns": Loss(_ns_d, _ns_g, label_smoothing=True),
    "hinge": Loss(_hinge_d, _hinge_g),
    "rpgan": Loss(_rp_d, _rp_g, needs_real_for_g=True),
}


def mode_seeking(images: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """MSGAN's mode-seeking term (Mao et al. 2019), which G minimises: 1 / (ratio + eps), where
    ratio is the mean absolute difference of two generated images over that of their noises.
    The pairs are the batch's halves, (i, i + B/2), with no extra forward pass. A G that maps
    distinct z to one image makes the ratio small and the term large; the term's pull fades as
    the ratio grows, so it asks for diversity without rewarding noise without bound.

    note: the form and eps are the authors' code (`lz = mean|G(z2)-G(z1)| / mean|z2-z1|`,
    `1 / (lz + 1e-5)`); their diversity-sensitive cousin (DSGAN) clips the ratio instead.
    """
    half = images.shape[0] // 2
    if half < 1:
        raise ValueError("mode_seeking: needs at least 2 images per batch")
    d_images = (images[:half] - images[half:2 * half]).abs().mean()
    d_z = (z[:half] - z[half:2 * half]).abs().mean()
    return 1.0 / (d_images / d_z + eps)


def gradient_penalty(logits: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """E ||d logits / d inputs||^2 over the batch, with the graph kept for the backward (R1/R2)."""
    (grad,) = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()
