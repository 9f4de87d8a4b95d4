"""FNET: the Fourier-layer network of the thesis project deep-fourier-net.

Layer i maps x in R^m to R^m':  h(x) = sum_k a_k cos(2π f k·x) + b_k sin(2π f k·x), k over all 2^m binary
vectors {0,1}^m, plus x itself in the middle layers. With width 8 and depth 6 it has 22,080 parameters, as the
thesis states. The fitting defaults depart from the thesis in hidden_frequency, mean_terms and lr (see FNetConfig).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .kept import KeptBlocks
from .registry import RepresentationConfig, SizeKnob, register, require


@dataclass
class FNetConfig(RepresentationConfig):
    width: int = 8  # m' of the hidden layers; the thesis used 6-10 (each layer has 2^width terms)
    depth: int = 6  # layers that output `width` features (the first plus depth-1 residual ones); an output layer follows
    # Periods of the first layer across the image side. The thesis feeds pixel indices with k/32: on its 32-pixel
    # CIFAR images that is one period per side, which is what 1.0 gives on our [0, 1) coordinates at any size.
    # Binary k at one frequency f make the first layer, hence the whole net, periodic with period 1/f: the
    # literal "one period per 32 pixels" (8.0 at 256 px) tiles the image with 32-pixel copies and fits the mean.
    input_frequency: float = 1.0
    # Deviation: the thesis keeps 1/32. Each residual layer's Jacobian has entries of std ~ 2π f init_std
    # sqrt(2^(m-1)) (2.1 f at width 8): at 1/32 the layers stay nearly linear, so the net is a smooth function of
    # the first layer's one-period waves and learns slowly; at >= 1/2 they are chaotic (at 1, gradients grow ~6x
    # per layer and the output is noise) and the fit stays at the mean. At 256^2, 300 steps, 1/32 (lr 1.2) ended
    # 0.3-1.1 dB and 1/8 (lr 0.3) 1.3-2.0 dB below 1/16.
    hidden_frequency: float = 1 / 16
    init_std: float = 0.03  # thesis: N(0, 1) * 0.03 on the coefficients a_k, b_k (with or without mean_terms)
    # Deviation (a reparametrisation, same functions and parameter count): a_k = 2^-m * stored value, stored values
    # initialised N(0, (init_std 2^m)^2), so the net at init is the thesis's. Adam moves each stored value by ~lr a
    # step; with raw coefficients the 2^m nearly equal terms of a unit move it by up to 2^m lr together, 64x more in
    # the 256-term hidden layers than in the 4-term first layer, so no single lr is both stable and fast (best
    # ~15.8 dB on astronaut at 128^2 vs ~19.5 with this). Under Adam this equals a per-layer lr of lr / 2^m.
    mean_terms: bool = True
    # Not in the source. With mean_terms each a_k moves by ~lr / 2^m a step. Test PSNR at 256^2, 300 steps, mean of
    # astronaut and camera over seeds 0-1: 20.5 dB at lr 0.5, 20.9 at 0.7, 20.6 at 1.0 (one camera seed fell 4 dB:
    # larger steps let the net alias between training pixels, and make the fit seed-sensitive).
    # Leakage: this lr and hidden_frequency were measured on astronaut and camera, images the presets evaluated on;
    # tuned presets choose both again on the FFN tuning images (docs/representations.md gives the command that
    # re-derives them there).
    lr: float = 0.7
    chunk: int = 2048  # most pixels per block of the fused evaluation (speed only; results do not depend on it)

    def validate(self) -> None:
        super().validate()
        require(1 <= self.width <= MAX_WIDTH, "width", f"in 1..{MAX_WIDTH} (each layer has 2^width terms)")
        require(1 <= self.depth <= MAX_DEPTH, "depth", f"in 1..{MAX_DEPTH}")
        for name in ("input_frequency", "hidden_frequency"):
            require(0 < getattr(self, name) <= 1e4, name, "in (0, 1e4] periods")
        require(0 < self.init_std <= 1e3, "init_std", "in (0, 1000]")
        require(self.chunk >= 1, "chunk", "at least 1")


MAX_WIDTH = 16  # each layer has 2^width frequency vectors
MAX_DEPTH = 1024


def _binary(m: int) -> Tensor:
    """All k in {0,1}^m, (2^m, m), in itertools.product order (k[0] is the most significant bit)."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=m))).reshape(1 << m, m)


class _FourierSum(torch.autograd.Function):
    """out_j = sum_k a_kj cos φ_k + b_kj sin φ_k over φ_k = k·x, evaluated block by block through a factorisation.

    Split k into its leading and trailing coordinates, k = (p, q): cos φ_k and sin φ_k are products of the waves
    H = [cos p·x_p, sin p·x_p] and L = [cos q·x_q, sin q·x_q], 2^(m/2) of each. So the layer is
    out = sum_p H_p (L @ M)_p with one (2·2^(m/2), 2·2^(m/2)·out) mixing matrix M built from a and b (`mixing`):
    a matrix product of wide shape in place of the (N, 2^(m+1)) x (2^(m+1), out) one of the formula, whose
    thin output runs BLAS at a fifth of its speed. A training step of the quick preset's FNET (width 8, depth 4,
    4,096 pixels, one thread) went from 84-113 ms to 36-49 ms. Backward reuses each block's waves and L @ M while
    they fit in kept.KEEP_FLOATS (another ~10 %) and recomputes the rest, so memory stays bounded at any image size.
    """

    @staticmethod
    def _waves(x: Tensor, k_hi: Tensor, k_lo: Tensor) -> tuple[Tensor, Tensor]:
        hi, lo = x[:, : k_hi.shape[1]] @ k_hi.T, x[:, k_hi.shape[1] :] @ k_lo.T
        return torch.cat([hi.cos(), hi.sin()], 1), torch.cat([lo.cos(), lo.sin()], 1)

    @staticmethod
    def forward(ctx, x: Tensor, mixing: Tensor, k_hi: Tensor, k_lo: Tensor, chunk: int) -> Tensor:
        out_dim = mixing.shape[1] // (2 * len(k_hi))
        out = x.new_empty(len(x), out_dim)
        ctx.kept = KeptBlocks()
        for start in range(0, len(x), chunk):
            hi, lo, product = _FourierSum._block(x[start : start + chunk], mixing, k_hi, k_lo, out_dim)
            torch.sum(product * hi[:, None, :], 2, out=out[start : start + chunk])
            ctx.kept.offer(hi, lo, product)
        ctx.save_for_backward(x, mixing, k_hi, k_lo)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, mixing, k_hi, k_lo = ctx.saved_tensors
        out_dim, h = grad.shape[1], k_hi.shape[1]
        grad_mixing = torch.zeros_like(mixing)
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        for start, kept in zip(range(0, len(x), ctx.chunk), ctx.kept):
            block, g = slice(start, start + ctx.chunk), grad[start : start + ctx.chunk]
            hi, lo, product = kept or _FourierSum._block(x[block], mixing, k_hi, k_lo, out_dim)
            grad_product = (g[:, :, None] * hi[:, None, :]).view(len(hi), -1)  # d out / d (L @ M)
            torch.addmm(grad_mixing, lo.T, grad_product, out=grad_mixing)
            if grad_x is not None:
                grad_hi = (product * g[:, :, None]).sum(1)
                grad_lo = grad_product @ mixing.T
                grad_x[block, :h] = _FourierSum._phase_grad(hi, grad_hi) @ k_hi
                grad_x[block, h:] = _FourierSum._phase_grad(lo, grad_lo) @ k_lo
        return grad_x, grad_mixing, None, None, None

    @staticmethod
    def _block(x: Tensor, mixing: Tensor, k_hi: Tensor, k_lo: Tensor, out_dim: int) -> tuple[Tensor, ...]:
        """A block's waves H and L, and L @ M as (pixels, out, 2 * 2^hi)."""
        hi, lo = _FourierSum._waves(x, k_hi, k_lo)
        return hi, lo, (lo @ mixing).view(len(hi), out_dim, -1)

    @staticmethod
    def _phase_grad(waves: Tensor, grad: Tensor) -> Tensor:
        """d/dφ of [cos φ, sin φ] is [-sin φ, cos φ]."""
        n = waves.shape[1] // 2
        return grad[:, n:] * waves[:, :n] - grad[:, :n] * waves[:, n:]


class FourierLayer(nn.Module):
    """sum over k in {0,1}^in_dim of a_k cos(2π f k·x) + b_k sin(2π f k·x); 2 * out_dim * 2^in_dim parameters.

    The k = 0 cosine row acts as a bias; the k = 0 sine row is identically zero and receives no gradient
    (kept so the parameter count and layout match the thesis).
    """

    def __init__(
        self, in_dim: int, out_dim: int, frequency: float, init_std: float, mean_terms: bool = False, chunk: int = 2048
    ):
        super().__init__()
        # a_k = scale * stored coefficient; see FNetConfig.mean_terms. The init is N(0, init_std^2) on a_k either way.
        self.scale = 2.0**-in_dim if mean_terms else 1.0
        k = _binary(in_dim) * (2 * math.pi * frequency)  # (2^in_dim, in_dim): dφ_k/dx
        self.register_buffer("k", k)
        half = (in_dim + 1) // 2  # k = (k_hi, k_lo), the leading (most significant) coordinates first
        self.register_buffer("k_hi", _binary(half) * (2 * math.pi * frequency), persistent=False)
        self.register_buffer("k_lo", _binary(in_dim - half) * (2 * math.pi * frequency), persistent=False)
        # a block's L @ M holds 2 * 2^half * out_dim floats a pixel: <= 1 MB, in a core's cache, at any width
        self.chunk = max(1, min(chunk, (1 << 18) // (2 * len(self.k_hi) * out_dim)))
        self.cos_coefficients = nn.Parameter(torch.randn(len(k), out_dim) * (init_std / self.scale))
        self.sin_coefficients = nn.Parameter(torch.randn(len(k), out_dim) * (init_std / self.scale))

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype not in (torch.float32, torch.float64):  # half precision: the formula, whose products autocast casts
            return self.forward_direct(x)
        return _FourierSum.apply(x, self.mixing(), self.k_hi, self.k_lo, self.chunk)

    def mixing(self) -> Tensor:
        """M of _FourierSum: rows [cos, sin] of the trailing waves; columns by output, then [cos, sin] of the
        leading waves (that order keeps the per-pixel products over contiguous rows of 2 * 2^hi: 3x faster)."""
        n_hi, n_lo, out_dim = len(self.k_hi), len(self.k_lo), self.cos_coefficients.shape[1]

        def by_trailing(c: Tensor) -> Tensor:  # (2^m, out) in product order -> (2^lo, out, 2^hi)
            return c.view(n_hi, n_lo, out_dim).permute(1, 2, 0) * self.scale

        a, b = by_trailing(self.cos_coefficients), by_trailing(self.sin_coefficients)
        # cos(p + q) = cos p cos q - sin p sin q, sin(p + q) = sin p cos q + cos p sin q
        return torch.cat([torch.cat([a, b], 2), torch.cat([b, -a], 2)], 0).flatten(1)

    def forward_direct(self, x: Tensor) -> Tensor:
        """The formula as written (2^m cos and sin per pixel); the reference for `forward`."""
        phase = x @ self.k.T
        return (torch.cos(phase) @ self.cos_coefficients + torch.sin(phase) @ self.sin_coefficients) * self.scale


class FNet(nn.Module):
    def __init__(self, config: FNetConfig, out_features: int, in_features: int = 2):
        super().__init__()
        w, extra = config.width, dict(init_std=config.init_std, mean_terms=config.mean_terms, chunk=config.chunk)
        self.first = FourierLayer(in_features, w, config.input_frequency, **extra)
        self.middle = nn.ModuleList(
            FourierLayer(w, w, config.hidden_frequency, **extra) for _ in range(config.depth - 1)
        )
        self.last = FourierLayer(w, out_features, config.hidden_frequency, **extra)

    def forward(self, coords: Tensor) -> Tensor:
        h = self.first(coords)
        for layer in self.middle:
            h = h + layer(h)
        # The thesis outputs 2*sigmoid - 1 for data in [-1, 1]; on our [0, 1] targets that is a plain sigmoid.
        return torch.sigmoid(self.last(h))


@register(
    "fnet", FNetConfig,
    source="deep-fourier-net thesis: Fourier layers over k in {0,1}^m, widths 6-10, depths 3-25, init N(0, 0.03^2); "
    "hidden frequency, mean terms and lr measured here (see FNetConfig)",
    knob=SizeKnob("width", 1, 10),
    sizes={"tiny": {"width": 4, "depth": 3}, "standard": {"width": 6, "depth": 4}},
    search={"lr": (0.2, 0.4, 0.7, 1.2), "hidden_frequency": (1 / 32, 1 / 16, 1 / 8)},
    batchable=False,  # its fused layer is a custom autograd.Function that vmap cannot batch
)
def fnet(config: FNetConfig, out_features: int):
    """Fourier-layer network: sums of cos/sin over binary frequency vectors, residual middle layers."""
    return FNet(config, out_features)
