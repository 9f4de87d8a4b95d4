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
    chunk: int = 2048  # pixels per block of the fused evaluation (speed only; the result does not depend on it)


def _binary(m: int) -> Tensor:
    """All k in {0,1}^m, (2^m, m), in itertools.product order (k[0] is the most significant bit)."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=m))).reshape(1 << m, m)


class _FourierSum(torch.autograd.Function):
    """out = E(x) @ W, with E = interleaved [cos φ_k, sin φ_k], φ = x @ K^T, evaluated block by block.

    e^{iφ_k} = e^{i k_hi·x_hi} e^{i k_lo·x_lo}: the 2^m unit phasors are an outer product of two sets of
    2^(m/2), so the (N, 2^m) cos/sin table costs two small cos/sin calls and one complex multiply instead of
    2^m cos and sin per pixel. Backward recomputes each block's table instead of saving (N, 2^(m+1)) floats,
    which keeps every block in cache; dφ_k/dx = K[k], and d(a cos φ + b sin φ)/dφ = Im(conj(e^{iφ}) (a + i b)).
    """

    @staticmethod
    def _phasors(x: Tensor, k_hi: Tensor, k_lo: Tensor) -> Tensor:
        h = k_hi.shape[1]
        hi, lo = x[:, :h] @ k_hi.T, x[:, h:] @ k_lo.T
        hi, lo = torch.complex(torch.cos(hi), torch.sin(hi)), torch.complex(torch.cos(lo), torch.sin(lo))
        return (hi[:, :, None] * lo[:, None, :]).flatten(1)  # (n, 2^m) complex, product order

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, k_hi: Tensor, k_lo: Tensor, k_im: Tensor, chunk: int) -> Tensor:
        out = x.new_empty(len(x), weight.shape[1])
        for start in range(0, len(x), chunk):
            table = torch.view_as_real(_FourierSum._phasors(x[start : start + chunk], k_hi, k_lo)).flatten(1)
            torch.mm(table, weight, out=out[start : start + chunk])
        ctx.save_for_backward(x, weight, k_hi, k_lo, k_im)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight, k_hi, k_lo, k_im = ctx.saved_tensors
        grad_weight = torch.zeros_like(weight)
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        for start in range(0, len(x), ctx.chunk):
            block, g = slice(start, start + ctx.chunk), grad[start : start + ctx.chunk]
            conj = _FourierSum._phasors(-x[block], k_hi, k_lo)  # e^{-iφ}; its real view is (cos φ, -sin φ)
            grad_weight.addmm_(torch.view_as_real(conj).flatten(1).T, g)
            if grad_x is not None:
                coeff = torch.view_as_complex((g @ weight.T).view(len(g), -1, 2))  # Σ_j g_j (a_jk + i b_jk)
                dphi = torch.view_as_real(conj * coeff).flatten(1)  # imaginary parts are dL/dφ_k
                torch.mm(dphi, k_im, out=grad_x[block])  # k_im: K on the imaginary rows, 0 on the real ones
        grad_weight[1::2].neg_()  # the sin rows accumulated -sin φ
        return grad_x, grad_weight, None, None, None, None


class FourierLayer(nn.Module):
    """sum over k in {0,1}^in_dim of a_k cos(2π f k·x) + b_k sin(2π f k·x); 2 * out_dim * 2^in_dim parameters.

    The k = 0 cosine row acts as a bias; the k = 0 sine row is identically zero and receives no gradient
    (kept so the parameter count and layout match the thesis).
    """

    def __init__(self, in_dim: int, out_dim: int, frequency: float, init_std: float, chunk: int = 2048):
        super().__init__()
        k = _binary(in_dim) * (2 * math.pi * frequency)  # (2^in_dim, in_dim): dφ_k/dx
        self.register_buffer("k", k)
        half = (in_dim + 1) // 2  # the leading (most significant) coordinates form the outer factor
        self.register_buffer("k_hi", _binary(half) * (2 * math.pi * frequency), persistent=False)
        self.register_buffer("k_lo", _binary(in_dim - half) * (2 * math.pi * frequency), persistent=False)
        self.register_buffer("k_im", torch.stack([torch.zeros_like(k), k], 1).flatten(0, 1), persistent=False)
        self.chunk = chunk
        self.cos_coefficients = nn.Parameter(torch.randn(len(k), out_dim) * init_std)
        self.sin_coefficients = nn.Parameter(torch.randn(len(k), out_dim) * init_std)

    def forward(self, x: Tensor) -> Tensor:
        weight = torch.stack([self.cos_coefficients, self.sin_coefficients], 1).flatten(0, 1)  # rows a_0, b_0, a_1..
        return _FourierSum.apply(x, weight, self.k_hi, self.k_lo, self.k_im, self.chunk)

    def forward_direct(self, x: Tensor) -> Tensor:
        """The formula as written (2^m cos and sin per pixel); the reference for `forward`."""
        phase = x @ self.k.T
        return torch.cos(phase) @ self.cos_coefficients + torch.sin(phase) @ self.sin_coefficients


MAX_WIDTH = 16  # each layer has 2^width frequency vectors


class FNet(nn.Module):
    def __init__(self, config: FNetConfig, out_features: int, in_features: int = 2):
        super().__init__()
        if not 1 <= config.width <= MAX_WIDTH or config.depth < 1:
            raise ValueError(f"fnet width must be 1..{MAX_WIDTH} (2^width terms per layer) and depth >= 1, "
                             f"got width={config.width}, depth={config.depth}")
        w, std, chunk = config.width, config.init_std, config.chunk
        self.first = FourierLayer(in_features, w, config.input_frequency, std, chunk)
        self.middle = nn.ModuleList(
            FourierLayer(w, w, config.hidden_frequency, std, chunk) for _ in range(config.depth - 1)
        )
        self.last = FourierLayer(w, out_features, config.hidden_frequency, std, chunk)

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
