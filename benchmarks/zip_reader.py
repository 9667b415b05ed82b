"""The standard library's zipfile against rnngan.data.zipread, reading and decoding the same JPEGs.

    python benchmarks/zip_reader.py                    # 20000 CelebA-layout JPEGs, 5 rounds
    python benchmarks/zip_reader.py --count 50000 --rounds 3

Should the preprocess stage read CelebA's 202,599-member `img_align_celeba.zip` with `zipfile`
rather than the project's own central-directory parser and `pread` reader (rnngan/data/zipread.py)?
Keep our own only if zipfile is more than 10% slower end to end. Both contenders do what the
preprocess stage's reading does for every image, in one process on one thread, interleaved round
by round so that machine noise hits both alike:

- open the archive and list its members (zipfile: `ZipFile.infolist()`; ours: `zipread.members`);
- read every JPEG's bytes (zipfile: `ZipFile.read`, CRC-checked; ours: `MemberReader.read`, CRC-checked);
- decode it at half size as the 32 px protocol does (`cv2.IMREAD_REDUCED_COLOR_2`).

It prints the median seconds of each part and the ratios zipfile / ours, per part and end to
end. Cropping, resampling and writing the arrays come after reading and are the same for both, so
on the whole stage the ratio would be closer to 1 than the end-to-end ratio printed here.
Not a test: it prints numbers.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

from rnngan.data import celeba_format as cf
from rnngan.data import zipread
from rnngan.data.synthfaces import write_synthfaces
from rnngan.environment import cpu_model


def _decode(data: bytes) -> None:
    if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_2) is None:
        raise RuntimeError("a benchmark JPEG did not decode")


def timed(listing, reader, read, close) -> dict[str, float]:
    """Seconds per part: list the JPEG members, read each one's bytes, decode each."""
    t0 = time.perf_counter()
    members = [m for m in listing() if name_of(m).endswith(".jpg")]
    t1 = time.perf_counter()
    handle = reader()
    blobs = [read(handle, m) for m in members]
    t2 = time.perf_counter()
    for data in blobs:
        _decode(data)
    t3 = time.perf_counter()
    close(handle)
    return {"list": t1 - t0, "read": t2 - t1, "decode": t3 - t2}


def name_of(member) -> str:
    return member.filename if isinstance(member, zipfile.ZipInfo) else member.name


def with_zipfile(path: Path) -> dict[str, float]:
    """The standard library: ZipFile.infolist(), ZipFile.read (CRC-checked). The listing opens
    the archive and parses its directory, as a reader must; the reads reuse that ZipFile."""
    zf = {}

    def listing():
        zf["f"] = zipfile.ZipFile(path)
        return zf["f"].infolist()
    return timed(listing, lambda: zf["f"], lambda f, m: f.read(m), lambda f: f.close())


def with_zipread(path: Path) -> dict[str, float]:
    """rnngan.data.zipread: members() (one read of the central directory), MemberReader.read (CRC-checked)."""
    return timed(lambda: zipread.members(path), lambda: zipread.MemberReader(path), lambda r, m: r.read(m),
                 lambda r: r.close())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="JPEGs (default 20000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians reported (default 5)")
    args = parser.parse_args()
    os.environ.setdefault("RNNGAN_NO_PROGRESS", "1")
    import logging
    logging.getLogger("rnngan").setLevel(logging.WARNING)
    cv2.setNumThreads(1)

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "synthfaces"
        write_synthfaces(raw, args.count, seed=0, workers=0)
        path = raw / cf.IMAGE_ZIP
        print(f"zip reader benchmark: {args.count} CelebA-layout JPEGs in {path.name} "
              f"({path.stat().st_size / 1e6:.1f} MB), {args.rounds} rounds, one thread, "
              f"{cpu_model()} ({platform.machine()})")
        times: dict[str, list[dict[str, float]]] = {"zipfile": [], "zipread": []}
        for r in range(args.rounds):
            order = (("zipfile", with_zipfile), ("zipread", with_zipread))
            for name, fn in (order if r % 2 == 0 else order[::-1]):
                times[name].append(fn(path))

    parts = ("list", "read", "decode")
    med = {name: {p: statistics.median(t[p] for t in runs) for p in parts} for name, runs in times.items()}
    for name in med:
        med[name]["total"] = statistics.median(sum(t.values()) for t in times[name])
    print(f"\n{'median s':10} {'list':>8} {'read':>8} {'decode':>8} {'total':>8}")
    for name, m in med.items():
        print(f"{name:10} " + " ".join(f"{m[p]:>8.3f}" for p in (*parts, "total")))
    ratio = {p: med["zipfile"][p] / med["zipread"][p] for p in (*parts, "total")}
    print(f"{'zipfile/ours':10} " + " ".join(f"{ratio[p]:>7.2f}x" for p in (*parts, "total")))
    verdict = "keep zipread" if ratio["total"] > 1.10 else "use zipfile"
    print(f"\nend to end (list + read + decode): zipfile is {100 * (ratio['total'] - 1):+.1f}% against ours "
          f"-> {verdict} (the rule: keep ours only if zipfile is more than 10% slower)")


if __name__ == "__main__":
    main()
