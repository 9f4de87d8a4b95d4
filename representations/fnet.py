"""FNET: the Fourier-layer network of the thesis project deep-fourier-net.

Layer i maps x in R^m to R^m':  h(x) = sum_k a_k cos(2π f k·x) + b_k sin(2π f k·x), k over all 2^m binary
vectors {0,1}^m, plus x itself in the middle layers. With width 8 and depth 6 it has 22,080 parameters, as the
thesis states.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .registry import RepresentationConfig, register


@dataclass
class FNetConfig(RepresentationConfig):
    width: int = 8  # m' of the hidden layers; the thesis used 6-10 (each layer has 2^width terms)
    depth: int = 6  # layers that output `width` features (the first plus depth-1 residual ones); an output layer follows
    # The thesis feeds raw pixel indices with k scaled by 1/32: one period per 32 pixels, which on a 256-pixel
    # side is 8 periods across our [0, 1) coordinates. Hidden layers keep the 1/32 scale on their activations.
    input_frequency: float = 8.0
    hidden_frequency: float = 1 / 32
    init_std: float = 0.03  # thesis: N(0, 1) * 0.03
    lr: float = 1e-3  # not given by the source


class FourierLayer(nn.Module):
    """sum over k in {0,1}^in_dim of a_k cos(2π f k·x) + b_k sin(2π f k·x); 2 * out_dim * 2^in_dim parameters.

    The k = 0 cosine row acts as a bias; the k = 0 sine row is identically zero and receives no gradient
    (kept so the parameter count and layout match the thesis).
    """

    def __init__(self, in_dim: int, out_dim: int, frequency: float, init_std: float):
        super().__init__()
        k = torch.tensor(list(itertools.product((0.0, 1.0), repeat=in_dim)))  # (2^in_dim, in_dim)
        self.register_buffer("k", k * (2 * math.pi * frequency))
        self.cos_coefficients = nn.Parameter(torch.randn(len(k), out_dim) * init_std)
        self.sin_coefficients = nn.Parameter(torch.randn(len(k), out_dim) * init_std)

    def forward(self, x: Tensor) -> Tensor:
        phase = x @ self.k.T
        return torch.cos(phase) @ self.cos_coefficients + torch.sin(phase) @ self.sin_coefficients


MAX_WIDTH = 16  # each layer has 2^width frequency vectors


class FNet(nn.Module):
    def __init__(self, config: FNetConfig, out_features: int, in_features: int = 2):
        super().__init__()
        if not 1 <= config.width <= MAX_WIDTH or config.depth < 1:
            raise ValueError(f"fnet width must be 1..{MAX_WIDTH} (2^width terms per layer) and depth >= 1, "
                             f"got width={config.width}, depth={config.depth}")
        w, std = config.width, config.init_std
        self.first = FourierLayer(in_features, w, config.input_frequency, std)
        self.middle = nn.ModuleList(FourierLayer(w, w, config.hidden_frequency, std) for _ in range(config.depth - 1))
        self.last = FourierLayer(w, out_features, config.hidden_frequency, std)

    def forward(self, coords: Tensor) -> Tensor:
        h = self.first(coords)
        for layer in self.middle:
            h = h + layer(h)
        # The thesis outputs 2*sigmoid - 1 for data in [-1, 1]; on our [0, 1] targets that is a plain sigmoid.
        return torch.sigmoid(self.last(h))


@register("fnet", FNetConfig)
def fnet(config: FNetConfig, out_features: int):
    """Fourier-layer network: sums of cos/sin over binary frequency vectors, residual middle layers."""
    return FNet(config, out_features)
