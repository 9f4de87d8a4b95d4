"""The machine's measured matmul peak, the yardstick for every achieved-GFLOP/s figure.

Measured in the process that reports against it (cached once per device and dtype), so a run's fraction of
peak compares like with like on a machine whose other users or clocks may change from one process to the next.
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Iterator
from dataclasses import dataclass

import torch

PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class MatmulPeak:
    device: str
    precision: str
    size: int  # square matrices of this side
    gflops: float  # best of the repetitions


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@functools.cache
def matmul_peak(device: str = "cpu", precision: str = "fp32", size: int | None = None, repeats: int = 5) -> MatmulPeak:
    """torch.mm GFLOP/s on size x size matrices, the best of `repeats` after one warm-up product."""
    if precision not in PRECISION_DTYPES:
        raise ValueError(f"unknown precision {precision!r}; choose from: {', '.join(PRECISION_DTYPES)}")
    target = torch.device(device)
    size = size or (8192 if target.type == "cuda" else 2048)  # large enough to saturate each device
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(target, PRECISION_DTYPES[precision]) for _ in range(2))
    out = torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        _synchronize(target)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        _synchronize(target)
        best = min(best, time.perf_counter() - start)
    return MatmulPeak(str(target), precision, size, 2 * size**3 / best / 1e9)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with `count` intra-op CPU threads, restoring the previous count afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
