"""Decode image files into arrays and bring arrays to a square of the requested size."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps

from .sample import DatasetError, ImageSample

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")  # what Pillow decodes

# Pillow reports a bad file through many unrelated exception types.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)

# 8-bit modes that Pillow converts for us: mode -> (target mode, note).
_PILLOW_CONVERSIONS = {
    "1": ("L", "1-bit -> L"),
    "LA": ("L", "LA -> L (alpha dropped)"),
    "RGBA": ("RGB", "RGBA -> RGB (alpha dropped)"),
    "CMYK": ("RGB", "CMYK -> RGB"),
    "YCbCr": ("RGB", "YCbCr -> RGB"),
}
_16BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, tuple[str, ...]]:
    """Decode one file to an (H, W, C) array, C in {1, 3}, and the notes on the conversions applied.

    The array is uint8 for 8-bit sources and float32 in [0, 1] otherwise, so that callers can checksum
    8-bit pixels exactly and :func:`square_resize` can keep them on the 8-bit grid.
    """
    path = Path(path)
    notes: list[str] = []
    try:
        with _truncated_files_refused(), _bomb_warnings_caught() as caught, Image.open(path) as image:
            if any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
                notes.append(f"large image ({image.width}x{image.height}, {image.width * image.height / 1e6:.0f} "
                             "Mpixel): decoding it takes a while and much memory")
            if getattr(image, "n_frames", 1) > 1:
                notes.append(f"{image.n_frames} frames: the first one is used")
            if _colour_png_with_16_bits(image):
                notes.append("16-bit colour PNG read at 8 bits per channel (Pillow cannot decode more)")
            image.load()
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
            if orientation != 1:
                # Cameras store photos sideways plus a tag; viewers honour it, so users expect it too.
                image = ImageOps.exif_transpose(image)
                notes.append(f"EXIF orientation {orientation} applied")
            # Inside the `with`: a closed Pillow image has lost its pixels.
            array, note = _to_array(image, path)
    except DatasetError:
        raise
    except Image.DecompressionBombError as exc:
        raise DatasetError(f"{path}: {one_line(exc)}; fitbench refuses images this large (downscale it first)") from None
    except _DECODE_ERRORS as exc:
        raise DatasetError(f"{path}: cannot be decoded as an image ({one_line(exc)}); remove or replace the file") from None
    if note:
        notes.append(note)
    return (array if array.ndim == 3 else array[..., None]), tuple(notes)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] (clipped first) -> 8 bits, rounded half up: the 8-bit image every PNG and every compression
    method is scored on, the inverse of the /255 with which 8-bit sources are read."""
    return (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)


def square_resize(array: np.ndarray, size: int, source: str) -> np.ndarray:
    """Centre-crop an (H, W[, C]) array to a square and downscale it to (size, size, C) float32 in [0, 1].

    Accepts uint8 (/255), uint16 (/65535) or float (clipped to [0, 1]) arrays; never upscales.
    """
    if array.ndim == 2:
        array = array[..., None]
    height, width = array.shape[:2]
    side = min(height, width)
    if side < size:
        raise DatasetError(
            f"{source}: image is {width}x{height}, smaller than the requested size {size}; "
            f"use a smaller --size or preset (fitbench never upscales)"
        )
    top, left = (height - side) // 2, (width - side) // 2
    array = array[top : top + side, left : left + side]
    if array.dtype == np.uint16:
        array = array.astype(np.float32) / np.float32(65535)
    if side != size:
        array = _resize(array, size)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255)
    # Lanczos overshoots a little at edges, hence the clip after resizing.
    return np.clip(array, 0.0, 1.0).astype(np.float32)


def load_image_file(path: str | os.PathLike, size: int, name: str | None = None) -> ImageSample:
    """Load one image file as a sample named after its stem unless ``name`` is given."""
    path = Path(path)
    pixels, notes = read_image(path)
    return ImageSample(name or path.stem, square_resize(pixels, size, str(path)), str(path), notes)


@dataclasses.dataclass(frozen=True)
class FolderListing:
    """A folder's files sorted by name: the images, and those skipped for either reason."""

    images: list[Path]
    others: list[Path]  # not an image by their extension (dot files such as .DS_Store left out)
    hidden: list[Path]  # images whose names start with a dot: macOS leaves "._photo.png" sidecars beside photos


def list_images(folder: str | os.PathLike) -> FolderListing:
    """The image files of a folder (extensions in any case) sorted by name, and the files it skips."""
    folder = Path(folder)
    try:
        entries = sorted(path for path in folder.iterdir() if path.is_file())
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot be listed ({one_line(exc)})") from None
    named_as_image = [path for path in entries if path.suffix.lower() in IMAGE_EXTENSIONS]
    images = [path for path in named_as_image if not path.name.startswith(".")]
    hidden = [path for path in named_as_image if path.name.startswith(".")]
    if not images:
        raise DatasetError(f"{folder}: no images found (accepted extensions: {', '.join(IMAGE_EXTENSIONS)}, any "
                           f"case{'; names starting with a dot are skipped' if hidden else ''})")
    others = [path for path in entries if path not in named_as_image and not path.name.startswith(".")]
    return FolderListing(images, others, hidden)


def load_folder(folder: str | os.PathLike, size: int, limit: int | None = None) -> list[ImageSample]:
    """Load the first ``limit`` images of a folder (all when None), named by file stem.

    The first sample's notes name the files skipped (not images, or hidden) and say how many images the limit
    left out."""
    listing = list_images(folder)
    files = listing.images[:limit]
    stems = [path.stem for path in files]
    # "a.png" next to "a.jpg" would give two records the same name; fall back to the full file name.
    samples = [load_image_file(path, size, path.stem if stems.count(path.stem) == 1 else path.name) for path in files]
    notes = []
    if listing.others:
        notes.append(f"skipped {len(listing.others)} file(s) of {folder} that are not images "
                     f"({_names(listing.others)})")
    if listing.hidden:
        notes.append(f"skipped {len(listing.hidden)} hidden file(s) of {folder} (names starting with a dot: "
                     f"{_names(listing.hidden)}); rename them to fit them")
    if len(files) < len(listing.images):
        notes.append(f"using the first {len(files)} of the {len(listing.images)} images of {folder} (by name); "
                     "--max-images N sets how many")
    samples[0] = dataclasses.replace(samples[0], notes=(*samples[0].notes, *notes))
    return samples


def _names(paths: list[Path]) -> str:
    return ", ".join(path.name for path in paths[:5]) + (", ..." if len(paths) > 5 else "")


def _to_array(image: Image.Image, path: Path) -> tuple[np.ndarray, str | None]:
    """Pixels of a decoded image as uint8 L/RGB or float32 [0, 1], plus the note on the conversion, if any."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return np.asarray(image), None
    if mode in _PILLOW_CONVERSIONS:
        target, note = _PILLOW_CONVERSIONS[mode]
        return np.asarray(image.convert(target)), note
    if mode in ("P", "PA"):
        if mode == "PA" or "transparency" in image.info:
            # Pillow wants palette transparency expanded through RGBA before dropping it.
            return np.asarray(image.convert("RGBA").convert("RGB")), f"{mode} -> RGB (palette expanded, transparency dropped)"
        return np.asarray(image.convert("RGB")), "P -> RGB (palette expanded)"
    if mode in _16BIT_MODES:
        return np.asarray(image).astype(np.float32) / np.float32(65535), f"{mode} (16-bit) -> [0, 1] (divided by 65535)"
    if mode == "I":
        scaled = np.asarray(image).astype(np.float32) / np.float32(65535)
        return np.clip(scaled, 0.0, 1.0), "I (32-bit integer) -> [0, 1] (divided by 65535, clipped)"
    if mode == "F":
        return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0), "F (float) -> clipped to [0, 1]"
    raise DatasetError(f"{path}: unsupported image mode {mode!r}; convert it to an RGB or grayscale PNG")


def _resize(array: np.ndarray, size: int) -> np.ndarray:
    """Antialiased Lanczos downscale of a square (side, side, C) uint8 or float32 array."""
    lanczos = Image.Resampling.LANCZOS
    if array.dtype == np.uint8:
        # Resampling in uint8 keeps the targets on the 8-bit grid, which 8-bit codecs can represent exactly.
        image = Image.fromarray(np.ascontiguousarray(array if array.shape[2] == 3 else array[..., 0]))
        return np.asarray(image.resize((size, size), lanczos)).reshape(size, size, -1)
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(array[..., c], dtype=np.float32)).resize((size, size), lanczos))
        for c in range(array.shape[2])
    ]
    return np.stack(channels, axis=-1)


def _colour_png_with_16_bits(image: Image.Image) -> bool:
    """True for 16-bit RGB/RGBA/LA PNGs, which Pillow silently decodes at 8 bits; read before ``load()``."""
    rawmode = image.tile[0][3] if image.format == "PNG" and image.tile else None  # tile = (codec, box, offset, rawmode)
    return isinstance(rawmode, str) and rawmode.endswith(";16B") and not image.mode.startswith("I")


@contextlib.contextmanager
def _bomb_warnings_caught() -> Iterator[list]:
    """Pillow's decompression-bomb warning caught into a list (reported as a one-line note, not a raw warning)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Image.DecompressionBombWarning)
        yield caught


@contextlib.contextmanager
def _truncated_files_refused() -> Iterator[None]:
    """Make truncated files fail even if another library turned Pillow's global leniency on."""
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


def one_line(exc: BaseException) -> str:
    """An exception's message squeezed onto one line, for DatasetError messages."""
    return " ".join(str(exc).split()) or type(exc).__name__
