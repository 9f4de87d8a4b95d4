"""The fitting engine: full-batch Adam on one model (or a stack of them), then a reconstruction of every pixel.

One training loop serves single and batched fits (bench/batched.py): it drives a function returning one loss
per model. Fast paths, each a FitConfig field: bf16 matmuls, torch.compile, and on CUDA a captured CUDA graph
of the whole step with losses kept on the device between host syncs.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .flops import training_step_flops
from .protocol import Split, coordinate_grid

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class FitConfig:
    steps: int
    lr: float
    device: str = "cpu"
    log_every: int = 10  # loss is recorded (and divergence checked) every this many steps
    eval_chunk: int = 1 << 16  # pixels per forward pass when reconstructing
    precision: str = "fp32"  # "bf16": wide matmuls in bf16 (see Bf16Matmuls); weights, Adam, loss stay fp32
    compile: bool = False  # torch.compile the loss; its compile time lands in FitOutcome.warmup_seconds
    cuda_graphs: bool = True  # on CUDA, replay the whole step as one captured graph (ignored on CPU)
    sync_every: int | None = None  # steps between host syncs (progress, divergence); None: each log on CPU, 200 on GPU

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose from: {', '.join(PRECISIONS)}")


@dataclass
class FitOutcome:
    status: str  # "ok" or "diverged"
    reconstruction: np.ndarray  # (H, W, C) float32 in [0, 1]; the last finite model's output
    seconds: float  # training time, reconstruction excluded (warm-up and compilation included)
    steps_done: int
    curve: dict[str, list] = field(default_factory=lambda: {"step": [], "loss": []})
    warmup_seconds: float = 0.0  # the first step: compilation, graph capture, first-touch allocation
    step_seconds: float = 0.0  # mean time of the steady steps after the first
    flops_per_step: int = 0  # matmul FLOPs of one forward + backward of every model fitted together
    batch: int = 1  # models fitted together (bench/batched.py); the timings are the whole batch's

    @property
    def gflops(self) -> float:
        """Achieved matmul GFLOP/s over the steady steps."""
        return self.flops_per_step / self.step_seconds / 1e9 if self.step_seconds > 0 else 0.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available here; use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda[:N]")
    return torch.device(name)


class Bf16Matmuls(TorchFunctionMode):
    """Runs linear layers and matmuls whose inner dimension is at least `min_inner` in bf16, returning fp32.

    Unlike torch.autocast this keeps the thin first layer on raw coordinates in fp32: bf16's 8-bit mantissa
    cannot tell apart neighbouring pixel coordinates of a 512-pixel side, nor the phases of Fourier features.
    Elementwise work (sin, ReLU) stays fp32 too; its backward matmuls follow the forward ones into bf16.
    """

    OPS = {F.linear, torch.matmul, torch.mm, Tensor.matmul, Tensor.__matmul__}

    def __init__(self, min_inner: int = 16):
        super().__init__()
        self.min_inner = min_inner

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.OPS and args[0].dtype == torch.float32 and args[0].shape[-1] >= self.min_inner:
            cast = [a.to(torch.bfloat16) if isinstance(a, Tensor) else a for a in args]
            return func(*cast, **kwargs).float()
        return func(*args, **kwargs)


def precision_context(precision: str):
    return Bf16Matmuls() if precision == "bf16" else nullcontext()


@dataclass
class TrainLog:
    """What the shared loop reports for each of the `count` models it trains together."""

    status: list[str]
    steps_done: list[int]
    curves: list[dict[str, list]]
    seconds: float = 0.0
    warmup_seconds: float = 0.0
    step_seconds: float = 0.0


def train(
    losses: Callable[[], Tensor],
    parameters: Sequence[Tensor],
    count: int,
    config: FitConfig,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainLog:
    """Adam on `parameters` for config.steps steps; `losses()` returns the (count,) per-model losses.

    The models are independent: backward runs on the sum, so each model's gradient is its own loss's, and Adam
    is elementwise, so one optimiser over stacked weights equals one optimiser per model. A model whose loss
    turns non-finite is marked diverged at its last finite logged step; the others go on. `on_step(step, loss)`
    gets the mean loss of the models still fitting.
    """
    device = parameters[0].device
    cuda = device.type == "cuda"
    sync_every = config.sync_every or (200 if cuda else config.log_every)
    # On CUDA: one fused kernel for the update, and `capturable` so the update can live inside a CUDA graph.
    options = {"fused": True, "capturable": True} if cuda else {}
    optimizer = torch.optim.Adam(parameters, lr=config.lr, **options)
    if config.compile:
        losses = torch.compile(losses, mode="reduce-overhead" if cuda and config.cuda_graphs else None)

    def step() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        with precision_context(config.precision):
            values = losses()
        values.sum().backward()
        optimizer.step()
        return values.detach()

    log_steps = [s for s in range(1, config.steps + 1) if s % config.log_every == 0 or s == config.steps]
    history = torch.zeros(len(log_steps), count, device=device)  # losses wait on the device until a sync
    log = TrainLog(["ok"] * count, [0] * count, [{"step": [], "loss": []} for _ in range(count)])
    fetched = 0  # rows of `history` already read on the host

    def sync(upto: int) -> bool:
        """Read the logged losses so far; False once every model has diverged."""
        nonlocal fetched
        rows = history[fetched:upto].tolist()  # the only host sync
        for row, step_number in zip(rows, log_steps[fetched:upto]):
            live = [i for i in range(count) if log.status[i] == "ok"]
            for i in live:
                if math.isfinite(row[i]):
                    log.curves[i]["step"].append(step_number)
                    log.curves[i]["loss"].append(row[i])
                    log.steps_done[i] = step_number
                else:
                    log.status[i] = "diverged"
            finite = [row[i] for i in live if log.status[i] == "ok"]
            if on_step and finite:
                on_step(step_number, sum(finite) / len(finite))
        fetched = upto
        return "ok" in log.status

    run_step = step
    start = time.perf_counter()
    logged = 0
    for step_number in range(1, config.steps + 1):
        if step_number == 2:
            _synchronize(device)
            log.warmup_seconds = time.perf_counter() - start
            if cuda and config.cuda_graphs and not config.compile:
                run_step = _capture(step, device)  # after one eager step, so Adam's state exists
        values = run_step()
        if logged < len(log_steps) and step_number == log_steps[logged]:
            history[logged].copy_(values)
            logged += 1
            if (step_number % sync_every == 0 or step_number == config.steps) and not sync(logged):
                break
    _synchronize(device)
    log.seconds = time.perf_counter() - start
    sync(logged)
    for i in range(count):
        if log.status[i] == "ok":
            log.steps_done[i] = step_number
    if step_number > 1:
        log.step_seconds = (log.seconds - log.warmup_seconds) / (step_number - 1)
    return log


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _capture(step: Callable[[], Tensor], device: torch.device) -> Callable[[], Tensor]:
    """Capture `step` (zero_grad, forward, backward, Adam) as one CUDA graph; each call replays one real step.

    Follows the whole-network recipe of the PyTorch CUDA-graphs docs: warm-up on a side stream (these are real
    training steps), then capture. Inputs and targets are fixed tensors, so replaying is the same computation.
    """
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        warm = step()  # one real step on the side stream, as the recipe requires before capture
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = step()
    pending = [warm]  # the side-stream step already ran: hand back its losses first

    def replay() -> Tensor:
        if pending:
            return pending.pop()
        graph.replay()
        return captured

    return replay


def fit_image(
    model: nn.Module,
    image: np.ndarray,
    split: Split,
    config: FitConfig,
    on_step: Callable[[int, float], None] | None = None,
) -> FitOutcome:
    """Fit `model` to the training pixels of `image` (H, W, C) and reconstruct all pixels.

    `on_step(step, loss)` is called every `log_every` steps (progress bars, tracking).
    """
    device = torch.device(config.device)
    height, width, channels = image.shape
    coords = coordinate_grid(height, width)
    train_coords, train_values = training_pixels(image, split, device)
    model = model.to(device)

    def losses() -> Tensor:
        return torch.mean((model(train_coords).float() - train_values) ** 2).reshape(1)

    flops = training_step_flops(model, len(train_coords), train_coords.shape[1])
    log = train(losses, [p for p in model.parameters() if p.requires_grad], 1, config, on_step)
    reconstruction = reconstruct(model, coords, (height, width, channels), device, config.eval_chunk)
    status, reconstruction = finite_reconstruction(log.status[0], reconstruction)
    return FitOutcome(status, reconstruction, log.seconds, log.steps_done[0], log.curves[0], log.warmup_seconds,
                      log.step_seconds, flops)


def training_pixels(image: np.ndarray, split: Split, device: torch.device) -> tuple[Tensor, Tensor]:
    """Coordinates (N, 2) and values (N, C) of the split's training pixels, on `device`."""
    height, width, channels = image.shape
    train = torch.from_numpy(split.train.reshape(-1))
    values = torch.from_numpy(np.ascontiguousarray(image.reshape(-1, channels)))
    return coordinate_grid(height, width)[train].to(device), values[train].to(device)


def finite_reconstruction(status: str, reconstruction: np.ndarray) -> tuple[str, np.ndarray]:
    if np.isfinite(reconstruction).all():
        return status, reconstruction
    return "diverged", np.nan_to_num(reconstruction, nan=0.0).clip(0, 1)


@torch.no_grad()
def reconstruct(model: nn.Module, coords: torch.Tensor, shape: tuple, device, chunk: int) -> np.ndarray:
    model.eval()
    parts = [model(c.to(device)).float().cpu() for c in coords.split(chunk)]
    model.train()
    return torch.cat(parts).reshape(shape).clamp(0, 1).numpy()
