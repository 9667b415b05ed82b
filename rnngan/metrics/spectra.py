"""Radially averaged power spectra of images, real against generated.

Up-sampling in a generator (transposed convolutions, nearest-neighbour or bilinear up-sampling)
leaves its mark at high spatial frequencies, where natural images have little power: bumps,
plateaus or a missing tail in the radially averaged spectrum even when FID is good (Durall, Keuper
and Keuper 2020, "Watch your up-convolution: CNN based generative deep neural networks are failing
to reproduce spectral distributions", CVPR; Dzanic, Shah and Witherden 2020, "Fourier spectrum
discrepancies in deep network generated images", NeurIPS).

Steps: grey image (BT.601 luma, unrounded) minus its own mean -> |rfft2|^2 / (H W) (the periodogram,
whose mean over all frequencies is the image's variance) summed over images in float64, chunk by
chunk -> averaged over rings of equal radius -> divided by the mean over all frequencies. The
result is a relative power density: white noise is 1 at every frequency, whatever the image size,
count or contrast, so spectra of 32 and 64 px sets, or of 5k and 200k images, compare directly.
"""
from __future__ import annotations

import numpy as np

from rnngan.metrics.histograms import check_images

CHUNK_PIXELS = 1 << 16        # pixels per chunk: 64k stay in cache, 2x faster than 1M
POWER_FLOOR = 1e-12           # relative power below this counts as this in spectral_distance


def _rings(height: int, width: int) -> tuple[np.ndarray, np.ndarray, int]:
    """For the rfft2 half-plane of an H x W image: each frequency's ring, each one's weight, and
    the number of rings.

    The ring is the distance from zero frequency in cycles/pixel times S = min(H, W), rounded to
    the nearest integer (for square images simply the rounded distance in frequency indices); rings
    1..S//2 are kept, i.e. up to 0.5 cycles/pixel, the Nyquist frequency along an axis. Ring 0 is
    the mean, which is subtracted, and rings beyond S//2 are the corners of the frequency square,
    which no full circle covers. The weight counts each half-plane frequency for itself and its
    mirror image -f, which has the same power, except for the columns that are their own mirror
    (zero frequency and, for even widths, Nyquist), so a weighted half-plane sum is a full-plane
    sum.
    """
    size = min(height, width)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    ring = np.rint(np.hypot(fy, fx) * size).astype(np.int64)
    weight = np.full(fx.shape, 2.0)
    weight[0, 0] = 1.0
    if width % 2 == 0:
        weight[0, -1] = 1.0
    return ring, np.broadcast_to(weight, ring.shape), size // 2


def spectrum_frequencies(height: int, width: int | None = None) -> np.ndarray:
    """Frequency of each entry of `power_spectrum` for H x W images, in cycles/pixel:
    1/S, 2/S, ..., (S//2)/S with S = min(H, W); 0.5 last for even S."""
    size = min(height, height if width is None else width)
    return np.arange(1, size // 2 + 1) / size


def power_spectrum(images: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """Mean radially averaged power spectrum of N x H x W x 3 uint8 images, relative to total power.

    Entry k is the mean over images and over the frequencies whose distance from zero rounds to
    ring k + 1 (see `spectrum_frequencies`) of the grey image's periodogram, divided by its mean
    over every frequency: the fraction of the images' variance at that frequency, times the number
    of frequencies, so white noise gives 1 everywhere. Grey is BT.601 luma
    0.299 R + 0.587 G + 0.114 B, each image minus its own mean, no window (as for Durall et al.;
    the jump between opposite image edges adds some power along the frequency axes).

    `chunk` images are transformed at a time (default: about CHUNK_PIXELS pixels), so a memmap is
    read once and memory stays bounded; sums are float64, so the chunk size changes results only
    in the last digits. If every image is constant there is no power to divide by and every entry
    is NaN.
    """
    check_images(images)
    n, height, width = images.shape[:3]
    if chunk is None:
        chunk = max(1, CHUNK_PIXELS // (height * width))
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 image, got {chunk}")
    ring, weight, rings = _rings(height, width)
    total = np.zeros(ring.shape, dtype=np.float64)     # summed periodograms, rfft2 half-plane
    for start in range(0, n, chunk):
        c = np.asarray(images[start:start + chunk])
        # (c, H, W) float64; a product with each plane, twice as fast as c @ [0.299, 0.587, 0.114]
        x = 0.299 * c[..., 0] + 0.587 * c[..., 1] + 0.114 * c[..., 2]
        x -= x.mean(axis=(1, 2), keepdims=True)
        f = np.fft.rfft2(x)                                           # (c, H, W//2+1) complex
        total += (f.real ** 2 + f.imag ** 2).sum(axis=0)
    total /= n * height * width                                       # mean periodogram
    keep = (ring >= 1) & (ring <= rings)
    ring_power = np.bincount(ring[keep] - 1, weights=(total * weight)[keep], minlength=rings)
    ring_size = np.bincount(ring[keep] - 1, weights=weight[keep], minlength=rings)
    variance = (total * weight).sum() / (height * width)              # mean over the full plane
    if variance <= 0:
        return np.full(rings, np.nan)
    return ring_power / ring_size / variance


def spectral_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Mean over frequency rings of |log10 real - log10 fake|, two `power_spectrum` results.

    In decades: 0.1 means the spectra differ by a factor of about 1.26 on average. Logarithms, so
    the high frequencies, with little power but where up-sampling artefacts show, count as much as
    the low. Power below POWER_FLOOR (only synthetic images have none at a frequency) counts as
    POWER_FLOOR. NaN when either spectrum is (constant images).
    """
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 1 or real.shape != fake.shape or len(real) == 0:
        raise ValueError(f"spectra must be 1-D and of the same length (the same image size), got "
                         f"shapes {real.shape} and {fake.shape}")
    if (real < 0).any() or (fake < 0).any():
        raise ValueError("power spectra cannot be negative")
    diff = np.log10(np.maximum(real, POWER_FLOOR)) - np.log10(np.maximum(fake, POWER_FLOOR))
    return float(np.abs(diff).mean())
