"""The machine's measured matmul peak, the yardstick for every achieved-GFLOP/s figure.

Measured in the process that reports against it (cached once per device and dtype), so a run's fraction of
peak compares like with like on a machine whose other users or clocks may change from one process to the next.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import time
from typing import Callable, Iterator
from dataclasses import dataclass

import torch

PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class MatmulPeak:
    device: str
    precision: str
    size: int  # square matrices of this side
    gflops: float  # best of the repetitions


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU, where every op has finished on return."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(action: Callable[[], object], device: torch.device, repeats: int) -> float:
    """The fastest of `repeats` timed runs of `action`, after one untimed warm-up run."""
    action()
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        action()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


PEAK_SECONDS = 0.05  # a product this long saturates a device (fp32 on 2 EPYC cores: 1024^2 took 0.02 s, 2048^2 0.16 s)


@functools.cache
def matmul_peak(device: str = "cpu", precision: str = "fp32", size: int | None = None, repeats: int = 5) -> MatmulPeak:
    """torch.mm GFLOP/s on size x size matrices, the best of `repeats` after one warm-up product.

    Without `size`, the side doubles from 256 until one product takes PEAK_SECONDS or the side reaches the
    device's cap: large enough to saturate a fast unit, and seconds, not minutes, where the dtype is emulated
    (bf16 on a CPU without bf16 instructions runs at ~1 GFLOP/s, where 2048^2 took 17 s a product)."""
    if precision not in PRECISION_DTYPES:
        raise ValueError(f"unknown precision {precision!r}; choose from: {', '.join(PRECISION_DTYPES)}")
    target = torch.device(device)
    cap = size or (8192 if target.type == "cuda" else 2048)
    side = size or min(256, cap)
    while side < cap and _product_seconds(side, target, precision, 1) < PEAK_SECONDS:
        side *= 2
    seconds = _product_seconds(side, target, precision, repeats)
    return MatmulPeak(str(target), precision, side, 2 * side**3 / seconds / 1e9)


def _product_seconds(side: int, device: torch.device, precision: str, repeats: int) -> float:
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(side, side, generator=generator).to(device, PRECISION_DTYPES[precision]) for _ in range(2))
    out = torch.empty(side, side, device=device, dtype=a.dtype)
    return best_seconds(lambda: torch.mm(a, b, out=out), device, repeats)


@dataclass(frozen=True)
class MemoryBandwidth:
    device: str
    megabytes: int  # size of each of the three arrays
    gbytes_per_second: float  # bytes read and written, best of the repetitions


@functools.cache
def memory_bandwidth(device: str = "cpu", megabytes: int | None = None, repeats: int = 5) -> MemoryBandwidth:
    """Bytes per second of `c = a + b` on fp32 arrays far larger than the caches (two reads and a write an
    element): the ceiling of memory-bound work, as the STREAM benchmark's `add` measures it."""
    target = torch.device(device)
    megabytes = megabytes or (2048 if target.type == "cuda" else 256)
    count = megabytes * 2**20 // 4
    a, b, c = (torch.ones(count, device=target) for _ in range(3))  # ones: pages touched before timing
    best = best_seconds(lambda: torch.add(a, b, out=c), target, repeats)
    return MemoryBandwidth(str(target), megabytes, 3 * count * 4 / best / 1e9)


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc keep freed memory in the process instead of handing it back to the OS.

    By default glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh mmap and unmaps
    it when freed, so a training step whose activations are 64 MB a layer (65,536 pixels x 256 fp32) page-faults
    all of them in again on every step; keeping them made such steps 1.4-1.9x faster on a 2-core Xeon
    (experiments/pixel_chunks.py --allocator glibc against the default; docs/speed.md has the figures).
    PyTorch's CPU allocator is glibc's malloc, so this is where the fix goes: no mmap-served blocks, no trimming
    of the heap's top. The process keeps its peak memory until it exits. A no-op (False) where the C library is
    not glibc.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


@functools.cache
def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    try:
        function = ctypes.CDLL(None).mallinfo2  # glibc 2.33 and later
    except (OSError, AttributeError):
        return None
    function.restype = _MallInfo2
    return function


def heap_in_use() -> int | None:
    """Bytes the process's malloc has handed out and not yet had back (glibc's mallinfo2: arena blocks in use
    plus mmap-served blocks), where PyTorch's CPU tensors live; None where the C library cannot say. Unlike the
    resident set size, it falls again when tensors are freed, also once `keep_freed_memory` keeps the pages."""
    mallinfo2 = _mallinfo2()
    if mallinfo2 is None:
        return None
    info = mallinfo2()
    return info.uordblks + info.hblkhd


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with `count` intra-op CPU threads, restoring the previous count afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
