"""What every figure of the page shares: one colour per method across all plots, and the error-map colour scale
of the suite's own grids (bench/figures.py), so a map here reads the same as one there.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib.colors
import numpy as np
from PIL import Image

from fitbench.datasets.image_io import to_uint8

from ..figures import ERROR_RANGE, plt

ERROR_COLOURMAP = "inferno"
REFERENCE_STYLE = {"color": "0.35", "linestyle": "--", "linewidth": 1}


def colours(names: Iterable[str]) -> dict[str, tuple]:
    """A fixed colour per name (sorted, so a method keeps its colour whatever else a folder holds)."""
    palette = plt.get_cmap("tab10" if len(set(names)) <= 10 else "tab20")
    return {name: palette(i % palette.N) for i, name in enumerate(sorted(set(names)))}


def error_map(reconstruction: np.ndarray, truth: np.ndarray) -> Image.Image:
    """Mean |error| over channels on the suite's fixed scale, as a 256-colour palette image (a third of RGB's bytes)."""
    error = np.abs(reconstruction.astype(np.float32) - truth.astype(np.float32)).mean(axis=2) / 255
    levels = to_uint8(error / ERROR_RANGE)
    palette = to_uint8(plt.get_cmap(ERROR_COLOURMAP)(np.arange(256) / 255)[:, :3])  # colours are already in [0, 1]
    picture = Image.fromarray(levels).convert("P")  # index = level; the palette below colours it
    picture.putpalette(palette.tobytes())
    return picture


def error_legend_gradient(stops: int = 6) -> str:
    """The colour scale as a CSS gradient, for the legend beside the error maps."""
    colourmap = plt.get_cmap(ERROR_COLOURMAP)
    colours_css = ", ".join(matplotlib.colors.to_hex(colourmap(i / (stops - 1))) for i in range(stops))
    return f"linear-gradient(to right, {colours_css})"
