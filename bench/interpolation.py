"""Reference rows: what a user gets from the training pixels without any network.

The training grid y[::2, ::2] is resampled at every pixel of the full image with torch's bilinear or bicubic
(Keys, a = -0.75) kernel; the last row and column, which lie past the grid, take the border value.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .protocol import Split

INTERPOLATIONS = ("bilinear", "bicubic")


def interpolate(image: np.ndarray, split: Split, mode: str) -> np.ndarray:
    """Reconstruct an (H, W, C) image from its alternate-pixel training grid."""
    if mode not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {mode!r}; choose from: {', '.join(INTERPOLATIONS)}")
    if split.protocol != "alternate":
        raise ValueError("interpolation references only make sense under the alternate protocol")
    height, width, _ = image.shape
    grid = torch.from_numpy(np.ascontiguousarray(image[::2, ::2])).permute(2, 0, 1)[None].double()
    gh, gw = grid.shape[-2:]
    # Pixel i sits at i/2 in training-grid units; align_corners=True maps -1..1 onto grid indices 0..n-1.
    ys = torch.arange(height, dtype=torch.float64) / 2 / (gh - 1) * 2 - 1
    xs = torch.arange(width, dtype=torch.float64) / 2 / (gw - 1) * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    sample_at = torch.stack([gx, gy], dim=-1)[None]
    out = F.grid_sample(grid, sample_at, mode=mode, padding_mode="border", align_corners=True)
    return out[0].permute(1, 2, 0).clamp(0, 1).float().numpy()
