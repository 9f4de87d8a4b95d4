"""The ``builtin`` set: classic test images that ship with scikit-image, so it works offline."""

from __future__ import annotations

from .image_io import square_resize
from .sample import ImageSample

# Order matters (``limit`` keeps the first N): camera is SIREN's reference image; only new names may be appended.
BUILTIN_IMAGES = ("camera", "astronaut", "coffee", "chelsea", "rocket")


def load_builtin(size: int, limit: int | None = None) -> list[ImageSample]:
    """The first ``limit`` builtin images (all when None); grayscale ones keep a single channel."""
    from skimage import data  # deferred: importing scikit-image is slow and only this set needs it

    samples = []
    for name in BUILTIN_IMAGES[:limit]:
        source = f"skimage.data.{name}"
        samples.append(ImageSample(name, square_resize(getattr(data, name)(), size, source), source))
    return samples
