"""The fitting engine: full-batch Adam on one model (or a stack of them), then a reconstruction of every pixel.

One training loop serves single and batched fits (bench/batched.py): it drives a function returning one loss
per model. A fit is bounded by steps, by training seconds or by matmul FLOPs (whichever comes first), follows a
learning-rate schedule, can keep the weights of its lowest training loss, and records a curve of test PSNR
against training time at log-spaced steps (evaluation is off the clock and never steers the fit). Fast paths,
each a FitConfig field: bf16 matmuls, torch.compile, a random subset of training pixels per step, and on CUDA a
captured CUDA graph of the whole step with losses kept on the device between host syncs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal, Sequence, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from . import metrics
from .flops import training_step_flops
from .hardware import keep_freed_memory, synchronize
from .protocol import Split, coordinate_grid

PRECISIONS = ("fp32", "bf16")
# The learning-rate schedules `FitConfig.learning_rate` runs; a representation's config declares one (its `schedule`).
Schedule = Literal["constant", "cosine", "exponential"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
LOSS_RANGE = "fitbench.loss"  # profiler range of the loss (bench/step_breakdown.py)

# Steps at which the test-PSNR curve is taken: about five per decade (1, 2, 3, 4, 6, 10, 16, 25, 40, 63, 100, ...).
EVAL_STEPS = tuple(sorted({round(10 ** (i / 5)) for i in range(0, 46)}))


@dataclass(frozen=True)
class FitConfig:
    steps: int  # most optimisation steps
    lr: float
    device: str = "cpu"
    seconds: float | None = None  # training-time budget (evaluation excluded); stops at steps or seconds, first
    flops: float | None = None  # matmul-FLOP budget (bench/flops.py counts a step); becomes a step cap
    schedule: str = "constant"  # learning rate over the fit: constant, cosine or exponential decay to lr_final
    lr_final: float = 0.1  # the learning rate at the end of the budget, as a fraction of lr
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    pixels_per_step: int | None = None  # a random subset of training pixels each step (minibatches, as the original
    # image-fitting scripts trained)
    keep_best: bool = False  # end with the weights of the lowest training loss seen (COIN keeps its best weights)
    curve: bool = True  # test PSNR at EVAL_STEPS and at the end, off the clock
    log_every: int = 10  # loss is recorded (and divergence checked) every this many steps
    eval_chunk: int = 1 << 16  # pixels per forward pass when reconstructing
    precision: str = "fp32"  # "bf16": wide matmuls in bf16 (see Bf16Matmuls); weights, Adam, loss stay fp32
    compile: bool = False  # torch.compile the loss; its compile time lands in FitOutcome.warmup_seconds
    cuda_graphs: bool = True  # on CUDA, replay the whole step as one captured graph (not on CPU, nor for a model
    # whose class sets graph_capturable = False)
    sync_every: int | None = None  # steps between host syncs (progress, divergence); None: each log on CPU, 200 on GPU
    fused_adam: bool = True  # CPU: Adam's update as one fused kernel (on CUDA it always is)
    # Training pixels per forward/backward pass within a step, for fits whose activations do not fit in memory:
    # gradients add up over the chunks, so the step is the same full-batch step. None: the whole batch in one pass
    # (measured no faster in chunks once freed memory is kept, hardware.keep_freed_memory). Fits of several models
    # together divide it among them.
    pixel_chunk: int | None = None

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose from: {', '.join(PRECISIONS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose from: {', '.join(SCHEDULES)}")
        for name in ("seconds", "flops"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"a {name} budget must be positive, got {value}")
        if self.pixel_chunk is not None and self.pixel_chunk < 1:
            raise ValueError(f"pixel_chunk must be a positive number of pixels, got {self.pixel_chunk}")

    @classmethod
    def for_representation(cls, config, steps: int, **settings) -> "FitConfig":
        """The fit of a representation config: its own learning rate, schedule and Adam settings."""
        return cls(steps=steps, lr=config.lr, schedule=config.schedule, lr_final=config.lr_final,
                   adam_betas=tuple(config.adam_betas), adam_eps=config.adam_eps, **settings)

    def learning_rate(self, progress: float) -> float:
        """The schedule at `progress` in [0, 1] of the budget."""
        if self.schedule == "cosine":
            return self.lr * (self.lr_final + (1 - self.lr_final) * 0.5 * (1 + math.cos(math.pi * progress)))
        if self.schedule == "exponential":  # FINER / WIRE: lr * 0.1^(t / T)
            return self.lr * self.lr_final**progress
        return self.lr

    def step_cap(self, flops_per_step: int) -> int:
        """The step budget, lowered by the FLOP budget where there is one."""
        if self.flops is None or flops_per_step <= 0:
            return self.steps
        return max(1, min(self.steps, int(self.flops // flops_per_step)))


@dataclass
class FitOutcome:
    status: str  # "ok" or "diverged"
    reconstruction: np.ndarray  # (H, W, C) float32 in [0, 1]; the last finite model's output
    seconds: float  # this fit's training time, reconstruction and curve evaluation excluded (warm-up included)
    steps_done: int
    curve: dict[str, list] = field(default_factory=lambda: {"step": [], "loss": []})
    warmup_seconds: float = 0.0  # the first step: compilation, graph capture, first-touch allocation
    step_seconds: float = 0.0  # mean time of the steady steps after the first
    flops_per_step: int = 0  # matmul FLOPs of one forward + backward of every model fitted together
    batch: int = 1  # models fitted together (bench/batched.py)
    batch_seconds: float = 0.0  # the whole batch's training time (`seconds` is this fit's share of it)

    @property
    def gflops(self) -> float:
        """Achieved matmul GFLOP/s over the steady steps."""
        return self.flops_per_step / self.step_seconds / 1e9 if self.step_seconds > 0 else 0.0


def device_type(name: str) -> str:
    """"cuda" or "cpu": the kind of device `--device NAME` puts the fits on ("auto": CUDA where this process sees
    it). Unlike `resolve_device` it checks nothing: a Ray driver without a GPU names the device of its workers."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if name.startswith("cuda") else "cpu"


def resolve_device(name: str) -> torch.device:
    """The torch device `--device NAME` (auto, cpu or cuda[:N]) means here; a one-line ValueError if it is not."""
    if name == "auto":
        return torch.device(device_type(name))
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


class TrainingClock:
    """Training time (time.perf_counter) with the evaluations cut out, and when a score first reached a target.

    With a `device`, every reading waits for its queued work first (CUDA), so the time is that of the work done;
    without one (None) the clock reads the host time as it is. `off_the_clock(action)` runs an evaluation that
    does not count; `check(evaluate)` does the same with a test PSNR and keeps, in `reached`, the training time
    at which it first reached `target`.
    """

    def __init__(self, device: torch.device | None = None, target: float | None = None):
        self.device, self.start, self.paused = device, time.perf_counter(), 0.0
        self.target, self.reached, self.psnr = target, None, float("nan")
        self.stopped_at = 0.0  # the training time when the last off-the-clock action began

    def _synchronize(self) -> None:
        if self.device is not None:
            synchronize(self.device)

    def elapsed(self) -> float:
        self._synchronize()
        return time.perf_counter() - self.start - self.paused

    def off_the_clock(self, action: Callable[[], object]) -> object:
        self._synchronize()
        began = time.perf_counter()
        self.stopped_at = began - self.start - self.paused
        try:
            return action()
        finally:
            self._synchronize()
            self.paused += time.perf_counter() - began

    def check(self, evaluate: Callable[[], float]) -> float:
        """`evaluate()` (a test PSNR) off the clock; the first time it reaches `target`, `reached` is set."""
        self.psnr = self.off_the_clock(evaluate)
        if self.reached is None and self.target is not None and self.psnr >= self.target:
            self.reached = self.stopped_at
        return self.psnr


class BestWeights:
    """Keeps, per model, the weights of the lowest loss seen, on the device and without a host sync.

    `offer` runs after backward and before the update, so the loss it is given is exactly that of the weights it
    copies. Stacked weights carry the model index in their first dimension.
    """

    def __init__(self, parameters: Sequence[Tensor], count: int):
        self.parameters, self.count = list(parameters), count
        self.weights = [p.detach().clone() for p in self.parameters]
        self.loss = torch.full((count,), math.inf, device=self.parameters[0].device)

    def _per_model(self, mask: Tensor, like: Tensor) -> Tensor:
        return mask.reshape(()) if self.count == 1 else mask.view(self.count, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def offer(self, losses: Tensor) -> None:
        better = losses < self.loss  # NaN is never better
        self.loss = torch.where(better, losses, self.loss)
        for kept, param in zip(self.weights, self.parameters):
            kept.copy_(torch.where(self._per_model(better, kept), param, kept))

    @torch.no_grad()
    def restore(self, final_losses: Tensor) -> None:
        """Put the kept weights back where they beat the final weights' loss."""
        better = self.loss < final_losses.nan_to_num(math.inf)
        for kept, param in zip(self.weights, self.parameters):
            param.copy_(torch.where(self._per_model(better, kept), kept, param))


def train(
    losses: PixelLoss | Callable[[], Tensor],
    parameters: Sequence[Tensor],
    count: int,
    config: FitConfig,
    on_step: Callable[[int, float], None] | None = None,
    evaluate: Callable[[], list[float]] | None = None,
) -> TrainLog:
    """Adam on `parameters` within config's budget; `losses()` returns the (count,) per-model losses (a
    PixelLoss steps in pixel chunks, see there; a plain callable is one pass).

    The models are independent: backward runs on the sum, so each model's gradient is its own loss's, and Adam
    is elementwise, so one optimiser over stacked weights equals one optimiser per model. A model whose loss
    turns non-finite is marked diverged at its last finite logged step; the others go on. `on_step(step, loss)`
    gets the mean loss of the models still fitting. `evaluate()` returns each model's test PSNR; it is called
    at EVAL_STEPS and at the end, off the clock, and lands in each curve's "eval".
    """
    device = parameters[0].device
    cuda = device.type == "cuda"
    sync_every = config.sync_every or (config.log_every if not cuda or config.seconds else 200)
    optimizer = make_optimizer(parameters, config)
    best = BestWeights(parameters, count) if config.keep_best else None
    step = make_step(losses, optimizer, config, best)

    def set_learning_rate(progress: float) -> None:
        value = config.learning_rate(min(progress, 1.0))
        for group in optimizer.param_groups:
            if isinstance(group["lr"], Tensor):
                group["lr"].fill_(value)
            else:
                group["lr"] = value

    log_steps = [s for s in range(1, config.steps + 1) if s % config.log_every == 0 or s == config.steps]
    history = torch.zeros(len(log_steps), count, device=device)  # losses wait on the device until a sync
    log = TrainLog(["ok"] * count, [0] * count, [{"step": [], "loss": []} for _ in range(count)])
    fetched = 0  # rows of `history` already read on the host
    clock = TrainingClock(device)
    eval_steps = set(EVAL_STEPS) if evaluate and config.curve else set()
    evaluated_at = 0

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

    def record_eval(step_number: int) -> None:
        nonlocal evaluated_at
        seconds = clock.elapsed()
        scores = clock.off_the_clock(evaluate)
        for i, psnr in enumerate(scores):
            point = log.curves[i].setdefault("eval", {"step": [], "seconds": [], "psnr_test": []})
            point["step"].append(step_number)
            point["seconds"].append(round(seconds, 4))
            point["psnr_test"].append(psnr)
        evaluated_at = step_number

    run_step = step
    logged = 0
    step_number = 0
    for step_number in range(1, config.steps + 1):
        if config.schedule != "constant":
            progress = (step_number - 1) / config.steps
            if config.seconds:  # (on CUDA this reads the clock, a host sync, every step)
                progress = max(progress, clock.elapsed() / config.seconds)
            set_learning_rate(progress)
        if step_number == 2:
            log.warmup_seconds = clock.elapsed()
            if cuda and config.cuda_graphs and not config.compile and config.pixels_per_step is None:
                run_step = _capture(step, device)  # after one eager step, so Adam's state exists
        values = run_step()
        if step_number in eval_steps:
            record_eval(step_number)
        if logged < len(log_steps) and step_number == log_steps[logged]:
            history[logged].copy_(values)
            logged += 1
            if (step_number % sync_every == 0 or step_number == config.steps) and not sync(logged):
                break
        # The clock costs nothing on the CPU; on CUDA reading it is a sync, so only at sync points.
        if config.seconds and (not cuda or step_number % sync_every == 0) and clock.elapsed() >= config.seconds:
            break
    log.seconds = clock.elapsed()
    sync(logged)
    if best is not None:
        with torch.no_grad(), precision_context(config.precision):
            best.restore(losses().detach())
    if evaluate and config.curve and evaluated_at != step_number:
        record_eval(step_number)
    for i in range(count):
        if log.status[i] == "ok":
            log.steps_done[i] = step_number
    if step_number > 1:
        log.step_seconds = (log.seconds - log.warmup_seconds) / (step_number - 1)
    return log


def make_optimizer(parameters: Sequence[Tensor], config: FitConfig) -> torch.optim.Adam:
    """Adam as every fit runs it: one fused kernel for the whole update (CPU and CUDA). Where the step is
    captured in a CUDA graph it is also `capturable`, with the learning rate as a device tensor, so a schedule
    can change the rate between replays."""
    device = parameters[0].device
    cuda = device.type == "cuda"
    if not cuda:
        keep_freed_memory()  # else every step page-faults its large activations back in (see there)
    capturable = cuda and config.cuda_graphs
    lr = torch.tensor(config.lr, device=device) if capturable else config.lr
    # fused_adam=False is the plain loop the speed suite compares against: one parameter at a time.
    options = {"fused": True} if config.fused_adam else {"foreach": False}
    return torch.optim.Adam(parameters, lr=lr, betas=config.adam_betas, eps=config.adam_eps,
                            capturable=capturable, **options)


class PixelLoss:
    """The mean squared error of a model, or of a stack of models (`model_dim`: outputs (count, N, C)), on its
    training pixels. Called, it returns the per-model losses over every pixel of the step; `parts()` returns the
    same losses as chunk losses that add up to them (config.pixel_chunk), so that backward on each part in turn
    accumulates exactly the full-batch gradient while each pass's activations stay small. A random subset of
    pixels per step (`pixels_per_step`) is drawn once per step, then chunked. torch.compile, when the config
    asks, compiles the loss of one chunk."""

    def __init__(self, predict: Callable[[Tensor], Tensor], coords: Tensor, targets: Tensor, config: FitConfig,
                 count: int = 1):
        self.predict, self.coords, self.targets, self.count = predict, coords, targets, count
        self.pick = pixel_sampler(len(coords), config.pixels_per_step, coords.device)
        self.chunk = None if config.pixel_chunk is None else max(1, config.pixel_chunk // count)
        self.loss = compiled(self._loss, config, coords.device)

    def _loss(self, coords: Tensor, targets: Tensor) -> Tensor:
        return squared_error(self.predict(coords), targets, model_dim=self.count > 1 or targets.dim() == 3)

    def _pixels(self) -> tuple[Tensor, Tensor]:
        index = self.pick()
        if index is None:
            return self.coords, self.targets
        return self.coords[index], self.targets[..., index, :]

    def __call__(self) -> Tensor:
        return self.loss(*self._pixels())

    def parts(self) -> Iterator[Tensor]:
        """The step's chunk losses, one at a time: each chunk's forward runs only when the previous chunk's
        backward is done, so only one chunk's activations are alive at once."""
        coords, targets = self._pixels()
        total = len(coords)
        if self.chunk is None or self.chunk >= total:
            yield self.loss(coords, targets)
            return
        for c, t in zip(coords.split(self.chunk), targets.split(self.chunk, dim=-2)):
            yield self.loss(c, t) * (len(c) / total)


def compiled(loss: Callable, config: FitConfig, device: torch.device) -> Callable:
    """`loss` under torch.compile where the config asks (with CUDA graphs: mode reduce-overhead), else as is."""
    if not config.compile:
        return loss
    return torch.compile(loss, mode="reduce-overhead" if device.type == "cuda" and config.cuda_graphs else None)


def make_step(losses: PixelLoss | Callable[[], Tensor], optimizer: torch.optim.Optimizer, config: FitConfig,
              best: BestWeights | None = None) -> Callable[[], Tensor]:
    """One training step (zero_grad, forward and backward of each part of the loss, update); returns the detached
    per-model losses. A plain callable is one part (compiled here where the config asks)."""
    if isinstance(losses, PixelLoss):
        parts = losses.parts
    else:
        loss = compiled(losses, config, optimizer.param_groups[0]["params"][0].device)

        def parts() -> Iterator[Tensor]:  # lazily, so that the forward runs under the precision
            yield loss()

    def forward(chunks: Iterator[Tensor]) -> Tensor | None:
        # Only the forward passes run under the precision: a custom autograd Function's backward (FNET's) would
        # otherwise see the bf16 mode on one device and not on another, by which thread autograd runs it on.
        with precision_context(config.precision):
            return next(chunks, None)

    def step() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        values, chunks = None, parts()
        while (part := forward(chunks)) is not None:
            part.sum().backward()
            # A copy: under CUDA graphs the next chunk's replay overwrites the compiled loss's output.
            values = part.detach().clone() if values is None else values + part.detach()
        if best is not None:
            best.offer(values)
        optimizer.step()
        return values

    return step


def seconds_per_step(step: Callable[[], Tensor], device: torch.device, steps: int, warmup: int = 1) -> float:
    """Mean wall time of `steps` steps after `warmup` untimed ones (compilation, first-touch allocation)."""
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def squared_error(predicted: Tensor, target: Tensor, model_dim: bool = False) -> Tensor:
    """Mean squared error: (1,) for one model, (count,) when dim 0 holds the models. Named for the profiler
    (LOSS_RANGE), so the speed suite's step breakdown can tell the loss from the model."""
    with torch.profiler.record_function(LOSS_RANGE):
        if model_dim:
            return F.mse_loss(predicted.float(), target, reduction="none").flatten(1).mean(1)
        return F.mse_loss(predicted.float(), target).reshape(1)


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


def capturable_config(config: FitConfig, model: nn.Module) -> FitConfig:
    """`config` without CUDA graphs for a model whose class says its step cannot be captured."""
    return dataclasses.replace(config, cuda_graphs=config.cuda_graphs and getattr(model, "graph_capturable", True))


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
    flops = training_step_flops(model, config.pixels_per_step or len(train_coords), train_coords.shape[1])
    config = dataclasses.replace(capturable_config(config, model), steps=config.step_cap(flops))
    losses = PixelLoss(model, train_coords, train_values, config)
    test_psnr = held_out_psnr(image, split, device, config.eval_chunk)
    log = train(losses, [p for p in model.parameters() if p.requires_grad], 1, config, on_step,
                evaluate=lambda: [test_psnr(model)])
    reconstruction = reconstruct(model, coords, (height, width, channels), device, config.eval_chunk)
    status, reconstruction = finite_reconstruction(log.status[0], reconstruction)
    return FitOutcome(status, reconstruction, log.seconds, log.steps_done[0], log.curves[0], log.warmup_seconds,
                      log.step_seconds, flops, batch_seconds=log.seconds)


def pixel_sampler(count: int, per_step: int | None, device: torch.device) -> Callable[[], Tensor | None]:
    """Indices of the training pixels of each step: None (all of them), or `per_step` of them drawn without
    replacement within each pass over a fixed-seed permutation, as a shuffled DataLoader would."""
    if per_step is None or per_step >= count:
        return lambda: None
    generator = torch.Generator().manual_seed(0)
    state = {"order": torch.empty(0, dtype=torch.long), "at": count}

    def pick() -> Tensor:
        if state["at"] + per_step > count:
            state["order"], state["at"] = torch.randperm(count, generator=generator).to(device), 0
        state["at"] += per_step
        return state["order"][state["at"] - per_step: state["at"]]

    return pick


def held_out_psnr(image: np.ndarray, split: Split, device: torch.device, chunk: int) -> Callable[[nn.Module], float]:
    """PSNR of a model on the split's test pixels (all pixels under the `full` protocol), clamped as scored."""
    height, width, channels = image.shape
    test = torch.from_numpy(split.test.reshape(-1))
    coords = coordinate_grid(height, width)[test]
    truth = image.reshape(-1, channels)[split.test.reshape(-1)]

    def score(model: nn.Module) -> float:
        predicted = reconstruct(model, coords, (len(coords), channels), device, chunk)
        return metrics.psnr(truth, predicted) if np.isfinite(predicted).all() else float("nan")

    return score


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
def reconstruct(model: Callable[[Tensor], Tensor], coords: torch.Tensor, shape: tuple, device, chunk: int
                ) -> np.ndarray:
    """The model's values at `coords`, clamped to [0, 1] as they are scored, in `chunk`-pixel passes."""
    module = model if isinstance(model, nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    parts = [model(c.to(device)).float().cpu() for c in coords.split(chunk)]
    if module is not None:
        module.train(was_training)
    return torch.cat(parts).reshape(shape).clamp(0, 1).numpy()
