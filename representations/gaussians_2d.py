"""2D Gaussian splatting for images: GaussianImage (Zhang et al., ECCV 2024; Xinjie-Q/GaussianImage).

N anisotropic Gaussians, each a position, a Cholesky factor L = [[l11, 0], [l21, l22]] of its covariance
Sigma = L L^T (3 values) and a colour (C values): 8 parameters each on RGB. A pixel's value is the plain sum of the
Gaussians' colours weighted by exp(-d^T Sigma^-1 d / 2) (accumulated summation: no sorting, no alpha blending),
clamped to [0, 1], as in GaussianImage_Cholesky (gaussianimage_cholesky.py) and its `rasterize_gaussians_sum`.

Parametrisation and initialisation are the repository's, in pixels of a `resolution`-pixel side: positions
tanh(p) in (-1, 1) map to pixel centres (tanh(p) + 1) R / 2 with p = atanh(U(-1, 1)); L = raw + (0.5, 0, 0.5) with
raw ~ U(0, 1) (so l11, l22 in [0.5, 1.5) pixels); colours ~ U(0, 1); opacity fixed at 1 (a buffer there, not stored
here). Coordinates (x, y) = (column / W, row / H) sit at pixel (x R, y R), the rasteriser's pixel (j, i). R follows
the training grid (its side, unless set), so frame pixels are training pixels. One deviation in the initialisation:
where the Gaussians are sparser than one per frame pixel, L starts scaled by their mean spacing R / sqrt(N), so that
they cover the image at the start at any image size (the repository fits as many Gaussians as a fraction of pixels).

Rendering is culled, in plain PyTorch: each Gaussian is cut off where its weight falls below 1/255 (the
rasteriser's threshold), i.e. inside a box of radius sqrt(2 ln 255 lambda_max); the points in the tiles its box
touches are its candidates (`SplatPlan`), evaluated `chunk` at a time and summed with index_add. A custom backward
recomputes each chunk instead of keeping it, so memory stays bounded at any image size and Gaussian count.
(The CUDA rasteriser applies the same 1/255 threshold but only within the tiles of a 3-sigma box, so near the box
edge its footprint depends on the tiling; here it does not.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .kept import KeptBlocks
from .registry import RepresentationConfig, SizeKnob, TrainingGrid, register, require

SIGMA_MAX = math.log(255.0)  # exp(-sigma) >= 1/255: the rasteriser skips weights below 1/255
MAX_GAUSSIANS = 1 << 22
MAX_RESOLUTION = 1 << 15


@dataclass
class Gaussians2DConfig(RepresentationConfig):
    num_gaussians: int = 50_000  # GaussianImage train.py's --num_points default (the paper's Kodak table: up to 70k)
    # Pixels per side of the frame the positions and Cholesky factors live in. GaussianImage works in the pixels of
    # the image it fits: None (the default) takes the training grid's side when the model is built, so a fit's
    # frame pixels are its training pixels at any image size (and a stream stores the number).
    resolution: int | None = None
    # Culling tile side in pixels; speed only. GaussianImage's CUDA blocks are 16 x 16; on this CPU 8 was ~1.7x faster
    # per step than 16 at the standard size (4096 Gaussians, 256^2, both protocols), 4 slower again.
    tile: int = 8
    chunk: int = 1 << 19  # most (Gaussian, pixel) pairs evaluated at once: bounds memory; speed only
    # GaussianImage train.py: lr 1e-3 with the Adan optimiser, halved every 20000 of its 50000 steps. The engine
    # uses Adam (with the rate and schedule given here).
    lr: float = 1e-3

    def validate(self) -> None:
        super().validate()
        require(1 <= self.num_gaussians <= MAX_GAUSSIANS, "num_gaussians", f"in 1..{MAX_GAUSSIANS}")
        require(self.resolution is None or 1 <= self.resolution <= MAX_RESOLUTION, "resolution",
                f"None (the training grid's side) or in 1..{MAX_RESOLUTION} pixels")
        require(1 <= self.tile <= 1024, "tile", "in 1..1024 pixels")
        require(1 << 10 <= self.chunk <= 1 << 26, "chunk", "in 2^10..2^26 pairs")

    def follow_grid(self, grid: TrainingGrid) -> dict:
        return {"resolution": grid.side} if self.resolution is None else {}


class Gaussians2D(nn.Module):
    # The splat plan is rebuilt every step from the Gaussians' current boxes, with sizes read on the host: a
    # captured CUDA graph cannot replay that, so the engine steps this model eagerly.
    graph_capturable = False

    def __init__(self, config: Gaussians2DConfig, out_features: int):
        super().__init__()
        n = config.num_gaussians
        self.resolution, self.tile, self.chunk = config.resolution, config.tile, config.chunk
        # atanh(2 (U - 1/2)) as in the repository, kept off +-1 (U = 0 would give an infinite position)
        self.position = nn.Parameter(torch.atanh((2 * torch.rand(n, 2) - 1).clamp(-1 + 1e-6, 1 - 1e-6)))
        # L = raw + (0.5, 0, 0.5) in forward, the repository's bound, with raw ~ U(0, 1) there: Gaussians about a
        # pixel wide, as many as a fraction of the pixels. Here L starts `spread` times that, spread = the mean
        # spacing of the Gaussians in frame pixels where they are sparser than one per pixel, so that they cover the
        # image at the start whatever the image size and count (the repository's init where they are as dense).
        spread = max(1.0, config.resolution / math.sqrt(n))
        offset = torch.tensor([0.5, 0.0, 0.5])
        self.cholesky = nn.Parameter(spread * (torch.rand(n, 3) + offset) - offset)
        self.colour = nn.Parameter(torch.rand(n, out_features))

    def centres(self) -> Tensor:
        """(N, 2) pixel positions (x, y)."""
        return (torch.tanh(self.position) + 1) * (self.resolution / 2)

    def conics(self) -> tuple[Tensor, Tensor]:
        """Sigma^-1 as (A, B, C), d^T Sigma^-1 d = A dx^2 + 2 B dx dy + C dy^2, and each Gaussian's box radius in
        pixels (0 for a degenerate one, which is skipped as the rasteriser skips it)."""
        l11, l21, l22 = (self.cholesky + self.cholesky.new_tensor([0.5, 0.0, 0.5])).unbind(1)
        xx, xy, yy = l11 * l11, l11 * l21, l21 * l21 + l22 * l22  # Sigma = L L^T
        det = (l11 * l22) ** 2
        valid = det > 1e-12
        det = torch.where(valid, det, torch.ones_like(det))  # no 1/0 (nor its NaN gradient) where skipped
        conic = torch.stack([yy / det, -xy / det, xx / det], 1)
        with torch.no_grad():  # the rasteriser's bound on the larger eigenvalue, widened to the 1/255 cut-off
            middle = (xx + yy) / 2
            largest = middle + torch.sqrt(torch.clamp(middle * middle - det, min=0.1))
            radius = torch.ceil(torch.sqrt(2 * SIGMA_MAX * largest)) * valid
        return conic, radius

    @torch.compiler.disable  # data-dependent index bookkeeping: nothing for torch.compile to fuse, only graph breaks
    def forward(self, coords: Tensor) -> Tensor:
        conic, radius = self.conics()
        centres = self.centres()
        points = coords.detach() * self.resolution
        plan = SplatPlan(points, centres.detach(), radius, self.resolution, self.tile, self.chunk)
        return SplatSum.apply(points, centres, conic, self.colour, plan).clamp(0, 1)

    def extra_repr(self) -> str:
        return f"gaussians={len(self.position)}, resolution={self.resolution}, tile={self.tile}"


class SplatPlan:
    """Which (Gaussian, point) pairs can be non-zero, as (Gaussian, bin) pairs enumerated chunk by chunk.

    Points are sorted into `tile`-pixel tiles (points outside [0, resolution)^2 join the nearest edge tile) and each
    tile's points into bins of `bin_size` points, laid out as a padded (bins, bin_size) table so that a pair's work is
    one contiguous row. Each Gaussian pairs with every bin of the tiles its box touches. Consecutive Gaussians are
    grouped so that a group's pairs cover about `chunk` points (a single Gaussian's are never split). Index
    bookkeeping only, without gradients.
    """

    def __init__(self, points: Tensor, centres: Tensor, radius: Tensor, resolution: int, tile: int, chunk: int):
        device = points.device
        self.tiles_per_side = tiles = -(-resolution // tile)
        xy = (points / tile).floor().long().clamp(0, tiles - 1)
        point_tile = xy[:, 1] * tiles + xy[:, 0]
        order = torch.argsort(point_tile, stable=True)
        sorted_tile = point_tile[order]
        tile_count = torch.bincount(point_tile, minlength=tiles * tiles)
        self.bin_size = size = max(1, min(tile * tile, int(tile_count.max()) if len(points) else 1))
        self.tile_bins = -(-tile_count // size)
        self.first_bin = torch.cumsum(self.tile_bins, 0) - self.tile_bins
        rank = torch.arange(len(points), device=device) - (torch.cumsum(tile_count, 0) - tile_count)[sorted_tile]
        slot = (self.first_bin[sorted_tile] + rank // size) * size + rank % size
        self.slot = torch.empty_like(slot).index_copy_(0, order, slot)  # point p sits at table slot self.slot[p]
        self.bins = int(self.tile_bins.sum())
        # Each Gaussian's box in tiles, and its pairs' points from a summed-area table of bins per tile
        low = ((centres - radius[:, None]) / tile).floor().long()
        high = ((centres + radius[:, None]) / tile).floor().long()
        inside = (radius > 0) & (high >= 0).all(1) & (low < tiles).all(1)
        self.low, high = low.clamp(0, tiles - 1), high.clamp(0, tiles - 1)
        self.box_width = (high[:, 0] - self.low[:, 0] + 1) * inside
        self.box_height = (high[:, 1] - self.low[:, 1] + 1) * inside
        table = torch.zeros(tiles + 1, tiles + 1, dtype=torch.long, device=device)
        table[1:, 1:] = self.tile_bins.view(tiles, tiles).cumsum(0).cumsum(1)
        x0, y0 = self.low[:, 0], self.low[:, 1]
        x1, y1 = x0 + self.box_width, y0 + self.box_height
        self.work = (table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]) * size  # points per Gaussian
        total = self.work.cumsum(0)
        marks = torch.arange(1, int(total[-1]) // chunk + 1, device=device) * chunk  # every `chunk` points
        cuts = torch.searchsorted(total, marks, right=True).tolist()
        self.bounds = [0, *sorted(set(cuts) - {0, len(self.work)}), len(self.work)]

    def table(self, values: Tensor) -> Tensor:
        """Per-point values (N, C) laid out as the padded (bins, bin_size, C) table (padding: zeros)."""
        table = values.new_zeros(self.bins * self.bin_size, values.shape[1])
        return table.index_copy_(0, self.slot, values).view(self.bins, self.bin_size, -1)

    def chunks(self):
        """(Gaussian index, bin index) pairs, one chunk at a time."""
        for start, stop in zip(self.bounds, self.bounds[1:]):
            yield self._pairs(start, stop)

    def _pairs(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        device = self.low.device
        boxes = (self.box_width * self.box_height)[start:stop]  # tiles per Gaussian
        gaussian = torch.repeat_interleave(torch.arange(start, stop, device=device), boxes)
        local = torch.arange(len(gaussian), device=device) - torch.repeat_interleave(boxes.cumsum(0) - boxes, boxes)
        width = self.box_width[gaussian]
        tile = (self.low[gaussian, 1] + local // width) * self.tiles_per_side + self.low[gaussian, 0] + local % width
        bins = self.tile_bins[tile]
        pair_gaussian = torch.repeat_interleave(gaussian, bins)
        local = torch.arange(len(pair_gaussian), device=device) - torch.repeat_interleave(bins.cumsum(0) - bins, bins)
        return pair_gaussian, torch.repeat_interleave(self.first_bin[tile], bins) + local


def gaussian_weights(points: Tensor, centres: Tensor, conic: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """exp(-sigma), sigma = d^T Sigma^-1 d / 2 with d = centre - point, cut to 0 below 1/255; and d = (dx, dy).

    `points` (..., M, 2) against one Gaussian per row: `centres` (..., 2), `conic` (..., 3).
    """
    dx = centres[..., None, 0] - points[..., 0]
    dy = centres[..., None, 1] - points[..., 1]
    sigma = 0.5 * (conic[..., None, 0] * dx * dx + conic[..., None, 2] * dy * dy) + conic[..., None, 1] * dx * dy
    # clamped before exp: far tails would underflow to denormal floats, which are ~10x slower on CPU
    return torch.exp(-sigma.clamp(0, SIGMA_MAX)) * ((sigma >= 0) & (sigma <= SIGMA_MAX)), dx, dy


class SplatSum(torch.autograd.Function):
    """values[p] = sum over pairs (g, p) of colour[g] exp(-sigma_gp), and its gradient, chunk by chunk.

    Backward reuses each chunk's weights and offsets while they fit in kept.KEEP_FLOATS (20 % off a step of the quick
    preset's 1,536 Gaussians) and recomputes the rest from the saved per-Gaussian tensors, so memory stays bounded.
    With s = dL/dsigma per pair: dL/dcentre = sum s Sigma^-1 d, dL/d(A, B, C) = sum s (dx^2 / 2, dx dy, dy^2 / 2),
    and dsigma-weights: d exp(-sigma)/dsigma = -exp(-sigma).
    """

    @staticmethod
    def forward(ctx, points: Tensor, centres: Tensor, conic: Tensor, colour: Tensor, plan: SplatPlan) -> Tensor:
        table_points = plan.table(points)
        table = colour.new_zeros(plan.bins, plan.bin_size, colour.shape[1])
        ctx.kept = KeptBlocks()
        for gaussian, bins in plan.chunks():
            weight, dx, dy = gaussian_weights(table_points.index_select(0, bins), centres.index_select(0, gaussian),
                                              conic.index_select(0, gaussian))
            table.index_add_(0, bins, weight[..., None] * colour.index_select(0, gaussian)[:, None, :])
            ctx.kept.offer(weight, dx, dy)
        ctx.save_for_backward(points, centres, conic, colour)
        ctx.plan = plan
        return table.view(-1, colour.shape[1]).index_select(0, plan.slot)

    @staticmethod
    def backward(ctx, grad_values: Tensor):
        points, centres, conic, colour = ctx.saved_tensors
        plan = ctx.plan
        table_points, grad_table = plan.table(points), plan.table(grad_values)
        grad_centres, grad_conic, grad_colour = (torch.zeros_like(t) for t in (centres, conic, colour))
        for (gaussian, bins), kept in zip(plan.chunks(), ctx.kept):
            g_conic, g_colour = conic.index_select(0, gaussian), colour.index_select(0, gaussian)
            weight, dx, dy = kept or gaussian_weights(table_points.index_select(0, bins),
                                                      centres.index_select(0, gaussian), g_conic)
            grad = grad_table.index_select(0, bins)  # (pairs, bin_size, C)
            grad_colour.index_add_(0, gaussian, (grad * weight[..., None]).sum(1))
            s = -weight * (grad * g_colour[:, None, :]).sum(2)  # dL/dsigma
            sx, sy = (s * dx).sum(1), (s * dy).sum(1)
            grad_conic.index_add_(0, gaussian, torch.stack([0.5 * (s * dx * dx).sum(1), (s * dx * dy).sum(1),
                                                            0.5 * (s * dy * dy).sum(1)], 1))
            grad_centres.index_add_(0, gaussian, torch.stack([g_conic[:, 0] * sx + g_conic[:, 1] * sy,
                                                              g_conic[:, 1] * sx + g_conic[:, 2] * sy], 1))
        return None, grad_centres, grad_conic, grad_colour, None


@register(
    "gaussians_2d", Gaussians2DConfig,
    source="Zhang et al. 2024 (GaussianImage), Xinjie-Q/GaussianImage gaussianimage_cholesky.py and train.py: position "
    "+ Cholesky factor + colour (8 values on RGB), accumulated summation, the repository's initialisation, lr 1e-3 "
    "(Adan there, Adam here)",
    knob=SizeKnob("num_gaussians", 1, 1 << 20),
    # resolution follows the training grid (Gaussians2DConfig.resolution). tiny: 300 Gaussians
    # (2.4k values on RGB) at 10x the source rate, which is for 50,000 steps where the tiny presets run 100-300 (as
    # siren's tiny size does); standard: 4096 Gaussians (33k values), the other representations' size class.
    sizes={"tiny": {"num_gaussians": 300, "lr": 1e-2}, "standard": {"num_gaussians": 4096}},
    # No activation or encoding to tune, so the second axis is the learning-rate schedule (GaussianImage halves its
    # rate every 20000 steps).
    search={"lr": (1e-3, 3e-3, 1e-2, 3e-2), "schedule": ("constant", "cosine", "exponential")},
    # Culling gives every model its own data-dependent pair lists, and the custom backward has no vmap rule.
    batchable=False,
)
def gaussians_2d(config: Gaussians2DConfig, out_features: int):
    """N anisotropic 2D Gaussians (position, Cholesky factor, colour), summed, culled by tiles."""
    return Gaussians2D(config, out_features)
