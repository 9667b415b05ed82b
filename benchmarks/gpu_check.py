"""The GPU numbers in one table: training throughput of every variant against the DCGAN at the GPU
profile's size (64 px) in bf16 and fp32, the R1/R2 step's cost, and Inception features per
second. `benchmarks/gpu_check.sh` runs it after `tests/test_cuda.py`; about 5 minutes on one
H100 or H200.

    python benchmarks/gpu_check.py                       # CUDA: the full check
    python benchmarks/gpu_check.py --device cpu --quick  # the same code on a CPU, tiny (a smoke test)

Every variant trains with params.yaml's recipe (loss, R1/R2 every train.reg_every steps,
augmentation, EMA) through the train stage's own step (`Run.train_step`), sized as the GPU profile
sizes it (`data.image_size=64`, docs/scaling.md); rounds are interleaved so that clock and
thermal drift hit every variant alike, and each figure is a median.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnngan.config import load_params  # noqa: E402
from rnngan.environment import cpu_model  # noqa: E402
from rnngan.io import pick_device  # noqa: E402
from rnngan.training import TrainConfig  # noqa: E402
from rnngan.training.data import BatchSampler, Loader  # noqa: E402
from rnngan.training.distributed import Dist  # noqa: E402
from rnngan.training.updates import Run  # noqa: E402

VARIANTS = ("rnn", "lstm", "gru", "sru", "dcgan")


def run_for(cfg: TrainConfig, device: torch.device) -> Run:
    run = Run(cfg, device, Dist())
    if device.type == "cuda":
        for m in (run.G, run.D, run.G_ema):
            m.to(memory_format=torch.channels_last)
    run.wrap(Dist())
    return run


def seconds_per_step(run: Run, loader: Loader, first: int, steps: int, device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for real in loader.iterate(first, first + steps - 1):
        run.train_step(real, torch.randn(real.shape[0], run.cfg.net.z_dim, device=device))
    sync()
    return (time.perf_counter() - start) / steps


def inception_rate(device: torch.device, count: int) -> str:
    if device.type != "cuda":
        return "skipped (CPU)"
    from rnngan.metrics.features import extract_features, get_extractor

    try:
        get_extractor("inception")
    except Exception as exc:  # noqa: BLE001 - no local weights: say so and go on
        return f"skipped ({type(exc).__name__}: {exc})"
    images = np.random.default_rng(0).integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)
    extract_features("inception", images[:250], batch_size=250, device="cuda")      # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    extract_features("inception", images, batch_size=250, device="cuda")
    torch.cuda.synchronize()
    return f"{count / (time.perf_counter() - start):,.0f} images/s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps per variant per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--inception-images", type=int, default=5000)
    p.add_argument("--quick", action="store_true", help="16 px, batch 8, 2 steps, 1 round: a smoke test")
    args = p.parse_args()
    if args.quick:
        args.size, args.batch, args.steps, args.rounds, args.inception_images = 16, 8, 2, 1, 250
    device = pick_device(args.device)
    params = load_params(args.params)
    precisions = ("bf16", "fp32") if device.type == "cuda" else ("fp32",)
    configs = {}
    for v in VARIANTS:
        cfg = TrainConfig.from_params(params, v, 0)
        cfg = dataclasses.replace(cfg, net=dataclasses.replace(cfg.net, image_size=args.size), batch_size=args.batch,
                                  steps=10**9, log_every=10**9, grid_every=10**9, checkpoint_every=10**9,
                                  device=device.type)
        for prec in precisions:
            configs[(v, prec, "recipe")] = dataclasses.replace(cfg, precision=prec)
        if v == "lstm":   # the penalty's cost: the same step with R1/R2 every step and with none
            configs[("lstm", precisions[0], "R1/R2 every step")] = dataclasses.replace(
                cfg, precision=precisions[0], reg_every=1, r1=max(cfg.r1, 0.1), r2=max(cfg.r2, 0.1))
            configs[("lstm", precisions[0], "no R1/R2")] = dataclasses.replace(cfg, precision=precisions[0],
                                                                                 r1=0.0, r2=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.npy"
        np.save(path, np.random.default_rng(0).integers(0, 256, (2048, args.size, args.size, 3), dtype=np.uint8))
        images = np.load(path, mmap_mode="r")
        loader = Loader(images, BatchSampler(len(images), args.batch, seed=0), 0, 1, device, device.type == "cuda")
        runs = {key: run_for(cfg, device) for key, cfg in configs.items()}
        for run in runs.values():
            seconds_per_step(run, loader, 1, 3, device)           # warm-up: cuDNN autotuning, allocator
        times: dict[tuple, list[float]] = {key: [] for key in runs}
        for r in range(args.rounds):
            for key, run in runs.items():
                times[key].append(seconds_per_step(run, loader, 4 + r * args.steps, args.steps, device))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    print(f"# GPU check: {name}, torch {torch.__version__}, {args.size} px, batch {args.batch}, params.yaml's recipe "
          f"(loss {params.train.loss}, R1 {params.train.r1}, R2 {params.train.r2} every {params.train.reg_every}); "
          f"medians of {args.rounds} interleaved rounds of {args.steps} steps\n")
    print("| variant | precision | step | ms per step | images/s | throughput ÷ DCGAN's (same precision) |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for (v, prec, what), values in times.items():
        ms = 1000 * statistics.median(values)
        base = 1000 * statistics.median(times[("dcgan", prec, "recipe")])
        print(f"| {v} | {prec} | {what} | {ms:.1f} | {args.batch / ms * 1000:,.0f} | {base / ms:.2f} |")
    print(f"\nInception features (64 px upsampled to 299, batch 250): {inception_rate(device, args.inception_images)}")


if __name__ == "__main__":
    main()
