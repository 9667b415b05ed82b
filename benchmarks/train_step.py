"""The training step now against the step before its CPU overheads were removed, side by side.

    .venv/bin/python benchmarks/train_step.py                       # every variant, 32 px default config
    .venv/bin/python benchmarks/train_step.py --variants lstm --steps 10 --rounds 5

The default profile trains 5 variants x 3 seeds on 2 cores, so the step's fixed costs count.
Three were found with torch.profiler and removed; "before" puts them back, in this process:
- Adam's CPU default, a Python loop of small ops per parameter (now `fused=True`);
- the EMA as one `lerp_` per parameter (now one `torch._foreach_lerp_`), and the gradient norms
  one `vector_norm` per parameter (now `torch._foreach_norm`);
- the minibatch standard deviation through `Tensor.var` over the outer dimension, whose CPU
  kernel and backward ran 10x slower than the variance written out (now written out).
Rounds are interleaved (before, now, before, now, ...), so machine noise hits both alike.
Prints the median ms per step of each, their ratio, and the projected `train.steps` time.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rnngan.models.networks as networks  # noqa: E402
from rnngan.environment import run_environment  # noqa: E402
from rnngan.config import load_params  # noqa: E402
from rnngan.io import set_threads  # noqa: E402
from rnngan.training import TrainConfig, updates  # noqa: E402
from rnngan.training.distributed import Dist  # noqa: E402
from rnngan.training.updates import Run  # noqa: E402


def ema_before(ema, model, decay):
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1.0 - decay)
    with torch.no_grad():              # the buffer copy the EMA step used to make
        for bd, bs in zip(ema.buffers(), model.buffers()):
            bd.copy_(bs)


def grad_norm_before(module):
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


def stddev_before(f, group=4):
    b, c, h, w = f.shape
    g = min(group, b)
    y = f.view(g, b // g, c, h, w)
    std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))
    std = std.view(1, b // g, 1, 1, 1).expand(g, -1, 1, h, w).reshape(b, 1, h, w)
    return torch.cat([f, std], dim=1)


@contextlib.contextmanager
def before():
    saved = updates.update_ema, updates.grad_norm, networks.minibatch_stddev
    updates.update_ema, updates.grad_norm, networks.minibatch_stddev = ema_before, grad_norm_before, stddev_before
    try:
        yield
    finally:
        updates.update_ema, updates.grad_norm, networks.minibatch_stddev = saved


def make_run(cfg: TrainConfig, old: bool) -> Run:
    run = Run(cfg, torch.device("cpu"), Dist())
    if old:   # torch's CPU default: the for-loop implementation
        betas = (cfg.beta1, cfg.beta2)
        run.opt_g = torch.optim.Adam(run.G.parameters(), cfg.lr, betas=betas, foreach=False)
        run.opt_d = torch.optim.Adam(run.D.parameters(), cfg.lr, betas=betas, foreach=False)
    run.wrap(Dist())
    return run


def time_steps(run: Run, real: torch.Tensor, steps: int, z_dim: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        run.train_step(real, torch.randn(real.shape[0], z_dim))
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--variants", default=None, help="comma-separated (default: model.variants)")
    ap.add_argument("--steps", type=int, default=8, help="steps per timing")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    params = load_params(args.params)
    threads = set_threads(args.threads)
    variants = args.variants.split(",") if args.variants else list(params.model.variants)
    seed = params.train.seeds[0]
    print(f"# train step, before vs now: {params.data.image_size} px, batch {params.train.batch_size}, "
          f"{threads} threads, CPU fp32 ({run_environment(torch.device('cpu'), threads)['cpu_model']})")
    print("| variant | before ms/step | now ms/step | now / before | projected train.steps before | now |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    totals = [0.0, 0.0]
    for v in variants:
        cfg = TrainConfig.from_params(params, v, seed)
        size, b = params.data.image_size, params.train.batch_size
        real = torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
        with before():
            old = make_run(cfg, old=True)
        new = make_run(cfg, old=False)
        with before():
            time_steps(old, real, 2, cfg.net.z_dim)        # warm-up
        time_steps(new, real, 2, cfg.net.z_dim)
        times = {"before": [], "now": []}
        for _ in range(args.rounds):
            with before():
                times["before"].append(time_steps(old, real, args.steps, cfg.net.z_dim))
            times["now"].append(time_steps(new, real, args.steps, cfg.net.z_dim))
        t_old, t_new = statistics.median(times["before"]), statistics.median(times["now"])
        steps = params.train.steps
        totals[0] += t_old * steps / 1000
        totals[1] += t_new * steps / 1000
        print(f"| {v} | {t_old:.0f} | {t_new:.0f} | {t_new / t_old:.2f} | {t_old * steps / 1000:.0f} s | "
              f"{t_new * steps / 1000:.0f} s |", flush=True)
    print(f"| all, one seed | | | {totals[1] / totals[0]:.2f} | {totals[0] / 60:.1f} min | {totals[1] / 60:.1f} min |")


if __name__ == "__main__":
    main()
