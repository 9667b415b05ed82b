"""The `preprocess` stage for data in CelebA's aligned layout: zip of JPEGs -> aligned uint8 arrays.

Reads `img_align_celeba.zip` member by member (never extracted), decodes and aligns in a pool of
processes, and streams the results into memory-mapped `.npy` files, one per split, so memory
stays bounded whatever the data set size. Images that cannot be used are skipped and listed in
`stats.json` with the reason; a missing or unreadable input file is a `PreprocessError`.
"""
from __future__ import annotations

import csv
import io
import math
import multiprocessing as mp
import os
import time
import zipfile
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from rnngan.data import celeba_format as cf
from rnngan.data.align import similarity_transform, template, transform_scale, warp_to_size
from rnngan.io import atomic_path, log, progress, write_json

LAYOUT = "celeba_aligned"
JPEG_SOI, JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
CHUNK = 256                      # images per task sent to a worker: large enough to amortise pickling

REASON_UNDECODABLE = "not a decodable JPEG"
REASON_TRUNCATED = "truncated JPEG (no end-of-image marker)"
REASON_MISSING = "missing from the zip"
REASON_NO_LANDMARKS = "no landmarks"
REASON_DEGENERATE = "degenerate landmarks (points coincide)"


class PreprocessError(ValueError):
    """An input of the preprocess stage that is missing or not in the expected format."""


@dataclass(frozen=True)
class _Inputs:
    zip_path: Path
    partition: dict[str, int]           # image name -> split code, in the file's order
    landmarks: dict[str, np.ndarray]    # image name -> 5 x 2 (x, y)


# ---------------------------------------------------------------------------------------------
# One image: bytes -> aligned RGB face (runs in the workers)

def _decode_factor(matrix: np.ndarray, size: int) -> int:
    """2 when decoding at half size still leaves the face crop at least `size` pixels wide.

    The aligned crop spans size / scale source pixels (scale = output px per source px); the
    JPEG DCT-domain half-size decode is much faster but must not leave the crop upsampled.
    """
    return 2 if size / transform_scale(matrix) / 2 >= size else 1


def _from_half_size(matrix: np.ndarray) -> np.ndarray:
    """The transform for the half-size image: half-size pixel i covers full pixels 2i and 2i+1,
    whose centre is 2i + 0.5, so full = 2 * half + 0.5."""
    out = matrix.copy()
    out[:, :2] = 2.0 * matrix[:, :2]
    out[:, 2] = matrix[:, 2] + 0.5 * (matrix[:, 0] + matrix[:, 1])
    return out


def decode_face(data: bytes, landmarks: np.ndarray, size: int,
                expected_wh: tuple[int, int] = (cf.IMAGE_WIDTH, cf.IMAGE_HEIGHT)
                ) -> tuple[np.ndarray | None, str | None, bool]:
    """(aligned size x size x 3 RGB uint8, None, decoded_at_half) or (None, reason, False)."""
    if not data.startswith(JPEG_SOI):
        return None, REASON_UNDECODABLE, False
    # A cut-off download still decodes (libjpeg pads the missing rows with grey), so look for
    # the end-of-image marker rather than trusting the decoder; NUL padding after it is harmless.
    if not data.rstrip(b"\x00").endswith(JPEG_EOI):
        return None, REASON_TRUNCATED, False
    try:
        matrix = similarity_transform(landmarks, template(size))
    except ValueError:
        return None, REASON_DEGENERATE, False
    factor = _decode_factor(matrix, size)
    buffer = np.frombuffer(data, dtype=np.uint8)
    # Landmarks refer to the stored pixel grid: ignore any EXIF rotation.
    flags = (cv2.IMREAD_REDUCED_COLOR_2 if factor == 2 else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    image = _imdecode(buffer, flags)
    if image is None:
        return None, REASON_UNDECODABLE, False
    width, height = expected_wh
    if image.shape[:2] != (math.ceil(height / factor), math.ceil(width / factor)):
        full = image if factor == 1 else _imdecode(buffer, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        got = "?x?" if full is None else f"{full.shape[1]}x{full.shape[0]}"
        return None, f"wrong size {got} (expected {width}x{height})", False
    if factor == 2:
        matrix = _from_half_size(matrix)
    face = warp_to_size(image, matrix, size)
    return cv2.cvtColor(face, cv2.COLOR_BGR2RGB), None, factor == 2


def _imdecode(buffer: np.ndarray, flags: int) -> np.ndarray | None:
    try:
        return cv2.imdecode(buffer, flags)
    except cv2.error:          # some builds raise instead of returning None on garbage
        return None


def _decode_chunk(job: tuple[list[bytes], np.ndarray, int]) -> tuple[np.ndarray, list[str | None], int]:
    """A worker task: the kept faces (in order), a reason per input (None = kept), half-size count."""
    blobs, landmarks, size = job
    faces = np.empty((len(blobs), size, size, 3), dtype=np.uint8)
    reasons: list[str | None] = []
    kept = half = 0
    for data, marks in zip(blobs, landmarks):
        face, reason, reduced = decode_face(data, marks, size)
        reasons.append(reason)
        if face is not None:
            faces[kept] = face
            kept += 1
            half += reduced
    return faces[:kept], reasons, half


def _init_worker() -> None:
    # One OpenCV thread per process: the pool already uses every core.
    cv2.setNumThreads(1)


# ---------------------------------------------------------------------------------------------
# Parallel, ordered, bounded map

def _ordered_map(fn: Callable, jobs: Iterable, workers: int) -> Iterator:
    """fn over jobs, results in input order, with at most 2 tasks per worker in flight.

    Pool.imap would pull the whole job iterator (all the JPEG bytes) into its queue at once;
    submitting as results come back keeps memory bounded. ProcessPoolExecutor rather than
    multiprocessing.Pool: when a worker dies (killed for memory, a crash in a decoder, a main
    script the workers cannot import) it raises BrokenProcessPool, where Pool replaces the
    dead worker and waits forever. Started with forkserver or spawn: a fork pool started after
    OpenCV has run multithreaded can hang.
    """
    if workers <= 1:
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            yield from map(fn, jobs)
        finally:
            cv2.setNumThreads(threads)
        return
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    context = mp.get_context(method)
    if method == "forkserver":
        # Import OpenCV and this module once in the fork server (which never runs OpenCV, so
        # forking from it is safe): measured here, the first pool then starts in ~0.35 s and
        # later ones in ~0.02 s, instead of ~0.4-0.55 s each. Only takes effect if the server
        # is not running yet; '__main__' is the default entry, kept.
        context.set_forkserver_preload(["__main__", __name__])
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)
    try:
        pending: deque = deque()
        for job in jobs:
            pending.append(pool.submit(fn, job))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------
# Inputs and outputs

def _read_inputs(raw_dir: Path) -> _Inputs:
    """Check and read everything the stage needs before anything is written."""
    if not raw_dir.is_dir():
        raise PreprocessError(f"{raw_dir}: raw data folder not found (run the download stage first)")
    paths = {name: raw_dir / name for name in (cf.IMAGE_ZIP, cf.LANDMARK_FILE, cf.PARTITION_FILE)}
    for path in paths.values():
        if not path.is_file():
            raise PreprocessError(f"{path}: missing; CelebA's aligned layout needs {path.name} "
                                  f"(rerun the download stage)")
    try:
        partition = cf.read_partition(paths[cf.PARTITION_FILE])
        names, marks = cf.read_landmarks(paths[cf.LANDMARK_FILE])
    except cf.FormatError as exc:   # already names the file
        raise PreprocessError(str(exc)) from exc
    try:
        with zipfile.ZipFile(paths[cf.IMAGE_ZIP]) as zf:
            zf.infolist()
    except zipfile.BadZipFile as exc:
        raise PreprocessError(f"{paths[cf.IMAGE_ZIP]}: not a zip archive ({exc})") from exc
    return _Inputs(paths[cf.IMAGE_ZIP], partition, dict(zip(names, marks)))


def _member(name: str) -> str:
    return f"{cf.IMAGE_DIR}/{name}"


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _shrink_npy(path: Path, rows: int) -> None:
    """Cut a C-order .npy file to its first `rows` rows.

    In place when the new header has the old length (numpy pads headers so that the row count
    can change in place); otherwise by a chunked copy. Either way memory stays bounded.
    """
    array = np.load(path, mmap_mode="r")
    shape, dtype, offset = array.shape, array.dtype, array.offset
    del array
    if rows == shape[0]:
        return
    new_shape = (rows,) + shape[1:]
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": new_shape})
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    if len(header.getvalue()) == offset:
        with open(path, "r+b") as f:
            f.write(header.getvalue())
            f.truncate(offset + rows * row_bytes)
        return
    source = np.load(path, mmap_mode="r")
    tmp = path.with_name(path.name + ".shrink")
    target = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=new_shape)
    for start in range(0, rows, CHUNK):
        stop = min(start + CHUNK, rows)
        target[start:stop] = source[start:stop]
    target.flush()
    del source, target
    os.replace(tmp, path)


def _write_index(path: Path, rows: list[tuple[str, int, str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "row", "image"])
        writer.writerows(rows)


# ---------------------------------------------------------------------------------------------
# The stage

def _plan(inputs: _Inputs, members: set[str]) -> tuple[list[str], list[tuple[str, str]], int]:
    """(images to decode, in partition order; images skipped without decoding; unlisted count)."""
    todo: list[str] = []
    skipped: list[tuple[str, str]] = []
    for name in inputs.partition:
        if _member(name) not in members:
            skipped.append((name, REASON_MISSING))
        elif name not in inputs.landmarks:
            skipped.append((name, REASON_NO_LANDMARKS))
        else:
            todo.append(name)
    listed = {_member(name) for name in inputs.partition}
    unlisted = sum(1 for m in members if m.startswith(cf.IMAGE_DIR + "/") and m.endswith(".jpg")
                   and m not in listed)
    return todo, skipped, unlisted


def _pool_shape(n: int, workers: int, chunk: int) -> tuple[int, int]:
    """(workers, chunk) for n images: small data sets are spread over every worker (the output
    does not depend on the chunking), and no more processes start than there are chunks,
    since each costs about half a second to start."""
    if workers > 1:
        chunk = max(1, min(chunk, math.ceil(n / (4 * workers))))
    return max(1, min(workers, math.ceil(n / chunk))), chunk


def _decode_into(folder: Path, results: Iterator, todo: list[str], split_of: dict[str, str],
                 image_size: int) -> tuple[dict[str, int], list[tuple[str, int, str]], list[tuple[str, str]], int]:
    """Stream decoded chunks into one memory-mapped array per split, sized for the worst case
    (nothing skipped) and cut to the kept rows at the end. Returns rows per split, the index,
    the images skipped while decoding, and how many were decoded at half size."""
    capacity = {split: 0 for split in cf.SPLITS.values()}
    for name in todo:
        capacity[split_of[name]] += 1
    arrays = {split: np.lib.format.open_memmap(folder / f"{split}.npy", mode="w+", dtype=np.uint8,
                                               shape=(n, image_size, image_size, 3))
              for split, n in capacity.items()}
    rows = {split: 0 for split in cf.SPLITS.values()}
    index: list[tuple[str, int, str]] = []
    skipped: list[tuple[str, str]] = []
    half = 0
    names = iter(todo)
    bar = progress(total=len(todo), unit="img", desc="preprocess")
    for faces, reasons, reduced in results:
        half += reduced
        kept = iter(faces)
        for reason in reasons:
            name = next(names)
            if reason is not None:
                skipped.append((name, reason))
                continue
            split = split_of[name]
            arrays[split][rows[split]] = next(kept)
            index.append((split, rows[split], name))
            rows[split] += 1
        bar.update(len(reasons))
    bar.close()
    for array in arrays.values():
        array.flush()
    del arrays
    for split, n in rows.items():
        _shrink_npy(folder / f"{split}.npy", n)
    return rows, index, skipped, half


def preprocess_celeba_layout(raw_dir: Path, out_dir: Path, image_size: int, workers: int = 0,
                             chunk: int = CHUNK) -> dict:
    """Align every listed image of a CelebA-layout raw folder into per-split uint8 arrays.

    Writes out_dir/{train,val,test}.npy (N x image_size x image_size x 3, RGB), index.csv
    (split,row,image) and stats.json, atomically. Returns the stats. workers=0: one per core.
    """
    start = time.perf_counter()
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    if image_size <= 0 or workers < 0 or chunk < 1:
        raise PreprocessError(f"need image_size > 0, workers >= 0 and chunk >= 1; "
                              f"got {image_size}, {workers}, {chunk}")
    inputs = _read_inputs(raw_dir)

    with zipfile.ZipFile(inputs.zip_path) as zf:
        todo, skipped, unlisted = _plan(inputs, {info.filename for info in zf.infolist()})
        workers, chunk = _pool_shape(len(todo), workers or len(os.sched_getaffinity(0)), chunk)
        log.info("preprocess %s: %d images listed, %d to decode, %d skipped before decoding, "
                 "%d in the zip but not in the partition file (ignored); %d worker(s)",
                 raw_dir, len(inputs.partition), len(todo), len(skipped), unlisted, workers)

        def jobs() -> Iterator[tuple[list[bytes], np.ndarray, int]]:
            # Read here, in the main process, as the pool asks for more: zip reads are cheap.
            for names in _chunks(todo, chunk):
                blobs = [zf.read(_member(name)) for name in names]
                yield blobs, np.stack([inputs.landmarks[n] for n in names]), image_size

        split_of = {name: cf.SPLITS[inputs.partition[name]] for name in todo}
        with atomic_path(out_dir) as tmp:
            tmp.mkdir()
            results = _ordered_map(_decode_chunk, jobs(), workers)
            rows, index, failed, half = _decode_into(tmp, results, todo, split_of, image_size)
            _write_index(tmp / "index.csv", index)
            order = {name: i for i, name in enumerate(inputs.partition)}
            skipped = sorted(skipped + failed, key=lambda item: order[item[0]])
            seconds = time.perf_counter() - start
            stats = {
                "dataset": raw_dir.name,
                "layout": LAYOUT,
                "image_size": image_size,
                "counts": rows,
                "total": sum(rows.values()),
                "listed": len(inputs.partition),
                "skipped": [{"image": name, "reason": reason} for name, reason in skipped],
                "unlisted_in_zip": unlisted,
                "decoded_at_half_size": half,
                "workers": workers,
                "seconds": round(seconds, 3),
                "images_per_s": round(len(todo) / seconds, 1) if seconds > 0 else None,
            }
            write_json(tmp / "stats.json", stats)

    log.info("preprocess: kept %d (%s), skipped %d, %.1f s, %s images/s", stats["total"],
             ", ".join(f"{k} {v}" for k, v in rows.items()), len(skipped), seconds, stats["images_per_s"])
    for name, reason in skipped[:20]:
        log.info("  skipped %s: %s", name, reason)
    if len(skipped) > 20:
        log.info("  ... and %d more (see stats.json)", len(skipped) - 20)
    return stats
