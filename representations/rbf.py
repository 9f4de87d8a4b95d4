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

from .registry import RepresentationConfig, SizeKnob, register, require


def _inverse_softplus(y: float) -> float:
    return float(torch.log(torch.expm1(torch.tensor(y, dtype=torch.float64))))


_CUTOFF = 80.0  # exp(-80) ~ 2e-35: beyond it a factor is set to exactly 0 rather than a denormal float


def _gauss(q: Tensor) -> Tensor:
    """exp(-q), with exp(-q) < 2e-35 flushed to 0: denormal floats made exp and the matmuls ~5x slower on CPU."""
    return torch.exp(-q.clamp(max=_CUTOFF)).masked_fill(q > _CUTOFF, 0.0)


@dataclass
class RBFConfig(RepresentationConfig):
    # G: centres per axis (FOKR on MNIST: 14). 64 gives 12,288 coefficients on RGB, the size class of the other
    # representations' defaults; at 256^2 it is a 4x coarser grid than the image, which caps its PSNR. (Measured,
    # 256^2 astronaut, 300 steps: 22.6 dB at 64; 23.9 at 96 with 0.7 spacings; 24.1 at 128 with 1.0 spacings.)
    grid: int = 64
    # ℓ / centre spacing. FOKR's ℓ = 0.2 with 14 centres is 0.2 * 13 = 2.6 (pass width_in_spacings=2.6, grid=14).
    # For fitting, 0.7: the Gaussian's response at the grid's Nyquist frequency is exp(-π² r² / 2), 0.09 at 0.7
    # but 3e-15 at 2.6, so a wide basis cannot express (and Adam crawls towards) anything finer than ~2r
    # spacings (2.6: 17.6 dB after 300 steps); below ~0.6 the summed Gaussians ripple between centres
    # (2 exp(-2π² r²): 1e-4 at 0.7, 1.4% at 0.5). 0.6-0.85 fit within 0.15 dB of each other.
    width_in_spacings: float = 0.7
    amplitude: float = 1.0  # A (FOKR: 1)
    learn_width: bool = False  # FOKR stores ℓ and A through softplus, fixed unless learned
    learn_amplitude: bool = False
    learn_centres: bool = False  # moves the grid lines of each axis, which keeps Φ separable
    # Not in the source. One Adam step moves the field by ~2π r² lr (the overlapping neighbours move together),
    # 0.15 here; at 0.7 spacings lr 0.02-0.1 end within 0.05 dB, and 0.05 reaches the plateau by ~100 steps.
    # Leakage: this lr and the width were measured on astronaut, an image the presets evaluated on; tuned presets
    # choose both again on the FFN tuning images (docs/representations.md gives the command that re-derives them).
    lr: float = 0.05

    def validate(self) -> None:
        super().validate()
        require(1 <= self.grid <= 8192, "grid", "in 1..8192 centres per axis")
        require(0 < self.width_in_spacings <= 1e3, "width_in_spacings", "in (0, 1000]")
        require(0 < self.amplitude <= 1e6, "amplitude", "in (0, 1e6] (it is stored through softplus)")


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
        qx = (coords[:, :1] - self.centres[0]) ** 2 / (2 * width**2)
        qy = (coords[:, 1:] - self.centres[1]) ** 2 / (2 * width**2)
        return _gauss(qx) * F.softplus(self.raw_amplitude), _gauss(qy)

    def matrix(self, coords: Tensor) -> Tensor:
        """Φ as an (N, G^2) matrix, centre index = iy * G + ix (row-major over the grid)."""
        fx, fy = self.axis_factors(coords)
        return (fy[:, :, None] * fx[:, None, :]).flatten(1)


class RBFField(nn.Module):
    def __init__(self, config: RBFConfig, out_features: int):
        super().__init__()
        self.basis = RBFBasis(config)
        # β[iy, ix, c] starts at zero (a blank field). Starting from the image sampled at the centres would need the
        # image at build time, which the engine does not give; at 0.7 spacings Adam is on its plateau by ~100 steps.
        self.coefficients = nn.Parameter(torch.zeros(config.grid, config.grid, out_features))

    def forward(self, coords: Tensor) -> Tensor:
        fx, fy = self.basis.axis_factors(coords)
        grid = self.coefficients.shape[0]
        along_x = (fx @ self.coefficients.permute(1, 0, 2).reshape(grid, -1)).view(len(coords), grid, -1)
        return (along_x * fy[:, :, None]).sum(1)  # a broadcast sum: faster here than einsum's N tiny bmms


@register(
    "rbf", RBFConfig,
    source="FOKR's basis (Iwayama et al. 2022): Gaussian RBFs on a regular grid; single-image width and lr measured "
    "here (see RBFConfig)",
    knob=SizeKnob("grid", 2, 512),
    sizes={"tiny": {"grid": 12}, "standard": {}},
    search={"lr": (0.015, 0.05, 0.15, 0.5), "width_in_spacings": (0.5, 0.7, 1.0)},
    batchable=True,
)
def rbf(config: RBFConfig, out_features: int):
    """G x G Gaussian RBF basis (FOKR's Φ) with learned coefficients β."""
    return RBFField(config, out_features)
