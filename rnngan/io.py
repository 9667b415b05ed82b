"""Small I/O helpers shared by every stage: atomic writes, logging, devices, progress."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from rnngan.errors import MissingInputError, UserError

log = logging.getLogger("rnngan")


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success rename it into place, else delete it.

    Works for files and folders: an interrupted writer leaves the old output or none, never half.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if not target.exists():
            raise FileNotFoundError(f"writer produced nothing at {target}")
        replace_path(target, path, aside=tmp / ".previous")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_path(src: Path, dst: Path, aside: Path) -> None:
    """Rename src onto dst, file or folder. A folder cannot be replaced in one rename: the old
    one is moved to `aside` first (same file system), so the gap without an output is two
    renames long; the caller deletes `aside`."""
    if dst.is_dir() and not dst.is_symlink():
        os.replace(dst, aside)
    os.replace(src, dst)


class ImageArrayError(UserError, ValueError):
    """An image array that is not uint8 N x H x W x 3."""


def load_images(path: str | Path) -> np.ndarray:
    """A uint8 N x H x W x 3 .npy, memory-mapped."""
    if not Path(path).is_file():
        raise MissingInputError(f"{path}: no such image array; run the stage that writes it first (dvc repro)")
    images = np.load(path, mmap_mode="r")
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ImageArrayError(f"{path}: expected uint8 N x H x W x 3 images, got {images.dtype} {images.shape}")
    return images


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """A nested dict as dotted keys: {"a": {"b": 1}} -> {"a.b": 1} (an empty dict stays a value)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def read_json(path: str | Path) -> Any:
    """A JSON file a stage reads; a missing one is the user's to fix (MissingInputError, a
    FileNotFoundError), e.g. a stage run by hand before the one that writes it."""
    if not Path(path).is_file():
        raise MissingInputError(f"{path}: no such file; run the stage that writes it first (dvc repro)")
    return json.loads(Path(path).read_text())


def pick_device(name: str):
    """'auto' means CUDA when present, else CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is visible; use 'auto' or 'cpu'")
    return torch.device(name)


def set_threads(n: int) -> int:
    """Use n CPU threads for torch (0 = one per core); returns the count in use."""
    import torch

    n = n or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n


def progress(iterable=None, **kw):
    """A tqdm bar with rate and ETA, to stderr; quiet when RNNGAN_NO_PROGRESS is set."""
    from tqdm.auto import tqdm

    kw.setdefault("disable", bool(os.environ.get("RNNGAN_NO_PROGRESS")))
    kw.setdefault("dynamic_ncols", True)
    kw.setdefault("mininterval", 1.0)
    return tqdm(iterable, **kw)
