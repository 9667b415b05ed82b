"""Image statistics, real against generated: intensity, colour, hue and saturation histograms,
their distances, colour moments.

Pixels are integers 0..255, so everything starts from exact per-value counts (int64, accumulated
chunk by chunk, so a memmap is read once and never held in memory as a whole). Histograms fold
those counts into bins; moments are computed from them in float64 with two passes over 256
values, which is exact for constant images and free of the cancellation of running power sums.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

CHANNELS = ("grey", "red", "green", "blue")
COLOURS = ("red", "green", "blue")
LEVELS = 256
CHUNK_PIXELS = 1 << 22        # pixels per chunk: ~4 MP, a few tens of MB of temporaries


def check_images(images: np.ndarray) -> None:
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
    check_images(images)
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
    return histograms_from_counts(value_counts(images), bins)


def histograms_from_counts(counts: dict[str, np.ndarray], bins: int) -> dict[str, np.ndarray]:
    """`histograms` from `value_counts` (made once for the histograms and the colour moments)."""
    _check_bins(bins)
    which_bin = np.arange(LEVELS) * bins // LEVELS
    out = {}
    for c, n in counts.items():
        folded = np.bincount(which_bin, weights=n.astype(np.float64), minlength=bins)
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
    return colour_moments_from_counts(value_counts(images))


def colour_moments_from_counts(counts: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """`colour_moments` from `value_counts`."""
    return {c: _moments(counts[c]) for c in COLOURS}


# ---- hue and saturation --------------------------------------------------------------------------
#
# OpenCV's full-range HSV for uint8 (cv2.COLOR_RGB2HSV_FULL): hue 0..255 for 0..360 degrees
# (red 0, green 85, blue 171, and 256 wraps to 0), saturation S = 255 (max - min) / max.
# Checked against the float formula on 200k random colours: never more than one level off.

HSV_CHANNELS = ("hue", "saturation")
HUE_DEGREES = 360.0


def hue_bin_centres(bins: int) -> np.ndarray:
    """Centre of each of `bins` hue bins, in degrees: 0, 360/bins, ...

    Hue bins are centred on multiples of 360/bins, so bin 0 straddles red (0 degrees) and, when
    `bins` is a multiple of 6, every primary and secondary colour sits in the middle of a bin.
    """
    _check_bins(bins)
    return np.arange(bins) * (HUE_DEGREES / bins)


def _hsv_counts(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per hue value 0..255 the summed chroma (max - min) of its pixels, and per saturation value
    0..255 the number of pixels.

    Both are integers (the chroma sums as float64, exact below 2**53, i.e. for any 200k x 64 x 64
    set), so the result does not depend on how the images are split into chunks.
    """
    check_images(images)
    hue = np.zeros(LEVELS, dtype=np.float64)
    saturation = np.zeros(LEVELS, dtype=np.int64)
    w = images.shape[2]
    step = max(1, CHUNK_PIXELS // (images.shape[1] * w))
    for start in range(0, len(images), step):
        chunk = np.ascontiguousarray(images[start:start + step])
        # cvtColor takes one 2-D image: stack the chunk's images on top of each other
        hsv = cv2.cvtColor(chunk.reshape(-1, w, 3), cv2.COLOR_RGB2HSV_FULL)
        r, g, b = chunk[..., 0], chunk[..., 1], chunk[..., 2]
        # element-wise max/min of the three planes: 25x faster than a reduction over the last axis
        chroma = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
        hue += np.bincount(hsv[..., 0].ravel(), weights=chroma.ravel(), minlength=LEVELS)
        saturation += np.bincount(hsv[..., 1].ravel(), minlength=LEVELS)
    return hue, saturation


def hsv_histograms(images: np.ndarray, bins: int) -> dict[str, np.ndarray]:
    """Hue and saturation histograms of `bins` bins each, summing to 1.

    hue: fraction of the images' chroma (max - min of R, G, B, 0..255) falling in each hue bin
    (centres in `hue_bin_centres`). The hue of a grey pixel is undefined and that of a pixel with
    little chroma is noise (one level of R, G or B turns it by about 60/chroma degrees), so each
    pixel counts in proportion to its chroma: grey pixels not at all, vivid ones fully. Chroma
    rather than HSV saturation, because saturation is large for dark pixels such as (3, 0, 0),
    whose hue is just as unreliable. If no pixel has any chroma (all images grey) the hue histogram
    is undefined and every entry is NaN.
    saturation: fraction of pixels in each of `bins` equal bins over 0..255 (as `histograms`;
    centres in `bin_centres`), grey pixels included (they are at 0).
    """
    _check_bins(bins)
    hue_chroma, sat_counts = _hsv_counts(images)
    # hue bin k holds the values v with -1/2 <= v * bins / 256 - k < 1/2, k taken modulo bins
    hue_bin = (np.arange(LEVELS) * bins + LEVELS // 2) // LEVELS % bins
    hue = np.bincount(hue_bin, weights=hue_chroma, minlength=bins)
    total = hue.sum()
    hue = hue / total if total > 0 else np.full(bins, np.nan)
    sat = np.bincount(np.arange(LEVELS) * bins // LEVELS, weights=sat_counts.astype(np.float64),
                      minlength=bins)
    return {"hue": hue, "saturation": sat / sat.sum()}


def circular_wasserstein(p: np.ndarray, q: np.ndarray, period: float = HUE_DEGREES) -> float:
    """Wasserstein-1 between two histograms of equal bins around a circle of length `period`.

    With D the difference of the two CDFs (bin by bin) and w = period / bins the bin width,
    W1 = min over c of w * sum |D - c|, the minimum reached at c = median(D) (Rabin, Delon and
    Gousseau, "Transportation distances on the circle", JMIV 2011). Moving mass across 0 is allowed: mass in
    the first bin and in the last is one bin apart, not bins - 1.
    """
    p, q = _as_distribution(p, "p"), _as_distribution(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"histograms have different bins: {len(p)} vs {len(q)}")
    d = np.cumsum(p - q)
    return float(np.abs(d - np.median(d)).sum() * (period / len(p)))


def _kuiper(p: np.ndarray, q: np.ndarray) -> float:
    """Kuiper's statistic, max over arcs |P(arc) - Q(arc)|: Kolmogorov-Smirnov made independent of
    where the circle is cut."""
    d = np.cumsum(_as_distribution(p, "p") - _as_distribution(q, "q"))
    return float(max(d.max(), 0.0) - min(d.min(), 0.0))


def hsv_distances(p: dict[str, np.ndarray],
                  q: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Distances between two `hsv_histograms` results, per HSV_CHANNELS.

    saturation: as `histogram_distances` (w1 in saturation levels 0..255, js in bits, ks).
    hue: w1 is `circular_wasserstein` in degrees (0..180); js in bits (it does not depend on bin
    order); ks is Kuiper's statistic (0..1), the circular form of Kolmogorov-Smirnov. All three are
    NaN when either hue histogram is (images without any chroma).
    """
    if any(np.isnan(np.asarray(h["hue"], dtype=np.float64)).any() for h in (p, q)):
        hue = {"w1": float("nan"), "js": float("nan"), "ks": float("nan")}
    else:
        hue = histogram_distances(p["hue"], q["hue"])
        hue["w1"] = circular_wasserstein(p["hue"], q["hue"])
        hue["ks"] = _kuiper(p["hue"], q["hue"])
    return {"hue": hue, "saturation": histogram_distances(p["saturation"], q["saturation"])}
