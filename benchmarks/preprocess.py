"""Preprocessing throughput next to plain JPEG decoding of the same files, measured in one run.

    python benchmarks/preprocess.py                       # 6000 CelebA-layout JPEGs, 64 px, both crops
    python benchmarks/preprocess.py --count 20000 --size 32 --rounds 5

The files are synthfaces' 178 x 218 JPEGs in CelebA's aligned layout (img_align_celeba.zip +
annotation files), written once into a temporary folder. Per round, interleaved so that machine
noise hits every contender alike:

- decode-only: `cv2.imdecode` of every JPEG, already in memory, one process, one thread: what
  "just decoding the files" costs per core; and the same split over 2 processes, which shows
  how far this machine itself scales from 1 to 2 cores;
- preprocess: the real stage (`rnngan.data.preprocess`), reading the zip, decoding, cropping,
  writing the memory-mapped arrays, index and stats, with 1 worker and with 2 (pool start-up
  included, as in a real run).

It prints the median images/s of each, the goals' ratios (preprocess per core over decode-only
per core, target >= 0.8; 2 workers over 1, target near 2) and the projected time for all
202,599 CelebA images on this machine at the all-cores rate. Not a test: it prints numbers.
"""
from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import shutil
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

from rnngan.data import celeba_format as cf
from rnngan.data.preprocess import preprocess
from rnngan.data.synthfaces import write_synthfaces

CELEBA_IMAGES = 202_599


def decode_only(blobs: list[bytes]) -> float:
    """Seconds to decode every JPEG at full size on one thread."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        started = time.perf_counter()
        for data in blobs:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                raise RuntimeError("a benchmark JPEG did not decode")
        return time.perf_counter() - started
    finally:
        cv2.setNumThreads(threads)


def _decode_share(job: tuple[str, int, int]) -> float:
    """In a worker: read a share of the zip's JPEGs into memory, wait for the other worker,
    then time decoding them (so reading and process start-up are not counted)."""
    path, start, stop = job
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if i.filename.endswith(".jpg")][start:stop]
        blobs = [zf.read(i) for i in infos]
    _BARRIER.wait()
    return decode_only(blobs)


def _init(barrier) -> None:
    global _BARRIER
    _BARRIER = barrier


def decode_only_parallel(zip_path: Path, n: int, workers: int) -> float:
    """Seconds for `workers` processes to decode n JPEGs between them (the slowest one's)."""
    context = mp.get_context("forkserver")
    barrier = context.Barrier(workers)
    bounds = [round(i * n / workers) for i in range(workers + 1)]
    with context.Pool(workers, initializer=_init, initargs=(barrier,)) as pool:
        times = pool.map(_decode_share, [(str(zip_path), a, b) for a, b in itertools.pairwise(bounds)])
    return max(times)


def timed_preprocess(raw: Path, out: Path, size: int, crop: str, workers: int) -> float:
    """Seconds for the preprocess stage, into a fresh output folder (deleted after timing)."""
    started = time.perf_counter()
    stats = preprocess("synthfaces", raw, out, size, crop=crop, workers=workers)
    seconds = time.perf_counter() - started
    shutil.rmtree(out)
    if stats["workers"] != workers or stats["skipped"]:
        raise RuntimeError(f"unexpected run: {stats['workers']} workers, {len(stats['skipped'])} skipped")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6000, help="JPEGs (default 6000)")
    parser.add_argument("--size", type=int, default=64, help="output side in pixels (default 64)")
    parser.add_argument("--crops", nargs="+", default=["center", "landmarks"],
                        help="protocols to time (default: center landmarks)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported (default 3)")
    args = parser.parse_args()
    os.environ.setdefault("RNNGAN_NO_PROGRESS", "1")     # the bar would interleave with the table
    cores = len(os.sched_getaffinity(0))
    import logging
    logging.getLogger("rnngan").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "synthfaces"
        write_synthfaces(raw, args.count, seed=0, workers=0)
        with zipfile.ZipFile(raw / cf.IMAGE_ZIP) as zf:
            blobs = [zf.read(i) for i in zf.infolist() if i.filename.endswith(".jpg")]
        mb = sum(map(len, blobs)) / 1e6
        print(f"preprocess benchmark: {len(blobs)} CelebA-layout JPEGs (178x218, {mb:.1f} MB), "
              f"output {args.size}x{args.size}, {args.rounds} rounds, {cores} cores available")

        times: dict[str, list[float]] = {"decode-only (1 core)": [], "decode-only (2 processes)": []}
        for crop in args.crops:
            for workers in (1, 2):
                times[f"preprocess {crop}, {workers} worker{'s' * (workers > 1)}"] = []
        for _ in range(args.rounds):
            times["decode-only (1 core)"].append(decode_only(blobs))
            times["decode-only (2 processes)"].append(decode_only_parallel(raw / cf.IMAGE_ZIP, len(blobs), 2))
            for crop in args.crops:
                for workers in (1, 2):
                    key = f"preprocess {crop}, {workers} worker{'s' * (workers > 1)}"
                    times[key].append(timed_preprocess(raw, Path(tmp) / "out", args.size, crop, workers))

    rate = {k: len(blobs) / statistics.median(v) for k, v in times.items()}
    print(f"\n{'':36} {'images/s':>9} {'median s':>9}")
    for key, seconds in times.items():
        print(f"{key:36} {rate[key]:>9.0f} {statistics.median(seconds):>9.2f}")
    base, base2 = rate["decode-only (1 core)"], rate["decode-only (2 processes)"]
    print(f"\nthis machine's own scaling, decode-only 2 processes vs 1: {base2 / base:.2f}x")
    print("ratios (goals: >= 0.8 of decode-only throughput per core; near-linear from 1 to 2 workers)")
    for crop in args.crops:
        one, two = rate[f"preprocess {crop}, 1 worker"], rate[f"preprocess {crop}, 2 workers"]
        print(f"  {crop}:")
        print(f"    per core vs decode-only:  1 worker {one / base:.2f}   2 workers {two / base2:.2f} "
              f"(vs decode-only on 2 processes)")
        print(f"    scaling 1 -> 2 workers:   {two / one:.2f}x (the machine's own: {base2 / base:.2f}x)")
        print(f"    projected CelebA, all {CELEBA_IMAGES:,} images with 2 workers: {CELEBA_IMAGES / two / 60:.1f} min"
              f" ({two:.0f} images/s)")

if __name__ == "__main__":
    main()
