"""Reference rows: what a user gets from the training pixels without any network.

The training grid y[::2, ::2] is resampled at every pixel of the full image (pixel i sits at i / 2 in grid units)
with a separable kernel: bilinear, cubic convolution (Keys 1981) with a = -0.75 (`bicubic`, as torch and OpenCV)
or a = -0.5 (`bicubic_keys`, the value Keys recommends, as PIL), and Lanczos-3. Taps past the grid take the border
value. A verdict is drawn against the strongest of them on each table (bench/report.py names which).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .protocol import Split


def _cubic(a: float) -> Callable[[np.ndarray], np.ndarray]:
    def kernel(x: np.ndarray) -> np.ndarray:
        x = np.abs(x)
        near = ((a + 2) * x - (a + 3)) * x * x + 1
        far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
        return np.where(x <= 1, near, np.where(x < 2, far, 0.0))
    return kernel


def _lanczos(lobes: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: np.where(np.abs(x) < lobes, np.sinc(x) * np.sinc(x / lobes), 0.0)


def _linear(x: np.ndarray) -> np.ndarray:
    return np.clip(1 - np.abs(x), 0, None)


# name -> (kernel, support radius in grid pixels)
KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int]] = {
    "bilinear": (_linear, 1),
    "bicubic": (_cubic(-0.75), 2),
    "bicubic_keys": (_cubic(-0.5), 2),
    "lanczos3": (_lanczos(3), 3),
}
INTERPOLATIONS = tuple(KERNELS)


def resampling_matrix(output: int, grid: int, mode: str) -> np.ndarray:
    """(output, grid) weights: output pixel i from grid pixels near i / 2, taps clamped to the border, each row
    normalised to sum to 1 (Lanczos' weights do not by themselves)."""
    kernel, radius = KERNELS[mode]
    position = np.arange(output) / 2
    taps = np.floor(position)[:, None] + np.arange(-radius + 1, radius + 1)[None, :]
    weights = kernel(position[:, None] - taps)
    weights /= weights.sum(axis=1, keepdims=True)
    matrix = np.zeros((output, grid))
    np.add.at(matrix, (np.repeat(np.arange(output), taps.shape[1]), np.clip(taps, 0, grid - 1).astype(int).ravel()),
              weights.ravel())
    return matrix


def interpolate(image: np.ndarray, split: Split, mode: str) -> np.ndarray:
    """Reconstruct an (H, W, C) image from its alternate-pixel training grid."""
    if mode not in KERNELS:
        raise ValueError(f"unknown interpolation {mode!r}; choose from: {', '.join(INTERPOLATIONS)}")
    if split.protocol != "alternate":
        raise ValueError("interpolation references only make sense under the alternate protocol")
    height, width, _ = image.shape
    grid = np.asarray(image[::2, ::2], dtype=np.float64)
    rows, columns = resampling_matrix(height, grid.shape[0], mode), resampling_matrix(width, grid.shape[1], mode)
    out = np.einsum("ij,jkc,lk->ilc", rows, grid, columns, optimize=True)  # two products; unoptimised, 1 s at 128^2
    return out.clip(0, 1).astype(np.float32)
