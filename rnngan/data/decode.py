"""One image in a preprocess worker: encoded bytes -> square RGB crops of the training size.

Every protocol is a 2 x 3 matrix from source pixels to output pixels (OpenCV's convention:
pixel centres at integers), warped without aliasing by `align.warp_to_size`:

- `landmarks`: the 5-point similarity onto the face template (`align.template`);
- a box `(x0, y0, side)` in pixel-edge coordinates: a plain crop followed by an area resize;
  `center` and `halves` pick their boxes from the image's own width and height.

JPEGs whose crop is large enough are decoded at 1/2, 1/4 or 1/8 size in the DCT domain
(libjpeg's scaled decoding), which is several times faster than decoding every pixel and still
leaves at least one decoded pixel per output pixel, so nothing is upsampled.
"""
from __future__ import annotations

import io

import cv2
import numpy as np

from rnngan.data.align import area_resize, similarity_transform, template, transform_scale, warp_to_size

REASON_UNDECODABLE = "not a decodable image"
REASON_TRUNCATED = "truncated image (the file ends before the image does)"
REASON_MISSING = "missing from the archive"
REASON_NO_LANDMARKS = "no landmarks"
REASON_DEGENERATE = "degenerate landmarks (points coincide)"

JPEG_SOI, JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
PNG_SIGNATURE, PNG_IEND = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"
_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
            4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)      # OpenCV >= 4.10 decodes straight to RGB

# A crop spec, as sent to a worker with each image:
#   ("landmarks", 5 x 2 array)   ("box", (x0, y0, side))   ("center", None)   ("halves", None)
Spec = tuple[str, object]
HALVES = ("left", "right")


def image_format(data: bytes) -> str | None:
    if data.startswith(JPEG_SOI):
        return "jpeg"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def truncated(data: bytes, fmt: str) -> bool:
    """Whether a file stops before its image does.

    Decoders pad a cut-off JPEG or PNG with grey rather than fail, so look for the format's
    end: JPEG's end-of-image marker (NUL padding after it is harmless), PNG's IEND chunk,
    WebP's RIFF length.
    """
    if fmt == "jpeg":
        return not data.rstrip(b"\x00").endswith(JPEG_EOI)
    if fmt == "png":
        return not data.rstrip(b"\x00").endswith(PNG_IEND)
    if fmt == "webp":
        return len(data) < 8 + int.from_bytes(data[4:8], "little")
    return False


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header alone (Pillow reads no pixels here), or None."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # noqa: BLE001 - any unreadable header: the decoder then says what is wrong
        return None


def box_matrix(box: tuple[float, float, float], size: int) -> np.ndarray:
    """The matrix that maps the square box (x0, y0, side), in edge coordinates (pixel i spans
    [i, i+1)), onto a size x size output: o = s * (x - x0 + 0.5) - 0.5 with s = size / side."""
    x0, y0, side = box
    s = size / side
    return np.array([[s, 0.0, s * (0.5 - x0) - 0.5], [0.0, s, s * (0.5 - y0) - 0.5]])


def center_box(width: int, height: int) -> tuple[int, int, int]:
    """The centred square of side min(width, height)."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side


def halves_boxes(width: int, height: int) -> list[tuple[int, int, int]]:
    """Two squares of side min(width, height), flush with the left and the right edge (for a
    2:1 image such as Cityscapes' 2048 x 1024 they tile it exactly)."""
    side = min(width, height)
    return [(0, (height - side) // 2, side), (width - side, (height - side) // 2, side)]


def decode_factor(matrix: np.ndarray, size: int, fmt: str) -> int:
    """The largest JPEG reduction (1, 2, 4, 8) that keeps >= 1 decoded pixel per output pixel."""
    if fmt != "jpeg":
        return 1    # OpenCV's reduced modes decode PNG/WebP in full and then resize: no gain
    scale = transform_scale(matrix)     # output px per source px
    factor = 1
    while factor < 8 and scale * factor * 2 <= 1 + 1e-9:
        factor *= 2
    return factor


def reduced_matrix(matrix: np.ndarray, factor: int) -> np.ndarray:
    """The matrix for the image decoded at 1/factor: reduced pixel i covers full pixels
    f*i .. f*i + f - 1, whose centre is f*i + (f-1)/2."""
    if factor == 1:
        return matrix
    out = matrix.copy()
    out[:, :2] = factor * matrix[:, :2]
    out[:, 2] = matrix[:, 2] + (factor - 1) / 2.0 * (matrix[:, 0] + matrix[:, 1])
    return out


def _imdecode(buffer: np.ndarray, flags: int) -> np.ndarray | None:
    try:
        return cv2.imdecode(buffer, flags)
    except cv2.error:          # some builds raise instead of returning None on garbage
        return None


def _flags(factor: int) -> int:
    """imdecode flags: RGB straight from the decoder where OpenCV can (>= 4.10), at 1/factor;
    landmarks and boxes refer to the stored pixel grid, so any EXIF rotation is ignored."""
    flags = _REDUCED[factor] | cv2.IMREAD_IGNORE_ORIENTATION
    return (flags & ~cv2.IMREAD_COLOR) | _RGB if _RGB is not None else flags


def _boxes(kind: str, value, wh: tuple[int, int]) -> list[tuple[float, float, float]]:
    if kind == "box":
        return [value]
    return halves_boxes(*wh) if kind == "halves" else [center_box(*wh)]


def _box_factor(boxes: list[tuple[float, float, float]], size: int, fmt: str) -> int:
    """The largest JPEG reduction (1, 2, 4, 8) that leaves every box >= size decoded pixels."""
    if fmt != "jpeg":
        return 1
    side = min(b[2] for b in boxes)
    factor = 1
    while factor < 8 and side / (2 * factor) >= size - 1e-9:
        factor *= 2
    return factor


def crop_image(data: bytes, spec: Spec, size: int,
               expected_wh: tuple[int, int] | None = None) -> tuple[list[np.ndarray], str | None, bool]:
    """(crops as RGB uint8 size x size x 3, None, decoded_reduced) or ([], reason, False).

    `expected_wh`, when given, is the only (width, height) accepted (CelebA's landmarks refer
    to its 178 x 218 grid); anything else is skipped with a reason.
    """
    fmt = image_format(data)
    if fmt is None:
        return [], REASON_UNDECODABLE, False
    if truncated(data, fmt):
        return [], REASON_TRUNCATED, False
    kind, value = spec
    wh = expected_wh
    if kind in ("center", "halves") and wh is None and fmt == "jpeg":
        wh = header_size(data)        # others decode in full anyway: take the size from the pixels
    matrix = boxes = None
    if kind == "landmarks":
        try:
            matrix = similarity_transform(value, template(size))
        except ValueError:
            return [], REASON_DEGENERATE, False
        factor = decode_factor(matrix, size, fmt)
    elif kind == "box" or wh is not None:
        boxes = _boxes(kind, value, wh)
        factor = _box_factor(boxes, size, fmt)
    else:
        factor = 1
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = _imdecode(buffer, _flags(factor))
    if image is None:
        return [], REASON_UNDECODABLE, False
    if wh is not None:
        width, height = wh
        if image.shape[:2] != (-(-height // factor), -(-width // factor)):
            full = image if factor == 1 else _imdecode(buffer, _flags(1))
            got = "?x?" if full is None else f"{full.shape[1]}x{full.shape[0]}"
            return [], f"wrong size {got} (expected {width}x{height})", False
    if matrix is not None:
        crops = [warp_to_size(image, reduced_matrix(matrix, factor), size)]
    else:
        if boxes is None:
            boxes = _boxes(kind, value, (image.shape[1], image.shape[0]))
        crops = [resample_box(image, (x0 / factor, y0 / factor, side / factor), size) for x0, y0, side in boxes]
    if _RGB is None:
        crops = [cv2.cvtColor(np.ascontiguousarray(c), cv2.COLOR_BGR2RGB) for c in crops]
    return crops, None, factor > 1


def resample_box(image: np.ndarray, box: tuple[float, float, float], size: int) -> np.ndarray:
    """The square box (x0, y0, side) of `image`, in edge coordinates, resized to size x size
    without aliasing. A box on whole pixels is sliced and resized directly (exact for an
    integer ratio, and several times faster than the general warp); else it is warped."""
    x0, y0, side = box
    xi, yi, si = round(x0), round(y0), round(side)
    height, width = image.shape[:2]
    if (max(abs(x0 - xi), abs(y0 - yi), abs(side - si)) < 1e-6
            and xi >= 0 and yi >= 0 and xi + si <= width and yi + si <= height):
        return area_resize(image[yi:yi + si, xi:xi + si], size)
    return warp_to_size(image, box_matrix(box, size), size)


def init_worker() -> None:
    # One OpenCV thread per process: the pool already uses every core.
    cv2.setNumThreads(1)
