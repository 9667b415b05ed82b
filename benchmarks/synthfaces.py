"""How fast synthfaces writes CelebA-layout faces: images/s with one process and with all cores.

    python benchmarks/synthfaces.py                 # 3000 faces, 1 worker then all cores
    python benchmarks/synthfaces.py --count 10000 --workers 1 2 4

Each run draws, JPEG-encodes and writes the zip and annotation files into a temporary folder,
exactly as the `download` stage does for data.dataset=synthfaces. Process start-up is included,
as it is in a real run. Not a test: it prints numbers.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rnngan.data.synthfaces import write_synthfaces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="faces per run (default 3000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 0],
                        help="worker counts to time; 0 = one per core (default: 1 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    args = parser.parse_args()
    os.environ.setdefault("RNNGAN_NO_PROGRESS", "1")     # the bar would interleave with the table

    cores = len(os.sched_getaffinity(0))
    print(f"synthfaces: {args.count} faces, JPEG quality {args.quality}, {cores} cores available")
    print(f"{'workers':>8} {'seconds':>8} {'images/s':>9} {'MB':>7}")
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "synthfaces"
            started = time.perf_counter()
            summary = write_synthfaces(out, args.count, args.seed, workers=workers, quality=args.quality)
            seconds = time.perf_counter() - started
            size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
        print(f"{summary['workers']:>8} {seconds:>8.2f} {args.count / seconds:>9.0f} {size:>7.1f}")


if __name__ == "__main__":
    main()
