"""Image statistics, real against generated: intensity and colour histograms, their distances,
colour moments.

Pixels are integers 0..255, so everything starts from exact per-value counts (int64, accumulated
chunk by chunk, so a memmap is read once and never held in memory as a whole). Histograms fold
those counts into bins; moments are computed from them in float64 with two passes over 256
values, which is exact for constant images and free of the cancellation of running power sums.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

CHANNELS = ("grey", "red", "green", "blue")
COLOURS = ("red", "green", "blue")
LEVELS = 256
CHUNK_PIXELS = 1 << 22        # pixels per chunk: ~4 MP, a few tens of MB of temporaries


def _check_images(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 \
            or images.shape[-1] != 3:
        raise ValueError("expected uint8 images N x H x W x 3, got "
                         f"{getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}")
    if len(images) == 0:
        raise ValueError("no images")


def _luma(chunk: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B, rounded to the nearest integer.

    Integer arithmetic, so the result is exact and the same on every machine.
    """
    c = chunk.astype(np.uint32)
    return (299 * c[..., 0] + 587 * c[..., 1] + 114 * c[..., 2] + 500) // 1000


def value_counts(images: np.ndarray) -> dict[str, np.ndarray]:
    """How many pixels take each value 0..255, per channel in CHANNELS (int64, length 256)."""
    _check_images(images)
    counts = {c: np.zeros(LEVELS, dtype=np.int64) for c in CHANNELS}
    step = max(1, CHUNK_PIXELS // (images.shape[1] * images.shape[2]))
    for start in range(0, len(images), step):
        chunk = np.asarray(images[start:start + step])
        counts["grey"] += np.bincount(_luma(chunk).ravel(), minlength=LEVELS)
        for i, c in enumerate(COLOURS):
            counts[c] += np.bincount(chunk[..., i].ravel(), minlength=LEVELS)
    return counts


def bin_centres(bins: int) -> np.ndarray:
    """Centre of each of `bins` equal bins over the values 0..255, in intensity units.

    Bin k holds the values v with k <= v * bins / 256 < k + 1; with 256 bins the centres are the
    values themselves, with 64 bins they are 1.5, 5.5, ...
    """
    _check_bins(bins)
    return (np.arange(bins) + 0.5) * (LEVELS / bins) - 0.5


def _check_bins(bins: int) -> None:
    if not 1 <= bins <= LEVELS:
        raise ValueError(f"bins must be in 1..{LEVELS}, got {bins}")


def histograms(images: np.ndarray, bins: int) -> dict[str, np.ndarray]:
    """Fraction of pixels in each of `bins` equal bins over 0..255 (each sums to 1), per CHANNELS."""
    _check_bins(bins)
    which_bin = np.arange(LEVELS) * bins // LEVELS
    out = {}
    for c, counts in value_counts(images).items():
        folded = np.bincount(which_bin, weights=counts.astype(np.float64), minlength=bins)
        out[c] = folded / folded.sum()
    return out


def _as_distribution(p: np.ndarray, what: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1 or not 1 <= len(p) <= LEVELS:
        raise ValueError(f"{what}: expected a histogram of 1..{LEVELS} bins, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"{what}: a histogram needs finite, non-negative weights with a positive sum")
    return p / p.sum()


def histogram_distances(p: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """Distances between two histograms over the same bins of 0..255.

    w1: Wasserstein-1 (earth mover's) in intensity units, mass at the bin centres;
    js: Jensen-Shannon divergence in bits, 0..1; ks: Kolmogorov-Smirnov, max |CDF_p - CDF_q|.
    """
    p, q = _as_distribution(p, "p"), _as_distribution(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"histograms have different bins: {len(p)} vs {len(q)}")
    centres = bin_centres(len(p))
    js = float(jensenshannon(p, q, base=2) ** 2)
    # scipy returns the square root of a sum that round-off can push a hair below 0 for
    # near-identical inputs; the divergence itself is then 0, not NaN
    if np.isnan(js):
        js = 0.0
    return {
        "w1": float(wasserstein_distance(centres, centres, p, q)),
        "js": js,
        "ks": float(np.abs(np.cumsum(p) - np.cumsum(q)).max()),
    }


def _moments(counts: np.ndarray) -> dict[str, float]:
    """Mean, std (population) and skewness (Fisher-Pearson g1) of values 0..255 with these counts."""
    v = np.arange(LEVELS, dtype=np.float64)
    w = counts.astype(np.float64) / counts.sum()
    mean = float(w @ v)
    d = v - mean
    var = float(w @ d ** 2)
    std = float(np.sqrt(var))
    # a constant channel has no spread and no asymmetry: skewness 0 rather than 0/0
    skew = float((w @ d ** 3) / std ** 3) if std > 0 else 0.0
    return {"mean": mean, "std": std, "skew": skew}


def colour_moments(images: np.ndarray) -> dict[str, dict[str, float]]:
    """Per colour channel (red, green, blue): mean, std and skewness of pixel values in 0..255."""
    counts = value_counts(images)
    return {c: _moments(counts[c]) for c in COLOURS}
