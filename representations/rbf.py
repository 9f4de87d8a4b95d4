"""A G x G grid of Gaussian RBFs with learned coefficients: FOKR's basis Φ applied to one image.

Φ_i(t) = A exp(-|t - s_i|^2 / (2 ℓ^2)) with centres s_i on a regular grid over [0, 1]^2. The Gaussian of a
grid separates into an x factor and a y factor, so Φβ is evaluated as two (N, G) factors instead of an
(N, G^2) matrix: the same result with G times less memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import RepresentationConfig, register


def _inverse_softplus(y: float) -> float:
    return float(torch.log(torch.expm1(torch.tensor(y, dtype=torch.float64))))


@dataclass
class RBFConfig(RepresentationConfig):
    grid: int = 64  # G: centres per axis (FOKR on MNIST: 14)
    width_in_spacings: float = 2.6  # ℓ / centre spacing; FOKR: ℓ = 0.2 with 14 centres, i.e. 0.2 * 13 = 2.6
    amplitude: float = 1.0  # A (FOKR: 1)
    learn_width: bool = False  # FOKR stores ℓ and A through softplus, fixed unless learned
    learn_amplitude: bool = False
    learn_centres: bool = False  # moves the grid lines of each axis, which keeps Φ separable
    lr: float = 1e-2  # not given by the source


class RBFBasis(nn.Module):
    """The basis Φ: coordinates (N, 2) -> per-axis factors, or the full (N, G^2) matrix for small grids."""

    def __init__(self, config: RBFConfig):
        super().__init__()
        grid = config.grid
        centres = torch.linspace(0, 1, grid)
        spacing = 1.0 / max(grid - 1, 1)
        self.centres = nn.Parameter(torch.stack([centres, centres]), requires_grad=config.learn_centres)  # (2, G)
        self.raw_width = nn.Parameter(
            torch.tensor(_inverse_softplus(config.width_in_spacings * spacing)), requires_grad=config.learn_width
        )
        self.raw_amplitude = nn.Parameter(
            torch.tensor(_inverse_softplus(config.amplitude)), requires_grad=config.learn_amplitude
        )

    def axis_factors(self, coords: Tensor) -> tuple[Tensor, Tensor]:
        """exp(-(t_x - s_x)^2 / 2ℓ^2) and the same in y, each (N, G); the amplitude is folded into x."""
        width = F.softplus(self.raw_width)
        fx = torch.exp(-((coords[:, :1] - self.centres[0]) ** 2) / (2 * width**2))
        fy = torch.exp(-((coords[:, 1:] - self.centres[1]) ** 2) / (2 * width**2))
        return fx * F.softplus(self.raw_amplitude), fy

    def matrix(self, coords: Tensor) -> Tensor:
        """Φ as an (N, G^2) matrix, centre index = iy * G + ix (row-major over the grid)."""
        fx, fy = self.axis_factors(coords)
        return (fy[:, :, None] * fx[:, None, :]).flatten(1)


class RBFField(nn.Module):
    def __init__(self, config: RBFConfig, out_features: int):
        super().__init__()
        self.basis = RBFBasis(config)
        self.coefficients = nn.Parameter(torch.zeros(config.grid, config.grid, out_features))  # β[iy, ix, c]

    def forward(self, coords: Tensor) -> Tensor:
        fx, fy = self.basis.axis_factors(coords)
        grid = self.coefficients.shape[0]
        along_x = (fx @ self.coefficients.permute(1, 0, 2).reshape(grid, -1)).view(len(coords), grid, -1)
        return torch.einsum("ny,nyc->nc", fy, along_x)


@register("rbf", RBFConfig)
def rbf(config: RBFConfig, out_features: int):
    """G x G Gaussian RBF basis (FOKR's Φ) with learned coefficients β."""
    return RBFField(config, out_features)
