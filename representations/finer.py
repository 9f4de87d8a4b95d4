"""FINER: variable-periodic activations sin(omega_0 (|z| + 1) z) (Liu et al., CVPR 2024; liuzhen0212/FINER).

The local frequency of sin(omega_0 (|z| + 1) z) grows with |z|, so a neuron's pre-activation offset selects which
frequencies it can express. FINER's key idea is to draw the first layer's biases from a wide range U(-k, k), so
that the first-layer neurons start on many different frequencies. Weights follow SIREN's initialisation, as in
the repository's `FinerLayer`; the factor |z| + 1 is treated as a constant in the backward pass
(`scale_req_grad=False`, the repository's default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from .activated_mlp import ActivatedMLP
from .registry import RepresentationConfig, SizeKnob, register, require


@dataclass
class FinerConfig(RepresentationConfig):
    width: int = 256  # FINER's run_finer.sh: 256
    depth: int = 4  # FINER layers: the first plus run_finer.sh's HIDDENLAYERS=3
    omega_0: float = 30.0  # run_finer.sh: FIRSTOMEGA = HIDDENOMEGA = 30
    # omega_0 relative to the training grid, as SIREN's (siren.py): omega_0 = omega_0_nyquist x side / 2; None:
    # omega_0 as given. The source's 30 on 256^2 images (all pixels) is 30 / 128.
    omega_0_nyquist: float | None = None
    # k of the first layer's bias U(-k, k), the paper's key idea: a wider range starts neurons on higher frequencies.
    # The repository's image script leaves it at PyTorch's default U(-1/sqrt(2), 1/sqrt(2)) (first_bias_scale=None),
    # its SDF scripts pass 1 (`--fbs 1.0`), third-party runs use 20. Measured on the FFN tuning images (ffn-natural
    # 00 and 01, standard preset, test PSNR on held-out pixels): k = 20: 12.8 / 13.1 dB, 5: 19.4 / 25.8, 1: 22.0 /
    # 29.6, 1/sqrt(2): 22.2 / 29.5. Wide ranges alias between training pixels, so 1 (the repository's own value).
    first_bias_scale: float = 1.0
    lr: float = 5e-4  # run_finer.sh (Adam, 5000 full-batch steps)
    # train_image.py decays the rate as lr * 0.1^(t / T) (LambdaLR); lr_final = 0.1 is the base default
    schedule: Literal["constant", "cosine", "exponential"] = "exponential"
    FOLLOWS = {"omega_0_nyquist": "omega_0"}

    def validate(self) -> None:
        super().validate()
        require(1 <= self.width <= 8192, "width", "in 1..8192")
        require(1 <= self.depth <= 64, "depth", "in 1..64 (FINER layers)")
        require(0 < self.omega_0 <= 1e4, "omega_0", "in (0, 1e4]")
        require(0 <= self.first_bias_scale <= 1e4, "first_bias_scale", "in [0, 1e4]")


class FinerActivation(nn.Module):
    """sin(omega_0 (|z| + 1) z), with |z| + 1 held constant under differentiation (FINER's default)."""

    def __init__(self, omega_0: float):
        super().__init__()
        self.omega_0 = omega_0

    def forward(self, z: Tensor) -> Tensor:
        return torch.sin(self.omega_0 * (z.detach().abs() + 1) * z)

    def extra_repr(self) -> str:
        return f"omega_0={self.omega_0}"


def initialise(network: ActivatedMLP, omega_0: float, first_bias_scale: float) -> None:
    """SIREN's weight bounds (1/fan_in first, sqrt(6/fan_in)/omega_0 after, the output too) and U(-k, k) first biases.

    The other biases keep PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as in the repository.
    """
    with torch.no_grad():
        for index, layer in enumerate([*network.hidden, network.head]):
            fan_in = layer.in_features
            bound = 1 / fan_in if index == 0 else math.sqrt(6 / fan_in) / omega_0
            layer.weight.uniform_(-bound, bound)
        network.hidden[0].bias.uniform_(-first_bias_scale, first_bias_scale)


@register(
    "finer", FinerConfig,
    source="Liu et al. 2024 (FINER), liuzhen0212/FINER models.py and run_finer.sh: sin(omega_0 (|z|+1) z), "
    "omega_0 = 30, 3 hidden x 256, SIREN weight init, first-layer bias U(-k, k), Adam lr 5e-4 decayed by 0.1^(t/T)",
    knob=SizeKnob("width", 2, 1024),
    # tiny: 5e-4 is the source's rate for 5000 steps; the tiny presets run 100-300 (as siren's tiny size does)
    sizes={"tiny": {"width": 32, "depth": 2, "lr": 5e-3},
           "standard": {"width": 128, "depth": 3, "omega_0_nyquist": 30 / 128}},
    # omega_0 is what follows the image; the first-layer bias range k = 1 was measured on the FFN tuning images
    # (FinerConfig.first_bias_scale).
    search={"lr": (1.5e-4, 5e-4, 1.5e-3, 5e-3), "omega_0_nyquist": (15 / 128, 30 / 128, 60 / 128)},
    batchable=True,
)
def finer(config: FinerConfig, out_features: int):
    """FINER: sin(omega_0 (|z|+1) z) layers, SIREN weights, wide first-layer biases, linear output."""
    network = ActivatedMLP(out_features, config.width, config.depth, FinerActivation(config.omega_0))
    initialise(network, config.omega_0, config.first_bias_scale)
    return network
