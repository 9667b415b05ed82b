"""Face alignment: the similarity fit, the template, and landmarks landing on it in the pixels."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from rnngan.data.align import (CELEBA_MEAN_LANDMARKS, align_face, apply_transform, canvas_factor,
                               similarity_transform, template, transform_scale)

WIDTH, HEIGHT = 178, 218          # CelebA's aligned images
SKIN = np.array([170.0, 190.0, 225.0])    # BGR
BLOB_DEPTH = 140.0


def similarity(angle_deg: float, scale: float, tx: float, ty: float, centre=(0.0, 0.0)) -> np.ndarray:
    """2 x 3 matrix: rotate by angle and scale about `centre`, then shift by (tx, ty)."""
    a = math.radians(angle_deg)
    rs = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c = np.asarray(centre, dtype=np.float64)
    return np.hstack([rs, (c - rs @ c + (tx, ty))[:, None]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2 x 3 matrix of `outer` applied after `inner`."""
    return np.hstack([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]])


def draw_blob_face(points: np.ndarray, sigma: float, h: int = HEIGHT, w: int = WIDTH) -> np.ndarray:
    """A uniform skin image with a dark Gaussian blob centred exactly on each (x, y) point.

    Rendered analytically (no rasterisation), so each blob's centroid is the point to sub-pixel accuracy.
    """
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    dark = np.zeros((h, w))
    for px, py in points:
        dark += np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * sigma ** 2))
    image = SKIN[None, None, :] - BLOB_DEPTH * np.clip(dark, 0, 1)[..., None]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def blob_centroids(image: np.ndarray, near: np.ndarray, radius: float) -> np.ndarray:
    """Centroid of darkness around each of the `near` points, re-centred once on the first estimate."""
    skin = float(np.median(image.mean(axis=2)))
    dark = np.clip(skin - image.mean(axis=2).astype(np.float64), 0, None)
    y, x = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(np.float64)
    found = []
    for point in np.asarray(near, dtype=np.float64):
        for _ in range(2):
            window = dark * (((x - point[0]) ** 2 + (y - point[1]) ** 2) <= radius ** 2)
            point = np.array([(window * x).sum(), (window * y).sum()]) / window.sum()
        found.append(point)
    return np.array(found)


def canonical_landmarks() -> np.ndarray:
    """CelebA's mean landmarks with the nose on the symmetry axis: an exact similarity of the template."""
    points = CELEBA_MEAN_LANDMARKS.copy()
    points[2, 0] = 88.5
    return points


def test_template_is_mirror_symmetric_and_scales_with_size():
    for size in (32, 64, 128):
        t = template(size)
        assert t.shape == (5, 2)
        np.testing.assert_allclose(t[[1, 0, 2, 4, 3], 0], (size - 1) - t[:, 0], atol=1e-12)
        np.testing.assert_allclose(t[[1, 0, 2, 4, 3], 1], t[:, 1], atol=1e-12)
    # Unit coordinates match the documented ones (pixel centre convention: +0.5 then / size).
    unit = (template(64) + 0.5) / 64
    expected = [(0.3194, 0.4120), (0.6806, 0.4120), (0.5, 0.6435), (0.3472, 0.7917), (0.6528, 0.7917)]
    np.testing.assert_allclose(unit, expected, atol=1e-4)


def test_similarity_transform_recovers_a_known_transform_exactly_on_noise_free_points():
    rng = np.random.default_rng(0)
    for angle in (-170.0, -10.0, 0.0, 7.5, 95.0):
        known = similarity(angle, rng.uniform(0.2, 3.0), *rng.uniform(-50, 50, 2))
        src = rng.uniform(0, 200, (5, 2))
        estimated = similarity_transform(src, apply_transform(known, src))
        np.testing.assert_allclose(estimated, known, atol=1e-9)


def test_similarity_transform_is_the_least_squares_similarity_on_noisy_points():
    # A similarity is linear in (a, b, tx, ty): x' = a x - b y + tx, y' = b x + a y + ty.
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 100, (5, 2))
    dst = apply_transform(similarity(20.0, 0.6, 5.0, -3.0), src) + rng.normal(0, 2.0, (5, 2))
    x, y = src.T
    design = np.block([[x[:, None], -y[:, None], np.ones((5, 1)), np.zeros((5, 1))],
                       [y[:, None], x[:, None], np.zeros((5, 1)), np.ones((5, 1))]])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)
    np.testing.assert_allclose(similarity_transform(src, dst), [[a, -b, tx], [b, a, ty]], atol=1e-9)


def test_similarity_transform_never_reflects():
    src = template(64)
    mirrored = src * np.array([-1.0, 1.0])
    matrix = similarity_transform(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_similarity_transform_rejects_coincident_points():
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((5, 2)), template(64))


def test_aligner_puts_known_jittered_faces_on_the_template_within_one_pixel_at_64():
    size = 64
    rng = np.random.default_rng(1)
    canonical = canonical_landmarks()
    # The canonical face maps onto the template by this (a crop of the 178x218 image, scaled).
    to_template = similarity_transform(canonical, template(size))
    worst = 0.0
    for _ in range(8):
        jitter = similarity(rng.uniform(-10, 10), rng.uniform(0.9, 1.1), *rng.uniform(-8, 8, 2),
                            centre=(WIDTH / 2, HEIGHT / 2))
        landmarks = apply_transform(jitter, canonical)
        image = draw_blob_face(landmarks, sigma=3.0)
        estimated = similarity_transform(landmarks, template(size))
        # The estimated transform undoes the known jitter: estimated o jitter == the canonical map.
        np.testing.assert_allclose(compose(estimated, jitter), to_template, atol=1e-9)
        np.testing.assert_allclose(apply_transform(estimated, landmarks), template(size), atol=1e-9)
        # In the pixels: each drawn blob is centred on its template point.
        aligned = align_face(image, landmarks, size)
        assert aligned.shape == (size, size, 3) and aligned.dtype == np.uint8
        found = blob_centroids(aligned, template(size), radius=5.0)
        worst = max(worst, float(np.abs(found - template(size)).max()))
    # The requirement is 1 px; analytic blobs allow a much tighter bound, which also catches
    # half-pixel convention slips (pixel centres vs edges) that 1 px would let through.
    assert worst < 0.25, f"worst landmark offset {worst:.2f} px"


def test_aligner_on_the_mean_celeba_face_matches_the_108px_crop_centred_at_89_121():
    rng = np.random.default_rng(2)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (HEIGHT, WIDTH, 3)), (0, 0), 4.0)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    aligned = align_face(texture, CELEBA_MEAN_LANDMARKS, 64)
    crop = cv2.resize(texture[67:175, 35:143], (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(aligned.astype(int) - crop.astype(int)).mean() < 2.0
    # ...and not the image-centred crop at (89, 109), 12 px higher.
    high = cv2.resize(texture[55:163, 35:143], (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(aligned.astype(int) - high.astype(int)).mean() > 10.0


def test_warp_does_not_minify_so_fine_stripes_average_instead_of_aliasing():
    # One-pixel black/white columns, shrunk about 3.5x: a direct bilinear warp would pick
    # whole black or white columns (aliasing); the k*size canvas + area resize averages them.
    stripes = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    stripes[:, ::2] = 255
    landmarks = canonical_landmarks()
    matrix = similarity_transform(landmarks, template(32))
    assert canvas_factor(matrix) * transform_scale(matrix) >= 1.0 > transform_scale(matrix)
    aligned = align_face(stripes, landmarks, 32).astype(float)
    assert abs(aligned.mean() - 127.5) < 10 and aligned.std() < 20
    direct = cv2.warpAffine(stripes, matrix, (32, 32), flags=cv2.INTER_LINEAR).astype(float)
    assert direct.std() > 40     # the check above can fail: the naive warp does alias here
