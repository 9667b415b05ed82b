"""Which real training images the reference statistics use: one seeded draw, shared by the
reference stage (its statistics), the attributes stage (its classifier trains on exactly these)
and so, by exclusion, the held-out real row."""
from __future__ import annotations

import numpy as np


def reference_indices(n_train: int, real_count: int, seed: int) -> np.ndarray:
    """Sorted rows of train.npy: min(real_count, n_train) of them, drawn without replacement."""
    count = min(real_count, n_train)
    return np.sort(np.random.default_rng(seed).choice(n_train, count, replace=False))
