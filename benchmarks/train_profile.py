"""Where one training step spends its time: each part's milliseconds and share, per variant.

    python benchmarks/train_profile.py                          # every variant, params.yaml's recipe, then with R1/R2
    python benchmarks/train_profile.py --variants lstm,dcgan --steps 20
    python benchmarks/train_profile.py --no-penalty             # only the recipe as params.yaml has it

It builds the train stage's own `Run` for each variant from params.yaml (augmentation as the
params have it) and runs `Run.train_step` on batches from the stage's own loader, with each
function the step calls for one part wrapped in a timer. A part's time is exclusive: time inside
a nested timed call counts for the inner part only. Parts:

- G forward: for a recurrent G its cell, its decoder (summed over the canvas steps; the per-step
  figure is that divided by `model.timesteps`), its canvas encoder (the feedback) and the rest of
  its forward (the initial state, the canvas sum, tanh); for DCGAN the whole forward;
- D forward (every call: D's update on real and fake, G's update on fake);
- augmentation (every side), backward of D's loss, backward of G's loss, the R1/R2 penalty's
  gradient (its double backward, with the penalty on), the optimisers' steps, the gradient norms,
  the EMA; "rest of the step" is what no timer covers (losses, noise, bookkeeping).

Then, measured apart and spread over the steps they are amortised on, the loader's batch, the
BatchNorm recompute and the fixed-noise grid (every `train.grid_every` steps, and once at the
end), and a checkpoint (every `train.checkpoint_every`). The second table repeats the step with
the relativistic pairing loss and R1 = R2 = 0.1 every 4th step (R3GAN's objective, the screen's
best so far) unless `--no-penalty`. The header names the CPU and torch's thread count.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnngan.config import load_params  # noqa: E402
from rnngan.environment import cpu_model  # noqa: E402
from rnngan.grids import save_grid  # noqa: E402
from rnngan.io import set_threads  # noqa: E402
from rnngan.sampling import to_uint8  # noqa: E402
from rnngan.training import TrainConfig, checkpoint, loop, updates  # noqa: E402
from rnngan.training.data import BatchSampler, Loader  # noqa: E402
from rnngan.training.distributed import Dist  # noqa: E402
from rnngan.training.ema import recompute_batchnorm  # noqa: E402
from rnngan.training.updates import Run  # noqa: E402

PENALTY = dict(loss="rpgan", real_label=1.0, r1=0.1, r2=0.1, reg_every=4)


class Timers:
    """Exclusive wall time per part: a timed call's time, less its timed children's."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.stack: list[list[float]] = []        # [start, children's seconds]

    def wrap(self, part, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            name = part() if callable(part) else part
            self.stack.append([time.perf_counter(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                start, children = self.stack.pop()
                spent = time.perf_counter() - start
                self.seconds[name] = self.seconds.get(name, 0.0) + spent - children
                if self.stack:
                    self.stack[-1][1] += spent
        return timed


def instrument(run: Run, timers: Timers) -> None:
    """Wrap what one step calls; every wrapper is on this Run's objects or restored by the caller."""
    G, D = run.G, run.D
    if hasattr(G, "cell"):
        G.cell.forward = timers.wrap("G forward: cell", G.cell.forward)
        G.decoder.forward = timers.wrap("G forward: decoder", G.decoder.forward)
        if G.encoder is not None:
            G.encoder.forward = timers.wrap("G forward: canvas encoder", G.encoder.forward)
        G.forward = timers.wrap("G forward: rest", G.forward)
    else:
        G.forward = timers.wrap("G forward", G.forward)
    D.forward = timers.wrap("D forward", D.forward)
    run.augment = timers.wrap("augmentation", run.augment)
    run.opt_d.step = timers.wrap("optimiser D", run.opt_d.step)
    run.opt_g.step = timers.wrap("optimiser G", run.opt_g.step)


@dataclasses.dataclass
class Patched:
    """Module-level functions of rnngan.training and torch wrapped while profiling, then restored."""

    timers: Timers
    side: dict

    def __enter__(self):
        self.saved = (updates.update_ema, updates.grad_norm, updates.gradient_penalty, torch.Tensor.backward)
        updates.update_ema = self.timers.wrap("EMA", updates.update_ema)
        updates.grad_norm = self.timers.wrap("gradient norms", updates.grad_norm)
        updates.gradient_penalty = self.timers.wrap("R1/R2 gradient (double backward)", updates.gradient_penalty)
        torch.Tensor.backward = self.timers.wrap(lambda: f"backward {self.side['now']}'s loss", torch.Tensor.backward)
        return self

    def __exit__(self, *exc):
        updates.update_ema, updates.grad_norm, updates.gradient_penalty, torch.Tensor.backward = self.saved


def profile_variant(params, variant: str, steps: int, penalty: bool) -> dict[str, float]:
    """ms per step of each part, for one variant."""
    cfg = TrainConfig.from_params(params, variant, params.train.seeds[0])
    if penalty:
        cfg = dataclasses.replace(cfg, **PENALTY)
    device = torch.device("cpu")
    size, batch = cfg.net.image_size, cfg.batch_size
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (max(4 * batch, 512), size, size, 3), dtype=np.uint8)
    sampler = BatchSampler(len(images), batch, cfg.seed)
    loader = Loader(images, sampler, 0, 1, device, False)
    run = Run(cfg, device, Dist())
    run.wrap(Dist())
    for step in range(1, 4):                              # warm-up, untimed
        run.train_step(loader.read(step), torch.randn(batch, cfg.net.z_dim))
    timers = Timers()
    side = {"now": "D"}
    instrument(run, timers)
    # the backward's side follows the optimiser whose zero_grad ran last
    run.opt_d.zero_grad = _set_side(run.opt_d.zero_grad, side, "D")
    run.opt_g.zero_grad = _set_side(run.opt_g.zero_grad, side, "G")
    reals = [loader.read(4 + i) for i in range(steps)]
    with Patched(timers, side):
        start = time.perf_counter()
        for real in reals:
            run.train_step(real, torch.randn(batch, cfg.net.z_dim))
        total = time.perf_counter() - start
    parts = {k: v / steps * 1000 for k, v in timers.seconds.items()}
    parts["rest of the step"] = total / steps * 1000 - sum(parts.values())

    # amortised extras, each timed apart
    t = time.perf_counter()
    for i in range(steps):
        loader.read(100 + i)
    parts["loader batch"] = (time.perf_counter() - t) / steps * 1000
    fixed_z = torch.randn(loop.GRID_COUNT, cfg.net.z_dim)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        recompute_batchnorm(run.G_ema, batch, device)
        bn = time.perf_counter() - t
        t = time.perf_counter()
        with torch.no_grad():
            save_grid(to_uint8(run.G_ema(fixed_z)), Path(tmp) / "grid.png")
        grid = time.perf_counter() - t
        t = time.perf_counter()
        torch.save(checkpoint.state(run, {"sha256": "0" * 64}, sampler, 0.0), Path(tmp) / "last.pt")
        ckpt = time.perf_counter() - t
    grids = cfg.steps // cfg.grid_every + 1
    parts["BatchNorm recompute (amortised)"] = bn * (grids + 1) / cfg.steps * 1000
    parts["fixed-noise grid (amortised)"] = grid * grids / cfg.steps * 1000
    parts["checkpoint (amortised)"] = ckpt * (cfg.steps // cfg.checkpoint_every) / cfg.steps * 1000
    return parts


def _set_side(fn, side: dict, name: str):
    def zero_grad(*args, **kwargs):
        side["now"] = name
        return fn(*args, **kwargs)
    return zero_grad


ORDER = ("G forward", "G forward: cell", "G forward: decoder", "G forward: canvas encoder", "G forward: rest",
         "D forward", "augmentation", "backward D's loss", "backward G's loss", "R1/R2 gradient (double backward)",
         "optimiser D", "optimiser G", "gradient norms", "EMA", "rest of the step", "loader batch",
         "BatchNorm recompute (amortised)", "fixed-noise grid (amortised)", "checkpoint (amortised)")


def table(results: dict[str, dict[str, float]], title: str) -> None:
    variants = list(results)
    print(f"\n{title}\n")
    print("| part | " + " | ".join(f"{v} ms | share" for v in variants) + " |")
    print("| --- | " + " | ".join("---: | ---:" for _ in variants) + " |")
    totals = {v: sum(results[v].values()) for v in variants}
    for part in ORDER:
        if not any(part in results[v] for v in variants):
            continue
        cells = []
        for v in variants:
            ms = results[v].get(part)
            cells.append("| " if ms is None else f"{ms:.1f} | {ms / totals[v]:.1%}")
        print(f"| {part} | " + " | ".join(cells) + " |")
    print("| **step, all parts** | " + " | ".join(f"**{totals[v]:.1f}** | 100%" for v in variants) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--variants", default=None, help="comma-separated (default: model.variants)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant (after 3 untimed)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-penalty", action="store_true", help="skip the second table (rpgan with R1/R2)")
    args = ap.parse_args()
    params = load_params(args.params)
    threads = set_threads(args.threads)
    variants = args.variants.split(",") if args.variants else list(params.model.variants)
    print(f"# training step profile: {cpu_model()}, torch {torch.__version__} on {threads} threads, CPU fp32; "
          f"{params.data.image_size} px, batch {params.train.batch_size}, {args.steps} timed steps per variant; "
          f"augmentation p {params.augment.p}, real side {params.augment.real}")
    runs = [(False, f"params.yaml's recipe (loss {params.train.loss}, r1 {params.train.r1}, r2 {params.train.r2})")]
    if not args.no_penalty:
        runs.append((True, "with the relativistic pairing loss and R1 = R2 = 0.1 every 4th step (R3GAN's objective)"))
    for penalty, title in runs:
        results = {v: profile_variant(params, v, args.steps, penalty) for v in variants}
        table(results, title)


if __name__ == "__main__":
    main()
