"""Analytic FLOPs of one training step (forward and backward) of any representation, counted, not guessed.

`torch.utils.flop_counter.FlopCounterMode` counts the matrix products (mm, addmm, bmm, einsum, ...) that one
forward and backward of the actual module dispatch; elementwise work (sin, cos, exp, ReLU, the loss, Adam) is
not counted, so achieved GFLOP/s compares directly with the matmul peak.
"""

from __future__ import annotations


import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

PROBE_PIXELS = 512  # the count is made on this many pixels and scaled; see training_step_flops


def training_step_flops(model: nn.Module, pixels: int, in_features: int = 2) -> int:
    """Matmul FLOPs of one forward + backward of `model` over `pixels` coordinates.

    Every representation here maps each pixel independently (no op mixes pixels), so the count is exactly
    linear in the number of pixels: it is made once on PROBE_PIXELS coordinates and scaled, which keeps it cheap
    at 65,536 pixels. Cached per (representation, config, parameter shapes, pixels).
    """
    shapes = tuple((name, tuple(p.shape), p.requires_grad) for name, p in model.named_parameters())
    identity = (getattr(model, "representation", type(model).__name__), repr(getattr(model, "config", None)), shapes)
    return _count(model, identity, in_features) * pixels // PROBE_PIXELS


def _count(model: nn.Module, identity: tuple, in_features: int) -> int:
    cached = _COUNTS.get((identity, in_features))
    if cached is None:
        device = next(iter(model.parameters()), torch.empty(0)).device
        coords = torch.rand(PROBE_PIXELS, in_features, generator=torch.Generator().manual_seed(0)).to(device)
        trainable = [p for p in model.parameters() if p.requires_grad]
        with FlopCounterMode(display=False) as counter:
            # autograd.grad rather than backward(): the probe must leave the model's .grad untouched
            torch.autograd.grad(model(coords).float().square().sum(), trainable, allow_unused=True)
        cached = _COUNTS[(identity, in_features)] = counter.get_total_flops()
    return cached


_COUNTS: dict[tuple, int] = {}
