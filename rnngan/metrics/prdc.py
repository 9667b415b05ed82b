"""Precision/recall and density/coverage on features: k-nearest-neighbour manifolds.

- Precision (Kynkäänniemi et al. 2019): the fraction of generated samples inside the real manifold,
  the union of balls around each real sample reaching to its k-th nearest real neighbour.
  Recall: the fraction of real samples inside the generated manifold, built the same way.
- Density (Naeem et al. 2020): how many real balls contain each generated sample, over k, averaged;
  about 1 when both sets come from one distribution, above 1 where samples bunch in dense regions.
  Coverage: the fraction of real balls that contain at least one generated sample.

The definitions are those of Naeem et al.'s reference package `prdc` (0.2), open balls
(`distance < radius`) included, and the tests check this module against it. Open balls make
identical sets score 1 on all four (each ball then holds its centre and k - 1 neighbours, so
density is exactly 1). The package fills full N x N distance matrices (three of them, 10-20 GB
each at 50k); here distances are taken one block of `batch_size` rows at a time, in float64, and
all four numbers come from one pass over the real-vs-generated distances. Each block's distances
come from its matrix of products a.b (`block_product`), which `manifold_pass` hands to a hook
once it is done with it: the analyze stage's KID takes its kernel values from the same products
(`rnngan.metrics.analysis`), so the three N x N x dim products are made once for both metrics.

Why not torch-fidelity's precision/recall (`metric_prc`, usable on features): it counts the same
thing with closed balls (`<=`), which differs only where a distance ties a radius exactly
(duplicated samples), but it has no density/coverage, and those need the same k-NN radii and
real-vs-generated distances: taking P/R from it would compute those distances twice. The tests
check our precision/recall against it, and benchmarks/metrics.py times both (ours, all four in
float64, about as fast as its two in float32).

The default k = 5 is Naeem et al.'s recommendation for density/coverage (Kynkäänniemi et al. used
k = 3 for precision/recall); a larger k inflates every ball, so numbers are comparable only at one k.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from rnngan.metrics.fid import as_features, same_dim

# A distance that equals a radius up to this relative round-off counts as *on* the sphere, so
# outside the open ball. The same pair's distance comes out of two different matrix products
# (the k-NN pass and the real-vs-generated pass) and can differ in the last bit; without the
# margin, on identical sets each ball's k-th neighbour lands inside or outside by that bit
# (density 1.0007 instead of 1). Float64 round-off here is ~1e-15 relative; true distances that
# close to a radius are ties for any practical purpose.
TIE_RTOL = 1e-10


def block_product(a: torch.Tensor, b: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Rows start..stop of the pairwise products a b^T: the one matrix product of a block, whose
    result every user of the block shares (distances here, kernel values in `analysis`)."""
    return a[start:stop] @ b.T


def _squared_distances(products: torch.Tensor, a_sq: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    """|a_i - b_j|^2 = |a_i|^2 + |b_j|^2 - 2 a_i.b_j for a block, from its products a_i.b_j.

    The cancellation error is ~1e-16 of |a|^2 + |b|^2, far below the gaps between neighbour
    distances (`prdc` centres the features first, which makes it smaller still); a clamp removes
    round-off negatives.
    """
    d2 = torch.add(b_sq[None, :], products, alpha=-2.0)     # a new block: `products` stays as it is
    return d2.add_(a_sq[:, None]).clamp_(min=0)


BlockHook = Callable[[str, int, int, torch.Tensor], None]


def manifold_pass(real: torch.Tensor, fake: torch.Tensor, k: int, batch_size: int = 1024,
                  on_block: BlockHook | None = None) -> dict[str, float]:
    """Precision, recall, density and coverage of `fake` against `real` (float64 tensors, one
    device, validated), in three passes over row blocks of the pairwise products: real x real
    (the real k-NN radii), fake x fake (the generated radii), real x fake (the four counts).

    `on_block(pair, start, stop, products)` is called with every block once its distances are
    taken (`pair`: "real-real", "fake-fake" or "real-fake"; `products`: rows start..stop of
    a b^T), and may overwrite the block: that is how KID shares these products (`analysis`).
    """
    r_sq, f_sq = (real * real).sum(1), (fake * fake).sum(1)
    device = real.device

    def radii(x: torch.Tensor, x_sq: torch.Tensor, pair: str) -> torch.Tensor:
        """Squared distance from each row of x to its k-th nearest other row (itself excluded),
        shrunk by the tie margin: `d2 < radii` is then "strictly inside"."""
        out = torch.empty(len(x), dtype=x.dtype, device=device)
        for start in range(0, len(x), batch_size):
            stop = min(start + batch_size, len(x))
            products = block_product(x, x, start, stop)
            d2 = _squared_distances(products, x_sq[start:stop], x_sq)
            rows = torch.arange(stop - start, device=device)
            d2[rows, rows + start] = 0.0             # the row itself: exactly 0, the 1st of the k + 1
            out[start:stop] = d2.topk(k + 1, dim=1, largest=False).values[:, k]
            del d2
            if on_block is not None:
                on_block(pair, start, stop, products)
        return out * (1 - TIE_RTOL)

    real_radii = radii(real, r_sq, "real-real")
    fake_radii = radii(fake, f_sq, "fake-fake")

    in_real_manifold = torch.zeros(len(fake), dtype=torch.bool, device=device)   # precision
    real_balls_hit = 0                   # (generated sample, real ball containing it) pairs (density)
    real_in_fake_manifold = torch.zeros(len(real), dtype=torch.bool, device=device)  # recall
    real_ball_covered = torch.zeros(len(real), dtype=torch.bool, device=device)      # coverage
    for start in range(0, len(real), batch_size):
        stop = min(start + batch_size, len(real))
        products = block_product(real, fake, start, stop)
        d2 = _squared_distances(products, r_sq[start:stop], f_sq)         # real block x fake
        inside_real = d2 < real_radii[start:stop, None]                    # fake j in real ball i
        in_real_manifold |= inside_real.any(dim=0)
        real_balls_hit += int(inside_real.sum())
        real_ball_covered[start:stop] = inside_real.any(dim=1)
        real_in_fake_manifold[start:stop] = (d2 < fake_radii[None, :]).any(dim=1)
        del d2, inside_real
        if on_block is not None:
            on_block("real-fake", start, stop, products)
    return {
        "precision": int(in_real_manifold.sum()) / len(fake),
        "recall": float(real_in_fake_manifold.double().mean()),
        "density": real_balls_hit / (k * len(fake)),
        "coverage": float(real_ball_covered.double().mean()),
    }


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5, batch_size: int = 1024,
         device: str | torch.device = "cpu") -> dict[str, float]:
    """Precision, recall, density and coverage of `fake` against `real` (both `N x dim` features).

    Memory is about `batch_size x max(N_real, N_fake)` float64 distances (40 MB at 1024 x 5000)
    beside the features; time is three N x N x dim distance passes (real-real, fake-fake,
    real-fake). Returns floats: precision, recall and coverage in [0, 1], density >= 0.
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"prdc: k must be an integer >= 1, got {k!r}")
    if batch_size < 1:
        raise ValueError(f"prdc: batch_size must be >= 1, got {batch_size}")
    r = as_features(real, "real features", min_count=1)
    f = as_features(fake, "fake features", min_count=1)
    same_dim(r, f)
    check_k(k, len(r), len(f))
    device = torch.device(device)
    centre = r.mean(axis=0)                          # distances ignore a shift; it cuts round-off
    rt = torch.from_numpy(r - centre).to(device)
    ft = torch.from_numpy(f - centre).to(device)
    return manifold_pass(rt, ft, int(k), batch_size)


def check_k(k: int, n_real: int, n_fake: int) -> None:
    for what, n in (("real", n_real), ("fake", n_fake)):
        if k >= n:
            raise ValueError(f"prdc: k={k} needs more than k samples in each set, {what} has "
                             f"{n}; lower k or use more samples")
