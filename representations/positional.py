"""FFN / NeRF positional encoding in front of the shared ReLU MLP."""

import math
from dataclasses import dataclass

from .encodings import EncodedMLP, PositionalEncoding
from .mlp import MLP
from .registry import RepresentationConfig, SizeKnob, TrainingGrid, register, require


@dataclass
class PositionalConfig(RepresentationConfig):
    num_frequencies: int = 128  # per axis; FFN mapping size 256
    max_log2: float = 6.0  # FFN's s: 6 on natural images, 5 on text
    # The highest frequency 2^s relative to the training grid's Nyquist frequency (side / 2): s = log2(value x
    # side / 2); None: max_log2 as given. FFN's s = 6 on its 256^2 training grid is 64 / 128 = 0.5 (5: 0.25).
    max_frequency_nyquist: float | None = None
    FOLLOWS = {"max_frequency_nyquist": "max_log2"}
    width: int = 256
    depth: int = 3
    lr: float = 1e-3  # FFN

    def validate(self) -> None:
        super().validate()
        require(self.num_frequencies >= 1, "num_frequencies", "at least 1")
        require(0 <= self.max_log2 <= 24, "max_log2", "in [0, 24] (2^24 periods per image is far past any pixel grid)")
        require(self.width >= 1, "width", "at least 1")
        require(self.depth >= 0, "depth", "at least 0 (hidden layers)")

    def follow_grid(self, grid: TrainingGrid) -> dict:
        if self.max_frequency_nyquist is None:
            return {}
        return {"max_log2": math.log2(self.max_frequency_nyquist * grid.nyquist)}


@register(
    "positional", PositionalConfig,
    source="Tancik et al. 2020 (FFN): positional encoding 2^linspace(0, s, 128) - 1 per axis, s = 6 natural / 5 text",
    # the encoding sets the first layer's fan-in, so it shrinks with the width
    knob=SizeKnob("width", 2, 512, follow=lambda w: {"num_frequencies": max(w // 4, 1)}),
    # tiny: a 32^2 training grid resolves at most 16 periods, hence s = 4
    sizes={"tiny": {"width": 32, "depth": 2, "num_frequencies": 16, "max_log2": 4.0},
           "standard": {"width": 128, "depth": 3, "max_frequency_nyquist": 0.5}},
    search={"lr": (3e-4, 1e-3, 3e-3, 1e-2), "max_frequency_nyquist": (0.25, 0.5, 1.0)},  # FFN: s = 5 and 6
    batchable=True,
)
def positional(config: PositionalConfig, out_features: int):
    """Positional encoding 2^linspace(0, s, n) - 1 per axis + ReLU MLP (FFN)."""
    encoding = PositionalEncoding(2, config.num_frequencies, config.max_log2)
    return EncodedMLP(encoding, MLP(encoding.get_out_dim(), out_features, config.width, config.depth))
