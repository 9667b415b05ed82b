"""Tests of the evaluation library: feature extractors, FID/KID, histograms and colour moments."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from rnngan.metrics.features import EXTRACTORS, FeatureExtractor, extract_features, get_extractor
from rnngan.metrics.fid import feature_statistics, fid, fid_from_statistics, kid
from rnngan.metrics.histograms import (CHANNELS, bin_centres, colour_moments, histogram_distances,
                                       histograms)


def _images(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth random RGB images (blobs, not white noise), uint8 N x H x W x 3."""
    rng = np.random.default_rng(seed)
    low = rng.random((n, 3, 4, 4), dtype=np.float32)
    up = torch.nn.functional.interpolate(torch.from_numpy(low), size=(size, size), mode="bicubic",
                                         align_corners=False)
    noise = torch.from_numpy(rng.normal(0, 0.05, (n, 3, size, size)).astype(np.float32))
    x = ((up + noise).clamp(0, 1) * 255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def _gaussian(n: int, dim: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(shift, scale, (n, dim))


def _reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's matrix square root, all in float64."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _reference_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written out directly."""
    m, d = x.shape
    kxx, kyy, kxy = ((u @ v.T / d + 1) ** 3 for u, v in ((x, x), (y, y), (x, y)))
    off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(off - 2 * kxy.mean())


# ---- feature extractors --------------------------------------------------------------------------

# inception at 299 x 299 takes seconds per image on a CPU: tests/test_inception.py covers it
FAST_EXTRACTORS = ["pixels", "randinit"]

@pytest.fixture(scope="module")
def images32() -> np.ndarray:
    return _images(40, 32, seed=1)


@pytest.mark.parametrize("name", FAST_EXTRACTORS)
def test_extractor_output_shape_dtype_and_dim_match_declared(name, images32):
    extractor = get_extractor(name)
    assert isinstance(extractor, FeatureExtractor) and extractor.name
    out = extractor(torch.from_numpy(images32[:5]).permute(0, 3, 1, 2))
    assert out.shape == (5, extractor.dim) and out.dtype == torch.float32
    feats = extract_features(name, images32, batch_size=16)
    assert feats.shape == (len(images32), extractor.dim) and feats.dtype == np.float64
    assert np.isfinite(feats).all() and feats.std(axis=0).max() > 0


def test_declared_dims_are_512_for_randinit_and_768_for_pixels():
    assert get_extractor("randinit").dim == 512
    assert get_extractor("pixels").dim == 768


@pytest.mark.parametrize("name", FAST_EXTRACTORS)
@pytest.mark.parametrize("size", [32, 64])
def test_features_do_not_depend_on_batch_size(name, size):
    images = _images(30, size, seed=2)
    small = extract_features(name, images, batch_size=7)
    large = extract_features(name, images, batch_size=64)
    assert np.abs(small - large).max() <= 1e-5 * np.abs(large).max()


def test_randinit_is_identical_across_fresh_constructions(images32):
    a, b = get_extractor("randinit"), get_extractor("randinit")
    assert a.fingerprint() == b.fingerprint()
    np.testing.assert_array_equal(extract_features("randinit", images32), extract_features("randinit", images32))


def test_randinit_weights_match_the_pinned_fingerprint():
    # The same bits on every machine: if this fails, numbers made with randinit-v1 elsewhere are
    # no longer comparable, and the version in the name must be bumped.
    assert get_extractor("randinit").fingerprint() == \
        "dcb6c34be23792da0f83df630a9b561c7bcca1bca85ab4e7f53d67c7d12a0f19"
    assert get_extractor("randinit").name == "randinit-v1"


def test_building_randinit_leaves_the_global_torch_rng_alone():
    state = torch.get_rng_state()
    get_extractor("randinit")
    assert torch.equal(state, torch.get_rng_state())


def test_randinit_features_separate_different_image_sets():
    # blobs vs the same blobs darkened: a useful extractor must see the difference
    real = _images(200, 32, seed=3)
    other = _images(200, 32, seed=4)
    dark = (other // 2).astype(np.uint8)
    f_real, f_other, f_dark = (extract_features("randinit", x) for x in (real, other, dark))
    assert fid(f_real, f_dark) > 5 * fid(f_real, f_other)


def test_cuda_extraction_turns_tf32_convolutions_off_and_restores_the_flag():
    # only flags are touched, so this runs without a GPU
    from rnngan.metrics.features import _full_fp32

    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    with _full_fp32(torch.device("cuda")):
        assert conv.fp32_precision == "ieee"
    assert conv.fp32_precision == before
    with _full_fp32(torch.device("cpu")):
        assert conv.fp32_precision == before


def test_unknown_extractor_name_raises_value_error_listing_allowed_names():
    assert sorted(EXTRACTORS) == ["inception", *FAST_EXTRACTORS]
    with pytest.raises(ValueError, match="vgg.*allowed: inception, pixels, randinit"):
        get_extractor("vgg")
    with pytest.raises(ValueError, match="allowed"):
        extract_features("nope", _images(2, 32, seed=0))


def test_extract_features_rejects_non_uint8_or_channels_first_input():
    with pytest.raises(ValueError, match="uint8"):
        extract_features("pixels", np.zeros((2, 32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="N x H x W x 3"):
        extract_features("pixels", np.zeros((2, 3, 32, 32), dtype=np.uint8))


def test_extract_features_reads_a_memmap(tmp_path, images32):
    path = tmp_path / "images.npy"
    np.save(path, images32)
    mm = np.load(path, mmap_mode="r")
    np.testing.assert_array_equal(extract_features("pixels", mm, batch_size=9),
                                  extract_features("pixels", images32))


def test_pixels_features_are_block_means_in_unit_range():
    images = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    images[0, :2, :2, 0] = 255                        # the top-left 2x2 block of red, fully on
    images[0, :2, :2, 1] = [[255, 255], [0, 0]]       # ... of green, half on
    feats = extract_features("pixels", images).reshape(3, 16, 16)
    assert feats[0, 0, 0] == pytest.approx(1.0) and feats[1, 0, 0] == pytest.approx(0.5)
    assert feats.sum() == pytest.approx(1.5)


# ---- FID -----------------------------------------------------------------------------------------

def test_fid_of_a_set_against_itself_is_zero():
    f = _gaussian(500, 64, seed=0, scale=3.0)
    scale = np.trace(np.cov(f, rowvar=False))
    assert abs(fid(f, f)) < 1e-6 * scale


def test_fid_matches_scipy_sqrtm_reference_on_two_gaussians():
    rng = np.random.default_rng(5)
    a = _gaussian(500, 64, seed=6)
    mix = rng.normal(0, 0.3, (64, 64)) + np.eye(64)  # a correlated, shifted second Gaussian
    b = _gaussian(500, 64, seed=7, shift=0.2) @ mix
    expected = _reference_fid(a, b)
    assert expected > 1
    assert fid(a, b) == pytest.approx(expected, rel=1e-6)


def test_feature_statistics_are_float64_mean_and_unbiased_covariance():
    f = _gaussian(300, 8, seed=8).astype(np.float32)
    mu, sigma = feature_statistics(f)
    assert mu.dtype == sigma.dtype == np.float64 and mu.shape == (8,) and sigma.shape == (8, 8)
    np.testing.assert_allclose(mu, f.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(f.astype(np.float64), rowvar=False, ddof=1), rtol=1e-12)


def test_fid_works_for_one_dimensional_features():
    a, b = _gaussian(400, 1, seed=9), _gaussian(400, 1, seed=10, shift=2.0)
    # for 1-d Gaussians FID = (mu1 - mu2)^2 + (s1 - s2)^2
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert fid(a, b) == pytest.approx(expected, rel=1e-9)


def test_fid_from_statistics_equals_fid_on_features():
    a, b = _gaussian(200, 16, seed=11), _gaussian(200, 16, seed=12, shift=0.5)
    assert fid_from_statistics(*feature_statistics(a), *feature_statistics(b)) == fid(a, b)


def test_fid_rejects_mismatched_dims_and_too_few_samples():
    with pytest.raises(ValueError, match="dims differ"):
        fid(_gaussian(50, 8, seed=0), _gaussian(50, 9, seed=1))
    with pytest.raises(ValueError, match="at least 2 samples"):
        fid(_gaussian(1, 8, seed=0), _gaussian(50, 8, seed=1))
    with pytest.raises(ValueError, match="statistics do not match"):
        fid_from_statistics(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="NaN"):
        feature_statistics(np.full((5, 2), np.nan))


# ---- KID -----------------------------------------------------------------------------------------

def test_kid_of_two_samples_of_one_distribution_is_near_zero():
    a, b = _gaussian(600, 32, seed=13), _gaussian(600, 32, seed=14)
    mean, std = kid(a, b, subsets=20, subset_size=200)
    assert std > 0 and abs(mean) < 3 * std


def test_kid_of_shifted_distributions_is_clearly_positive():
    a, b = _gaussian(600, 32, seed=13), _gaussian(600, 32, seed=14, shift=0.5)
    same_mean, same_std = kid(a, _gaussian(600, 32, seed=15), subsets=20, subset_size=200)
    mean, std = kid(a, b, subsets=20, subset_size=200)
    assert mean > 10 * std and mean > 10 * abs(same_mean)


def test_kid_is_seeded():
    a, b = _gaussian(300, 16, seed=16), _gaussian(300, 16, seed=17, shift=0.1)
    assert kid(a, b, subsets=5, subset_size=100, seed=3) == kid(a, b, subsets=5, subset_size=100, seed=3)
    assert kid(a, b, subsets=5, subset_size=100, seed=3) != kid(a, b, subsets=5, subset_size=100, seed=4)


def test_kid_on_whole_sets_equals_direct_unbiased_cubic_mmd2():
    # one subset as large as both sets is a permutation of each, and MMD^2 ignores order
    a, b = _gaussian(150, 12, seed=18), _gaussian(150, 12, seed=19, shift=0.3, scale=1.2)
    mean, std = kid(a, b, subsets=1, subset_size=150)
    assert mean == pytest.approx(_reference_mmd2(a, b), rel=1e-9) and std == 0


def test_kid_rejects_subset_larger_than_a_set_and_mismatched_dims():
    with pytest.raises(ValueError, match="subset_size 100 is larger than a feature set"):
        kid(_gaussian(200, 8, seed=0), _gaussian(50, 8, seed=1), subsets=2, subset_size=100)
    with pytest.raises(ValueError, match="dims differ"):
        kid(_gaussian(50, 8, seed=0), _gaussian(50, 4, seed=1), subsets=2, subset_size=10)
    with pytest.raises(ValueError, match="subsets must be >= 1"):
        kid(_gaussian(50, 8, seed=0), _gaussian(50, 8, seed=1), subsets=0, subset_size=10)


# ---- FID and KID correctness (issue checklist) ---------------------------------------------------

def _correlated(n: int, dim: int, seed: int, spread: float = 2.0) -> np.ndarray:
    """Gaussian features whose covariance has eigenvalues spanning `spread` decades, rotated."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    scales = 10.0 ** np.linspace(0, -spread / 2, dim)       # std devs: variances over `spread` decades
    return (rng.normal(size=(n, dim)) * scales) @ q.T + rng.normal(0, 1, dim)


def _nuclear_norm_fid(a: np.ndarray, b: np.ndarray) -> float:
    """FID with tr sqrt(s1 s2) = nuclear norm of A B^T, A and B the centred rows / sqrt(n - 1).

    s1 s2 = A^T A B^T B has the non-zero eigenvalues of (A B^T)(A B^T)^T, so the trace of its
    square root is the sum of the singular values of the small n1 x n2 matrix A B^T: exact and
    well-conditioned when there are fewer samples than dims (singular covariances).
    """
    A = (a - a.mean(0)) / np.sqrt(len(a) - 1)
    B = (b - b.mean(0)) / np.sqrt(len(b) - 1)
    d = a.mean(0) - b.mean(0)
    nuclear = np.linalg.svd(A @ B.T, compute_uv=False).sum()
    return float(d @ d + (A * A).sum() + (B * B).sum() - 2 * nuclear)


def test_fid_of_a_correlated_set_against_itself_is_below_1e_6():
    f = _correlated(500, 64, seed=30)
    assert np.trace(np.cov(f, rowvar=False)) > 5      # not a trivially tiny scale
    assert abs(fid(f, f)) < 1e-6


def test_fid_matches_scipy_sqrtm_on_covariances_spanning_two_decades():
    a, b = _correlated(500, 64, seed=31), _correlated(500, 64, seed=32)
    expected = _reference_fid(a, b)
    assert expected > 1
    assert fid(a, b) == pytest.approx(expected, rel=1e-6)


def test_fid_matches_torch_fidelity_eigenvalue_route():
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    a, b = _correlated(800, 48, seed=33), _correlated(800, 48, seed=34, spread=1.0) * 1.3
    s1, s2 = ({"mu": mu, "sigma": sigma} for mu, sigma in map(feature_statistics, (a, b)))
    theirs = fid_statistics_to_metric(s1, s2, verbose=False)["frechet_inception_distance"]
    assert fid(a, b) == pytest.approx(theirs, rel=1e-9)


def test_feature_statistics_are_torch_fidelitys_to_the_bit():
    """feature_statistics writes out torch-fidelity's two numpy lines instead of importing it
    (importing it costs every analyze run torchvision's start-up): the same bits."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    a = _correlated(500, 40, seed=39)
    theirs = fid_features_to_statistics(torch.from_numpy(a))
    mu, sigma = feature_statistics(a)
    assert np.array_equal(mu, theirs["mu"]) and np.array_equal(sigma, theirs["sigma"])


def test_fid_with_singular_covariances_matches_the_nuclear_norm_reference():
    # 40 samples in 64 dims: both covariances are singular, Cholesky fails, the eigh route runs
    a, b = _gaussian(40, 64, seed=35), _gaussian(40, 64, seed=36, shift=0.3, scale=1.5)
    _, sigma = feature_statistics(a)
    assert int(torch.linalg.cholesky_ex(torch.from_numpy(sigma)).info) != 0
    assert fid(a, b) == pytest.approx(_nuclear_norm_fid(a, b), rel=1e-6)
    assert abs(fid(a, a)) < 1e-5 * np.trace(sigma)


def test_fid_does_not_depend_on_the_order_of_rows():
    a, b = _correlated(300, 32, seed=37), _correlated(300, 32, seed=38)
    perm = np.random.default_rng(0).permutation(300)
    assert fid(a[perm], b[perm[::-1]]) == pytest.approx(fid(a, b), rel=1e-9)


def test_fid_does_not_depend_on_the_feature_extraction_batch_size():
    images = _images(64, 16, seed=39)
    feats = [extract_features("randinit", images, batch_size=bs) for bs in (1, 7, 64)]
    # CPU float32 convolutions round differently per batch shape (here up to ~5e-7 of the largest
    # feature), so features agree to float32 rounding, not bit for bit, and FIDs to ~1e-7, not 1e-9
    for f in feats[1:]:
        assert np.abs(f - feats[0]).max() <= 1e-5 * np.abs(feats[0]).max()
    values = [fid(f[:32], f[32:]) for f in feats]
    assert values[0] > 1
    for v in values[1:]:
        assert v == pytest.approx(values[0], rel=1e-6)


def test_kid_of_two_samples_of_one_distribution_is_below_1e_3_and_3_std():
    a, b = _gaussian(1000, 64, seed=40, scale=0.5), _gaussian(1000, 64, seed=41, scale=0.5)
    mean, std = kid(a, b, subsets=20, subset_size=500)
    assert std > 0 and abs(mean) < 3 * std and abs(mean) < 1e-3
    shifted, _ = kid(a, _gaussian(1000, 64, seed=41, shift=0.1, scale=0.5), subsets=20, subset_size=500)
    assert shifted > 10 * max(abs(mean), std)       # the same check on a real difference fails


# ---- histograms and colour moments ---------------------------------------------------------------

def _constant(value, n: int = 3, size: int = 8) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.uint8), (n, size, size, 3)).copy()


@pytest.mark.parametrize("bins", [256, 64, 10])
def test_histograms_cover_every_channel_and_sum_to_one(bins):
    h = histograms(_images(10, 32, seed=20), bins)
    assert tuple(h) == CHANNELS
    for c in CHANNELS:
        assert h[c].shape == (bins,) and (h[c] >= 0).all()
        assert h[c].sum() == pytest.approx(1.0, abs=1e-12)


def test_histograms_put_each_channel_and_bt601_luma_in_the_right_bin():
    h = histograms(_constant([200, 100, 50]), bins=256)
    grey = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)   # 124
    for c, value in (("red", 200), ("green", 100), ("blue", 50), ("grey", grey)):
        assert h[c][value] == 1.0
    assert histograms(_constant([255, 255, 255]), bins=64)["grey"][63] == 1.0


def test_histograms_of_a_memmap_streamed_in_chunks_match_in_memory(tmp_path, monkeypatch):
    import rnngan.metrics.histograms as hist

    images = _images(12, 32, seed=21)
    path = tmp_path / "x.npy"
    np.save(path, images)
    whole = histograms(images, 64)
    monkeypatch.setattr(hist, "CHUNK_PIXELS", 32 * 32 * 5)   # 5 images a chunk, the last one short
    chunked = histograms(np.load(path, mmap_mode="r"), 64)
    for c in CHANNELS:
        np.testing.assert_array_equal(whole[c], chunked[c])


def test_bin_centres_are_intensity_values_at_256_bins():
    np.testing.assert_array_equal(bin_centres(256), np.arange(256))
    assert bin_centres(64)[:2].tolist() == [1.5, 5.5]


def test_identical_histograms_have_zero_distances():
    h = histograms(_images(5, 32, seed=22), 64)["grey"]
    assert histogram_distances(h, h) == {"w1": 0.0, "js": 0.0, "ks": 0.0}


def test_a_shift_of_ten_levels_gives_w1_10_ks_1_js_1_bit():
    p = histograms(_constant(100), bins=256)["grey"]
    q = histograms(_constant(110), bins=256)["grey"]
    d = histogram_distances(p, q)
    assert d["w1"] == pytest.approx(10.0) and d["ks"] == pytest.approx(1.0) and d["js"] == pytest.approx(1.0)


def test_partial_overlap_gives_intermediate_distances():
    p = np.zeros(256)
    p[100] = p[110] = 0.5
    q = np.zeros(256)
    q[110] = q[120] = 0.5
    d = histogram_distances(p, q)
    # half the mass stays, half moves 20 levels; JS = 1/2 bit; the CDFs differ by 1/2
    assert d["w1"] == pytest.approx(10.0) and d["js"] == pytest.approx(0.5) and d["ks"] == pytest.approx(0.5)


def test_histogram_distances_reject_different_bins_and_empty_histograms():
    with pytest.raises(ValueError, match="different bins"):
        histogram_distances(np.ones(64), np.ones(32))
    with pytest.raises(ValueError, match="positive sum"):
        histogram_distances(np.zeros(64), np.ones(64))


def test_colour_moments_of_a_constant_image_have_zero_std_and_zero_skew():
    m = colour_moments(_constant([200, 100, 0]))
    for c, value in (("red", 200), ("green", 100), ("blue", 0)):
        assert m[c] == {"mean": float(value), "std": 0.0, "skew": 0.0}


def test_colour_moments_match_scipy_on_random_images():
    from scipy.stats import skew

    images = _images(6, 32, seed=23)
    m = colour_moments(images)
    for i, c in enumerate(("red", "green", "blue")):
        v = images[..., i].astype(np.float64).ravel()
        assert m[c]["mean"] == pytest.approx(v.mean(), rel=1e-12)
        assert m[c]["std"] == pytest.approx(v.std(), rel=1e-12)
        assert m[c]["skew"] == pytest.approx(skew(v), rel=1e-9, abs=1e-12)


def test_colour_moments_see_a_skewed_channel():
    images = _constant([0, 0, 0], n=1, size=10)
    images[0, 0, :, 0] = 255                          # a tenth of the red pixels bright: right tail
    assert colour_moments(images)["red"]["skew"] > 2
