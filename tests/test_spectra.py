"""Tests of the radially averaged power spectra and their distance (rnngan.metrics.spectra)."""
from __future__ import annotations

import numpy as np
import pytest

from rnngan.metrics import spectra
from rnngan.metrics.spectra import power_spectrum, spectral_distance, spectrum_frequencies


def _noise(n: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _blobs(n: int, size: int, seed: int, sigma: float = 3.0) -> np.ndarray:
    """One Gaussian blob of a random colour per image, near the centre: smooth, no sharp edges."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    c = rng.uniform(size * 0.3, size * 0.7, (n, 2))
    g = np.exp(-((y - c[:, :1, None]) ** 2 + (x - c[:, 1:, None]) ** 2) / (2 * sigma ** 2))
    return np.rint(g[..., None] * rng.uniform(100, 255, (n, 1, 1, 3))).astype(np.uint8)


def _natural(n: int, size: int, seed: int) -> np.ndarray:
    """Images with a natural-image-like spectrum: random Fourier coefficients of amplitude 1/f
    (periodic, so no edge effects), plus a little pixel noise."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)
    r = np.hypot(f[:, None], f[None, :])
    r[0, 0] = 1.0
    coef = (rng.normal(size=(n, 3, size, size)) + 1j * rng.normal(size=(n, 3, size, size))) / r
    x = np.fft.ifft2(coef).real
    x = x / x.std(axis=(2, 3), keepdims=True) * 40 + 128 + rng.normal(0, 4, x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def _reference_spectrum(images: np.ndarray) -> np.ndarray:
    """The textbook way: full fft2, fftshift, average over rings around the centre."""
    h, w = images.shape[1:3]
    grey = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    power = np.fft.fftshift(np.abs(np.fft.fft2(grey)) ** 2, axes=(1, 2)).mean(axis=0) / (h * w)
    i, j = np.indices((h, w))
    size = min(h, w)
    ring = np.rint(np.hypot((i - h // 2) / h, (j - w // 2) / w) * size).astype(int)
    return np.array([power[ring == k].mean() for k in range(1, size // 2 + 1)]) / power.mean()


@pytest.mark.parametrize("shape", [(32, 32), (31, 31), (24, 32)])
def test_power_spectrum_matches_full_fft2_with_fftshift(shape):
    images = _noise(5, 32, seed=0)[:, :shape[0], :shape[1]]
    np.testing.assert_allclose(power_spectrum(images), _reference_spectrum(images), rtol=1e-10)


def test_frequencies_run_from_one_over_size_to_half_a_cycle_per_pixel():
    f = spectrum_frequencies(32)
    assert len(f) == 16 and f[0] == 1 / 32 and f[-1] == 0.5
    assert len(power_spectrum(_noise(2, 32, seed=1))) == 16
    assert len(spectrum_frequencies(24, 32)) == len(power_spectrum(_noise(2, 32, seed=1)[:, :24])) == 12


@pytest.mark.parametrize("size", [32, 64])
def test_white_noise_has_a_flat_spectrum_at_one_whatever_the_size(size):
    s = power_spectrum(_noise(300, size, seed=2))
    assert np.abs(s - 1).max() < 0.15


def test_a_smooth_image_has_a_decaying_spectrum():
    s = power_spectrum(_blobs(20, 32, seed=3))
    assert (np.diff(s[:6]) < 0).all()      # then it reaches the floor of rounding to uint8
    assert s[0] > 1e4 * s[-1]


@pytest.mark.parametrize("axis", [1, 2])
def test_stripes_of_period_two_put_all_power_at_half_a_cycle_per_pixel(axis):
    images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    index = [slice(None)] * 4
    index[axis] = slice(None, None, 2)
    images[tuple(index)] = 255
    s = power_spectrum(images)
    assert spectrum_frequencies(32)[s.argmax()] == 0.5
    assert s[:-1].max() < 1e-20


def test_a_pixel_checkerboard_lies_in_the_corners_beyond_half_a_cycle_per_pixel():
    # its power is at (0.5, 0.5) cycles/pixel, 0.71 from zero: outside every ring
    images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    images[:, ::2, ::2] = images[:, 1::2, 1::2] = 255
    assert power_spectrum(images).max() < 1e-20


def test_power_spectrum_does_not_depend_on_chunk_size_or_memmap(tmp_path, monkeypatch):
    images = _natural(13, 16, seed=4)
    path = tmp_path / "x.npy"
    np.save(path, images)
    whole = power_spectrum(images, chunk=len(images))
    for chunk in (1, 5):
        np.testing.assert_allclose(power_spectrum(np.load(path, mmap_mode="r"), chunk=chunk), whole,
                                   rtol=1e-12)
    monkeypatch.setattr(spectra, "CHUNK_PIXELS", 16 * 16 * 4)   # the default chunk: 4 images
    np.testing.assert_allclose(power_spectrum(images), whole, rtol=1e-12)


def test_power_spectrum_is_a_mean_over_images_not_a_sum():
    images = _natural(6, 16, seed=5)
    np.testing.assert_allclose(power_spectrum(np.concatenate([images, images])),
                               power_spectrum(images), rtol=1e-12)


def test_constant_images_have_no_spectrum():
    assert np.isnan(power_spectrum(np.full((3, 16, 16, 3), 77, dtype=np.uint8))).all()


def test_spectral_distance_is_zero_for_identical_sets_and_symmetric():
    a, b = power_spectrum(_natural(50, 32, seed=6)), power_spectrum(_blobs(50, 32, seed=7))
    assert spectral_distance(a, a) == 0.0
    assert spectral_distance(a, b) == spectral_distance(b, a) > 0


def test_nearest_neighbour_upsampling_is_further_than_a_second_sample():
    originals = _natural(100, 32, seed=8)
    second = _natural(100, 32, seed=9)
    upsampled = np.repeat(np.repeat(originals[:, ::2, ::2], 2, axis=1), 2, axis=2)
    real = power_spectrum(originals)
    same = spectral_distance(real, power_spectrum(second))
    artefacts = spectral_distance(real, power_spectrum(upsampled))
    assert artefacts > 5 * same


def test_spectral_distance_is_the_mean_absolute_log10_difference():
    assert spectral_distance(np.array([1.0, 10.0]), np.array([10.0, 10.0])) == pytest.approx(0.5)
    # no power at a frequency counts as POWER_FLOOR, not as -inf
    assert spectral_distance(np.array([0.0]), np.array([1.0])) == pytest.approx(12.0)


def test_spectral_distance_rejects_spectra_of_different_sizes():
    with pytest.raises(ValueError, match="same length"):
        spectral_distance(np.ones(16), np.ones(32))
