"""What-if, not in use: the randinit extractor in channels_last memory format.

    python benchmarks/randinit_layout.py                  # 5,000 + 5,000 faces at 32 px
    python benchmarks/randinit_layout.py --count 2000 --rounds 3

Feature extraction is the largest part of an analyze run (benchmarks/analyze_profile.py), and
oneDNN runs these convolutions about twice as fast on channels_last tensors as on the NCHW
tensors the extractor uses. But the kernels differ, so the features differ in their last bits,
and every number computed from them moves: this script measures by how much, so that whoever
decides on it decides on numbers. It times, interleaved on the same images, the extractor as it
is (`extract_features`) and the same network on channels_last tensors (one thread per batch in
both), then computes every feature metric of the analyze stage (`feature_analysis` at the
default params) from each side's features and prints the largest differences.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from analysis_inputs import structured_images  # noqa: E402
from analyze_profile import cpu_model  # noqa: E402
from rnngan.config import MetricsParams  # noqa: E402
from rnngan.metrics.analysis import feature_analysis  # noqa: E402
from rnngan.metrics.features import (LEAKY_SLOPE, RANDINIT_LAYERS, RANDINIT_SIZE, RandInit,  # noqa: E402
                                     _resize, extract_features)
from rnngan.metrics.threads import parallel_map  # noqa: E402


def channels_last_features(images: np.ndarray, batch_size: int) -> np.ndarray:
    """RandInit's forward, op for op, on channels_last tensors."""
    net = RandInit()
    weights = [getattr(net, f"weight{i}").contiguous(memory_format=torch.channels_last)
               for i in range(len(RANDINIT_LAYERS))]
    out = np.empty((len(images), net.dim))

    def one_batch(start: int) -> None:
        with torch.inference_mode():
            x = torch.from_numpy(np.array(images[start:start + batch_size])).permute(0, 3, 1, 2)
            x = _resize(x.float(), RANDINIT_SIZE) / 127.5 - 1.0
            x = x.contiguous(memory_format=torch.channels_last)
            for w, (_, _, k, stride) in zip(weights, RANDINIT_LAYERS):
                x = F.leaky_relu(F.conv2d(x, w, stride=stride, padding=k // 2), LEAKY_SLOPE, inplace=True)
            out[start:start + len(x)] = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], 1).double().numpy()

    threads = torch.get_num_threads()
    for _ in parallel_map(one_batch, range(0, len(images), batch_size), min(threads, 4),
                          threads_each=max(1, threads // min(threads, 4))):
        pass
    return out


def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="images per set (default 5000)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds")
    args = parser.parse_args()
    os.environ.setdefault("RNNGAN_NO_PROGRESS", "1")
    mp = MetricsParams()
    real = structured_images(args.count, args.size, 0)
    fake = structured_images(args.count, args.size, 1, generated=True)
    times = {"nchw": [], "channels_last": []}
    cpus = {"nchw": [], "channels_last": []}
    feats = {}
    for _ in range(args.rounds):
        for side, fn in (("nchw", lambda x: extract_features("randinit", x, mp.batch_size)),
                         ("channels_last", lambda x: channels_last_features(x, mp.batch_size))):
            out, wall, cpu = timed(fn, fake)
            times[side].append(wall)
            cpus[side].append(cpu)
            feats[side] = (fn(real), out)
    print(f"# randinit in channels_last (what-if): {cpu_model()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__} on {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    print(f"{args.count} faces at {args.size} px, medians of {args.rounds} interleaved rounds\n")
    print("| layout | wall s | CPU s |")
    print("| --- | ---: | ---: |")
    for side in times:
        print(f"| {side} | {statistics.median(times[side]):.2f} | {statistics.median(cpus[side]):.2f} |")
    (r0, f0), (r1, f1) = feats["nchw"], feats["channels_last"]
    rel = max(np.abs(r1 - r0).max() / np.abs(r0).max(), np.abs(f1 - f0).max() / np.abs(f0).max())
    print(f"\nfeatures: largest difference {rel:.3g} of the largest feature")
    a, b = feature_analysis(r0, f0, mp), feature_analysis(r1, f1, mp)
    rows = [("fid", a.fid, b.fid), ("kid", a.kid_bootstrap.point, b.kid_bootstrap.point),
            ("kid_subsets.mean", a.kid_mean, b.kid_mean)]
    rows += [(k, a.manifold[k], b.manifold[k]) for k in a.manifold]
    rows += [("fid replicates (largest)", 0.0, float(np.abs(a.fid_bootstrap.replicates
                                                            - b.fid_bootstrap.replicates).max())),
             ("kid replicates (largest)", 0.0, float(np.abs(a.kid_bootstrap.replicates
                                                            - b.kid_bootstrap.replicates).max()))]
    print("\n| number | NCHW | channels_last | difference |")
    print("| --- | ---: | ---: | ---: |")
    for name, x, y in rows:
        print(f"| {name} | {x:.10g} | {y:.10g} | {y - x:.3g} |")


if __name__ == "__main__":
    main()
