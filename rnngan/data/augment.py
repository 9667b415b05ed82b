"""The augmentation policy, one differentiable function for both sides of D (ADA, DiffAugment).

`augment_batch` applies the policy to a batch of images in [-1, 1] in torch, differentiably
(Karras et al. 2020, ADA; Zhao et al. 2020, DiffAugment): the train stage passes every generated
batch through it before D, and the `augment` stage caches the real side through the very same
function (`augment_uint8`), so D always sees augmented real images against augmented fakes and
the generator is not rewarded for learning the augmentation (what leaks when only the real side
is augmented). Each image is augmented with probability `augment.p`, else left as it is.

Each image's randomness is a vector of uniforms with one slot per decision (`N_DRAWS`), drawn
whether or not its op is on, so turning blur on does not change which images are flipped. The
augment stage draws image i of copy c from `np.random.default_rng([seed, c, i])`: the output
depends on neither the chunk size nor the other ops. Output row `copy * N + index` is copy
`copy` of input image `index`.

Operations, in the order applied (geometry first, then blur, then colour on the final pixels):
flip, scale (zoom), crop, lens, blur, brightness, contrast, saturation, hue. Zoom, crop and lens
are one bilinear resampling (`grid_sample`, reflected borders).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnngan.io import atomic_path, log, progress

# Slots of the per-image uniform draws; a slot is drawn whether or not its op is on.
FLIP, BRIGHTNESS, CONTRAST, SATURATION, HUE, SCALE, CROP_SIDE, CROP_Y, CROP_X, BLUR, BLUR_SIGMA, LENS, APPLY = range(13)
N_DRAWS = 13
BLUR_SIGMA_RANGE = (0.5, 1.0)
BLUR_RADIUS = 3                     # taps each side: 3 sigma at the largest sigma
GREY_WEIGHTS = (0.299, 0.587, 0.114)    # ITU-R 601 luma of RGB
OPS = ("flip", "brightness", "contrast", "saturation", "hue", "scale", "crop", "blur", "lens")


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
    p: float = 1.0            # probability that an image goes through the policy at all

    def __post_init__(self) -> None:
        checks = {"flip": _in(0, 1), "blur": _in(0, 1), "hue": _in(0, 0.5), "lens": _in(0, 0.5), "p": _in(0, 1)}
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
        """The ops that can change an image (none when p is 0)."""
        return [name for name in OPS if getattr(self, name) > 0] if self.p > 0 else []


# ---------------------------------------------------------------------------------------------
# The policy on a batch, differentiably: B x 3 x H x W in [-1, 1], uniforms B x N_DRAWS

def _symmetric(u: torch.Tensor, strength: float) -> torch.Tensor:
    """Map uniforms in [0, 1) to [-strength, strength)."""
    return strength * (2.0 * u - 1.0)


def _warp(y: torch.Tensor, policy: Policy, u: torch.Tensor) -> torch.Tensor:
    """Zoom, crop and lens as one resampling. For each output pixel (normalised coordinates q in
    [-1, 1], align_corners=False) the source is found by undoing the ops in reverse order: the lens
    (division model q / (1 + k r^2), r normalised by the half-diagonal: monotonic for |k| <= 0.5),
    then the crop (a window of side s at a relative position), then the zoom (q / factor)."""
    b, _, h, w = y.shape
    ys = (torch.arange(h, device=y.device, dtype=y.dtype) * 2 + 1) / h - 1
    xs = (torch.arange(w, device=y.device, dtype=y.dtype) * 2 + 1) / w - 1
    qy, qx = torch.meshgrid(ys, xs, indexing="ij")
    q = torch.stack([qx, qy], dim=-1).expand(b, h, w, 2)          # grid_sample's (x, y) order
    if policy.lens > 0:
        k = _symmetric(u[:, LENS], policy.lens).view(b, 1, 1, 1)
        r2 = q.square().sum(-1, keepdim=True) / 2
        q = q / (1 + k * r2)
    if policy.crop > 0:
        side = (1 - policy.crop * u[:, CROP_SIDE]).view(b, 1, 1, 1)
        centre = torch.stack([u[:, CROP_X], u[:, CROP_Y]], dim=-1).view(b, 1, 1, 2) * 2 - 1
        q = centre * (1 - side) + side * q
    if policy.scale > 0:
        q = q / (1 + _symmetric(u[:, SCALE], policy.scale)).view(b, 1, 1, 1)
    return F.grid_sample(y, q, mode="bilinear", padding_mode="reflection", align_corners=False)


def _blur(y: torch.Tensor, policy: Policy, u: torch.Tensor) -> torch.Tensor:
    """A separable Gaussian of sigma in BLUR_SIGMA_RANGE on the images whose draw says so."""
    b, c, h, w = y.shape
    lo, hi = BLUR_SIGMA_RANGE
    sigma = (lo + (hi - lo) * u[:, BLUR_SIGMA]).view(b, 1)
    t = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, device=y.device, dtype=y.dtype).view(1, -1)
    kernel = torch.exp(-t.square() / (2 * sigma.square()))
    kernel = kernel / kernel.sum(1, keepdim=True)
    delta = (t == 0).to(y.dtype).expand(b, -1)
    kernel = torch.where((u[:, BLUR] < policy.blur).view(b, 1), kernel, delta)
    weight = kernel.repeat_interleave(c, dim=0)                    # (B*3) x taps
    x = y.reshape(1, b * c, h, w)
    x = F.conv2d(F.pad(x, (BLUR_RADIUS, BLUR_RADIUS, 0, 0), mode="reflect"), weight.view(b * c, 1, 1, -1), groups=b * c)
    x = F.conv2d(F.pad(x, (0, 0, BLUR_RADIUS, BLUR_RADIUS), mode="reflect"), weight.view(b * c, 1, -1, 1), groups=b * c)
    return x.view(b, c, h, w)


def _grey(y: torch.Tensor) -> torch.Tensor:
    r, g, b = y.unbind(1)
    return (GREY_WEIGHTS[0] * r + GREY_WEIGHTS[1] * g + GREY_WEIGHTS[2] * b).unsqueeze(1)


def _hue_shift(y: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue by `shift` turns (B), keeping saturation and value: RGB -> HSV -> RGB."""
    r, g, b = y.unbind(1)
    v, _ = y.max(1)
    delta = v - y.min(1).values
    d = delta.clamp_min(1e-8)
    h = torch.where(v == r, torch.remainder((g - b) / d, 6), torch.where(v == g, (b - r) / d + 2, (r - g) / d + 4))
    h = torch.where(delta > 0, h / 6, torch.zeros_like(h))
    h = torch.remainder(h + shift.view(-1, 1, 1), 1.0)
    s = delta / v.clamp_min(1e-8)

    def channel(n: int) -> torch.Tensor:
        k = torch.remainder(n + 6 * h, 6)
        return v - v * s * torch.minimum(k, 4 - k).clamp(0, 1)
    return torch.stack([channel(5), channel(3), channel(1)], dim=1)


def _colour(y: torch.Tensor, policy: Policy, u: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast, saturation factors and a hue shift, in that order.

    note: no clipping to [0, 1] between the steps, unlike torchvision's ColorJitter: a clamp has
    zero gradient outside the range, so a generator whose pixels reach it would learn nothing
    there through D (DiffAugment and ADA do not clip either). Only the cached uint8 side is
    rounded and clipped, once, at the end (augment_uint8)."""
    b = y.shape[0]
    if policy.brightness > 0:
        y = y * (1 + _symmetric(u[:, BRIGHTNESS], policy.brightness)).view(b, 1, 1, 1)
    if policy.contrast > 0:
        mean = _grey(y).mean(dim=(2, 3), keepdim=True)
        y = (y - mean) * (1 + _symmetric(u[:, CONTRAST], policy.contrast)).view(b, 1, 1, 1) + mean
    if policy.saturation > 0:
        grey = _grey(y)
        y = (y - grey) * (1 + _symmetric(u[:, SATURATION], policy.saturation)).view(b, 1, 1, 1) + grey
    if policy.hue > 0:
        y = _hue_shift(y, _symmetric(u[:, HUE], policy.hue))
    return y


def augment_batch(x: torch.Tensor, policy: Policy, u: torch.Tensor) -> torch.Tensor:
    """The policy on images x (B x 3 x H x W in [-1, 1]) with the uniforms u (B x N_DRAWS):
    differentiable in x; an image whose APPLY draw is not below `policy.p` comes back unchanged."""
    if not policy.active():
        return x
    u = u.to(x.dtype)
    y = (x + 1) / 2
    y = torch.where((u[:, FLIP] < policy.flip).view(-1, 1, 1, 1), y.flip(3), y)
    if policy.scale > 0 or policy.crop > 0 or policy.lens > 0:
        y = _warp(y, policy, u)
    if policy.blur > 0:
        y = _blur(y, policy, u)
    y = _colour(y, policy, u) * 2 - 1
    return torch.where((u[:, APPLY] < policy.p).view(-1, 1, 1, 1), y, x)


def augment_uint8(images: np.ndarray, policy: Policy, u: np.ndarray) -> np.ndarray:
    """The same function on uint8 N x H x W x 3 images (the cached real side), rounded back."""
    x = torch.from_numpy(np.array(images, dtype=np.float32)).permute(0, 3, 1, 2) / 127.5 - 1
    with torch.no_grad():
        y = augment_batch(x, policy, torch.from_numpy(np.asarray(u, dtype=np.float32)))
    return ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def image_draws(seed: int, copy: int, index: int) -> np.ndarray:
    """The uniforms of one cached image: a function of (seed, copy, index) only."""
    return np.random.default_rng([seed, copy, index]).random(N_DRAWS)


def step_draws(seed: int, step: int, which: int, count: int) -> torch.Tensor:
    """The uniforms of one training step's batch (which: 0 D's fakes, 1 G's fakes, 2 the real batch,
    3.. G's further updates with train.g_steps > 1):
    a function of the run's seed and the step, so a resumed run draws what it would have."""
    return torch.from_numpy(np.random.default_rng([seed, step, which]).random((count, N_DRAWS), dtype=np.float32))


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
    log.info("augment: %d images x %d copies, ops: %s (each image with probability %.2f)", n, copies,
             ", ".join(policy.active()) or "none", policy.p)
    with atomic_path(out_path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(total,) + images.shape[1:])
        bar = progress(total=total, unit="img", desc="augment")
        for copy in range(copies):
            for lo in range(0, n, chunk):
                block = np.asarray(images[lo:lo + chunk])      # one read from a memory-mapped input
                draws = np.stack([image_draws(seed, copy, lo + j) for j in range(len(block))])
                out[copy * n + lo:copy * n + lo + len(block)] = augment_uint8(block, policy, draws)
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
