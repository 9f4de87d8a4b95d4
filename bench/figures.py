"""Pictures people would rather look at than read: reconstruction grids with error maps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ERROR_RANGE = 0.25  # error maps share one colour scale so representations compare at a glance


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Save an (H, W, C) float image in [0, 1] as an 8-bit PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)
    Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(path)


def load_png(path: Path) -> np.ndarray:
    array = np.asarray(Image.open(path), dtype=np.float32) / 255
    return array[..., None] if array.ndim == 2 else array


def reconstruction_grid(truth: np.ndarray, panels: list[tuple[str, np.ndarray]], title: str, path: Path) -> None:
    """Top row: ground truth and each reconstruction; bottom row: the training pixels and each |error| map."""
    columns = 1 + len(panels)
    figure, axes = plt.subplots(2, columns, figsize=(2.4 * columns, 5.2), squeeze=False, layout="constrained")
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
        figure.colorbar(image, ax=axes[1, :].tolist(), shrink=0.8, label="mean |error|")
    figure.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
