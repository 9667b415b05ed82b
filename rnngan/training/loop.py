"""The training loop: `train(cfg, data_path, out_dir, work_dir)` does the whole job for one
variant and seed; stages/train.py calls it (under torchrun when train.gpus > 1).

While training, everything lives in `work_dir` (not a DVC output, so `dvc repro` leaves it alone
when it reruns a killed stage): `last.pt`, the checkpoint rewritten atomically every
train.checkpoint_every steps, and the dvclive log and grids so far. A run that finds a checkpoint
there resumes from it. At the end `out_dir` is assembled in a temporary folder and renamed into
place, then `work_dir` is removed: `out_dir` is whole or absent, never half-written.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from rnngan.environment import run_environment
from rnngan.grids import make_grid, save_grid
from rnngan.io import atomic_path, load_images, log, progress, set_threads, write_json
from rnngan.models.networks import count_parameters
from rnngan.sampling import to_uint8
from rnngan.training.checkpoint import load_checkpoint, resume, save_checkpoint, save_generator, state
from rnngan.training.config import TrainConfig, TrainingError
from rnngan.training.data import BatchSampler, Loader, data_fingerprint
from rnngan.training.distributed import all_reduce_, average_buffers, barrier, check_ranks_agree, init_distributed
from rnngan.training.ema import BN_BATCHES, GRID_BN_BATCHES, ema_half_life, recompute_batchnorm
from rnngan.training.updates import STATS, Run, uses_bf16

GRID_COUNT = 64  # fixed-noise grid: 8 x 8


def _open_live(work_dir: Path, run: Run, params_g: int, params_d: int):
    """A dvclive log in work_dir, rebuilt from the checkpoint's history when resuming (rows that a
    killed run wrote after its last checkpoint are dropped, so no step appears twice)."""
    from dvclive import Live

    shutil.rmtree(work_dir / "live", ignore_errors=True)
    live = Live(str(work_dir / "live"), report=None, save_dvc_exp=False, dvcyaml=None)
    live.log_params({"cell": run.cfg.net.cell, "params_g": params_g, "params_d": params_d,
                     "batch_size": run.cfg.batch_size})
    for row in run.history:
        _log_row(live, row)
    return live


def _log_row(live, row: list[float]) -> None:
    live.step = int(row[0])
    for name, value in zip(STATS, row[1:]):
        live.log_metric(f"train/{name}", value)
    live.log_metric("train/images_per_s", row[-1])


def train(cfg: TrainConfig, data_path: Path, out_dir: Path, work_dir: Path | None = None) -> dict:
    """Train one variant on the images in `data_path`; publish `out_dir`: generator.pt (the EMA
    generator), checkpoint.pt (the final full state), train.json, live/ (dvclive), grids/.

    Resumes from `work_dir`/last.pt when present (default work_dir: out_dir + '.work').
    """
    work_dir = Path(work_dir) if work_dir is not None else out_dir.with_name(out_dir.name + ".work")
    threads = set_threads(cfg.threads)
    d, device = init_distributed(cfg.device)
    if cfg.batch_size % d.world:
        raise TrainingError(f"train.batch_size={cfg.batch_size} is not a multiple of the {d.world} processes")
    images = load_images(data_path)
    size = cfg.net.image_size
    if images.shape[1:3] != (size, size):
        raise TrainingError(f"{data_path}: images are {images.shape[1]}x{images.shape[2]}, "
                            f"the model is built for {size}x{size} (data.image_size)")
    data = data_fingerprint(images, data_path)
    sampler = BatchSampler(len(images), cfg.batch_size, cfg.seed)
    channels_last = device.type == "cuda"   # note: on CPU it changed numerics enough to collapse a run
    run = Run(cfg, device, d)
    ckpt = work_dir / "last.pt"
    resume(run, ckpt, data)
    if channels_last:
        for m in (run.G, run.D, run.G_ema):
            m.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    # Fixed noise from its own generator: the same grid before and after a resume.
    fixed_z = torch.randn(GRID_COUNT, cfg.net.z_dim, generator=torch.Generator().manual_seed(cfg.seed)).to(device)
    n_g, n_d = count_parameters(run.G), count_parameters(run.D)
    log.info("train %s seed %d on %s: %d images %dx%d, G %d params, D %d params, device %s x%d, %d threads, "
             "precision %s", cfg.net.cell, cfg.seed, data_path, len(images), size, size, n_g, n_d, device, d.world,
             threads, "bf16" if uses_bf16(device, cfg.precision) else "fp32")
    final_half_life = ema_half_life(cfg.steps, cfg.batch_size, cfg.ema_images, cfg.ema_rampup)
    if cfg.ema_rampup is not None and final_half_life < cfg.ema_images:
        log.warning("EMA: the ramp-up caps the half-life at %.0f images by the last step (train.ema_rampup=%s x "
                    "%d images seen), below train.ema_images=%d, which this run never reaches", final_half_life,
                    cfg.ema_rampup, cfg.steps * cfg.batch_size, cfg.ema_images)

    run.wrap(d)
    live = None
    if d.main:
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "grids").mkdir(exist_ok=True)
        live = _open_live(work_dir, run, n_g, n_d)
    loader = Loader(images, sampler, d.rank, d.world, device, channels_last)
    share = cfg.batch_size // d.world
    pending: list[tuple[int, torch.Tensor]] = []   # (step, stats) not yet read back
    window_start, window_first = time.perf_counter(), run.step
    started, first_step = time.perf_counter(), run.step + 1
    bar = progress(total=cfg.steps, initial=run.step, desc=f"train {cfg.net.cell}-{cfg.seed}", unit="step",
                   **({} if d.main else {"disable": True}))

    def flush() -> None:
        """Read back the per-step statistics; stop at the first non-finite one."""
        nonlocal pending
        if not pending:
            return
        # reduced where the statistics live (the process group's device), then read back
        values = (all_reduce_(torch.stack([s for _, s in pending]), d) / d.world).cpu()
        for (step, _), row in zip(pending, values.tolist()):
            if not all(np.isfinite(row)):
                bad = ", ".join(f"{k}={v}" for k, v in zip(STATS, row) if not np.isfinite(v))
                kept = (f"the last good checkpoint (step {run_step_saved()}) is kept in {ckpt}"
                        if ckpt.exists() else "no checkpoint had been written yet")
                raise TrainingError(f"non-finite value at step {step} ({bad}); {kept}. "
                                    f"Lower train.lr or change the seed and rerun")
            run.window = [a + b for a, b in zip(run.window, row)]
            run.window_rows += 1
        pending = []

    def run_step_saved() -> int:
        return int(load_checkpoint(ckpt)["step"]) if ckpt.exists() else 0

    final_stats = False   # whether G_ema holds its final BatchNorm statistics already
    for real in loader.iterate(run.step + 1, cfg.steps):
        # The global batch's noise, drawn identically on every process; each takes its share.
        z = torch.randn(cfg.batch_size, cfg.net.z_dim, device=device)[d.rank * share:(d.rank + 1) * share]
        stats = run.train_step(real, z)
        step = run.step
        pending.append((step, stats))
        bar.update(1)
        last = step == cfg.steps
        if step % cfg.log_every == 0 or step % cfg.checkpoint_every == 0 or last:
            flush()
        if step % cfg.log_every == 0 or last:
            now = time.perf_counter()
            rate = (step - window_first) * cfg.batch_size / max(now - window_start, 1e-9)
            row = [float(step)] + [v / run.window_rows for v in run.window] + [rate]
            run.history.append(row)
            run.window, run.window_rows = [0.0] * len(STATS), 0
            if live is not None:
                _log_row(live, row)
                bar.set_postfix(loss_d=f"{row[1]:.3f}", loss_g=f"{row[2]:.3f}")
            window_start, window_first = now, step
        if (step % cfg.grid_every == 0 or last) and d.main:
            draw_grid(run, fixed_z, work_dir, live, last)
            final_stats = last   # the last step's statistics are the final ones, recomputed once below
        if step % cfg.checkpoint_every == 0 and not last:
            save_checkpoint(run, ckpt, data, sampler, d, started)
    bar.close()
    run.seconds += time.perf_counter() - started
    flush()

    if d.world > 1:
        average_buffers(run.G, d)
        check_ranks_agree(run.G, d)
    if not final_stats:   # what sampling and export use (the last grid computed them on the main process)
        recompute_batchnorm(run.G_ema, cfg.batch_size, device)
    summary = {"cell": cfg.net.cell, "seed": cfg.seed, "params_g": n_g, "params_d": n_d, "steps": cfg.steps,
               "batch_size": cfg.batch_size, "seconds": round(run.seconds, 2),
               "images_per_s": round((cfg.steps - first_step + 1) * cfg.batch_size
                                     / max(time.perf_counter() - started, 1e-9), 1),
               "resumed_from_step": first_step - 1, "device": str(device), "processes": d.world,
               "precision": "bf16" if uses_bf16(device, cfg.precision) else "fp32",
               "threads": threads, "environment": run_environment(device, threads), "net": dataclasses.asdict(cfg.net),
               "ema_half_life_images": final_half_life}
    if d.main:
        live.end()
        _publish(run, out_dir, work_dir, data, sampler, summary)
        log.info("trained %s: %d steps in %.0f s (%.0f images/s)", cfg.net.cell, cfg.steps,
                 run.seconds, summary["images_per_s"])
    barrier(d)
    return summary


def _publish(run: Run, out_dir: Path, work_dir: Path, data: dict, sampler: BatchSampler, summary: dict) -> None:
    """Assemble out_dir in a temporary folder and rename it into place; then drop work_dir."""
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        shutil.copytree(work_dir / "live", tmp / "live")
        shutil.copytree(work_dir / "grids", tmp / "grids")
        torch.save(state(run, data, sampler, run.seconds), tmp / "checkpoint.pt")
        save_generator(tmp / "generator.pt", run.cfg.net, run.G_ema)
        write_json(tmp / "train.json", summary)
    shutil.rmtree(work_dir, ignore_errors=True)


def draw_grid(run: Run, fixed_z: torch.Tensor, work_dir: Path, live, last: bool) -> None:
    """The EMA generator on the fixed noise, with BatchNorm statistics of its current weights
    (from fewer batches than the final ones, except at the last step), saved and logged."""
    recompute_batchnorm(run.G_ema, run.cfg.batch_size, run.device, batches=BN_BATCHES if last else GRID_BN_BATCHES)
    with torch.no_grad():
        grid = to_uint8(run.G_ema(fixed_z))
    save_grid(grid, work_dir / "grids" / f"step_{run.step:06d}.png")
    live.log_image("fixed_noise.png", make_grid(grid))
