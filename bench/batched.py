"""Batched fitting: many independent models of one representation fitted as one computation.

The models' weights are stacked (`torch.func.stack_module_state`) and one `vmap`-ed `functional_call` runs
them all, so a 16-model fit is a handful of batched matmuls per layer instead of 16 small fits in a row. The
engine's training loop does the rest (one Adam over the stacked weights equals one Adam per model).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from .engine import (FitConfig, FitOutcome, PixelLoss, finite_reconstruction, held_out_psnr, make_optimizer,
                     make_step, seconds_per_step, train, training_pixels)
from .flops import training_step_flops
from .protocol import Split, coordinate_grid


class StackedModels:
    """Models of one architecture as stacked weights and a weightless template to call them with."""

    def __init__(self, models: Sequence[nn.Module], device: torch.device):
        models = [m.to(device) for m in models]
        self.params, self.buffers = stack_module_state(models)
        self.template = copy.deepcopy(models[0]).to("meta")  # only its structure is used
        self.count = len(models)
        self.trainable = [p for p in self.params.values() if p.requires_grad]

    def __call__(self, coords: Tensor) -> Tensor:
        """(N, 2) coordinates shared by every model -> (count, N, C)."""
        def one(params, buffers):
            return functional_call(self.template, (params, buffers), (coords,))
        return vmap(one)(self.params, self.buffers)

    def unstacked(self) -> list[Callable[[Tensor], Tensor]]:
        """Each model as a function of coordinates (N, 2) -> (N, C), on the current stacked weights."""
        def model(i: int) -> Callable[[Tensor], Tensor]:
            def call(coords: Tensor) -> Tensor:
                params = {name: value[i] for name, value in self.params.items()}
                buffers = {name: value[i] for name, value in self.buffers.items()}
                return functional_call(self.template, (params, buffers), (coords,))
            return call
        return [model(i) for i in range(self.count)]


@functools.cache
def can_batch(representation: str) -> bool:
    """Whether `representation` runs under vmap (a custom autograd.Function without vmap support does not)."""
    from fitbench import representations

    try:
        models = [representations.build(representation, out_features=1) for _ in range(2)]
        StackedModels(models, torch.device("cpu"))(torch.rand(4, 2)).sum().backward()
        return True
    except Exception:  # any failure means: fit this representation one model at a time
        return False


def fit_batch(
    models: Sequence[nn.Module],
    images: Sequence[np.ndarray],
    split: Split,
    config: FitConfig,
    on_step: Callable[[int, float], None] | None = None,
) -> list[FitOutcome]:
    """Fit models[i] to images[i] (all of one shape, one split), together; one FitOutcome per model.

    Equals calling `fit_image` on each pair, up to float rounding. Each outcome's `seconds` is its share of the
    batch's training time (`batch_seconds`), so per-fit times add up to what the batch cost.
    """
    if len(models) != len(images) or not models:
        raise ValueError(f"fit_batch needs one image per model, got {len(models)} models and {len(images)} images")
    device = torch.device(config.device)
    height, width, channels = images[0].shape
    pixels = [training_pixels(image, split, device) for image in images]
    train_coords = pixels[0][0]
    targets = torch.stack([values for _, values in pixels])  # (count, N, C)
    stacked = StackedModels(models, device)
    flops = len(models) * training_step_flops(models[0], config.pixels_per_step or len(train_coords),
                                              train_coords.shape[1])
    config = dataclasses.replace(config, steps=config.step_cap(flops // len(models)))
    losses = PixelLoss(stacked, train_coords, targets, config, count=stacked.count)

    scorers = [held_out_psnr(image, split, device, config.eval_chunk) for image in images]

    def evaluate() -> list[float]:
        return [score(model) for score, model in zip(scorers, stacked.unstacked())]

    log = train(losses, stacked.trainable, stacked.count, config, on_step, evaluate)
    reconstructions = reconstruct_batch(stacked, coordinate_grid(height, width), (height, width, channels), device,
                                        config.eval_chunk)
    outcomes = []
    for i, reconstruction in enumerate(reconstructions):
        status, reconstruction = finite_reconstruction(log.status[i], reconstruction)
        outcomes.append(FitOutcome(status, reconstruction, log.seconds / len(models), log.steps_done[i],
                                   log.curves[i], log.warmup_seconds, log.step_seconds, flops, len(models),
                                   batch_seconds=log.seconds))
    return outcomes


@torch.no_grad()
def reconstruct_batch(stacked: StackedModels, coords: Tensor, shape: tuple, device, chunk: int) -> list[np.ndarray]:
    parts = [stacked(c.to(device)).float().cpu() for c in coords.split(chunk)]
    every = torch.cat(parts, dim=1).clamp(0, 1)
    return [every[i].reshape(shape).numpy() for i in range(stacked.count)]


@dataclass(frozen=True)
class BatchTrial:
    """A quick measurement of whether fitting `count` models together beats fitting them one after another."""

    count: int
    batched_seconds: float  # one step of all the models together
    sequential_seconds: float  # one step of one model, times the count

    @property
    def pays(self) -> bool:
        return self.batched_seconds < self.sequential_seconds

    def describe(self) -> str:
        choice = "batched" if self.pays else "one by one"
        return (f"{self.count} fits: {1000 * self.batched_seconds:.0f} ms a step batched vs "
                f"{1000 * self.sequential_seconds:.0f} ms one by one -> {choice}")


def time_batching(models: Sequence[nn.Module], images: Sequence[np.ndarray], split: Split, config: FitConfig,
                  steps: int = 3) -> BatchTrial:
    """Time `steps` steps of the batched fit against as many steps of one model (times the count), each after a
    warm-up step, on copies: the models handed in are left as they are. Without compilation, which would cost more
    than the trial measures."""
    config = dataclasses.replace(config, compile=False)
    device = torch.device(config.device)
    pixels = [training_pixels(image, split, device) for image in images]
    coords, values = pixels[0]
    targets = torch.stack([v for _, v in pixels])
    stacked = StackedModels([copy.deepcopy(m) for m in models], device)
    batched = make_step(PixelLoss(stacked, coords, targets, config, count=stacked.count),
                        make_optimizer(stacked.trainable, config), config)
    one = copy.deepcopy(models[0]).to(device)
    single = make_step(PixelLoss(one, coords, values, config),
                       make_optimizer([p for p in one.parameters() if p.requires_grad], config), config)
    return BatchTrial(len(models), seconds_per_step(batched, device, steps),
                      len(models) * seconds_per_step(single, device, steps))
