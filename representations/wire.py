"""WIRE: complex Gabor wavelet activations (Saragadam et al., CVPR 2023; vishwa91/wire, modules/wire.py).

psi(z) = exp(j omega_0 z) exp(-|s0 z|^2) after every layer: the first layer is real (coordinates in [-1, 1]), its
activation makes the features complex, the hidden layers are complex Linear layers and the output is the real
part of a complex Linear layer. As in the repository, the complex network has int(width / sqrt(2)) features, so
that it has about as many real parameters as a real network of `width`.

Complex numbers are kept as pairs of real tensors (a complex product is four real ones). The function and the
initialisation are the repository's; the difference is bookkeeping: every stored number is a real parameter, so
parameter counts, bitstreams and bf16 matmuls see real tensors, and vmap batches them. One deviation: the
repository's output layer has a complex bias whose imaginary part never reaches the real output; it is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activated_mlp import exp_negative
from .registry import RepresentationConfig, SizeKnob, register, require


@dataclass
class WireConfig(RepresentationConfig):
    width: int = 256  # WIRE's image script: hidden_features = 256, i.e. int(256 / sqrt(2)) = 181 complex features
    depth: int = 3  # Gabor layers: the first plus the image script's hidden_layers = 2
    omega_0: float = 20.0  # WIRE's image script: "omega0=20, sigma0=30 for image representation"
    scale: float = 30.0  # s0 (sigma0 there); FINER's reproduction of WIRE (run_wire.sh) uses 10
    # omega_0 and s0 relative to the training grid (x side / 2, the grid's Nyquist frequency), so that the first
    # layer's wavelets keep their frequency and width in pixels at any image size; None: the absolute value as
    # given. The source's 20 and 30 on 256^2 images (all pixels) are 20 / 128 and 30 / 128.
    omega_0_nyquist: float | None = None
    scale_nyquist: float | None = None
    # WIRE's script: "WIRE works best at 5e-3 to 2e-2"; FINER's sweep of WIRE (run_wire.sh) peaks at 5e-3.
    lr: float = 5e-3
    # both repositories decay the rate as lr * 0.1^(t / T) (LambdaLR); lr_final = 0.1 is the base default
    schedule: Literal["constant", "cosine", "exponential"] = "exponential"
    FOLLOWS = {"omega_0_nyquist": "omega_0", "scale_nyquist": "scale"}

    def validate(self) -> None:
        super().validate()
        require(2 <= self.width <= 8192, "width", "in 2..8192 (int(width / sqrt(2)) complex features)")
        require(1 <= self.depth <= 64, "depth", "in 1..64 (Gabor layers)")
        require(0 < self.omega_0 <= 1e4, "omega_0", "in (0, 1e4]")
        require(0 < self.scale <= 1e4, "scale", "in (0, 1e4]")


def complex_features(width: int) -> int:
    """WIRE's complex width: int(width / sqrt(2))."""
    return int(width / math.sqrt(2))


def gabor(real: Tensor, imag: Tensor, omega_0: float, scale: float) -> tuple[Tensor, Tensor]:
    """exp(j omega_0 z - |s0 z|^2) for z = real + j imag, as (real part, imaginary part).

    exp(j omega_0 (a + jb)) = exp(-omega_0 b) (cos omega_0 a + j sin omega_0 a). The magnitude
    exp(-omega_0 b - s0^2 (a^2 + b^2)) is at most exp(omega_0^2 / (4 s0^2)), so it cannot overflow; its far tail is
    set to exactly 0 (`exp_negative`).
    """
    magnitude = exp_negative(omega_0 * imag + scale**2 * (real * real + imag * imag))
    phase = omega_0 * real
    return magnitude * torch.cos(phase), magnitude * torch.sin(phase)


class ComplexLinear(nn.Module):
    """W h + b for complex W, h, b, with W = real.weight + j imag.weight and b = real.bias + j imag.bias.

    Two real nn.Linear layers with PyTorch's default initialisation are exactly PyTorch's initialisation of a
    complex nn.Linear (real and imaginary parts each U(-1/sqrt(fan_in), 1/sqrt(fan_in))). Without `imag_bias` the
    imaginary part of the bias is left out (the output layer's, which the real output never sees).
    """

    def __init__(self, in_features: int, out_features: int, imag_bias: bool = True):
        super().__init__()
        self.real = nn.Linear(in_features, out_features)
        self.imag = nn.Linear(in_features, out_features, bias=imag_bias)

    def forward(self, real: Tensor, imag: Tensor) -> tuple[Tensor, Tensor]:
        # one product [real, imag] @ [[Wr, Wi], [-Wi, Wr]]^T instead of four: at WIRE's small widths the four
        # thin products and the sums between them cost more than the one of twice the size
        wr, wi = self.real.weight, self.imag.weight
        weight = torch.cat([torch.cat([wr, -wi], 1), torch.cat([wi, wr], 1)], 0)
        imag_bias = self.imag.bias if self.imag.bias is not None else torch.zeros_like(self.real.bias)
        out = F.linear(torch.cat([real, imag], -1), weight, torch.cat([self.real.bias, imag_bias]))
        return out[..., : len(wr)], out[..., len(wr) :]


class Wire(nn.Module):
    def __init__(self, config: WireConfig, out_features: int):
        super().__init__()
        features = complex_features(config.width)
        self.omega_0, self.scale = config.omega_0, config.scale
        self.first = nn.Linear(2, features)  # real weights on real coordinates, PyTorch's default init
        self.hidden = nn.ModuleList([ComplexLinear(features, features) for _ in range(config.depth - 1)])
        self.head = ComplexLinear(features, out_features, imag_bias=False)

    def forward(self, coords: Tensor) -> Tensor:
        real = self.first(2 * coords - 1)  # WIRE works on [-1, 1]
        real, imag = gabor(real, torch.zeros_like(real), self.omega_0, self.scale)
        for layer in self.hidden:
            real, imag = gabor(*layer(real, imag), self.omega_0, self.scale)
        return self.head(real, imag)[0]  # the real part

    def extra_repr(self) -> str:
        return f"omega_0={self.omega_0}, scale={self.scale}"


@register(
    "wire", WireConfig,
    source="Saragadam et al. 2023 (WIRE), vishwa91/wire modules/wire.py and its image script: complex Gabor "
    "exp(j omega_0 z - |s0 z|^2), omega_0 = 20, s0 = 30, 2 hidden x 256 (181 complex), Adam lr 5e-3 decayed by "
    "0.1^(t/T)",
    knob=SizeKnob("width", 2, 1024),
    sizes={"tiny": {"width": 32, "depth": 2},
           "standard": {"width": 128, "depth": 3, "omega_0_nyquist": 20 / 128, "scale_nyquist": 30 / 128}},
    search={"lr": (1.5e-3, 5e-3, 1.5e-2, 5e-2), "scale_nyquist": (15 / 128, 30 / 128, 60 / 128)},
    batchable=True,
)
def wire(config: WireConfig, out_features: int):
    """WIRE: complex Gabor wavelet layers exp(j omega_0 z - |s0 z|^2), real output."""
    return Wire(config, out_features)
