"""FFN / NeRF positional encoding in front of the shared ReLU MLP."""

from dataclasses import dataclass

from .encodings import EncodedMLP, PositionalEncoding
from .mlp import MLP
from .registry import RepresentationConfig, register


@dataclass
class PositionalConfig(RepresentationConfig):
    num_frequencies: int = 128  # per axis; FFN mapping size 256
    max_log2: float = 6.0  # FFN's s: 6 on natural images, 5 on text
    width: int = 256
    depth: int = 3
    lr: float = 1e-3  # FFN


@register("positional", PositionalConfig)
def positional(config: PositionalConfig, out_features: int):
    """Positional encoding 2^linspace(0, s, n) - 1 per axis + ReLU MLP (FFN)."""
    encoding = PositionalEncoding(2, config.num_frequencies, config.max_log2)
    return EncodedMLP(encoding, MLP(encoding.get_out_dim(), out_features, config.width, config.depth))
