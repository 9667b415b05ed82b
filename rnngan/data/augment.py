"""The `augment` stage: an augmentation policy materialised into one uint8 array, deterministic by seed.

Each output image draws its randomness from `np.random.default_rng([seed, copy, index])`, a
fixed vector of uniforms with one slot per decision, so the result depends on neither the
chunk size nor which other operations are switched on (turning blur on does not change which
images are flipped). Output row `copy * N + index` is copy `copy` of input image `index`.

Operations, in the order applied (geometry first, then blur, then colour on the final pixels):
flip, scale (zoom), crop, lens, blur, brightness, contrast, saturation, hue.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rnngan.io import atomic_path, log, progress

# Slots of the per-image uniform draws; a slot is drawn whether or not its op is on.
FLIP, BRIGHTNESS, CONTRAST, SATURATION, HUE, SCALE, CROP_SIDE, CROP_Y, CROP_X, BLUR, BLUR_SIGMA, LENS = range(12)
N_DRAWS = 12
BLUR_SIGMA_RANGE = (0.5, 1.0)
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)    # ITU-R 601 luma of RGB


def _in(low: float, high: float, high_open: bool = False):
    def check(v: float) -> str | None:
        ok = low <= v < high if high_open else low <= v <= high
        return None if ok else f"must be in [{low}, {high}{')' if high_open else ']'}"
    return check


@dataclass(frozen=True)
class Policy:
    """Augmentation strengths; 0 switches an op off. Same names and meaning as params `augment.*`."""
    flip: float = 0.0         # probability of a horizontal flip
    brightness: float = 0.0   # brightness factor drawn from [1-b, 1+b]
    contrast: float = 0.0     # contrast factor from [1-c, 1+c], about the image's mean grey
    saturation: float = 0.0   # saturation factor from [1-s, 1+s] (blend with the pixel's grey)
    hue: float = 0.0          # hue shift from [-h, h] of a turn
    scale: float = 0.0        # zoom about the centre by a factor from [1-s, 1+s]
    crop: float = 0.0         # crop a square of side (1-c..1) of the image, resized back
    blur: float = 0.0         # probability of a Gaussian blur, sigma 0.5-1.0 px
    lens: float = 0.0         # radial distortion k from [-l, l]: <0 barrel, >0 pincushion

    def __post_init__(self) -> None:
        checks = {"flip": _in(0, 1), "blur": _in(0, 1), "hue": _in(0, 0.5), "lens": _in(0, 0.5)}
        for f in fields(self):
            error = checks.get(f.name, _in(0, 1, high_open=True))(getattr(self, f.name))
            if error:
                raise ValueError(f"augment.{f.name}={getattr(self, f.name)}: {error}")

    @classmethod
    def of(cls, obj: Any) -> "Policy":
        """A Policy from any object with these attributes (e.g. rnngan.config.AugmentParams)."""
        if isinstance(obj, cls):
            return obj
        return cls(**{f.name: float(getattr(obj, f.name)) for f in fields(cls)})

    def active(self) -> list[str]:
        return [name for name, value in asdict(self).items() if value > 0]


# ---------------------------------------------------------------------------------------------
# Single operations on one H x W x 3 uint8 RGB image

def flip(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1])


def zoom(image: np.ndarray, factor: float) -> np.ndarray:
    """Scale about the image centre by `factor` (>1 zooms in); uncovered borders are reflected."""
    h, w = image.shape[:2]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    matrix = np.array([[factor, 0.0, (1 - factor) * cx], [0.0, factor, (1 - factor) * cy]])
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def crop_resize(image: np.ndarray, side: float, fy: float, fx: float) -> np.ndarray:
    """Crop `side` (0..1) of each dimension at relative position (fy, fx) in [0, 1], resized back."""
    h, w = image.shape[:2]
    ch, cw = max(1, round(side * h)), max(1, round(side * w))
    y, x = round(fy * (h - ch)), round(fx * (w - cw))
    if (ch, cw) == (h, w):
        return image
    # The crop is smaller than the output: this is an upsampling, so linear interpolation.
    return cv2.resize(image[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_LINEAR)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101)


def lens_map(h: int, w: int, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates (map_x, map_y) for cv2.remap giving radial distortion of strength k.

    The lens model is x' = x (1 + k r^2) on coordinates normalised by the half-diagonal (r <= 1
    inside the image). An output pixel at x' must sample the source at the inverse; we use the
    division model x = x' / (1 + k r'^2), equal to the inverse to first order and, unlike the
    exact cubic inverse, monotonic (no fold-over) for every |k| <= 0.5. So k < 0 samples from
    further out (barrel: the centre bulges), k > 0 from further in (pincushion).
    """
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    radius = np.hypot(w / 2.0, h / 2.0)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    xn, yn = (x - cx) / radius, (y - cy) / radius
    factor = 1.0 / (1.0 + k * (xn * xn + yn * yn))
    return (xn * factor * radius + cx).astype(np.float32), (yn * factor * radius + cy).astype(np.float32)


def lens(image: np.ndarray, k: float) -> np.ndarray:
    map_x, map_y = lens_map(image.shape[0], image.shape[1], k)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _grey(x: np.ndarray) -> np.ndarray:
    return x @ GREY_WEIGHTS


def colour_jitter(image: np.ndarray, brightness: float = 1.0, contrast: float = 1.0,
                  saturation: float = 1.0, hue: float = 0.0) -> np.ndarray:
    """Brightness, contrast, saturation factors and a hue shift (fraction of a turn), in that order.

    Clipped to [0, 255] after each step, as torchvision's ColorJitter does, so a step sees the
    pixels the previous one produced. Factors of 1 and a shift of 0 leave the image unchanged.
    """
    # Python floats keep the float32 pixels float32 (a NumPy float64 factor would promote them).
    brightness, contrast, saturation, hue = float(brightness), float(contrast), float(saturation), float(hue)
    if brightness == 1.0 and contrast == 1.0 and saturation == 1.0 and hue == 0.0:
        return image
    x = image.astype(np.float32)
    if brightness != 1.0:
        x = np.clip(x * brightness, 0, 255)
    if contrast != 1.0:
        mean = float(_grey(x).mean())
        x = np.clip((x - mean) * contrast + mean, 0, 255)
    if saturation != 1.0:
        grey = _grey(x)[..., None]
        x = np.clip((x - grey) * saturation + grey, 0, 255)
    if hue != 0.0:
        hsv = cv2.cvtColor(x / 255.0, cv2.COLOR_RGB2HSV)        # float input: H in degrees [0, 360)
        hsv[..., 0] = (hsv[..., 0] + 360.0 * hue) % 360.0
        x = np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0, 0, 255)
    return np.rint(x).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# The policy on one image, and the stage

def _symmetric(u: float, strength: float) -> float:
    """Map a uniform u in [0, 1) to [-strength, strength)."""
    return strength * (2.0 * u - 1.0)


def augment_one(image: np.ndarray, policy: Policy, u: np.ndarray) -> np.ndarray:
    """The policy applied to one image with the uniforms `u` (N_DRAWS of them)."""
    if u[FLIP] < policy.flip:
        image = flip(image)
    if policy.scale > 0:
        image = zoom(image, 1.0 + _symmetric(u[SCALE], policy.scale))
    if policy.crop > 0:
        image = crop_resize(image, 1.0 - policy.crop * u[CROP_SIDE], u[CROP_Y], u[CROP_X])
    if policy.lens > 0:
        image = lens(image, _symmetric(u[LENS], policy.lens))
    if u[BLUR] < policy.blur:
        lo, hi = BLUR_SIGMA_RANGE
        image = blur(image, lo + (hi - lo) * u[BLUR_SIGMA])
    return colour_jitter(image,
                         brightness=1.0 + _symmetric(u[BRIGHTNESS], policy.brightness),
                         contrast=1.0 + _symmetric(u[CONTRAST], policy.contrast),
                         saturation=1.0 + _symmetric(u[SATURATION], policy.saturation),
                         hue=_symmetric(u[HUE], policy.hue))


def image_draws(seed: int, copy: int, index: int) -> np.ndarray:
    """The uniforms of one output image: a function of (seed, copy, index) only."""
    return np.random.default_rng([seed, copy, index]).random(N_DRAWS)


def augment_images(images: np.ndarray, policy: Any, copies: int, seed: int, out_path: Path,
                   chunk: int = 1024) -> dict:
    """Write `copies` augmented copies of `images` (N x H x W x 3 uint8) to out_path as one .npy.

    Streams in chunks into a memory-mapped output written atomically; returns a summary.
    """
    start = time.perf_counter()
    policy = Policy.of(policy)
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be an N x H x W x 3 uint8 array, got {images.dtype} {images.shape}")
    if copies < 1 or chunk < 1 or seed < 0:
        raise ValueError(f"copies and chunk must be >= 1 and seed >= 0, got {copies}, {chunk}, {seed}")
    n = len(images)
    total = copies * n
    log.info("augment: %d images x %d copies, ops: %s", n, copies, ", ".join(policy.active()) or "none")
    with atomic_path(out_path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(total,) + images.shape[1:])
        bar = progress(total=total, unit="img", desc="augment")
        for copy in range(copies):
            for lo in range(0, n, chunk):
                block = np.asarray(images[lo:lo + chunk])      # one read from a memory-mapped input
                done = np.empty_like(block)
                for j, image in enumerate(block):
                    done[j] = augment_one(image, policy, image_draws(seed, copy, lo + j))
                out[copy * n + lo:copy * n + lo + len(block)] = done
                bar.update(len(block))
        bar.close()
        out.flush()
        del out
    seconds = time.perf_counter() - start
    return {
        "count": total,
        "images": n,
        "copies": copies,
        "seed": seed,
        "ops": policy.active(),
        "policy": asdict(policy),
        "seconds": round(seconds, 3),
        "images_per_s": round(total / seconds, 1) if seconds > 0 else None,
    }
