"""The checkpoint format and its refusals: what a run's state is on disk (plain data, loadable
with weights_only=True), when a checkpoint may be resumed (same recipe, same images, not past
train.steps), and the published generator file."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from rnngan.io import atomic_path, flatten, log
from rnngan.models.networks import NetConfig
from rnngan.training.config import TrainConfig, TrainingError
from rnngan.training.data import BatchSampler
from rnngan.training.distributed import Dist, barrier
from rnngan.training.updates import Run

CHECKPOINT_FORMAT = "rnngan-checkpoint/1"
# Config fields that change how a run is executed but not what it computes: a checkpoint may be
# resumed with different values (device/precision/gpus change the numerics, not the recipe).
RESUMABLE_CHANGES = frozenset({"steps", "log_every", "grid_every", "checkpoint_every", "threads",
                               "device", "precision", "compile"})


def _param_name(key: str) -> str:
    """A TrainConfig field as the params.yaml key a user would change."""
    derived = {"net.image_size": "data.image_size", "net.cell": "--cell",
               "net.d_hidden": "model.hidden (discriminator; set by model.match_params)",
               "net.d_nf": "model.nf (discriminator; set by model.match_params)", "real_augment": "augment.real"}
    if key in derived:
        return derived[key]
    if key.startswith("net."):
        return "model." + key[len("net."):]
    return "--seed (one of train.seeds)" if key == "seed" else f"train.{key}"


def config_differences(saved: dict, current: dict) -> list[str]:
    """'key: saved -> current' for every field that changes what training computes."""
    a, b = flatten(saved), flatten(current)
    return [f"{_param_name(k)}: {a.get(k)!r} -> {b.get(k)!r}"
            for k in sorted(set(a) | set(b))
            if k not in RESUMABLE_CHANGES and a.get(k) != b.get(k)]


def state(run: Run, data: dict, sampler: BatchSampler, seconds: float) -> dict:
    """The run as a checkpoint. Plain data only, so it loads with weights_only=True; saved from
    the modules that torch.compile and DDP wrap, never from the wrappers."""
    rng = {"torch": torch.get_rng_state()}
    if run.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(run.device)
    return {
        "format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(run.cfg), "data": data,
        "step": run.step, "data_position": sampler.position(run.step + 1),
        "G": run.G.state_dict(), "D": run.D.state_dict(), "G_ema": run.G_ema.state_dict(),
        "opt_g": run.opt_g.state_dict(), "opt_d": run.opt_d.state_dict(),
        "rng": rng, "history": run.history,
        "window": run.window, "window_rows": run.window_rows, "seconds": seconds,
    }


def restore(run: Run, blob: dict) -> None:
    """Put a checkpoint's state back into `run`, random streams included."""
    run.G.load_state_dict(blob["G"])
    run.D.load_state_dict(blob["D"])
    run.G_ema.load_state_dict(blob["G_ema"])
    run.opt_g.load_state_dict(blob["opt_g"])
    run.opt_d.load_state_dict(blob["opt_d"])
    torch.set_rng_state(blob["rng"]["torch"])
    if run.device.type == "cuda" and "cuda" in blob["rng"]:
        torch.cuda.set_rng_state(blob["rng"]["cuda"], run.device)
    run.step = int(blob["step"])
    run.history = [list(r) for r in blob["history"]]
    run.window, run.window_rows = list(blob["window"]), int(blob["window_rows"])
    run.seconds = float(blob["seconds"])


def load_checkpoint(path: Path) -> dict:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, don't guess
        raise TrainingError(f"{path}: not a readable checkpoint ({exc}); delete it to start afresh") from exc
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path}: not an rnngan checkpoint ({CHECKPOINT_FORMAT}); delete it to start afresh")
    return blob


def save_generator(path: Path, cfg: NetConfig, G_ema: torch.nn.Module) -> None:
    with atomic_path(path) as tmp:
        torch.save({"config": dataclasses.asdict(cfg), "state_dict": G_ema.state_dict()}, tmp)


def _checked_checkpoint(cfg: TrainConfig, path: Path, data: dict) -> dict | None:
    """The checkpoint at `path` if there is one and it was written under this config and data."""
    if not path.exists():
        return None
    blob = load_checkpoint(path)
    changes = config_differences(blob["config"], dataclasses.asdict(cfg))
    if changes:
        raise TrainingError(
            f"{path} was written under a different config: {'; '.join(changes)}. Restore those "
            f"params to resume it, or delete {path.parent} to start afresh")
    if blob["data"]["shape"] != data["shape"] or blob["data"]["sha256_sample"] != data["sha256_sample"]:
        raise TrainingError(
            f"{path} was written for other training images ({blob['data']['path']}, shape "
            f"{blob['data']['shape']}); delete {path.parent} to start afresh")
    if blob["step"] > cfg.steps:
        raise TrainingError(f"{path} is at step {blob['step']}, past train.steps={cfg.steps}; "
                            f"delete {path.parent} to start afresh or raise train.steps")
    for key in ("device", "precision"):
        if blob["config"].get(key) != getattr(cfg, key):
            log.warning("resuming with train.%s=%s (checkpoint: %s): the run will not be bit-identical "
                        "to an uninterrupted one", key, getattr(cfg, key), blob["config"].get(key))
    return blob


def resume(run: Run, path: Path, data: dict) -> None:
    """Resume `run` from `path` when a checkpoint is there. Only rank 0 reads it (on several
    nodes the others have no such file) and hands it, or its refusal, to every process."""
    blob, error = None, None
    if run.dist.main:
        try:
            blob = _checked_checkpoint(run.cfg, path, data)
        except TrainingError as exc:
            error = str(exc)
    if run.dist.world > 1:
        import torch.distributed as dist

        box = [blob, error]
        dist.broadcast_object_list(box, src=0)
        blob, error = box
    if error:
        raise TrainingError(error)
    if blob is not None:
        restore(run, blob)
        log.info("resuming %s from step %d (%s)", run.cfg.net.cell, run.step, path)


def save_checkpoint(run: Run, path: Path, data: dict, sampler: BatchSampler, d: Dist, started: float) -> None:
    """Rank 0 writes last.pt atomically, only from finite weights (a NaN never replaces the last
    good checkpoint); the others wait for it."""
    if d.main:
        if not run.weights_finite():
            raise TrainingError(f"non-finite weights at step {run.step}; the last good checkpoint is kept in {path}")
        seconds = run.seconds + time.perf_counter() - started
        with atomic_path(path) as tmp:
            torch.save(state(run, data, sampler, seconds), tmp)
    barrier(d)
