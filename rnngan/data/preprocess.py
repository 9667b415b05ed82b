"""The `preprocess` stage: a dataset's published files -> square uint8 arrays, one per split.

Each dataset has a *plan*: the images to read (from a zip member or an LMDB record, never
extracted to loose files), their split and the crop protocol (`rnngan.data.decode`). One engine
then reads the bytes in the main process, decodes and crops them in a pool of processes, and
streams the results into memory-mapped `.npy` files, so memory stays bounded whatever the data
set size. Images that cannot be used are skipped and listed in `stats.json` with the reason; a
missing or unreadable input file is a `PreprocessError`, raised before anything is written.

Protocols (`data.crop`, per dataset in rnngan.config.DATASET_CROPS; `auto` is the first):
    synthfaces  landmarks | center
    celeba      center | landmarks | wild (the in-the-wild photos, aligned by their landmarks)
    lsun_bedroom  center
    cityscapes  halves | center
"""
from __future__ import annotations

import contextlib
import csv
import io
import itertools
import math
import multiprocessing as mp
import os
import re
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rnngan.config import DATASET_CROPS, crop_error
from rnngan.data import celeba_format as cf
from rnngan.data import decode, zipread
from rnngan.data.decode import HALVES, REASON_MISSING, REASON_NO_LANDMARKS, Spec
from rnngan.data.zipread import Member
from rnngan.errors import UserError
from rnngan.io import atomic_path, log, progress, write_json

CHUNK = 256                      # images per task sent to a worker: large enough to amortise pickling
IN_FLIGHT = 2                    # tasks per worker submitted ahead: enough to keep every worker busy

# The crop that is conventional for 64 x 64 CelebA FID numbers: the central 108 x 108 of the
# 178 x 218 aligned image (columns 35-142, rows 55-162), as carpedm20/DCGAN-tensorflow's
# `center_crop` (--input_height 108 --crop) takes it; TTUR's DCGAN CelebA setup builds on it.
CELEBA_CENTER_BOX = (35, 55, 108)


LSUN_CATEGORY = "bedroom"
LSUN_SPLITS = {"train": f"{LSUN_CATEGORY}_train_lmdb", "val": f"{LSUN_CATEGORY}_val_lmdb"}
LSUN_IMAGE_ZIP = "images.zip"        # a folder of image files, packed by the download stage
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

CITYSCAPES_ZIP = "leftImg8bit_trainvaltest.zip"
CITYSCAPES_MEMBER = re.compile(r"^leftImg8bit/(train|val|test)/([^/]+)/(\2_\d{6}_\d{6}_leftImg8bit\.png)$")


class PreprocessError(UserError, ValueError):
    """An input of the preprocess stage that is missing or not in the expected format."""


def resolve_crop(dataset: str, crop: str) -> str:
    """The protocol `data.crop` means for this dataset ('auto' -> the dataset's default)."""
    if dataset not in DATASET_CROPS:
        raise PreprocessError(f"no preprocessing is defined for dataset {dataset!r}; known: {', '.join(DATASET_CROPS)}")
    crop = DATASET_CROPS[dataset][0] if crop == "auto" else crop
    if crop not in DATASET_CROPS[dataset]:
        raise PreprocessError(crop_error(dataset, crop))
    return crop


# ---------------------------------------------------------------------------------------------
# Plans: what to read, from where, and how to crop it

@dataclass(frozen=True, slots=True)
class Item:
    name: str          # what index.csv and stats.json call the image
    split: str
    key: object        # what the plan's reader needs to fetch the bytes
    spec: Spec


@dataclass
class Plan:
    """What to decode. `items` can be iterated more than once, in the same order each time:
    a list, or (for millions of LMDB records) an iterable that reads them afresh, so memory
    stays bounded whatever the count; `counts` is how many there are per split."""
    layout: str
    splits: tuple[str, ...]
    items: Iterable[Item]
    source: ZipSource | LmdbSource       # where the bytes are; opened once in each worker
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (image, reason) before decoding
    expected_wh: tuple[int, int] | None = None
    crops_per_image: int = 1
    crop_labels: tuple[str, ...] = ()                             # suffixes of the names when > 1
    notes: dict = field(default_factory=dict)                      # extra facts for stats.json
    order: list[str] | None = None       # every listed name, to report skips in; default: items
    counts: dict[str, int] | None = None  # items per split; counted from `items` when None

    def __post_init__(self) -> None:
        if self.counts is None:
            self.counts = {split: 0 for split in self.splits}
            for item in self.items:
                self.counts[item.split] += 1


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise PreprocessError(f"{path}: missing; {what} (rerun the download stage)")
    return path


def _zip_members(path: Path) -> list[Member]:
    try:
        return zipread.members(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PreprocessError(f"{path}: not a readable zip archive ({exc})") from exc


@dataclass(frozen=True)
class ZipSource:
    """Members of one zip archive, keyed by `zipread.Member`."""
    path: Path

    def open(self) -> tuple[Callable[[object], bytes], Callable[[], None]]:
        reader = zipread.MemberReader(self.path)
        return reader.read, reader.close


@dataclass(frozen=True)
class LmdbSource:
    """Records of one LMDB database per split, keyed by (split, key bytes)."""
    dbs: tuple[tuple[str, Path], ...]

    def open(self) -> tuple[Callable[[object], bytes], Callable[[], None]]:
        envs = {split: _open_lmdb(path) for split, path in self.dbs}
        txns = {split: env.begin(write=False) for split, env in envs.items()}

        def read(key) -> bytes:
            return txns[key[0]].get(key[1]) or b""

        def close() -> None:
            for txn in txns.values():
                txn.abort()
        return read, close


_ENVS: dict[Path, object] = {}


def _open_lmdb(path: Path):
    """The database, opened once per process (LMDB refuses a second open of the same file);
    without locking, as nothing writes to it, so several read transactions may share a thread."""
    import lmdb

    if path not in _ENVS:
        _require(path / "data.mdb", "an LMDB folder holds data.mdb")
        try:
            _ENVS[path] = lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False,
                                    subdir=True)
        except lmdb.Error as exc:
            raise PreprocessError(f"{path}: not a readable LMDB database ({exc})") from exc
    return _ENVS[path]


def _close_lmdb() -> None:
    while _ENVS:
        _ENVS.popitem()[1].close()


def celeba_plan(raw_dir: Path, crop: str) -> Plan:
    """CelebA's layout (real CelebA and synthfaces): the partition file, and img_align_celeba.zip
    with list_landmarks_align_celeba.txt (crop=landmarks), or the in-the-wild img_celeba.zip
    with list_landmarks_celeba.txt (crop=wild)."""
    wild = crop == "wild"
    image_zip, image_dir = (cf.WILD_IMAGE_ZIP, cf.WILD_IMAGE_DIR) if wild else (cf.IMAGE_ZIP, cf.IMAGE_DIR)
    zip_path = _require(raw_dir / image_zip, "crop=wild needs the in-the-wild photos: the publisher ships them as "
                        "img_celeba.7z; extract it and point data.source at a folder holding img_celeba/ (or "
                        "img_celeba.zip) and list_landmarks_celeba.txt" if wild else "CelebA's aligned layout needs it")
    partition_path = _require(raw_dir / cf.PARTITION_FILE, "CelebA's layout needs it")
    try:
        partition = cf.read_partition(partition_path)
        landmarks = {}
        if crop in ("landmarks", "wild"):
            landmark_file = cf.WILD_LANDMARK_FILE if wild else cf.LANDMARK_FILE
            names, marks = cf.read_landmarks(_require(raw_dir / landmark_file, f"crop={crop} needs it"))
            landmarks = dict(zip(names, marks))
    except cf.FormatError as exc:   # already names the file
        raise PreprocessError(str(exc)) from exc
    members = {m.name: m for m in _zip_members(zip_path)}
    items, skipped = [], []
    for name, code in partition.items():
        member = f"{image_dir}/{name}"
        if member not in members:
            skipped.append((name, REASON_MISSING))
        elif landmarks and name not in landmarks:
            skipped.append((name, REASON_NO_LANDMARKS))
        else:
            spec = ("landmarks", landmarks[name]) if landmarks else ("box", CELEBA_CENTER_BOX)
            items.append(Item(name, cf.SPLITS[code], members[member], spec))
    listed = {f"{image_dir}/{name}" for name in partition}
    unlisted = sum(1 for m in members if m.startswith(image_dir + "/") and m.endswith(".jpg") and m not in listed)
    return Plan("celeba_in_the_wild" if wild else "celeba_aligned", tuple(cf.SPLITS.values()), items,
                ZipSource(zip_path), skipped,
                expected_wh=None if wild else (cf.IMAGE_WIDTH, cf.IMAGE_HEIGHT),
                notes={"listed": len(partition), "unlisted_in_zip": unlisted}, order=list(partition))


def lsun_plan(raw_dir: Path, crop: str) -> Plan:
    """LSUN's LMDB export (bedroom_{train,val}_lmdb/, keys as LSUN wrote them, values encoded
    images), or images.zip packed from a folder of image files (all of it the train split)."""
    dbs = {split: raw_dir / folder for split, folder in LSUN_SPLITS.items() if (raw_dir / folder).is_dir()}
    if dbs:
        return _lmdb_plan(dbs)
    if (raw_dir / LSUN_IMAGE_ZIP).is_file():
        zip_path = raw_dir / LSUN_IMAGE_ZIP
        images = sorted((m for m in _zip_members(zip_path) if not m.is_dir and m.name.lower().endswith(IMAGE_SUFFIXES)),
                        key=lambda m: m.name)
        items = [Item(m.name, "train", m, CENTER) for m in images]
        return Plan("image_zip", ("train",), items, ZipSource(zip_path))
    raise PreprocessError(f"{raw_dir}: no {' or '.join(LSUN_SPLITS.values())} LMDB folder and no "
                          f"{LSUN_IMAGE_ZIP}; rerun the download stage")


CENTER: Spec = ("center", None)


class _LmdbItems:
    """The records of LSUN's LMDB databases, in key order, read afresh on each iteration."""

    def __init__(self, dbs: dict[str, Path]):
        self.dbs = dbs

    def __iter__(self) -> Iterator[Item]:
        import lmdb

        for split, path in self.dbs.items():
            try:
                with _open_lmdb(path).begin(write=False) as txn:
                    for key in txn.cursor().iternext(keys=True, values=False):
                        yield Item(key.decode("ascii", "replace"), split, (split, bytes(key)), CENTER)
            except lmdb.Error as exc:
                raise PreprocessError(f"{path}: corrupt LMDB database ({exc})") from exc


def _lmdb_plan(dbs: dict[str, Path]) -> Plan:
    import lmdb

    counts = {}
    for split, path in dbs.items():
        try:
            with _open_lmdb(path).begin(write=False) as txn:
                counts[split] = txn.stat()["entries"]
        except lmdb.Error as exc:
            raise PreprocessError(f"{path}: corrupt LMDB database ({exc})") from exc
    return Plan("lsun_lmdb", tuple(dbs), _LmdbItems(dbs), LmdbSource(tuple(dbs.items())), counts=counts,
                notes={"databases": {split: path.name for split, path in dbs.items()}})


def cityscapes_plan(raw_dir: Path, crop: str) -> Plan:
    """Cityscapes' leftImg8bit_trainvaltest.zip: leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png."""
    zip_path = _require(raw_dir / CITYSCAPES_ZIP, "Cityscapes needs leftImg8bit")
    infos = [m for m in _zip_members(zip_path) if not m.is_dir]
    items, other = [], 0
    for info in sorted(infos, key=lambda m: m.name):
        match = CITYSCAPES_MEMBER.match(info.name)
        if match:
            split, _, name = match.groups()
            items.append(Item(name, split, info, (crop, None)))
        elif info.name.lower().endswith(IMAGE_SUFFIXES):
            other += 1
    if not items:
        raise PreprocessError(f"{zip_path}: no leftImg8bit/<split>/<city>/*_leftImg8bit.png members; "
                              "is this Cityscapes' leftImg8bit_trainvaltest.zip?")
    order = {"train": 0, "val": 1, "test": 2}
    items.sort(key=lambda item: (order[item.split], item.name))
    n = 2 if crop == "halves" else 1
    return Plan("cityscapes_leftImg8bit", ("train", "val", "test"), items, ZipSource(zip_path),
                crops_per_image=n, crop_labels=HALVES if n == 2 else (),
                notes={"other_images_in_zip": other})


PLANS: dict[str, Callable[[Path, str], Plan]] = {
    "synthfaces": celeba_plan, "celeba": celeba_plan, "lsun_bedroom": lsun_plan, "cityscapes": cityscapes_plan}


# ---------------------------------------------------------------------------------------------
# Parallel, ordered, bounded map

def _ordered_map(fn: Callable, jobs: Iterable, workers: int) -> Iterator:
    """fn over jobs, results in input order, with at most IN_FLIGHT tasks per worker in flight.

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
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=decode.init_worker)
    try:
        pending: deque = deque()
        for job in jobs:
            pending.append(pool.submit(fn, job))
            if len(pending) >= IN_FLIGHT * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------
# Outputs

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


def _pool_shape(n: int, workers: int, chunk: int) -> tuple[int, int]:
    """(workers, chunk) for n images: small data sets are spread over every worker (the output
    does not depend on the chunking), and no more processes start than there are chunks,
    since each costs about half a second to start."""
    if workers > 1:
        chunk = max(1, min(chunk, math.ceil(n / (4 * workers))))
    return max(1, min(workers, math.ceil(n / chunk))), chunk


def _limit(plan: Plan, limit: int | None) -> tuple[Iterator[Item], dict[str, int]]:
    """The first `limit` items of each split (all when None), and the counts that leaves."""
    if limit is None:
        return iter(plan.items), dict(plan.counts)

    def first() -> Iterator[Item]:
        taken = dict.fromkeys(plan.splits, 0)
        for item in plan.items:
            if taken[item.split] < limit:
                taken[item.split] += 1
                yield item
            elif all(n >= min(limit, plan.counts[s]) for s, n in taken.items()):
                return                       # every split is full: stop reading
    return first(), {split: min(n, limit) for split, n in plan.counts.items()}


_READERS: dict[object, tuple[Callable[[object], bytes], Callable[[], None]]] = {}


def _reader(source) -> Callable[[object], bytes]:
    """The source opened once per process (a worker keeps it for its life)."""
    if source not in _READERS:
        _READERS[source] = source.open()
    return _READERS[source][0]


def _close_readers() -> None:
    while _READERS:
        _, (_, close) = _READERS.popitem()
        close()
    _close_lmdb()


def _jobs(plan: Plan, todo: Iterator[tuple[Item, int]], outputs: dict[str, Path], size: int,
          chunk: int) -> Iterator[tuple]:
    """Worker tasks: keys and output rows only. Each worker reads the bytes and writes the
    crops into the output arrays itself, so the main process ships a few names per image and
    receives a few flags (moving images through it would make it the bottleneck)."""
    while batch := list(itertools.islice(todo, chunk)):
        yield (plan.source, [item.key for item, _ in batch], [item.spec for item, _ in batch],
               [(item.split, slot) for item, slot in batch], outputs, size, plan.expected_wh)


_OUTPUTS: dict[Path, np.ndarray] = {}


def _output(path: Path) -> np.ndarray:
    """An output array, memory-mapped once per process (shared with the main process's map)."""
    if path not in _OUTPUTS:
        _OUTPUTS[path] = np.load(path, mmap_mode="r+")
    return _OUTPUTS[path]


def _process(job) -> tuple[list[int], list[str | None], int]:
    """Read, decode and crop one task's images into their output rows (each image's slot: its
    place if nothing before it were skipped; the main process closes the gaps). Returns the
    crops per image, a reason per image (None = kept) and how many were decoded reduced.
    A member the archive cannot give back (bad CRC, corrupt deflate data) is skipped with
    that reason, like an undecodable image."""
    source, keys, specs, slots, outputs, size, expected_wh = job
    read = _reader(source)
    counts: list[int] = []
    reasons: list[str | None] = []
    reduced = 0
    for key, spec, (split, slot) in zip(keys, specs, slots):
        try:
            data = read(key)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            crops, reason, was_reduced = [], f"corrupt in the archive ({exc})", False
        else:
            crops, reason, was_reduced = decode.crop_image(data, spec, size, expected_wh)
        if crops:
            out = _output(outputs[split])
            for k, crop in enumerate(crops):
                out[slot + k] = crop
        counts.append(len(crops))
        reasons.append(reason)
        reduced += was_reduced
    return counts, reasons, reduced


def _decode_into(folder: Path, plan: Plan, todo: Iterator[tuple[Item, int]], outputs: dict[str, Path],
                 results: Iterator) -> tuple[dict[str, int], list[tuple[str, str]], int]:
    """Collect the workers' results in order: write the index rows into index.csv, close the
    gaps that skipped images leave in the arrays (a copy only after the first skip of a split),
    and cut each array to its kept rows. Returns rows per split, the images skipped while
    decoding, and how many were decoded at reduced size. `todo` yields (item, slot) for the
    results, in the same order."""
    arrays = {split: _output(path) for split, path in outputs.items()}
    rows = dict.fromkeys(plan.splits, 0)
    skipped: list[tuple[str, str]] = []
    reduced_total = 0
    bar = progress(total=sum(len(a) for a in arrays.values()) // plan.crops_per_image, unit="img", desc="preprocess")
    with open(folder / "index.csv", "w", newline="") as f:
        index = csv.writer(f)
        index.writerow(["split", "row", "image"])
        for n_crops, reasons, reduced in results:
            reduced_total += reduced
            for (item, slot), count, reason in zip(itertools.islice(todo, len(reasons)), n_crops, reasons):
                if reason is not None:
                    skipped.append((item.name, reason))
                    continue
                row = rows[item.split]
                if row != slot:              # an earlier image of this split was skipped
                    arrays[item.split][row:row + count] = arrays[item.split][slot:slot + count]
                for k in range(count):
                    label = f"#{plan.crop_labels[k]}" if plan.crop_labels else ""
                    index.writerow((item.split, row + k, item.name + label))
                rows[item.split] = row + count
            bar.update(len(reasons))
    bar.close()
    for array in arrays.values():
        array.flush()
    _OUTPUTS.clear()
    del arrays
    for split, n in rows.items():
        _shrink_npy(folder / f"{split}.npy", n)
    return rows, skipped, reduced_total


def run_plan(plan: Plan, out_dir: Path, image_size: int, workers: int = 0, chunk: int = CHUNK,
             limit: int | None = None, describe: dict | None = None) -> dict:
    """Decode and crop every image of the plan into out_dir/{split}.npy, index.csv, stats.json,
    atomically (an interrupted run leaves the previous output or none). Returns the stats."""
    start = time.perf_counter()
    if image_size <= 0 or workers < 0 or chunk < 1 or (limit is not None and limit < 1):
        raise PreprocessError(f"need image_size > 0, workers >= 0, chunk >= 1 and limit >= 1 or None; "
                              f"got {image_size}, {workers}, {chunk}, {limit}")
    total = sum(plan.counts.values())
    jobs_items, counts = _limit(plan, limit)
    n = sum(counts.values())
    left_out = total - n
    workers, chunk = _pool_shape(n, workers or len(os.sched_getaffinity(0)), chunk)
    log.info("preprocess (%s): %d images to decode%s, %d skipped before decoding; %d worker(s)",
             plan.layout, n, f" (data.limit={limit} per split left out {left_out})" if left_out else "",
             len(plan.skipped), workers)
    with contextlib.ExitStack() as stack, atomic_path(out_dir) as tmp:
        stack.callback(_close_readers)
        stack.callback(_OUTPUTS.clear)
        tmp.mkdir()
        # The arrays are sized for the worst case (nothing skipped) and cut to the kept rows at
        # the end; item k of a split gets rows from k * crops_per_image (its slot).
        outputs = {split: tmp / f"{split}.npy" for split in plan.splits}
        for split, path in outputs.items():
            np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                      shape=(counts[split] * plan.crops_per_image, image_size, image_size, 3)).flush()
        # One pass over the items: each goes into a job and waits in `sent` until its result is
        # back (at most ~2 tasks per worker), so millions of records are never all in memory.
        sent: deque[tuple[Item, int]] = deque()

        def slotted() -> Iterator[tuple[Item, int]]:
            next_slot = dict.fromkeys(plan.splits, 0)
            for item in jobs_items:
                sent.append((item, next_slot[item.split]))
                yield sent[-1]
                next_slot[item.split] += plan.crops_per_image

        results = _ordered_map(_process, _jobs(plan, slotted(), outputs, image_size, chunk), workers)
        rows, failed, reduced = _decode_into(tmp, plan, iter(sent.popleft, None), outputs, results)
        if plan.order:       # report every skip in the listed order (CelebA's partition file)
            order = {name: i for i, name in enumerate(plan.order)}
            skipped = sorted(plan.skipped + failed, key=lambda s: order.get(s[0], -1))
        else:
            skipped = plan.skipped + failed
        seconds = time.perf_counter() - start
        stats = {**(describe or {}),
                 "layout": plan.layout,
                 "image_size": image_size,
                 "counts": rows,
                 "total": sum(rows.values()),
                 **plan.notes,
                 "limit": limit,
                 "left_out_by_limit": left_out,
                 "skipped": [{"image": name, "reason": reason} for name, reason in skipped],
                 "decoded_reduced": reduced,
                 "workers": workers,
                 "seconds": round(seconds, 3),
                 "images_per_s": round(n / seconds, 1) if seconds > 0 else None}
        write_json(tmp / "stats.json", stats)

    log.info("preprocess: kept %d (%s), skipped %d, %.1f s, %s images/s", stats["total"],
             ", ".join(f"{k} {v}" for k, v in rows.items()), len(skipped), seconds, stats["images_per_s"])
    for name, reason in skipped[:20]:
        log.info("  skipped %s: %s", name, reason)
    if len(skipped) > 20:
        log.info("  ... and %d more (see stats.json)", len(skipped) - 20)
    return stats


def preprocess(dataset: str, raw_dir: Path, out_dir: Path, image_size: int, *, crop: str = "auto",
               workers: int = 0, limit: int | None = None, chunk: int = CHUNK) -> dict:
    """The preprocess stage for any dataset: plan from raw_dir, then `run_plan`."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    crop = resolve_crop(dataset, crop)
    if not raw_dir.is_dir():
        raise PreprocessError(f"{raw_dir}: raw data folder not found (run the download stage first)")
    plan = PLANS[dataset](raw_dir, crop)
    return run_plan(plan, out_dir, image_size, workers, chunk, limit, describe={"dataset": dataset, "crop": crop})


def preprocess_celeba_layout(raw_dir: Path, out_dir: Path, image_size: int, workers: int = 0,
                             chunk: int = CHUNK, crop: str = "landmarks", limit: int | None = None) -> dict:
    """A raw folder in CelebA's aligned layout, aligned by landmarks (or centre-cropped)."""
    return preprocess(Path(raw_dir).name if Path(raw_dir).name in ("synthfaces", "celeba") else "synthfaces",
                      raw_dir, out_dir, image_size, crop=crop, workers=workers, limit=limit, chunk=chunk)
