"""Image quality metrics on values in [0, 1].

SSIM follows Wang et al. 2004 as `skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1.0)` computes it (a test checks they agree), in float64. It is written in
torch and runs on whichever device its inputs are on, but every caller (bench/scoring.py, the compression codecs)
scores one pair of images at a time, given as NumPy arrays, so in practice it runs on the CPU, one pair per call.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

MAX_PSNR = 100.0  # reported for an exact match, where -10 log10(0) would be infinite (JSON has no inf)


def mse(a, b) -> float:
    a, b = _as_tensor(a).clamp(0, 1), _as_tensor(b).clamp(0, 1)
    return float(torch.mean((a.double() - b.double()) ** 2))


def psnr_from_mse(value: float) -> float:
    if not math.isfinite(value):
        return float("nan")
    return MAX_PSNR if value <= 10 ** (-MAX_PSNR / 10) else -10.0 * math.log10(value)


def psnr(a, b) -> float:
    """PSNR in dB between two images with values in [0, 1] (both clamped first)."""
    return psnr_from_mse(mse(a, b))


def _gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)  # scipy.ndimage's rule, which skimage uses
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    window = torch.exp(-(x**2) / (2 * sigma**2))
    return window / window.sum()


SSIM_MIN_SIDE = len(_gaussian_window())  # SSIM cannot score an image with a smaller side than its window


def ssim(a, b) -> float:
    """Mean SSIM of two (H, W) or (H, W, C) images in [0, 1]; channels are averaged, borders excluded."""
    a, b = _as_tensor(a).clamp(0, 1).double(), _as_tensor(b).clamp(0, 1).double()
    if a.shape != b.shape:
        raise ValueError(f"ssim needs images of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    x = torch.stack([a, b]).permute(0, 3, 1, 2)  # (2, C, H, W)
    window = _gaussian_window().to(x.device)
    if min(x.shape[-2:]) < len(window):
        raise ValueError(f"ssim needs images of at least {len(window)} pixels a side, got {tuple(a.shape[:2])}")

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable Gaussian, 'valid' region only (skimage crops the border)
        c = t.shape[1]
        t = F.conv2d(t, window.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
        return F.conv2d(t, window.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)

    mu_a, mu_b = blur(x[:1]), blur(x[1:])
    var_a = blur(x[:1] ** 2) - mu_a**2
    var_b = blur(x[1:] ** 2) - mu_b**2
    cov = blur(x[:1] * x[1:]) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
