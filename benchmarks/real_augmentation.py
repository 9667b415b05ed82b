"""What each way of keeping D from one fixed augmented copy of the data costs, side by side.

    .venv/bin/python benchmarks/real_augmentation.py                  # lstm and dcgan, default config
    .venv/bin/python benchmarks/real_augmentation.py --variants dcgan --steps 10 --rounds 5

augment.real=step (the default) passes every real batch through the policy in training, with
fresh draws, as the fakes are: it costs time in every step. augment.real=cached with
augment.copies=K has the augment stage write K draws of every image once and training sample
among them: it costs K times the stage's time and K times the images on disk, and nothing per
step, but D still sees only K fixed copies. Rounds are interleaved (step, cached, step, ...), so
machine noise hits both alike. Prints the median ms per training step of each and their ratio,
then the augment stage's seconds and bytes per copy of the default data.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnngan.config import load_params  # noqa: E402
from rnngan.data.augment import augment_images  # noqa: E402
from rnngan.io import set_threads  # noqa: E402
from rnngan.environment import cpu_model  # noqa: E402
from rnngan.training import TrainConfig  # noqa: E402
from rnngan.training.distributed import Dist  # noqa: E402
from rnngan.training.updates import Run  # noqa: E402


def step_ms(cfg: TrainConfig, real: torch.Tensor, steps: int) -> float:
    run = Run(cfg, torch.device("cpu"), Dist())
    run.wrap(Dist())
    z = torch.randn(steps + 1, cfg.batch_size, cfg.net.z_dim)
    run.train_step(real, z[0])                       # warm-up
    start = time.perf_counter()
    for i in range(steps):
        run.train_step(real, z[i + 1])
    return (time.perf_counter() - start) / steps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["lstm", "dcgan"])
    ap.add_argument("--steps", type=int, default=20, help="steps timed per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--images", type=int, default=10000, help="images the stage augments per copy (data.count)")
    args = ap.parse_args()
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    threads = set_threads(params.train.threads)
    print(f"CPU: {cpu_model()}, {threads} threads, torch {torch.__version__}")
    real = torch.rand(params.train.batch_size, 3, params.data.image_size, params.data.image_size) * 2 - 1
    for variant in args.variants:
        base = TrainConfig.from_params(params, variant, 0)
        configs = {"step": dataclasses.replace(base, real_augment="step"),
                   "cached": dataclasses.replace(base, real_augment="cached")}
        times = {k: [] for k in configs}
        for _ in range(args.rounds):
            for name, cfg in configs.items():
                times[name].append(step_ms(cfg, real, args.steps))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{variant}: training step, augment.real=step {med['step']:.1f} ms, cached {med['cached']:.1f} ms "
              f"(median of {args.rounds} rounds of {args.steps} steps): step costs {med['step'] / med['cached']:.3f}x, "
              f"{(med['step'] - med['cached']) * params.train.steps / 1e3:.1f} s over train.steps={params.train.steps}")
    images = np.random.default_rng(0).integers(0, 256, (args.images, params.data.image_size, params.data.image_size, 3),
                                               dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        augment_images(images, params.augment, 1, 0, Path(tmp) / "one.npy")
        seconds = time.perf_counter() - start
        size = (Path(tmp) / "one.npy").stat().st_size
    print(f"augment stage, augment.real=cached: {seconds:.1f} s and {size / 2**20:.1f} MiB per copy of "
          f"{args.images} images at {params.data.image_size} px (augment.copies=K costs K times both)")


if __name__ == "__main__":
    main()
