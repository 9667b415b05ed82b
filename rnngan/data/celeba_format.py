"""CelebA's published annotation files, read and written exactly as the publisher ships them.

- `list_attr_celeba.txt`: a count line, a line of the 40 attribute names (with a trailing
  space), then `000001.jpg -1  1 ...`: the file name and 40 values in {-1, 1}, each `%2d`.
- `list_landmarks_align_celeba.txt`: a count line, the header `lefteye_x lefteye_y ...
  rightmouth_y ` (trailing space), then the file name and 10 integers, each `%5d`.
- `list_eval_partition.txt`: no header, `000001.jpg 0` (0 train, 1 val, 2 test).

Images live in `img_align_celeba.zip` as `img_align_celeba/000001.jpg` ..., 178x218 JPEGs.
The in-the-wild photos (`img_celeba/000001.jpg` ..., of any size; the publisher ships them as
a multi-volume img_celeba.7z) have their landmarks in `list_landmarks_celeba.txt`, in the same
format as the aligned ones.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rnngan.errors import MissingInputError, UserError

IMAGE_ZIP = "img_align_celeba.zip"
IMAGE_DIR = "img_align_celeba"           # the folder inside the zip
ATTR_FILE = "list_attr_celeba.txt"
LANDMARK_FILE = "list_landmarks_align_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
WILD_IMAGE_ZIP = "img_celeba.zip"          # the extracted img_celeba/ folder, zipped
WILD_IMAGE_DIR = "img_celeba"
WILD_LANDMARK_FILE = "list_landmarks_celeba.txt"
IMAGE_WIDTH, IMAGE_HEIGHT = 178, 218

ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
LANDMARK_COLUMNS = (
    "lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
    "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y",
)
SPLITS = {0: "train", 1: "val", 2: "test"}


class FormatError(UserError, ValueError):
    """An annotation file that does not follow CelebA's published format."""


def image_name(index: int) -> str:
    """CelebA numbers its images from 1: index 0 is 000001.jpg."""
    return f"{index + 1:06d}.jpg"


def write_attributes(path: str | Path, names: list[str], values: np.ndarray) -> None:
    values = np.asarray(values)
    if values.shape != (len(names), len(ATTRIBUTES)) or not np.isin(values, (-1, 1)).all():
        raise ValueError(f"attributes must be an N x {len(ATTRIBUTES)} array of -1/1")
    lines = [str(len(names)), " ".join(ATTRIBUTES) + " "]
    lines += [name + " " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, values)]
    Path(path).write_text("\n".join(lines) + "\n")


def write_landmarks(path: str | Path, names: list[str], landmarks: np.ndarray) -> None:
    """landmarks: N x 5 x 2 (x, y) in pixels; written rounded to integers as CelebA ships them."""
    flat = np.rint(np.asarray(landmarks, dtype=np.float64)).astype(np.int64).reshape(len(names), 10)
    lines = [str(len(names)), " ".join(LANDMARK_COLUMNS) + " "]
    lines += [name + " " + "".join(f"{v:5d}" for v in row) for name, row in zip(names, flat)]
    Path(path).write_text("\n".join(lines) + "\n")


def write_partition(path: str | Path, names: list[str], splits: np.ndarray) -> None:
    Path(path).write_text("".join(f"{n} {int(s)}\n" for n, s in zip(names, splits)))


def _rows(path: Path, header: tuple[str, ...] | None, width: int) -> list[list[str]]:
    if not Path(path).is_file():
        raise MissingInputError(f"{path}: no such annotation file; the download stage writes it (dvc repro)")
    lines = path.read_text().splitlines()
    if header is None:
        body = lines
    else:
        if len(lines) < 2 or not lines[0].strip().isdigit():
            raise FormatError(f"{path.name}: the first line must be the image count")
        if tuple(lines[1].split()) != header:
            raise FormatError(f"{path.name}: line 2 must be the header '{' '.join(header)}'")
        body = lines[2:]
    rows = [line.split() for line in body if line.strip()]
    for i, row in enumerate(rows):
        if len(row) != width:
            line_no = i + (3 if header else 1)
            raise FormatError(f"{path.name}, line {line_no}: expected {width} fields, got {len(row)}")
    if header is not None and int(lines[0]) != len(rows):
        raise FormatError(f"{path.name}: the count line says {int(lines[0])} but {len(rows)} rows follow")
    return rows


def read_attributes(path: str | Path) -> tuple[list[str], np.ndarray]:
    rows = _rows(Path(path), ATTRIBUTES, 1 + len(ATTRIBUTES))
    try:
        values = np.array([[int(v) for v in r[1:]] for r in rows], dtype=np.int8).reshape(-1, len(ATTRIBUTES))
    except ValueError as exc:
        raise FormatError(f"{Path(path).name}: attribute values must be -1 or 1 ({exc})") from exc
    return [r[0] for r in rows], values


def read_landmarks(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Returns the file names and an N x 5 x 2 float array of (x, y) landmarks."""
    rows = _rows(Path(path), LANDMARK_COLUMNS, 1 + len(LANDMARK_COLUMNS))
    try:
        values = np.array([[float(v) for v in r[1:]] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise FormatError(f"{Path(path).name}: landmark values must be numbers ({exc})") from exc
    return [r[0] for r in rows], values.reshape(-1, 5, 2)


def read_partition(path: str | Path) -> dict[str, int]:
    rows = _rows(Path(path), None, 2)
    out = {}
    for name, split in rows:
        if split not in ("0", "1", "2"):
            raise FormatError(f"{Path(path).name}: split of {name} must be 0, 1 or 2, got {split}")
        out[name] = int(split)
    return out
