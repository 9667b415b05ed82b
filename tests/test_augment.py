"""The augment stage: determinism, chunk independence, and what each operation does."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from rnngan.config import AugmentParams
from rnngan.data.augment import Policy, augment_images, colour_jitter, lens, zoom

N, SIZE = 12, 24
ALL_ON = Policy(flip=0.5, brightness=0.2, contrast=0.2, saturation=0.3, hue=0.1,
                scale=0.15, crop=0.2, blur=0.5, lens=0.3)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Smooth random colour images: structure at several scales, so every op visibly changes them."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(N):
        base = cv2.GaussianBlur(rng.uniform(0, 255, (SIZE, SIZE, 3)), (0, 0), 1.5)
        out.append(cv2.normalize(base, None, 20, 235, cv2.NORM_MINMAX))
    return np.stack(out).astype(np.uint8)


def run(images, policy, tmp_path, name="out.npy", copies=1, seed=0, chunk=1024) -> tuple[np.ndarray, dict]:
    summary = augment_images(images, policy, copies=copies, seed=seed, out_path=tmp_path / name, chunk=chunk)
    return np.load(tmp_path / name), summary


def test_same_seed_gives_identical_output_and_another_seed_differs(images, tmp_path):
    a, _ = run(images, ALL_ON, tmp_path, "a.npy", seed=5)
    b, _ = run(images, ALL_ON, tmp_path, "b.npy", seed=5)
    c, _ = run(images, ALL_ON, tmp_path, "c.npy", seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_output_does_not_depend_on_chunk_size(images, tmp_path):
    whole, _ = run(images, ALL_ON, tmp_path, "whole.npy", copies=2, chunk=1024)
    pieces, _ = run(images, ALL_ON, tmp_path, "pieces.npy", copies=2, chunk=5)
    np.testing.assert_array_equal(whole, pieces)


def test_flip_only_policy_with_probability_one_mirrors_every_image(images, tmp_path):
    out, summary = run(images, Policy(flip=1.0), tmp_path)
    np.testing.assert_array_equal(out, images[:, :, ::-1])
    assert summary["ops"] == ["flip"]


def test_identity_policy_gives_identical_images(images, tmp_path):
    out, summary = run(images, Policy(), tmp_path)
    np.testing.assert_array_equal(out, images)
    assert summary["ops"] == []


def test_copies_stack_copy_major_and_differ(images, tmp_path):
    out, summary = run(images, ALL_ON, tmp_path, copies=2)
    assert out.shape == (2 * N, SIZE, SIZE, 3) and out.dtype == np.uint8
    assert summary["count"] == 2 * N
    assert not np.array_equal(out[:N], out[N:])
    # Row copy*N + i is copy `copy` of image i: the first copy equals a one-copy run.
    single, _ = run(images, ALL_ON, tmp_path, "single.npy", copies=1)
    np.testing.assert_array_equal(out[:N], single)


@pytest.mark.parametrize("op, strength", [("scale", 0.2), ("crop", 0.3), ("blur", 1.0), ("lens", 0.4),
                                          ("brightness", 0.3), ("contrast", 0.3), ("saturation", 0.5),
                                          ("hue", 0.2)])
def test_each_op_on_its_own_runs_and_changes_images(images, tmp_path, op, strength):
    out, summary = run(images, Policy(**{op: strength}), tmp_path)
    assert summary["ops"] == [op]
    changed = [not np.array_equal(a, b) for a, b in zip(out, images)]
    assert sum(changed) >= N - 2, f"{op} changed only {sum(changed)} of {N} images"


def test_lens_with_negative_k_is_barrel_and_positive_k_pincushion():
    # A horizontal ramp: value = x. Barrel samples from further out (values move away from the
    # centre value), pincushion from further in.
    ramp = np.repeat(np.repeat((np.arange(64) * 4).astype(np.uint8)[None, :, None], 64, 0), 3, 2)
    row, col = 32, 52       # right of centre
    assert lens(ramp, -0.3)[row, col, 0] > ramp[row, col, 0] + 4
    assert lens(ramp, +0.3)[row, col, 0] < ramp[row, col, 0] - 4
    np.testing.assert_array_equal(lens(ramp, 0.0), ramp)


def test_zoom_factor_above_one_enlarges_the_centre():
    square = np.zeros((32, 32, 3), np.uint8)
    square[12:20, 12:20] = 255
    assert (zoom(square, 1.5) > 127).sum() > (square > 127).sum() * 1.8
    assert (zoom(square, 0.7) > 127).sum() < (square > 127).sum() * 0.7


def test_colour_jitter_factors_move_the_image_the_right_way(images):
    image = images[0]
    assert colour_jitter(image, brightness=1.2).mean() > image.mean() + 5
    assert colour_jitter(image, contrast=0.5).std() < image.std() * 0.7
    grey = colour_jitter(image, saturation=0.0).astype(int)
    assert np.abs(grey[..., 0] - grey[..., 2]).max() <= 1
    # A half-turn hue shift of pure red gives cyan.
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 200
    np.testing.assert_array_equal(colour_jitter(red, hue=0.5)[0, 0], [0, 200, 200])


def test_policy_accepts_the_params_dataclass_and_rejects_out_of_range_values():
    params = AugmentParams()
    policy = Policy.of(params)
    assert dataclasses.asdict(policy) == {f.name: getattr(params, f.name) for f in dataclasses.fields(Policy)}
    with pytest.raises(ValueError, match="augment.hue"):
        Policy(hue=0.7)
    with pytest.raises(ValueError, match="augment.crop"):
        Policy(crop=1.0)


def test_output_is_written_atomically_with_nothing_else_left(images, tmp_path):
    run(images, ALL_ON, tmp_path, "train.npy")
    assert [p.name for p in tmp_path.iterdir()] == ["train.npy"]
