"""Pictures people would rather look at than read: reconstruction grids with error maps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from fitbench.datasets.image_io import to_uint8  # noqa: E402

ERROR_RANGE = 0.25  # error maps share one colour scale so representations compare at a glance
ERROR_COLOURMAP = "inferno"


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Save an (H, W, C) float image in [0, 1] as an 8-bit PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = to_uint8(pixels)
    Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(path)


def load_png(path: Path) -> np.ndarray:
    array = np.asarray(Image.open(path), dtype=np.float32) / 255
    return array[..., None] if array.ndim == 2 else array


GRID_CELL = 256  # pixels along the longer side of each panel of a reconstruction grid
GRID_GAP = 10  # pixels between panels and around the grid


def error_palette() -> np.ndarray:
    """The error maps' 256 colours (uint8 RGB): level i shows a mean |error| of i / 255 * ERROR_RANGE."""
    return to_uint8(plt.get_cmap(ERROR_COLOURMAP)(np.arange(256) / 255)[:, :3])


def error_levels(reconstruction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(H, W) uint8 levels of the mean |error| over channels on the fixed scale; floats in [0, 1] in."""
    return to_uint8(np.abs(reconstruction - truth).mean(axis=2) / ERROR_RANGE)


def reconstruction_grid(truth: np.ndarray, panels: list[tuple[str, np.ndarray]], title: str, path: Path) -> None:
    """Top row: ground truth and each reconstruction; bottom row: the training pixels and each |error| map, with
    the error scale's bar on the right. Composed with PIL, not matplotlib: a figure of 18 columns took ~1.8 s to
    lay out and render, and the fitting suite draws one per image after the fits (58 s of the main job's end; now
    ~0.3 s each, most of it the PNG's compression)."""
    training = np.zeros_like(truth)
    training[::2, ::2] = truth[::2, ::2]
    palette = error_palette()
    rows = [[("ground truth", truth), *panels],
            [("training pixels", training), *(("|error|", palette[error_levels(p, truth)]) for _, p in panels)]]
    height, width = truth.shape[:2]
    scale = GRID_CELL / max(height, width)
    cell = (max(1, round(width * scale)), max(1, round(height * scale)))
    font, title_font = ImageFont.load_default(size=12), ImageFont.load_default(size=15)
    label_height, title_height, bar_width = 34, 30, 90
    canvas = Image.new("RGB", (GRID_GAP + len(rows[0]) * (cell[0] + GRID_GAP) + bar_width,
                               title_height + 2 * (label_height + cell[1]) + 2 * GRID_GAP), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((canvas.width / 2, 8), title, fill="black", font=title_font, anchor="ma")
    for row, cells in enumerate(rows):
        top = title_height + row * (label_height + cell[1] + GRID_GAP)
        for column, (label, pixels) in enumerate(cells):
            left = GRID_GAP + column * (cell[0] + GRID_GAP)
            draw.multiline_text((left + cell[0] / 2, top + 2), label, fill="black", font=font, anchor="ma",
                                align="center")
            picture = Image.fromarray(pixels if pixels.dtype == np.uint8 else to_uint8(np.repeat(
                pixels, 3 // pixels.shape[2], axis=2)))
            canvas.paste(picture.resize(cell, Image.NEAREST if scale >= 1 else Image.BOX), (left, top + label_height))
    if panels:
        _error_bar(draw, canvas, palette, GRID_GAP + len(rows[0]) * (cell[0] + GRID_GAP),
                   title_height + 2 * label_height + cell[1] + GRID_GAP, cell[1], font)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, compress_level=3)  # zlib's default 6 took 0.67 s for 18 columns, 3 takes 0.23 (6 % larger)


def _error_bar(draw, canvas: Image.Image, palette: np.ndarray, left: int, top: int, height: int, font) -> None:
    """The error maps' colour scale, 0 at the bottom to ERROR_RANGE at the top, with ticks every 0.05."""
    levels = np.linspace(255, 0, height).round().astype(int)
    canvas.paste(Image.fromarray(np.repeat(palette[levels][:, None, :], 14, axis=1)), (left, top))
    for value in np.arange(0, ERROR_RANGE + 1e-9, 0.05):
        y = top + (1 - value / ERROR_RANGE) * (height - 1)
        draw.line([(left + 14, y), (left + 18, y)], fill="black")
        draw.text((left + 21, y), f"{value:.2f}", fill="black", font=font, anchor="lm")
    draw.text((left, top - 6), "mean |error|", fill="black", font=font, anchor="ld")


def critical_difference_diagram(test, title: str, path: Path) -> None:
    """Save `critical_difference_figure` as a PNG."""
    figure = critical_difference_figure(test, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def critical_difference_figure(test, title: str):
    """Demšar's (2006) critical-difference diagram of a `fitbench.stats.Friedman` test: each method at its mean
    rank on an axis (1 = best, on the left), and a bar joining methods whose mean ranks lie within one critical
    difference of each other (the test cannot tell them apart)."""
    ranks = dict(sorted(test.mean_ranks.items(), key=lambda item: item[1]))
    methods, k = list(ranks), len(ranks)
    half = (k + 1) // 2
    groups = test.groups()
    below = 0.5 + 0.22 * len(groups)  # room under the axis for the bars, then the labels
    figure, ax = plt.subplots(figsize=(8, 1.6 + 0.3 * (max(half, k - half) + below)))
    ax.set_xlim(0.5, k + 0.5)  # rank 1 (best) on the left
    ax.set_ylim(-(max(half, k - half) + below + 0.8), 1.6)
    ax.axis("off")
    ax.hlines(0, 1, k, color="black", linewidth=1)
    for tick in range(1, k + 1):
        ax.vlines(tick, 0, 0.15, color="black", linewidth=1)
        ax.text(tick, 0.3, str(tick), ha="center", fontsize=8)
    cd_start = 1
    ax.hlines(1.2, cd_start, cd_start + test.critical_difference, color="tab:red", linewidth=2)
    ax.text(cd_start + test.critical_difference / 2, 1.35, f"CD = {test.critical_difference:.2f}", ha="center",
            fontsize=8, color="tab:red")
    for i, method in enumerate(methods):  # best half labelled on the left, the rest on the right
        left = i < half
        level = -below - (i + 1 if left else k - i)
        ax.vlines(ranks[method], level, 0, color="gray", linewidth=0.8)
        end = 0.5 if left else k + 0.5
        ax.hlines(level, ranks[method], end, color="gray", linewidth=0.8)
        ax.text(end + (-0.1 if left else 0.1), level, f"{method} ({ranks[method]:.2f})",
                ha="right" if left else "left", va="center", fontsize=8)
    for j, group in enumerate(groups):
        ax.hlines(-0.35 - 0.22 * j, ranks[group[0]] - 0.05, ranks[group[-1]] + 0.05, color="black", linewidth=3)
    ax.set_title(f"{title}\nFriedman p = {test.p:.2g} over {test.images} images; bars: not distinguishable "
                 "(Nemenyi, 5 %)", fontsize=9)
    return figure
