"""ReLU MLP on raw coordinates: the FFN paper's "no mapping" baseline."""

from dataclasses import dataclass

from .encodings import EncodedMLP, Identity
from .mlp import MLP
from .registry import RepresentationConfig, SizeKnob, register, require


@dataclass
class ReluMLPConfig(RepresentationConfig):
    width: int = 256  # FFN: 256 channels
    depth: int = 3  # hidden layers; FFN's 4-layer network
    lr: float = 1e-2  # FFN, "none" mapping on natural images (1e-3 on text)

    def validate(self) -> None:
        super().validate()
        require(self.width >= 1, "width", "at least 1")
        require(self.depth >= 0, "depth", "at least 0 (hidden layers)")


@register(
    "relu_mlp", ReluMLPConfig,
    source="Tancik et al. 2020 (FFN), 'no mapping': 4-layer ReLU MLP x 256, sigmoid output, lr 1e-2 natural / 1e-3 text",
    knob=SizeKnob("width", 2, 512),
    sizes={"tiny": {"width": 32, "depth": 2}, "standard": {"width": 128, "depth": 3}},
    # No encoding to tune, so the second axis is the learning-rate schedule.
    search={"lr": (1e-3, 3e-3, 1e-2, 3e-2), "schedule": ("constant", "cosine", "exponential")},
    batchable=True,
)
def relu_mlp(config: ReluMLPConfig, out_features: int):
    """ReLU MLP on raw (x, y), sigmoid output (FFN "none")."""
    return EncodedMLP(Identity(2), MLP(2, out_features, config.width, config.depth))
