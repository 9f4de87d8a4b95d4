"""Scores of a reconstruction against its image under a protocol's split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import metrics
from .protocol import Split


@dataclass(frozen=True)
class Scores:
    psnr_train: float  # on the pixels the fit saw
    psnr_test: float  # on the held-out pixels (FFN's test PSNR); all pixels under the `full` protocol
    psnr_full: float  # on the whole image
    ssim_full: float


def score(image: np.ndarray, reconstruction: np.ndarray, split: Split) -> Scores:
    """`image` and `reconstruction` are (H, W, C) arrays in [0, 1]."""
    return Scores(
        psnr_train=metrics.psnr(image[split.train], reconstruction[split.train]),
        psnr_test=metrics.psnr(image[split.test], reconstruction[split.test]),
        psnr_full=metrics.psnr(image, reconstruction),
        ssim_full=metrics.ssim(image, reconstruction),
    )
