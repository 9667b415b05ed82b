"""Tests of the hue and saturation histograms and their distances (rnngan.metrics.histograms)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

import rnngan.metrics.histograms as hist
from rnngan.metrics.histograms import (HSV_CHANNELS, circular_wasserstein, histogram_distances,
                                       hsv_distances, hsv_histograms, hue_bin_centres)

# the six primary and secondary colours and their hue in degrees
HUES = {(255, 0, 0): 0, (255, 255, 0): 60, (0, 255, 0): 120, (0, 255, 255): 180,
        (0, 0, 255): 240, (255, 0, 255): 300}


def _constant(value, n: int = 2, size: int = 4) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.uint8), (n, size, size, 3)).copy()


def _random_images(n: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _delta(bins: int, at: int) -> np.ndarray:
    p = np.zeros(bins)
    p[at] = 1.0
    return p


def _circular_w1_by_linear_programming(p: np.ndarray, q: np.ndarray, period: float) -> float:
    """The transport problem itself: move p onto q, cost = distance along the circle."""
    n = len(p)
    i = np.arange(n)
    steps = np.abs(i[:, None] - i[None, :])
    cost = np.minimum(steps, n - steps) * (period / n)
    rows = np.kron(np.eye(n), np.ones(n))          # sum_j plan[i, j] = p[i]
    cols = np.kron(np.ones(n), np.eye(n))          # sum_i plan[i, j] = q[j]
    res = linprog(cost.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.concatenate([p, q]),
                  bounds=(0, None), method="highs")
    assert res.success
    return float(res.fun)


# ---- histograms ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bins", [256, 64, 12])
def test_hsv_histograms_have_hue_and_saturation_each_summing_to_one(bins):
    h = hsv_histograms(_random_images(6, 16, seed=0), bins)
    assert tuple(h) == HSV_CHANNELS
    for c in HSV_CHANNELS:
        assert h[c].shape == (bins,) and (h[c] >= 0).all()
        assert h[c].sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("bins", [6, 12, 64, 256])
@pytest.mark.parametrize("rgb", list(HUES))
def test_pure_colours_land_in_the_bin_of_their_hue(rgb, bins):
    h = hsv_histograms(_constant(rgb), bins)
    expected = round(HUES[rgb] / 360 * bins) % bins
    assert h["hue"][expected] == 1.0
    assert h["saturation"][bins - 1] == 1.0          # fully saturated
    assert hue_bin_centres(bins)[expected] == pytest.approx(HUES[rgb], abs=180 / bins)


def test_reds_on_both_sides_of_zero_degrees_share_bin_zero():
    images = np.concatenate([_constant([255, 0, 12]), _constant([255, 12, 0])])   # -2.8, +2.8 deg
    h = hsv_histograms(images, 12)
    assert h["hue"][0] == 1.0


def test_grey_images_have_saturation_zero_and_an_undefined_hue():
    h = hsv_histograms(np.concatenate([_constant(0), _constant(128), _constant(255)]), 16)
    assert h["saturation"][0] == 1.0
    assert np.isnan(h["hue"]).all()
    d = hsv_distances(h, hsv_histograms(_constant([255, 0, 0]), 16))
    assert all(np.isnan(v) for v in d["hue"].values())
    assert d["saturation"]["ks"] == pytest.approx(1.0)


def test_hue_counts_each_pixel_by_its_chroma_so_grey_and_dark_pixels_barely_count():
    images = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    images[0, :2] = [255, 0, 0]        # red, chroma 255
    images[0, 2, :] = [128, 128, 128]  # grey, chroma 0
    images[0, 3, :] = [0, 3, 0]        # near-black green: HSV saturation 255 but chroma 3
    h = hsv_histograms(images, 6)
    # 8 red pixels of chroma 255, 4 grey of chroma 0, 4 dark green of chroma 3
    total = 8 * 255 + 4 * 3
    assert h["hue"][0] == pytest.approx(8 * 255 / total) and h["hue"][2] == pytest.approx(4 * 3 / total)
    # saturation counts pixels, not chroma: the dark green is as saturated as the red
    assert h["saturation"][0] == pytest.approx(0.25) and h["saturation"][5] == pytest.approx(0.75)


def test_hsv_histograms_of_a_memmap_streamed_in_chunks_match_in_memory(tmp_path, monkeypatch):
    images = _random_images(12, 16, seed=1)
    path = tmp_path / "x.npy"
    np.save(path, images)
    whole = hsv_histograms(images, 32)
    monkeypatch.setattr(hist, "CHUNK_PIXELS", 16 * 16 * 5)   # 5 images a chunk, the last one short
    chunked = hsv_histograms(np.load(path, mmap_mode="r"), 32)
    for c in HSV_CHANNELS:
        np.testing.assert_array_equal(whole[c], chunked[c])


def test_hsv_histograms_reject_bad_bins_and_bad_images():
    with pytest.raises(ValueError, match="bins"):
        hsv_histograms(_constant(0), 0)
    with pytest.raises(ValueError, match="uint8"):
        hsv_histograms(_constant(0).astype(np.float32), 8)


# ---- circular Wasserstein and the distances ------------------------------------------------------

@pytest.mark.parametrize("bins", [8, 36])
def test_circular_w1_of_a_point_mass_and_its_rotation_is_the_shorter_arc(bins):
    width = 360 / bins
    for k in range(bins):
        d = circular_wasserstein(_delta(bins, 0), _delta(bins, k))
        assert d == pytest.approx(min(k, bins - k) * width)


def test_circular_w1_wraps_around_zero():
    # first bin against last bin: one bin apart along the circle, not bins - 1 as on a line
    assert circular_wasserstein(_delta(36, 0), _delta(36, 35)) == pytest.approx(10.0)
    assert histogram_distances(_delta(36, 0), _delta(36, 35))["w1"] > 200


def test_circular_w1_of_a_spread_histogram_rotated_by_k_bins_is_k_bins():
    p = np.zeros(36)
    p[[3, 4, 5]] = [0.2, 0.5, 0.3]
    for k in range(1, 14):                   # support plus shift within half the circle
        assert circular_wasserstein(p, np.roll(p, k)) == pytest.approx(k * 10.0)
        assert circular_wasserstein(p, np.roll(p, -k)) == pytest.approx(k * 10.0)


def test_circular_w1_of_a_uniform_histogram_and_its_rotation_is_zero():
    p = np.full(12, 1 / 12)
    assert circular_wasserstein(p, np.roll(p, 5)) == pytest.approx(0.0, abs=1e-12)


def test_circular_w1_matches_the_transport_problem_solved_by_linear_programming():
    rng = np.random.default_rng(2)
    for _ in range(5):
        p, q = rng.random(8) ** 3, rng.random(8) ** 3
        p, q = p / p.sum(), q / q.sum()
        assert circular_wasserstein(p, q) == pytest.approx(
            _circular_w1_by_linear_programming(p, q, 360.0), rel=1e-6, abs=1e-9)


def test_hsv_distances_of_identical_histograms_are_zero():
    h = hsv_histograms(_random_images(3, 16, seed=3), 32)
    d = hsv_distances(h, h)
    for c in HSV_CHANNELS:
        assert d[c] == pytest.approx({"w1": 0.0, "js": 0.0, "ks": 0.0}, abs=1e-12)


def test_hue_distances_do_not_depend_on_where_the_circle_is_cut():
    rng = np.random.default_rng(4)
    p, q = rng.random(24), rng.random(24)
    p, q = p / p.sum(), q / q.sum()
    sat = np.full(24, 1 / 24)
    base = hsv_distances({"hue": p, "saturation": sat}, {"hue": q, "saturation": sat})["hue"]
    assert histogram_distances(p, q)["ks"] != pytest.approx(
        histogram_distances(np.roll(p, 7), np.roll(q, 7))["ks"])   # linear KS would change
    for k in (1, 7, 23):
        rolled = hsv_distances({"hue": np.roll(p, k), "saturation": sat},
                               {"hue": np.roll(q, k), "saturation": sat})["hue"]
        assert rolled == pytest.approx(base, rel=1e-9)


def test_hue_ks_is_kuipers_largest_difference_over_arcs():
    # p puts 1/2 on bin 0, q puts it on bin 11; the arc {0} (equally, the arc 1..11) differs by 1/2
    p = np.full(12, 0.5 / 11)
    p[0] = 0.5
    q = np.roll(p, -1)
    d = hsv_distances({"hue": p, "saturation": p}, {"hue": q, "saturation": q})
    assert d["hue"]["ks"] == pytest.approx(0.5 - 0.5 / 11)
    assert d["hue"]["w1"] == pytest.approx(30 * (0.5 - 0.5 / 11))


def test_saturation_distances_are_the_linear_histogram_distances():
    a = hsv_histograms(_random_images(3, 16, seed=5), 64)
    b = hsv_histograms(_constant([200, 100, 50]), 64)
    assert hsv_distances(a, b)["saturation"] == histogram_distances(a["saturation"], b["saturation"])
