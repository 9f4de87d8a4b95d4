"""FFN's "basic" mapping [sin 2πv, cos 2πv] (B = I) in front of the shared ReLU MLP (Tancik et al. 2020)."""

from dataclasses import dataclass

import torch

from .encodings import EncodedMLP, SinusoidalEncoding
from .mlp import MLP
from .registry import RepresentationConfig, SizeKnob, register, require


@dataclass
class BasicConfig(RepresentationConfig):
    width: int = 256  # FFN: 256 channels
    depth: int = 3  # hidden layers; FFN's 4-layer network
    lr: float = 1e-3  # FFN

    def validate(self) -> None:
        super().validate()
        require(self.width >= 1, "width", "at least 1")
        require(self.depth >= 0, "depth", "at least 0 (hidden layers)")


@register(
    "basic", BasicConfig,
    source="Tancik et al. 2020 (FFN), 'basic' mapping [sin 2πv, cos 2πv] (B = identity), 4-layer ReLU MLP x 256, "
           "lr 1e-3",
    knob=SizeKnob("width", 2, 512),
    sizes={"tiny": {"width": 32, "depth": 2}, "standard": {"width": 128, "depth": 3}},
    # One frequency per axis leaves nothing to tune in the encoding; the second axis is the schedule (as relu_mlp).
    search={"lr": (3e-4, 1e-3, 3e-3, 1e-2), "schedule": ("constant", "cosine", "exponential")},
    batchable=True,
)
def basic(config: BasicConfig, out_features: int):
    """FFN's basic mapping [sin 2πx, sin 2πy, cos 2πx, cos 2πy] / sqrt(2) + ReLU MLP."""
    encoding = SinusoidalEncoding(torch.eye(2))  # one period per image along each axis
    return EncodedMLP(encoding, MLP(encoding.get_out_dim(), out_features, config.width, config.depth))
