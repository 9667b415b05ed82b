"""The training images in batches: a seeded batch order that is a pure function of (seed, step),
the loader that reads this process's share of each batch, and the fingerprint a checkpoint keeps
of the images it was trained on."""
from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from pathlib import Path

import numpy as np
import torch

from rnngan.training.config import TrainingError


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
