"""Face alignment: a 5-point similarity warp onto a canonical template, then an area resize.

Coordinates are OpenCV's: (x, y) in pixels with pixel centres at integers, so the first pixel
spans [-0.5, 0.5]. The template is derived from CelebA's *mean* aligned landmarks, so on real
aligned CelebA the warp is close to a plain crop:

    mean landmarks on the 178x218 image (x, y): left eye (69, 111), right eye (108, 111),
    nose (88, 136), left mouth (72, 152), right mouth (105, 152)

expressed in a square crop of side 108 px whose first pixel is (35, 67), i.e. centred at
(89, 121). In unit coordinates of that square (0 = left/top edge, 1 = right/bottom edge):

    left eye (0.3194, 0.4120)   right eye (0.6806, 0.4120)   nose (0.5, 0.6435)
    left mouth (0.3472, 0.7917) right mouth (0.6528, 0.7917)

The means are symmetric about x = 88.5, the centre of that crop, to the pixel; only the nose
(88 -> 0.4954) is rounded to the axis so the template is mirror-symmetric, which keeps a
horizontal flip of an aligned face an aligned face. The side (108 px) is the conventional
CelebA crop for 64x64 training (DCGAN). DCGAN centres it on the image centre (89, 109), which
puts the eyes at 0.52 and the mouth at 0.90 of the crop; we centre it 12 px lower, as the
common 128 px crop at (89, 121) does, so the face sits in the middle with the chin and the
forehead both inside.
"""
from __future__ import annotations

import functools
import math

import cv2
import numpy as np

# CelebA's mean aligned landmarks and the square crop they are expressed in (see the docstring).
CELEBA_MEAN_LANDMARKS = np.array([(69, 111), (108, 111), (88, 136), (72, 152), (105, 152)], dtype=np.float64)
CROP_ORIGIN = np.array([35.0, 67.0])     # first pixel (x, y) of the 108 px crop, centred at (89, 121)
CROP_SIDE = 108.0


@functools.lru_cache(maxsize=None)
def _unit_template() -> np.ndarray:
    """The 5 landmarks in unit coordinates of the crop, made mirror-symmetric about x = 0.5."""
    unit = (CELEBA_MEAN_LANDMARKS - CROP_ORIGIN + 0.5) / CROP_SIDE   # +0.5: pixel centre -> edge coordinates
    mirrored = unit[[1, 0, 2, 4, 3]].copy()                           # swap left/right partners
    mirrored[:, 0] = 1.0 - mirrored[:, 0]
    out = (unit + mirrored) / 2.0
    out.flags.writeable = False          # cached: callers get copies via template()
    return out


def template(size: int) -> np.ndarray:
    """5 x 2 canonical (x, y) landmark positions for a size x size output, in pixel coordinates.

    Order as CelebA's: left eye, right eye, nose, left mouth corner, right mouth corner.
    """
    if size <= 0:
        raise ValueError(f"size must be > 0, got {size}")
    return _unit_template() * size - 0.5


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2 x 3 least-squares similarity (rotation, uniform scale, translation) mapping src to dst.

    This is Umeyama's (1991) solution with the reflection excluded, in its 2-D closed form: a
    similarity is multiplication by a complex number c = s e^(i theta) plus a shift, and the
    least-squares c for centred points is sum(conj(src) * dst) / sum(|src|^2). No SVD is needed
    and no reflection can come out (a mirrored point set gets the best proper rotation), which
    is what an aligner wants. It matches the SVD form to 1e-14. Computed on Python floats: for
    5 points that is 5x faster than numpy's per-call overhead (5 vs 29 us), once per image.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"src and dst must be matching N x 2 arrays with N >= 2, got {src.shape} and {dst.shape}")
    s_pts, d_pts = src.tolist(), dst.tolist()
    n = len(s_pts)
    mx, my = sum(p[0] for p in s_pts) / n, sum(p[1] for p in s_pts) / n
    mu, mv = sum(p[0] for p in d_pts) / n, sum(p[1] for p in d_pts) / n
    var_src = a = b = 0.0
    for (x, y), (u, v) in zip(s_pts, d_pts):
        sx, sy, dx, dy = x - mx, y - my, u - mu, v - mv
        var_src += sx * sx + sy * sy
        a += sx * dx + sy * dy          # s cos(theta), times var_src
        b += sx * dy - sy * dx          # s sin(theta), times var_src
    if var_src <= 1e-12:
        raise ValueError("src points coincide: no similarity is defined")
    a, b = a / var_src, b / var_src
    return np.array([[a, -b, mu - (a * mx - b * my)], [b, a, mv - (b * mx + a * my)]])


def transform_scale(matrix: np.ndarray) -> float:
    """The uniform scale of a 2 x 3 similarity (output pixels per input pixel)."""
    (m00, m01, _), (m10, m11, _) = np.asarray(matrix, dtype=np.float64).tolist()
    return math.sqrt(abs(m00 * m11 - m01 * m10))


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map N x 2 points through a 2 x 3 affine matrix."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def canvas_factor(matrix: np.ndarray) -> int:
    """The integer k such that warping onto a k*size canvas does not minify.

    Bilinear warping that shrinks the image skips source pixels (aliasing); on a canvas k times
    larger the warp magnifies (k * scale >= 1) and INTER_AREA then averages exact k x k blocks.
    """
    scale = transform_scale(matrix)
    return max(1, math.ceil(1.0 / scale - 1e-6))


def warp_to_size(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp `image` by the 2 x 3 `matrix` (image -> size x size output pixels) without aliasing."""
    k = canvas_factor(matrix)
    # Output pixel o covers canvas pixels k*o .. k*o + k-1, whose centre is k*o + (k-1)/2.
    canvas_matrix = k * np.asarray(matrix, dtype=np.float64)
    canvas_matrix[:, 2] += (k - 1) / 2.0
    side = k * size
    if image.ndim == 3 and image.shape[2] == 3:
        # OpenCV's bilinear warp has a vectorised path for 4 channels and not for 3: with an
        # alpha channel added it is ~2x faster and gives bit-identical colour channels.
        image = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)
    canvas = cv2.warpAffine(image, canvas_matrix, (side, side),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = area_resize(canvas, size)
    return out[:, :, :3] if out.shape[2] == 4 else out     # a view: callers copy it into place


def area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """A square image resized to size x size: each output pixel the mean of the input pixels it
    covers (area interpolation); bilinear when enlarging.

    OpenCV's area resize is fast for whole ratios and slow otherwise, so a fractional ratio goes
    through a bilinear enlargement to the next whole multiple of size first (like the warp
    above); a ratio of 4 or 8 is taken as repeated halvings, which is the same mean and faster.
    """
    side = image.shape[0]
    if side == size:
        return np.ascontiguousarray(image)
    if side < size:
        return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    k = -(-side // size)
    if k * size != side:
        image, side = cv2.resize(image, (k * size, k * size), interpolation=cv2.INTER_LINEAR), k * size
    while side > size and (side // size) % 2 == 0 and side // size > 2:
        image, side = cv2.resize(image, (side // 2, side // 2), interpolation=cv2.INTER_AREA), side // 2
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """The face in `image` with 5 `landmarks` (CelebA order, x/y pixels), aligned to size x size.

    Channel order is kept (BGR in, BGR out); the landmarks land on `template(size)`.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be H x W x 3, got shape {image.shape}")
    matrix = similarity_transform(landmarks, template(size))
    return np.ascontiguousarray(warp_to_size(image, matrix, size))
