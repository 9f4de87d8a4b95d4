"""Pictures people would rather look at than read: reconstruction grids with error maps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from fitbench.datasets.image_io import to_uint8  # noqa: E402

ERROR_RANGE = 0.25  # error maps share one colour scale so representations compare at a glance


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Save an (H, W, C) float image in [0, 1] as an 8-bit PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = to_uint8(pixels)
    Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(path)


def load_png(path: Path) -> np.ndarray:
    array = np.asarray(Image.open(path), dtype=np.float32) / 255
    return array[..., None] if array.ndim == 2 else array


def reconstruction_grid(truth: np.ndarray, panels: list[tuple[str, np.ndarray]], title: str, path: Path) -> None:
    """Top row: ground truth and each reconstruction; bottom row: the training pixels and each |error| map."""
    columns = 1 + len(panels)
    # Fixed margins, not layout="constrained": its solver took 2/3 of the 2.7 s an 18-column grid cost, and the
    # fitting suite draws one grid per image after the fits.
    width = 2.4 * columns + 0.9  # inches: a column per image, and the colour bar's strip on the right
    figure, axes = plt.subplots(2, columns, figsize=(width, 5.2), squeeze=False,
                                gridspec_kw={"left": 0.1 / width, "right": 1 - 1.0 / width, "top": 0.86,
                                             "bottom": 0.03, "wspace": 0.06, "hspace": 0.22})
    gray = truth.shape[2] == 1

    def show(ax, pixels, label):
        ax.imshow(pixels[..., 0] if gray else pixels, cmap="gray" if gray else None, vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(label, fontsize=8)

    show(axes[0, 0], truth, "ground truth")
    training = np.zeros_like(truth)
    training[::2, ::2] = truth[::2, ::2]
    show(axes[1, 0], training, "training pixels")
    for column, (label, pixels) in enumerate(panels, 1):
        show(axes[0, column], pixels, label)
        error = np.abs(pixels - truth).mean(axis=2)
        image = axes[1, column].imshow(error, cmap="inferno", vmin=0, vmax=ERROR_RANGE)
        axes[1, column].set_title("|error|", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if panels:
        strip = figure.add_axes((1 - 0.8 / width, 0.08, 0.12 / width, 0.34))
        figure.colorbar(image, cax=strip, label="mean |error|")
    figure.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


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
