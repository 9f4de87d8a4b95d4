"""ReLU MLP on raw coordinates: the FFN paper's "no mapping" baseline."""

from dataclasses import dataclass

from .encodings import EncodedMLP, Identity
from .mlp import MLP
from .registry import RepresentationConfig, register


@dataclass
class ReluMLPConfig(RepresentationConfig):
    width: int = 256  # FFN: 256 channels
    depth: int = 3  # hidden layers; FFN's 4-layer network
    lr: float = 1e-2  # FFN, "none" mapping on natural images (1e-3 on text)


@register("relu_mlp", ReluMLPConfig)
def relu_mlp(config: ReluMLPConfig, out_features: int):
    """ReLU MLP on raw (x, y), sigmoid output (FFN "none")."""
    return EncodedMLP(Identity(2), MLP(2, out_features, config.width, config.depth))
