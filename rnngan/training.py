"""GAN training: non-saturating loss, Adam, an EMA generator, exact resume, DDP through torchrun.

`train(cfg, data_path, out_dir, work_dir)` does the whole job for one variant; stages/train.py
calls it (under torchrun when train.gpus > 1).

While training, everything lives in `work_dir` (not a DVC output, so `dvc repro` leaves it alone
when it reruns a killed stage): `last.pt`, the checkpoint rewritten atomically every
train.checkpoint_every steps, and the dvclive log and grids so far. A run that finds a checkpoint
there resumes from it. At the end `out_dir` is assembled in a temporary folder and renamed into
place, then `work_dir` is removed: `out_dir` is whole or absent, never half-written.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnngan.environment import run_environment
from rnngan.errors import UserError
from rnngan.grids import make_grid, save_grid
from rnngan.io import atomic_path, load_images, log, pick_device, progress, set_threads, write_json
from rnngan.data.augment import Policy, augment_batch, step_draws
from rnngan.losses import LOSSES, gradient_penalty, mode_seeking
from rnngan.models.networks import NetConfig, build_discriminator, build_generator, count_parameters
from rnngan.sampling import to_uint8

GRID_COUNT = 64  # fixed-noise grid: 8 x 8
# The EMA generator's BatchNorm statistics: averaged over this many batches of this fixed noise,
# a function of its weights alone (the same for every run and seed).
BN_BATCHES = 16
# The progress grids every grid_every steps need only a picture: their statistics come from fewer
# batches (the statistics are reset at every recompute, so what sampling and export use is unchanged).
GRID_BN_BATCHES = 4
BN_NOISE_SEED = 20240601
CHECKPOINT_FORMAT = "rnngan-checkpoint/1"
# Per-step statistics kept on the device and read back only when logging (no sync per step).
STATS = ("loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g")
# Config fields that change how a run is executed but not what it computes: a checkpoint may be
# resumed with different values (device/precision/gpus change the numerics, not the recipe).
RESUMABLE_CHANGES = frozenset({"steps", "log_every", "grid_every", "checkpoint_every", "threads",
                               "device", "precision", "compile"})


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (a non-finite loss, unusable data, an incompatible checkpoint)."""


@dataclass(frozen=True)
class TrainConfig:
    net: NetConfig
    seed: int
    steps: int
    batch_size: int
    lr: float
    beta1: float
    beta2: float
    ema_images: int
    ema_rampup: float | None
    real_label: float
    log_every: int
    grid_every: int
    checkpoint_every: int = 100
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    threads: int = 0
    lr_d: float | None = None      # None: lr
    lr_g: float | None = None      # None: lr
    g_steps: int = 1               # G updates per D update
    mode_seeking: float = 0.0      # weight of losses.mode_seeking in G's loss (0 = off)
    real_augment: str = "step"     # step: the real batch redrawn through the policy every step; cached: as read
    loss: str = "ns"               # a key of rnngan.losses.LOSSES
    r1: float = 0.0
    r2: float = 0.0
    reg_every: int = 1
    augment: Policy = Policy()     # applied to every generated batch before D, as augment cached the real

    @classmethod
    def from_params(cls, params, cell: str, seed: int) -> "TrainConfig":
        """The run (`cell`, `seed`): `seed` is one of train.seeds, and the only seed training
        reads (initialisation, batch order, noise), so seed s of any train.seeds list is the same
        run; the data seed (params.seed) reaches training only through the augmented images."""
        t, m = params.train, params.model
        net = dataclasses.replace(NetConfig.from_params(m, params.data.image_size, cell), d_norm=t.d_norm)
        if m.match_params:
            from rnngan.models.sizing import match_params

            # note: the reference is the LSTM at model.hidden/model.nf, fixed, so that changing
            # model.cell never resizes (and retrains) every variant
            net = match_params(dataclasses.replace(net, cell="lstm"), [cell])[cell]
        return cls(net=net, seed=seed, steps=t.steps, batch_size=t.batch_size, lr=t.lr,
                   beta1=t.beta1, beta2=t.beta2, lr_d=t.lr_d, lr_g=t.lr_g, g_steps=t.g_steps, mode_seeking=t.mode_seeking,
                   real_augment=params.augment.real, loss=t.loss, r1=t.r1,
                   r2=t.r2, reg_every=t.reg_every, augment=Policy.of(params.augment), ema_images=t.ema_images, ema_rampup=t.ema_rampup,
                   real_label=t.real_label,
                   log_every=t.log_every, grid_every=t.grid_every,
                   checkpoint_every=t.checkpoint_every, device=t.device, precision=t.precision,
                   compile=t.compile, threads=t.threads)


# --- the EMA ---------------------------------------------------------------------------------

@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """Average the weights; the EMA generator's BatchNorm statistics are its own
    (recompute_batchnorm), never the raw generator's, which do not fit the averaged weights."""
    # note: one multi-tensor kernel, not one lerp per parameter: on a 2-core CPU the per-tensor
    # dispatch of EMA and a for-loop Adam cost a third of the step (benchmarks/train_throughput.py)
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)
    # note: spectral normalisation's power-iteration vectors (model.g_spectral) are not
    # averaged but taken from G, whose weights the averaged ones follow: the EMA generator never
    # runs a training forward that would update its own
    for (name, ours), theirs in zip(ema.named_buffers(), model.buffers()):
        if ".parametrizations." in f".{name}":
            ours.copy_(theirs)


def ema_half_life(step: int, batch_size: int, half_life: int, rampup: float | None) -> float:
    """The EMA's half-life in images after `step` steps: `train.ema_images`, capped during the
    ramp-up at `train.ema_rampup` times the images seen so far (StyleGAN2-ADA's ema_kimg and
    ema_rampup), so the random initialisation fades from the average at any run length."""
    return float(half_life if rampup is None else min(half_life, step * batch_size * rampup))


def ema_decay(step: int, batch_size: int, half_life: int, rampup: float | None) -> float:
    """The per-step decay whose weight halves every `ema_half_life` images: 0.5 ** (B / h)."""
    h = ema_half_life(step, batch_size, half_life, rampup)
    return 0.5 ** (batch_size / h) if h > 0 else 0.0


@torch.no_grad()
def recompute_batchnorm(G: torch.nn.Module, batch_size: int, device: torch.device, seed: int = BN_NOISE_SEED,
                        batches: int = BN_BATCHES) -> None:
    """Give G BatchNorm statistics of its own weights: the exact average of the batch statistics
    over `batches` batches of seeded noise (momentum None), then eval mode. Draws from its own
    generator, never torch's global one, so training's random stream (and exact resume) is untouched."""
    norms = [m for m in G.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    noise = torch.Generator().manual_seed(seed)
    G.train()
    for _ in range(batches):
        G(torch.randn(batch_size, G.cfg.z_dim, generator=noise).to(device))
    G.eval()
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


# --- data ------------------------------------------------------------------------------------

class BatchSampler:
    """Batch `step` (1-based) of a seeded order: epoch by epoch, without replacement.

    The order is a pure function of (seed, step), so resuming needs only the step, and a loader
    thread may run ahead of training without moving any state a checkpoint must capture.
    Epoch e uses the e-th permutation drawn from default_rng(seed); the last partial batch of an
    epoch is dropped.
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < batch_size:
            raise TrainingError(f"the training set has {n} images, fewer than one batch ({batch_size})")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._rng, self._epoch, self._order = np.random.default_rng(seed), -1, None

    def position(self, step: int) -> dict:
        epoch, index = divmod(step - 1, self.per_epoch)
        return {"epoch": epoch, "batch_in_epoch": index, "batches_per_epoch": self.per_epoch}

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch < self._epoch:  # going back: replay from the start
            self._rng, self._epoch = np.random.default_rng(self.seed), -1
        while self._epoch < epoch:
            self._order, self._epoch = self._rng.permutation(self.n), self._epoch + 1
        return self._order

    def batch(self, step: int) -> np.ndarray:
        epoch, index = divmod(step - 1, self.per_epoch)
        order = self._permutation(epoch)
        idx = order[index * self.batch_size:(index + 1) * self.batch_size]
        return np.sort(idx)  # sorted reads are kinder to a memory map


def to_tensor(batch: np.ndarray, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """uint8 B x H x W x 3 -> float B x 3 x H x W in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(batch))
    if device.type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class Loader:
    """Reads batch `step` of the memory-mapped images: this rank's share of the global batch.

    On CUDA a thread reads ahead (`depth` batches) while the GPU trains; on CPU the few hundred
    microseconds a batch takes are spent inline, since a thread would only compete with torch's
    own threads for the cores.
    """

    def __init__(self, images: np.ndarray, sampler: BatchSampler, rank: int, world: int,
                 device: torch.device, channels_last: bool, depth: int = 2):
        self.images, self.sampler, self.device = images, sampler, device
        share = sampler.batch_size // world
        self.slice = slice(rank * share, (rank + 1) * share)
        self.channels_last = channels_last
        self.depth = depth if device.type == "cuda" else 0

    def read(self, step: int) -> torch.Tensor:
        return to_tensor(self.images[self.sampler.batch(step)[self.slice]], self.device, self.channels_last)

    def iterate(self, first: int, last: int):
        if not self.depth:
            for step in range(first, last + 1):
                yield self.read(step)
            return
        q: queue.Queue = queue.Queue(self.depth)
        stop = threading.Event()

        def worker():
            try:
                for step in range(first, last + 1):
                    if stop.is_set():
                        return
                    q.put(self.read(step))
            except BaseException as exc:  # handed to the training thread, raised there
                q.put(exc)

        thread = threading.Thread(target=worker, daemon=True, name="rnngan-loader")
        thread.start()
        try:
            for _ in range(first, last + 1):
                item = q.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()


def data_fingerprint(images: np.ndarray, path: Path) -> dict:
    """What a checkpoint must agree with to be resumed on these images: shape and a hash of a
    spread of images (hashing all of CelebA at every start would cost seconds)."""
    pick = np.linspace(0, len(images) - 1, num=min(len(images), 256)).astype(np.int64)
    digest = hashlib.sha256(np.ascontiguousarray(images[pick]).tobytes()).hexdigest()
    return {"shape": list(images.shape), "sha256_sample": digest, "path": str(path)}


# --- distributed -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dist:
    rank: int = 0
    local_rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")     # the process group's: this rank's GPU with NCCL, CPU with gloo

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Under torchrun (WORLD_SIZE > 1 in the environment): join the process group, NCCL on
    CUDA and gloo on CPU, one device per local rank. Otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device_name)
    if world == 1:
        return Dist(), device
    import torch.distributed as dist

    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise TrainingError(f"local rank {local_rank} has no GPU: {torch.cuda.device_count()} visible")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), local_rank, dist.get_world_size(), device), device


COLLECTIVE_OPS = ("sum", "min", "max")


@torch.no_grad()
def all_reduce_(tensor: torch.Tensor, d: Dist, op: str = "sum") -> torch.Tensor:
    """Reduce `tensor` over the processes, in place, and return it: every collective of training
    goes through here. The reduction runs on the process group's device (`d.device`), where the
    tensor is moved first if it lives elsewhere and copied back after.

    note: NCCL takes CUDA tensors only; per-step statistics moved to the CPU for logging and then
    reduced killed every multi-GPU run at its first log step, while gloo, the only backend the
    tests can run, takes either.
    """
    if op not in COLLECTIVE_OPS:
        raise ValueError(f"all_reduce_: op {op!r}; allowed: {', '.join(COLLECTIVE_OPS)}")
    if d.world == 1:
        return tensor
    import torch.distributed as dist

    on_group = tensor if tensor.device == d.device else tensor.to(d.device)
    dist.all_reduce(on_group, {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op])
    if on_group is not tensor:
        tensor.copy_(on_group)
    return tensor


@torch.no_grad()
def average_buffers(module: torch.nn.Module, d: Dist) -> None:
    """BatchNorm running statistics are kept per process (buffers are not broadcast; see the
    note in `train`): average them before they are sampled from or saved."""
    if d.world == 1:
        return
    for b in module.buffers():
        if b.is_floating_point():
            all_reduce_(b, d).div_(d.world)


def check_ranks_agree(model: torch.nn.Module, d: Dist) -> None:
    """DDP keeps every process's weights equal; check it before saving rank 0's copy."""
    if d.world == 1:
        return
    with torch.no_grad():
        total = torch.stack([p.double().sum() for p in model.parameters()]).sum().reshape(1)
        lo, hi = all_reduce_(total.clone(), d, "min"), all_reduce_(total.clone(), d, "max")
    if lo.item() != hi.item():
        raise TrainingError(f"the {d.world} processes' generator weights diverged ({lo.item()} vs {hi.item()})")


class DStep(torch.nn.Module):
    """D on the real and on the fake batch in one forward, so that DistributedDataParallel sees
    one forward per backward. BatchNorm still sees real and fake separately, as in DCGAN."""

    def __init__(self, D: torch.nn.Module):
        super().__init__()
        self.D = D

    def forward(self, real, fake, fused: bool | None = None):
        return self.D(real, fused=fused), self.D(fake, fused=fused)


# --- checkpoints -------------------------------------------------------------------------------

def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


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
    a, b = _flat(saved), _flat(current)
    return [f"{_param_name(k)}: {a.get(k)!r} -> {b.get(k)!r}"
            for k in sorted(set(a) | set(b))
            if k not in RESUMABLE_CHANGES and a.get(k) != b.get(k)]


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


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


# --- the run ------------------------------------------------------------------------------------

class Run:
    """The state of one training run: networks, optimisers, log history; checkpoint round trip."""

    def __init__(self, cfg: TrainConfig, device: torch.device, d: Dist):
        self.cfg, self.device, self.dist = cfg, device, d
        torch.manual_seed(cfg.seed)
        self.G = build_generator(cfg.net).to(device)
        self.D = build_discriminator(cfg.net).to(device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        betas = (cfg.beta1, cfg.beta2)
        # note: fused Adam (one kernel for all parameters, on CPU and CUDA) instead of torch's
        # CPU default, a Python loop of small ops per parameter
        self.opt_g = torch.optim.Adam(self.G.parameters(), cfg.lr if cfg.lr_g is None else cfg.lr_g, betas=betas,
                                      fused=True)
        self.opt_d = torch.optim.Adam(self.D.parameters(), cfg.lr if cfg.lr_d is None else cfg.lr_d, betas=betas,
                                      fused=True)
        self.step = 0
        self.history: list[list[float]] = []     # one row per log: step, STATS..., images/s
        self.window = [0.0] * len(STATS)         # sums since the last log row
        self.window_rows = 0
        self.seconds = 0.0                       # training time before this process

    def state(self, data: dict, sampler: BatchSampler, seconds: float) -> dict:
        # Plain data only, so it loads with weights_only=True; saved from the modules that
        # torch.compile and DDP wrap, never from the wrappers.
        return {
            "format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(self.cfg), "data": data,
            "step": self.step, "data_position": sampler.position(self.step + 1),
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "rng": _rng_state(self.device), "history": self.history,
            "window": self.window, "window_rows": self.window_rows, "seconds": seconds,
        }

    def restore(self, blob: dict) -> None:
        self.G.load_state_dict(blob["G"])
        self.D.load_state_dict(blob["D"])
        self.G_ema.load_state_dict(blob["G_ema"])
        self.opt_g.load_state_dict(blob["opt_g"])
        self.opt_d.load_state_dict(blob["opt_d"])
        torch.set_rng_state(blob["rng"]["torch"])
        if self.device.type == "cuda" and "cuda" in blob["rng"]:
            torch.cuda.set_rng_state(blob["rng"]["cuda"], self.device)
        self.step = int(blob["step"])
        self.history = [list(r) for r in blob["history"]]
        self.window, self.window_rows = list(blob["window"]), int(blob["window_rows"])
        self.seconds = float(blob["seconds"])

    def wrap(self, d: Dist) -> None:
        """The modules the training step calls: DDP and torch.compile wrap them; the state is
        always saved from the bare modules."""
        self.G_train, self.D_train = self.G, DStep(self.D)
        if d.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # note: buffers are not broadcast at each forward; broadcasting BatchNorm statistics
            # in place between D's forward and backward is the known in-place autograd error of
            # GANs under DDP. They are averaged before sampling and saving instead.
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.G_train = DDP(self.G_train, device_ids=ids, broadcast_buffers=False)
            self.D_train = DDP(self.D_train, device_ids=ids, broadcast_buffers=False)
        # The R1/R2 steps need D's double backward, which compiled code lacks: they call D uncompiled
        self.D_reg = self.D_train
        if self.cfg.compile:
            self.G_train, self.D_train = torch.compile(self.G_train), torch.compile(self.D_train)

    def train_step(self, real: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """One D update and one G update; returns the step's STATS as a device tensor (no sync)."""
        cfg, device = self.cfg, self.device
        step = self.step + 1

        # (1) Update D on real against fake; every reg_every steps with R1 (on real) and R2 (on
        # fake) added, times reg_every (StyleGAN2's lazy regularisation)
        loss_fn = LOSSES[cfg.loss]
        regularise = (cfg.r1 > 0 or cfg.r2 > 0) and step % cfg.reg_every == 0
        with _autocast(device, cfg.precision):
            fake = self.G_train(z)
        fake_d = self.augment(fake.detach(), step, 0)
        if cfg.real_augment == "step":
            # note: fresh draws every step, as the fakes get: a cached real side would show D one
            # fixed augmented copy of each image for the whole run
            real = self.augment(real, step, 2)
        if regularise:
            real_in = real.detach().requires_grad_(cfg.r1 > 0)
            fake_in = fake_d.detach().requires_grad_(cfg.r2 > 0)
            # note: the penalty needs D's double backward, which cuDNN's fused RNN, the compiled
            # SRU recurrence and torch.compile lack: this forward runs D uncompiled and the cell
            # step by step, on CUDA too
            with _autocast(device, cfg.precision):
                real_logits, fake_logits = self.D_reg(real_in, fake_in, fused=False)
            loss_d = loss_fn.d(real_logits.float(), fake_logits.float(), cfg.real_label)
            penalty = loss_d.new_zeros(())
            if cfg.r1 > 0:
                penalty = penalty + cfg.r1 / 2 * gradient_penalty(real_logits.float(), real_in)
            if cfg.r2 > 0:
                penalty = penalty + cfg.r2 / 2 * gradient_penalty(fake_logits.float(), fake_in)
            loss_d_total = loss_d + cfg.reg_every * penalty
        else:
            with _autocast(device, cfg.precision):
                real_logits, fake_logits = self.D_train(real, fake_d)
            loss_d = loss_d_total = loss_fn.d(real_logits.float(), fake_logits.float(), cfg.real_label)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d_total.backward()
        grad_norm_d = _grad_norm(self.D)
        self.opt_d.step()

        # (2) Update G: make D call its images real, train.g_steps times (fresh noise after the first)
        # note: D without its DDP wrapper and without weight gradients: only G learns here
        self.D.requires_grad_(False)
        for k in range(cfg.g_steps):
            if k:
                z = torch.randn_like(z)
                with _autocast(device, cfg.precision):
                    fake = self.G_train(z)
            fake_g = self.augment(fake, step, 1 if k == 0 else 2 + k)
            with _autocast(device, cfg.precision):
                fake_logits_g = self.D(fake_g).float()
                real_logits_g = self.D(real).float() if loss_fn.needs_real_for_g else None
                loss_g = loss_fn.g(fake_logits_g, real_logits_g)
            if cfg.mode_seeking > 0:
                # on G's images before augmentation, in float32: pairs of its own outputs
                loss_g = loss_g + cfg.mode_seeking * mode_seeking(fake.float(), z)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            grad_norm_g = _grad_norm(self.G)
            self.opt_g.step()
        self.D.requires_grad_(True)
        update_ema(self.G_ema, self.G, ema_decay(step, cfg.batch_size, cfg.ema_images, cfg.ema_rampup))
        self.step = step

        with torch.no_grad():
            return torch.stack([loss_d.detach(), loss_g.detach(),
                                torch.sigmoid(real_logits.detach().float()).mean(),
                                torch.sigmoid(fake_logits.detach().float()).mean(),
                                grad_norm_d, grad_norm_g])

    def augment(self, images: torch.Tensor, step: int, which: int) -> torch.Tensor:
        """The augmentation policy on a batch (this process's share of it), differentiably, in
        float32 with autocast off on every side (D's fakes, G's fakes, the real batch): the same
        function the augment stage caches the real images with. which: 0 D's fakes, 1 G's fakes,
        2 the real batch, 3.. G's further updates."""
        policy = self.cfg.augment
        if not policy.active():
            return images
        d = self.dist
        share = images.shape[0]
        u = step_draws(self.cfg.seed, step, which, share * d.world)[d.rank * share:(d.rank + 1) * share]
        with torch.autocast(images.device.type, enabled=False):
            return augment_batch(images.float(), policy, u.to(images.device))

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for m in (self.G, self.D, self.G_ema) for p in m.parameters())


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


def _resume(run: Run, path: Path, data: dict) -> None:
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
        run.restore(blob)
        log.info("resuming %s from step %d (%s)", run.cfg.net.cell, run.step, path)


def uses_bf16(device: torch.device, precision: str) -> bool:
    """bf16 autocast on CUDA unless train.precision says fp32; fp32 on CPU unless it says bf16."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def _autocast(device: torch.device, precision: str):
    # note: bf16 keeps float32's exponent range, so unlike float16 it needs no GradScaler
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(device, precision))


def _grad_norm(module: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad.float() for p in module.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


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
    _resume(run, ckpt, data)
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
        if step % cfg.grid_every == 0 or last:
            if d.main:
                # the last step's statistics are the final ones, recomputed once below
                recompute_batchnorm(run.G_ema, cfg.batch_size, device,
                                    batches=BN_BATCHES if last else GRID_BN_BATCHES)
                final_stats = last
                with torch.no_grad():
                    grid = to_uint8(run.G_ema(fixed_z))
                save_grid(grid, work_dir / "grids" / f"step_{step:06d}.png")
                live.log_image("fixed_noise.png", make_grid(grid))
        if step % cfg.checkpoint_every == 0 and not last:
            _save_checkpoint(run, ckpt, data, sampler, d, started)
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
    _barrier(d)
    return summary


def _barrier(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


def _save_checkpoint(run: Run, path: Path, data: dict, sampler: BatchSampler, d: Dist, started: float) -> None:
    """Rank 0 writes last.pt atomically, only from finite weights (a NaN never replaces the last
    good checkpoint); the others wait for it."""
    if d.main:
        if not run.weights_finite():
            raise TrainingError(f"non-finite weights at step {run.step}; the last good checkpoint is kept in {path}")
        seconds = run.seconds + time.perf_counter() - started
        with atomic_path(path) as tmp:
            torch.save(run.state(data, sampler, seconds), tmp)
    _barrier(d)


def _publish(run: Run, out_dir: Path, work_dir: Path, data: dict, sampler: BatchSampler, summary: dict) -> None:
    """Assemble out_dir in a temporary folder and rename it into place; then drop work_dir."""
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        shutil.copytree(work_dir / "live", tmp / "live")
        shutil.copytree(work_dir / "grids", tmp / "grids")
        torch.save(run.state(data, sampler, run.seconds), tmp / "checkpoint.pt")
        save_generator(tmp / "generator.pt", run.cfg.net, run.G_ema)
        write_json(tmp / "train.json", summary)
    shutil.rmtree(work_dir, ignore_errors=True)
