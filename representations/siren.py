"""SIREN: sine activations with the paper's initialisation (Sitzmann et al. 2020)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .registry import RepresentationConfig, SizeKnob, register, require


@dataclass
class SirenConfig(RepresentationConfig):
    width: int = 256  # paper's image fit: 256
    depth: int = 4  # sine layers: the first plus `hidden_layers=3` of the reference code
    omega_0: float = 30.0  # in every sine layer
    # omega_0 relative to the training grid: omega_0 = omega_0_nyquist x side / 2 (the grid's Nyquist frequency), so
    # that the first layer's frequencies keep their place between the image's lowest and highest ones at any size.
    # None: omega_0 as given. The source's 30 on its 256^2 cameraman (all pixels, Nyquist 128) is 30 / 128.
    omega_0_nyquist: float | None = None
    FOLLOWS = {"omega_0_nyquist": "omega_0"}
    lr: float = 1e-4  # paper's image fit

    def validate(self) -> None:
        super().validate()
        require(self.width >= 1, "width", "at least 1")
        require(self.depth >= 1, "depth", "at least 1 (sine layers)")
        require(0 < self.omega_0 <= 1e4, "omega_0", "in (0, 1e4]")


class SineLayer(nn.Linear):
    """y = sin(omega_0 (W x + b)).

    The first layer draws W ~ U(-1/fan_in, 1/fan_in) so that sin(omega_0 x) spans several periods over [-1, 1];
    later layers draw W ~ U(-sqrt(6/fan_in)/omega_0, +...) so that omega_0 W x stays ~N(0, 1) at every depth.
    """

    def __init__(self, in_features: int, out_features: int, omega_0: float, first: bool):
        super().__init__(in_features, out_features)
        self.omega_0 = omega_0
        bound = 1 / in_features if first else math.sqrt(6 / in_features) / omega_0
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.omega_0 * super().forward(x))


class Siren(nn.Module):
    def __init__(self, config: SirenConfig, out_features: int):
        super().__init__()
        layers = [SineLayer(2, config.width, config.omega_0, first=True)]
        layers += [SineLayer(config.width, config.width, config.omega_0, first=False) for _ in range(config.depth - 1)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(config.width, out_features)  # linear output, initialised like a hidden sine layer
        bound = math.sqrt(6 / config.width) / config.omega_0
        with torch.no_grad():
            self.head.weight.uniform_(-bound, bound)

    def forward(self, coords: Tensor) -> Tensor:
        return self.head(self.body(2 * coords - 1))  # SIREN works on [-1, 1]


@register(
    "siren", SirenConfig,
    source="Sitzmann et al. 2020 (SIREN): omega_0 = 30, 3 hidden x 256 (4 sine layers), Adam lr 1e-4, image fit",
    knob=SizeKnob("width", 2, 512),
    # tiny: 1e-4 is the paper's rate for 10k+ steps; the tiny presets run 100-300
    sizes={"tiny": {"width": 32, "depth": 2, "lr": 1e-3},
           "standard": {"width": 128, "depth": 3, "omega_0_nyquist": 30 / 128}},
    search={"lr": (1e-4, 3e-4, 1e-3, 3e-3), "omega_0_nyquist": (15 / 128, 30 / 128, 60 / 128)},
    batchable=True,
)
def siren(config: SirenConfig, out_features: int):
    """SIREN, omega_0 = 30, paper initialisation, linear output."""
    return Siren(config, out_features)
