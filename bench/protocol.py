"""Which pixels a fit trains on and which it is scored on.

`alternate` is the FFN protocol: train on y[::2, ::2]; the test PSNR is on the held-out y[1::2, 1::2].
`full` trains on every pixel (compression uses it); its test pixels are all pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

PROTOCOLS = ("alternate", "full")


def coordinate_grid(height: int, width: int) -> torch.Tensor:
    """(H*W, 2) coordinates (x, y) = (col / W, row / H) in [0, 1), row-major, as in the FFN code."""
    ys = torch.arange(height, dtype=torch.float32) / height
    xs = torch.arange(width, dtype=torch.float32) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)


@dataclass(frozen=True)
class Split:
    """Boolean (H, W) masks of training and test pixels."""

    protocol: str
    train: np.ndarray
    test: np.ndarray


def make_split(protocol: str, height: int, width: int) -> Split:
    if protocol == "alternate":
        train = np.zeros((height, width), dtype=bool)
        train[::2, ::2] = True
        test = np.zeros((height, width), dtype=bool)
        test[1::2, 1::2] = True
        return Split(protocol, train, test)
    if protocol == "full":
        every = np.ones((height, width), dtype=bool)
        return Split(protocol, every, every)
    raise ValueError(f"unknown protocol {protocol!r}; choose from: {', '.join(PROTOCOLS)}")


def training_grid(protocol: str, height: int, width: int):
    """The grid of pixels a fit under `protocol` trains on, from which the settings that follow the image derive."""
    from fitbench.representations import TrainingGrid

    train = make_split(protocol, height, width).train
    return TrainingGrid(int(train.any(1).sum()), int(train.any(0).sum()))
