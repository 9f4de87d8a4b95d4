"""A dense feature grid, interpolated: the grid baseline of voilalab/INR-benchmark (NeurIPS 2025, "Grids often
outperform implicit neural representations").

The benchmark's 2D grid (models/grid.py) is one R x R grid of the output values themselves, sampled with
F.grid_sample (bicubic, align_corners=True, border padding) at coordinates in [-1, 1), every cell starting at 0.1,
R = floor(sqrt(parameter budget)). Beyond that baseline, `levels` adds coarser grids (R / 2, R / 4, ...) whose samples
are summed, and `features` > 0 stores F feature channels per cell and maps them to the output with a linear layer or
a one-hidden-layer ReLU MLP (`head_width`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .mlp import MLP
from .registry import RepresentationConfig, SizeKnob, register, require

MAX_GRID_VALUES = 1 << 27  # channels x cells over all levels: 512 MB of float32


@dataclass
class GridConfig(RepresentationConfig):
    # Cells per side (corners, with align_corners). The benchmark's 2D size, 10^4 parameters per channel: 100.
    resolution: int = 100
    levels: int = 1  # 1: the benchmark's single grid; L > 1 adds grids of resolution / 2^l (at least 2), summed
    features: int = 0  # 0: the grid holds the output channels, no head (the benchmark); F > 0: F features + a head
    head_width: int = 0  # with features > 0: 0 = a linear head, W > 0 = one hidden ReLU layer of W
    interpolation: Literal["bilinear", "bicubic"] = "bicubic"  # the benchmark: bicubic in 2D (bilinear in 3D)
    init: float = 0.1  # the benchmark starts every cell at 0.1 (split evenly over the levels here)
    lr: float = 0.1  # the benchmark (hyperparameters.json, Grid: Adam lr 0.1 for 1000 iterations)

    def validate(self) -> None:
        super().validate()
        require(2 <= self.resolution <= 16384, "resolution", "in 2..16384")
        require(1 <= self.levels <= 16, "levels", "in 1..16")
        require(0 <= self.features <= 1024, "features", "in 0..1024")
        require(0 <= self.head_width <= 4096, "head_width", "in 0..4096")
        require(self.head_width == 0 or self.features > 0, "head_width", "0 unless features > 0 (a head needs features)")
        require(max(self.features, 3) * self.levels * self.resolution**2 <= MAX_GRID_VALUES, "resolution",
                f"small enough that channels x levels x resolution^2 <= {MAX_GRID_VALUES}")
        require(abs(self.init) <= 1e3, "init", "in [-1000, 1000]")


def level_resolutions(config: GridConfig) -> list[int]:
    return [max(2, config.resolution >> level) for level in range(config.levels)]


class FeatureGrid(nn.Module):
    def __init__(self, config: GridConfig, out_features: int):
        super().__init__()
        channels = config.features or out_features
        self.grids = nn.ParameterList([nn.Parameter(torch.full((1, channels, side, side), config.init / config.levels))
                                       for side in level_resolutions(config)])
        self.interpolation = config.interpolation
        self.head = (MLP(channels, out_features, config.head_width, 1 if config.head_width else 0,
                         sigmoid_output=False) if config.features else nn.Identity())

    def forward(self, coords: Tensor) -> Tensor:
        # (x, y) = (column / W, row / H) -> [-1, 1): grid_sample reads x along the width, as the benchmark's meshgrid
        points = (2 * coords - 1).view(1, 1, -1, 2)
        values = sum(F.grid_sample(grid, points, mode=self.interpolation, padding_mode="border", align_corners=True)
                     for grid in self.grids)  # (1, C, 1, N)
        return self.head(values[0, :, 0].T)


@register(
    "grid", GridConfig,
    source="voilalab/INR-benchmark (NeurIPS 2025) models/grid.py and hyperparameters.json: a dense grid of the output "
    "values, R = floor(sqrt(10^4)) = 100, bicubic grid_sample, cells start at 0.1, Adam lr 0.1",
    knob=SizeKnob("resolution", 2, 2048),
    # Sizes stay at or below the training grid, so that every cell lies between training pixels: tiny 16 cells per
    # side (the smoke preset's 16^2 training grid); standard the default 100 (3 x 10^4 values on RGB; 128^2 training
    # grid). A finer grid leaves cells that no training pixel constrains at their initial 0.1.
    sizes={"tiny": {"resolution": 16}, "standard": {}},
    search={"lr": (0.01, 0.03, 0.1, 0.3), "levels": (1, 2, 4)},
    batchable=True,
)
def grid(config: GridConfig, out_features: int):
    """Dense grid of values (or features + head), bicubic or bilinear, optionally multiresolution."""
    return FeatureGrid(config, out_features)
