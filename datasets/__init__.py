"""Images to fit: named sets (builtin, the FFN paper's tuning and test sets, Kodak) or a folder of PNG/JPEG files.

Every image comes back centre-cropped to a square and downscaled to ``size`` x ``size``, as float32
(H, W, C) in [0, 1] with C = 1 for grayscale and 3 for colour::

    from fitbench.datasets import load_images
    for sample in load_images("builtin", size=256, limit=1):
        print(sample.name, sample.pixels.shape, sample.notes)
"""

from __future__ import annotations

import os
from pathlib import Path

from .builtin import load_builtin
from .image_io import load_folder, load_image_file
from .remote import load_ffn, load_kodak, resolve_data_root
from .sample import DatasetError, ImageSample

__all__ = ["IMAGE_SETS", "DatasetError", "ImageSample", "load_images", "resolve_data_root"]

# The FFN paper's split: tune on ffn-natural / ffn-text, report on ffn-natural-test / ffn-text-test.
FFN_SETS = {"ffn-natural": "natural", "ffn-text": "text", "ffn-natural-test": "natural_test",
            "ffn-text-test": "text_test"}
IMAGE_SETS: tuple[str, ...] = ("builtin", *FFN_SETS, "kodak")


def load_images(
    spec: str,
    size: int,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    allow_download: bool = True,
) -> list[ImageSample]:
    """Load the images named by ``spec`` at ``size`` x ``size``.

    Args:
        spec: a name from :data:`IMAGE_SETS`, or the path of a folder of PNG/JPEG files or of one image file.
        size: side of the square output; images smaller than that raise :class:`DatasetError` (no upscaling).
        data_root: where downloadable sets live; see :func:`resolve_data_root`.
        limit: keep only the first ``limit`` images (in set order, or sorted by file name).
        allow_download: fetch missing FFN/Kodak files from their public source.

    Raises:
        DatasetError: unknown spec, missing/corrupt/too small files, failed download or verification.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DatasetError(f"size must be a positive integer, got {size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DatasetError(f"limit must be a positive integer or None, got {limit!r}")
    if spec == "builtin":
        return load_builtin(size, limit)
    if spec in FFN_SETS:
        return load_ffn(FFN_SETS[spec], size, data_root, limit, allow_download)
    if spec == "kodak":
        return load_kodak(size, data_root, limit, allow_download)
    path = Path(spec).expanduser()
    try:
        path.stat()
    except FileNotFoundError:
        if os.sep in spec or spec.startswith((".", "~")) or Path(spec).suffix:
            raise DatasetError(f"{spec}: no such folder or file; give an existing folder of images, one image "
                               f"file, or one of the image sets {', '.join(IMAGE_SETS)}") from None
        raise DatasetError(
            f"unknown image set {spec!r}: use one of {', '.join(IMAGE_SETS)}, "
            f"or the path of a folder of images (or of one image file)"
        ) from None
    except OSError as exc:  # a symlink loop, a permission problem, a name too long
        raise DatasetError(f"{spec}: cannot be read ({exc.strerror or exc}); give a readable folder or file") from None
    if path.is_dir():
        return load_folder(path, size, limit)
    if path.is_file():
        return [load_image_file(path, size)]
    raise DatasetError(f"{spec}: neither a folder nor a regular file; give a folder of images or one image file")
