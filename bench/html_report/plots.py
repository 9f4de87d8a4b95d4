"""What every figure of the page shares: one colour per method across all plots, and the error-map colour scale
of the suite's own grids (bench/figures.py), so a map here reads the same as one there.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib.colors
import numpy as np
from PIL import Image

from ..figures import ERROR_COLOURMAP, error_levels, error_palette, plt

REFERENCE_STYLE = {"color": "0.35", "linestyle": "--", "linewidth": 1}


def colours(names: Iterable[str]) -> dict[str, tuple]:
    """A fixed colour per name (sorted, so a method keeps its colour whatever else a folder holds)."""
    palette = plt.get_cmap("tab10" if len(set(names)) <= 10 else "tab20")
    return {name: palette(i % palette.N) for i, name in enumerate(sorted(set(names)))}


def error_map(reconstruction: np.ndarray, truth: np.ndarray) -> Image.Image:
    """Mean |error| over channels on the suite's fixed scale, as a 256-colour palette image (a third of RGB's bytes)."""
    levels = error_levels(reconstruction.astype(np.float32) / 255, truth.astype(np.float32) / 255)
    picture = Image.fromarray(levels).convert("P")  # index = level; the palette below colours it
    picture.putpalette(error_palette().tobytes())
    return picture


def error_legend_gradient(stops: int = 6) -> str:
    """The colour scale as a CSS gradient, for the legend beside the error maps."""
    colourmap = plt.get_cmap(ERROR_COLOURMAP)
    colours_css = ", ".join(matplotlib.colors.to_hex(colourmap(i / (stops - 1))) for i in range(stops))
    return f"linear-gradient(to right, {colours_css})"
