"""Coordinate encodings that feed the shared MLP (after nerfstudio's field_components/encodings.py)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Encoding(nn.Module):
    """Maps coordinates (N, in_dim) to features (N, get_out_dim())."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.in_dim = in_dim

    def get_out_dim(self) -> int:
        raise NotImplementedError


class Identity(Encoding):
    """Raw coordinates: FFN's "no mapping"."""

    def get_out_dim(self) -> int:
        return self.in_dim

    def forward(self, coords: Tensor) -> Tensor:
        return coords


class SinusoidalEncoding(Encoding):
    """[sin(2π v B^T), cos(2π v B^T)] / sqrt(rows of B), for a fixed frequency matrix B (rows, in_dim).

    The 1/sqrt(rows) factor is FFN's `/ norm(a)` with unit amplitudes a. B is a buffer: never trained, and
    rebuilt from the config (and seed) rather than stored.
    """

    def __init__(self, frequencies: Tensor):
        super().__init__(frequencies.shape[1])
        self.register_buffer("frequencies", frequencies.float())

    def get_out_dim(self) -> int:
        return 2 * self.frequencies.shape[0]

    def forward(self, coords: Tensor) -> Tensor:
        phase = (2 * math.pi) * coords @ self.frequencies.T
        return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1) / math.sqrt(self.frequencies.shape[0])


class PositionalEncoding(SinusoidalEncoding):
    """FFN positional encoding: per axis, frequencies 2^linspace(0, max_log2, num_frequencies) - 1.

    Args:
        in_dim: coordinate dimensions.
        num_frequencies: frequencies per axis (FFN: 128, i.e. mapping size 256 over two axes).
        max_log2: s, the log2 of the highest frequency (FFN tuned: 6 natural images, 5 text).
    """

    def __init__(self, in_dim: int, num_frequencies: int, max_log2: float):
        freqs = 2.0 ** torch.linspace(0, max_log2, num_frequencies, dtype=torch.float64) - 1
        rows = [torch.zeros(num_frequencies, in_dim, dtype=torch.float64) for _ in range(in_dim)]
        for axis, block in enumerate(rows):
            block[:, axis] = freqs  # axis-aligned: each row of B looks along one axis
        super().__init__(torch.cat(rows))


class GaussianFourierFeatures(SinusoidalEncoding):
    """Random Fourier features with B ~ N(0, sigma^2), drawn once from `seed` and fixed (Tancik et al. 2020).

    Args:
        in_dim: coordinate dimensions.
        num_features: rows of B (FFN: 256).
        sigma: standard deviation of B in cycles per unit coordinate (FFN tuned: 10 natural, 14 text).
        seed: seed of B's own generator, so B does not depend on the global RNG state.
    """

    def __init__(self, in_dim: int, num_features: int, sigma: float, seed: int):
        generator = torch.Generator().manual_seed(seed)
        super().__init__(torch.randn(num_features, in_dim, generator=generator, dtype=torch.float64) * sigma)


class EncodedMLP(nn.Module):
    """An encoding followed by the shared MLP."""

    def __init__(self, encoding: Encoding, mlp: nn.Module):
        super().__init__()
        self.encoding = encoding
        self.mlp = mlp

    def forward(self, coords: Tensor) -> Tensor:
        return self.mlp(self.encoding(coords))
