"""The interface every feature extractor implements (randinit, pixels, inception): the registry
is `rnngan.metrics.features.EXTRACTORS`."""
from __future__ import annotations

import torch


class FeatureExtractor(torch.nn.Module):
    """uint8 `N x 3 x H x W` -> float32 `N x dim`. `name` identifies the numbers (caches key on it)."""

    name: str
    dim: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError
