"""Gaussian activations: an MLP with exp(-(s0 z)^2) after every hidden layer (Ramasinghe & Lucey, ECCV 2022).

Written after the `gauss` network of WIRE's repository (vishwa91/wire, modules/gauss.py), which FINER's repository
(liuzhen0212/FINER, models.py) copies for its image-fitting comparison: PyTorch's default Linear initialisation,
coordinates in [-1, 1], a linear output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from .activated_mlp import ActivatedMLP, exp_negative
from .registry import RepresentationConfig, SizeKnob, register, require


@dataclass
class GaussConfig(RepresentationConfig):
    width: int = 256  # FINER's image fitting (train_image.py): 256
    depth: int = 4  # Gaussian layers: the first plus FINER's `hidden_layers=3`
    # s0. FINER's image-fitting script (run_gauss.sh): 30; WIRE's repository default (models.get_INR): 10.
    scale: float = 30.0
    # s0 relative to the training grid: s0 = scale_nyquist x side / 2, so that the first layer's bumps keep their
    # width in pixels at any image size (the hidden layers' bumps sharpen with it too); None: scale as given. The
    # source's 30 on 256^2 images (all pixels) is 30 / 128.
    scale_nyquist: float | None = None
    lr: float = 5e-3  # FINER's run_gauss.sh (Adam, 5000 full-batch steps)
    # FINER and WIRE decay the rate as lr * 0.1^(t / T) (LambdaLR); lr_final = 0.1 is the base default
    schedule: Literal["constant", "cosine", "exponential"] = "exponential"
    FOLLOWS = {"scale_nyquist": "scale"}

    def validate(self) -> None:
        super().validate()
        require(1 <= self.width <= 8192, "width", "in 1..8192")
        require(1 <= self.depth <= 64, "depth", "in 1..64 (Gaussian layers)")
        require(0 < self.scale <= 1e4, "scale", "in (0, 1e4]")


class GaussActivation(nn.Module):
    """exp(-(s0 z)^2): a bump of width ~1/s0 around z = 0."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, z: Tensor) -> Tensor:
        return exp_negative((self.scale * z) ** 2)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


@register(
    "gauss", GaussConfig,
    source="Ramasinghe & Lucey 2022 (Gaussian activation) as in WIRE's repository (modules/gauss.py); image-fitting "
    "settings of FINER's run_gauss.sh: s0 = 30, 3 hidden x 256, Adam lr 5e-3 decayed by 0.1^(t/T)",
    knob=SizeKnob("width", 2, 1024),
    # tiny: the same 2 x 32 as the other tiny MLPs; 5e-3 is already a short-budget rate
    sizes={"tiny": {"width": 32, "depth": 2}, "standard": {"width": 128, "depth": 3, "scale_nyquist": 30 / 128}},
    search={"lr": (1.5e-3, 5e-3, 1.5e-2, 5e-2), "scale_nyquist": (15 / 128, 30 / 128, 60 / 128)},
    batchable=True,
)
def gauss(config: GaussConfig, out_features: int):
    """MLP with Gaussian activations exp(-(s0 z)^2), PyTorch default init, linear output."""
    return ActivatedMLP(out_features, config.width, config.depth, GaussActivation(config.scale))

