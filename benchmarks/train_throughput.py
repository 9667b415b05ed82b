"""Training throughput: images/s of each recurrent variant beside a DCGAN of matched size, and the
loader's rate beside the step's, measured in one run.

    python benchmarks/train_throughput.py                      # CPU, the default 32 px config
    python benchmarks/train_throughput.py --device cuda --size 64 --batch 128

Each round times every variant in turn (interleaved, so machine noise hits all alike) with the
training step the train stage runs (`rnngan.training.updates.Run.train_step`: D update, G update, EMA),
on batches the train stage's loader reads from a memory-mapped .npy. The DCGAN is the
pytorch/examples architecture sized by `rnngan.models.sizing.match_params` to the LSTM's
parameter counts; every variant trains with params.yaml's recipe (loss, R1/R2, augmentation, EMA). Prints medians over rounds and the ratio of each variant to the DCGAN.
Goals (issue 4): CPU >= 0.5x the DCGAN for every recurrent variant; GPU >= 0.7x, SRU no slower
than GRU.
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
from rnngan.io import pick_device, set_threads  # noqa: E402
from rnngan.models.sizing import match_params, parameter_counts  # noqa: E402
from rnngan.training import TrainConfig  # noqa: E402
from rnngan.training.data import BatchSampler, Loader  # noqa: E402
from rnngan.training.distributed import Dist  # noqa: E402
from rnngan.training.updates import Run  # noqa: E402

CELLS = ("rnn", "lstm", "gru", "sru")


def configs(args) -> dict[str, TrainConfig]:
    """Every variant's training config as the train stage builds it from params.yaml (the recipe:
    loss, penalties, augmentation, EMA, generator and discriminator knobs), with the network sizes
    given on the command line; the DCGAN sized to the LSTM's parameter counts."""
    params = load_params(args.params)
    sizes = {k: v for k, v in (("image_size", args.size), ("hidden", args.hidden), ("timesteps", args.timesteps),
                               ("z_dim", args.z_dim), ("nf", args.nf)) if v is not None}
    if args.no_feedback:
        sizes["feedback"] = False
    cfgs = {c: TrainConfig.from_params(params, c, 0) for c in (*CELLS, "dcgan")}
    nets = {c: dataclasses.replace(cfg.net, **sizes) for c, cfg in cfgs.items()}
    matched = match_params(nets["lstm"], [*CELLS, "dcgan"])
    nets = {c: matched[c] if c == "dcgan" or args.match_cells else net for c, net in nets.items()}
    return {c: dataclasses.replace(cfg, net=nets[c], steps=10**9, batch_size=args.batch, log_every=10**9,
                                   grid_every=10**9, checkpoint_every=10**9, device=args.device,
                                   precision=args.precision, compile=args.compile)
            for c, cfg in cfgs.items()}


def time_steps(run: Run, loader: Loader, first: int, steps: int, device: torch.device) -> float:
    """Seconds for `steps` training steps, batches read by the train stage's loader."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for real in loader.iterate(first, first + steps - 1):
        z = torch.randn(real.shape[0], run.cfg.net.z_dim, device=device)
        run.train_step(real, z)
    sync()
    return time.perf_counter() - start


def time_loader(loader: Loader, steps: int, device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in loader.iterate(1, steps):
        pass
    sync()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="the recipe and sizes (default: the project's)")
    p.add_argument("--size", type=int, help="image side (default: data.image_size)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, help="default: model.hidden")
    p.add_argument("--timesteps", type=int, help="default: model.timesteps")
    p.add_argument("--z-dim", type=int, help="default: model.z_dim")
    p.add_argument("--nf", type=int, help="default: model.nf")
    p.add_argument("--no-feedback", action="store_true", help="generator without GRAN feedback")
    p.add_argument("--match-cells", action="store_true",
                   help="size the recurrent variants too (model.match_params), not only the DCGAN")
    p.add_argument("--steps", type=int, default=30, help="timed steps per variant per round")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--images", type=int, default=5000, help="images in the memory-mapped training array")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()

    threads = set_threads(args.threads)
    device = pick_device(args.device)
    cfgs = configs(args)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.npy"
        rng = np.random.default_rng(0)
        size = cfgs["lstm"].net.image_size
        np.save(path, rng.integers(0, 256, (args.images, size, size, 3), dtype=np.uint8))
        images = np.load(path, mmap_mode="r")
        sampler = BatchSampler(len(images), args.batch, seed=0)
        loader = Loader(images, sampler, 0, 1, device, channels_last=device.type == "cuda")
        runs = {}
        for name, cfg in cfgs.items():
            run = Run(cfg, device, Dist())
            if device.type == "cuda":
                for m in (run.G, run.D, run.G_ema):
                    m.to(memory_format=torch.channels_last)
            run.wrap(Dist())
            time_steps(run, loader, 1, args.warmup, device)   # warm-up (and compilation)
            runs[name] = run
        rates: dict[str, list[float]] = {name: [] for name in runs}
        loader_rates = []
        for r in range(args.rounds):
            for name, run in runs.items():
                seconds = time_steps(run, loader, 1 + args.warmup + r * args.steps, args.steps, device)
                rates[name].append(args.steps * args.batch / seconds)
            loader_rates.append(args.steps * args.batch / time_loader(loader, args.steps, device))

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    print(f"device {device}{f' ({gpu})' if gpu else ''}, torch {torch.__version__}, {threads} threads, "
          f"{size}x{size}, batch {args.batch}, precision {args.precision}, compile {args.compile}, loss "
          f"{cfgs['lstm'].loss} (R1 {cfgs['lstm'].r1}, R2 {cfgs['lstm'].r2} every {cfgs['lstm'].reg_every}); "
          f"medians of {args.rounds} interleaved rounds of {args.steps} steps")
    base = statistics.median(rates["dcgan"])
    loader_rate = statistics.median(loader_rates)
    print("\n| variant | G params | D params | training images/s | ratio to DCGAN | loader images/s ÷ training |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, values in rates.items():
        n_g, n_d = parameter_counts(cfgs[name].net)
        rate = statistics.median(values)
        print(f"| {name} | {n_g:,} | {n_d:,} | {rate:,.0f} | {rate / base:.2f} | {loader_rate / rate:,.0f}x |")
    print(f"\nloader alone (the train stage's Loader on the memory-mapped .npy): {loader_rate:,.0f} images/s")
    if "sru" in rates and "gru" in rates:
        print(f"SRU / GRU: {statistics.median(rates['sru']) / statistics.median(rates['gru']):.2f}")


if __name__ == "__main__":
    main()
