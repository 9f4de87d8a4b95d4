"""The fitting engine: one representation, one image, full-batch Adam, then a reconstruction of every pixel."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .protocol import Split, coordinate_grid


@dataclass(frozen=True)
class FitConfig:
    steps: int
    lr: float
    device: str = "cpu"
    log_every: int = 10  # loss is recorded (and divergence checked) every this many steps
    eval_chunk: int = 1 << 16  # pixels per forward pass when reconstructing


@dataclass
class FitOutcome:
    status: str  # "ok" or "diverged"
    reconstruction: np.ndarray  # (H, W, C) float32 in [0, 1]; the last finite model's output
    seconds: float  # training time, reconstruction excluded
    steps_done: int
    curve: dict[str, list] = field(default_factory=lambda: {"step": [], "loss": []})


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available here; use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda[:N]")
    return torch.device(name)


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
    values = torch.from_numpy(np.ascontiguousarray(image.reshape(-1, channels)))
    train = torch.from_numpy(split.train.reshape(-1))
    train_coords, train_values = coords[train].to(device), values[train].to(device)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    outcome = FitOutcome("ok", np.zeros_like(image), 0.0, 0)

    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.mean((model(train_coords) - train_values) ** 2)
        loss.backward()
        optimizer.step()
        if step % config.log_every == 0 or step == config.steps:
            value = loss.item()  # the only host sync of the loop
            if not math.isfinite(value):
                outcome.status = "diverged"
                break
            outcome.curve["step"].append(step)
            outcome.curve["loss"].append(value)
            if on_step:
                on_step(step, value)
        outcome.steps_done = step
    outcome.seconds = time.perf_counter() - start

    outcome.reconstruction = reconstruct(model, coords, (height, width, channels), device, config.eval_chunk)
    if not np.isfinite(outcome.reconstruction).all():
        outcome.status = "diverged"
        outcome.reconstruction = np.nan_to_num(outcome.reconstruction, nan=0.0).clip(0, 1)
    return outcome


@torch.no_grad()
def reconstruct(model: nn.Module, coords: torch.Tensor, shape: tuple, device, chunk: int) -> np.ndarray:
    model.eval()
    parts = [model(c.to(device)).float().cpu() for c in coords.split(chunk)]
    model.train()
    return torch.cat(parts).reshape(shape).clamp(0, 1).numpy()
