"""The two types every loader shares: the sample it returns and the error it raises."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ImageSample:
    """One image, ready to fit.

    Attributes:
        name: stable id used in result records, e.g. ``"camera"``, ``"natural-03"`` or a file stem.
        pixels: float32 array of shape (H, W, C) with H == W == the requested size, C in {1, 3}, values in [0, 1].
        source: where it came from, e.g. ``"skimage.data.camera"`` or a file path.
        notes: conversions applied on the way, e.g. ``("RGBA -> RGB (alpha dropped)",)``, for the CLI to print.
    """

    name: str
    pixels: np.ndarray
    source: str
    notes: tuple[str, ...] = ()


class DatasetError(ValueError):
    """An image set or file cannot be used; the message is one line naming the file or value and what to do."""
