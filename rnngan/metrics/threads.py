"""Torch's CPU threads for the metrics: one thread for LAPACK calls, independent pieces of torch
work side by side on Python threads. Apart from the metrics themselves, so that a stage that only
needs the threads (the attribute classifier's scoring) does not depend on FID or the extractors."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")
# CPU: batches of images run at once (features, attribute scoring); each holds its activations
PARALLEL_BATCHES = 4


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block (restored after; cheap to enter).

    MKL's multi-threaded routines synchronise their threads, and when another process keeps a
    core busy each sync waits for a descheduled thread. Measured here (2 cores, the other one
    busy): `eigvalsh` of a 512 x 512 matrix took 6.8 s on 2 threads and 0.02 s on 1 (2048 x 2048:
    2.8 s against 0.4 s); a 512 x 10 x 512 matrix product 7.9 ms against ~0.05. So the LAPACK
    calls here always run on one thread, and so does a bootstrap made of small products.
    """
    with torch_threads(1):
        yield


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on `n` CPU threads inside the block (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int | None = None,
                 threads_each: int = 1) -> Iterator[R]:
    """`fn` over `items`, results in order, up to `workers` (default: torch's thread count) at a
    time on Python threads, with torch on `threads_each` threads inside each.

    For independent pieces of torch work (batches of images, bootstrap rounds): with one thread
    each, each piece runs the one-thread kernels, and the pieces never wait for each other, where
    one multi-threaded kernel's threads wait for the slowest at every synchronisation (see
    `one_thread`). torch releases the GIL inside its kernels. With fewer than 2 workers or items,
    a plain `map` on torch's own threads.
    """
    workers = min(torch.get_num_threads() if workers is None else workers, len(items))
    if workers < 2:
        yield from map(fn, items)
        return
    with torch_threads(threads_each), ThreadPoolExecutor(workers, thread_name_prefix="rnngan-metrics") as pool:
        yield from pool.map(fn, items)
