"""Where a training step's time goes: matmuls, elementwise work, the loss, the optimiser and everything else.

The PyTorch profiler records a few steady steps of the engine's own step (bench/engine.py `make_step`); each
op's self time (its kernels' time on CUDA) is given to one part:

- `optimizer`: anything inside `Optimizer.step` / `Optimizer.zero_grad`;
- `matmul`: the matrix products (mm, addmm, bmm, ...), forward and backward;
- `loss`: the squared error (the engine's LOSS_RANGE) and its backward;
- `elementwise`: every other tensor op (activations, encodings, casts, bias-gradient sums) and torch.compile's
  fused kernels: memory-bound work;
- `other`: the steady step's time (measured without the profiler) minus the four parts above: Python,
  autograd bookkeeping, kernel launches, idle.

On CUDA the steps run without CUDA-graph capture (a replayed graph hides which op launched each kernel), so
`other` there holds the launch overhead that the fitting engine's graphs remove.

Each part is set against its roofline measured in the same process (bench/hardware.py): the matmul part's
counted FLOPs against the matmul peak, the elementwise part's bytes (estimated from op shapes, 4 bytes an
element) against the memory bandwidth. The whole step's counted matmul FLOPs over its time, as a fraction of the
peak, is its peak-equivalent speed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile

from .engine import LOSS_RANGE, FitConfig, PixelLoss, make_optimizer, make_step, seconds_per_step
from .flops import training_step_flops
from .hardware import matmul_peak, memory_bandwidth, synchronize

PARTS = ("matmul", "elementwise", "loss", "optimizer", "other")
MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm", "aten::addmv", "aten::mv",
              "aten::_addmm_activation", "mkldnn::_linear_pointwise", "aten::mkldnn_linear"}
# Ops that only re-describe memory (no bytes move) or allocate it: they take time, but no traffic is counted.
NO_TRAFFIC = re.compile(r"aten::(t|view|_?reshape.*|expand|as_strided|transpose|unsqueeze|squeeze|permute|slice|"
                        r"select|detach|alias|empty.*|resize_|_unsafe_view|lift_fresh|unbind|split.*|chunk|"
                        r"_to_copy|to|contiguous|resolve_conj|resolve_neg)")
FUSED_KERNELS = ("CompiledFxGraph", "triton_", "cpp_fused")  # torch.compile's generated kernels


@dataclass
class StepBreakdown:
    representation: str
    loop: str  # eager | fast
    device: str
    precision: str
    compile: bool
    pixels: int  # training pixels per step
    step_ms: float  # a steady step, without the profiler
    matmul_ms: float
    elementwise_ms: float
    loss_ms: float
    optimizer_ms: float
    other_ms: float  # step_ms minus the four named parts (never below 0)
    matmul_gflop: float  # counted matmul FLOPs of a step
    matmul_peak_percent: float  # matmul_gflop / matmul time, of the matmul peak at this precision
    elementwise_gb: float  # estimated bytes the elementwise ops read and write; NaN where fused kernels hide them
    bandwidth_percent: float  # elementwise_gb / elementwise time, of the measured memory bandwidth
    step_peak_percent: float  # matmul_gflop / step time, of the peak: the whole step as peak-equivalent
    peak_gflops: float  # the matmul peak these percentages are of, measured right after this step's timing
    bandwidth_gbps: float  # the memory bandwidth, likewise


def part_of(event, parents: list[str]) -> str:
    """The part an event's self time belongs to, from its name and its ancestors' names."""
    if any(name.startswith("Optimizer.") for name in parents):
        return "optimizer"
    if event.name in MATMUL_OPS:
        return "matmul"
    if any(name == LOSS_RANGE or "MseLossBackward" in name for name in parents):
        return "loss"
    if event.name.startswith("aten::") or any(marker in event.name for marker in FUSED_KERNELS):
        return "elementwise"
    return "other"


def traffic_bytes(event) -> float:
    """Bytes an elementwise op reads and writes, from its input shapes: the inputs and one output as large as
    the largest input, 4 bytes an element. NaN for a fused kernel, whose inputs the profiler does not see."""
    if any(marker in event.name for marker in FUSED_KERNELS):
        return math.nan
    if NO_TRAFFIC.fullmatch(event.name):
        return 0.0
    sizes = [math.prod(shape) for shape in event.input_shapes if isinstance(shape, list) and shape]
    return 4.0 * (sum(sizes) + max(sizes, default=0))


def profile_parts(step: Callable[[], Tensor], device: torch.device, steps: int) -> tuple[dict[str, float], float]:
    """Per-step milliseconds of each named part (without `other`) and elementwise bytes, over `steps` steps."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as profiler:
        for _ in range(steps):
            step()
        synchronize(device)
    parts = dict.fromkeys(PARTS[:-1], 0.0)
    elementwise_bytes = 0.0
    for event in profiler.events():
        parents, parent = [event.name], event.cpu_parent
        while parent is not None:
            parents.append(parent.name)
            parent = parent.cpu_parent
        part = part_of(event, parents)
        if part == "other":
            continue
        micros = event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total
        parts[part] += micros / 1000 / steps
        if part == "elementwise" and micros > 0 and not event.cpu_children:  # a wrapper's children move its bytes
            elementwise_bytes += traffic_bytes(event) / steps
    return parts, elementwise_bytes


def breakdown(name: str, loop: str, model: nn.Module, coords: Tensor, values: Tensor, config: FitConfig,
              warmup: int = 3, timed: int = 5, profiled: int = 3) -> StepBreakdown:
    """Time and profile the engine's step of `model` on (coords, values) under `config` (its optimiser,
    precision and compilation), after `warmup` steps (compilation, first-touch allocation)."""
    device = coords.device
    # A replayed CUDA graph hides which op launched each kernel, so the profiled steps run without capture.
    config = dataclasses.replace(config, cuda_graphs=False)
    parameters = [p for p in model.parameters() if p.requires_grad]
    step = make_step(PixelLoss(model, coords, values, config), make_optimizer(parameters, config), config)
    seconds = seconds_per_step(step, device, timed, warmup)
    parts, elementwise_bytes = profile_parts(step, device, profiled)
    step_ms = 1000 * seconds
    flops = training_step_flops(model, len(coords), coords.shape[1])
    # Measured afresh beside each step, not once per process: a shared machine's speed drifts within minutes
    # (the 2048^2 peak read 91, 175 and 256 GFLOP/s in three runs of one hour on one 2-core VM).
    peak = matmul_peak.__wrapped__(str(device), config.precision).gflops
    bandwidth = memory_bandwidth.__wrapped__(str(device)).gbytes_per_second
    return StepBreakdown(
        name, loop, str(device), config.precision, config.compile, len(coords), step_ms,
        *(parts[p] for p in PARTS[:-1]), max(step_ms - sum(parts.values()), 0.0), flops / 1e9,
        percent(flops / 1e9, parts["matmul"] / 1000, peak),
        elementwise_bytes / 1e9, percent(elementwise_bytes / 1e9, parts["elementwise"] / 1000, bandwidth),
        percent(flops / 1e9, seconds, peak), peak, bandwidth)


def percent(amount: float, seconds: float, ceiling: float) -> float:
    return 100 * amount / seconds / ceiling if seconds > 0 and math.isfinite(amount) else math.nan
