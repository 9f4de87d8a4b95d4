"""Batched fitting: many independent models of one representation fitted as one computation.

The models' weights are stacked (`torch.func.stack_module_state`) and one `vmap`-ed `functional_call` runs
them all, so a 16-model fit is a handful of batched matmuls per layer instead of 16 small fits in a row. The
engine's training loop does the rest (one Adam over the stacked weights equals one Adam per model).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from .engine import (FitConfig, FitOutcome, finite_reconstruction, held_out_psnr, pixel_sampler, train,
                     training_pixels)
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
    pick = pixel_sampler(len(train_coords), config.pixels_per_step, device)

    def losses() -> Tensor:
        index = pick()
        coords, values = (train_coords, targets) if index is None else (train_coords[index], targets[:, index])
        return torch.mean((stacked(coords).float() - values) ** 2, dim=(1, 2))

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
