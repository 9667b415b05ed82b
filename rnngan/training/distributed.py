"""Several processes under torchrun (NCCL on CUDA, gloo on CPU): the process group, and every
collective training uses, through one helper that keeps tensors on the group's device."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from rnngan.io import pick_device
from rnngan.training.config import TrainingError


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


def barrier(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()
