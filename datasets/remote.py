"""Image sets kept under the data root (FFN natural/text, Kodak): where they live, download, verification."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import sys
import urllib.request
import zipfile
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from ..files import atomic_path
from .image_io import one_line, read_image, square_resize
from .sample import DatasetError, ImageSample

DATA_ROOT_ENV = "FITBENCH_DATA_ROOT"
DEFAULT_DATA_ROOT = "~/.cache/fitbench/data"
_ROOT_HINT = f"--data-root or {DATA_ROOT_ENV} choose the data root"

KODAK_FILES = tuple(f"kodim{i:02d}.png" for i in range(1, 25))
KODAK_URL = "http://r0k.us/graphics/kodak/kodak/{file}"
_KODAK_SHAPES = ((512, 768), (768, 512))  # (H, W): landscape or portrait

# What a failed download raises (URLError and timeouts are OSErrors).
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The folder holding downloadable sets: ``data_root``, else $FITBENCH_DATA_ROOT, else ~/.cache/fitbench/data."""
    return Path(data_root or os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT).expanduser()


def load_ffn(
    kind: str,
    size: int,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    allow_download: bool = True,
) -> list[ImageSample]:
    """The FFN paper's ``natural``, ``text``, ``natural_test`` or ``text_test`` images (``<root>/ffn/<kind>/00.png
    ..``), named ``<kind>-00`` .. (``natural-test-00`` ..).

    Missing files are extracted from the published npz archive, downloaded first when needed; every
    image is checked against the manifest, so results always refer to the paper's exact pixels.
    """
    manifest = _ffn_manifest()
    entry = manifest["sets"][kind]
    shape = tuple(manifest["shape"])
    folder = resolve_data_root(data_root) / "ffn" / kind
    files = sorted(entry["sha256"])[:limit]
    if not all((folder / file).is_file() for file in files):
        _fetch_ffn(kind, entry, shape, folder, allow_download)
    samples = []
    for file in files:
        path = folder / file
        pixels, notes = read_image(path)
        if not _matches(pixels, shape, entry["sha256"][file]):
            raise DatasetError(
                f"{path}: pixels differ from the FFN {kind} image (sha256 mismatch); "
                f"delete it to have it extracted again, or replace it with the original"
            )
        name = f"{kind.replace('_', '-')}-{path.stem}"
        samples.append(ImageSample(name, square_resize(pixels, size, str(path)), str(path), notes))
    return samples


def load_kodak(
    size: int,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    allow_download: bool = True,
) -> list[ImageSample]:
    """The Kodak images ``<root>/kodak/kodim01.png ..`` (768x512 or 512x768), named ``kodim01`` .."""
    folder = resolve_data_root(data_root) / "kodak"
    samples = []
    for file in KODAK_FILES[:limit]:
        path = folder / file
        if not path.is_file():
            _fetch_kodak(path, allow_download)
        pixels, notes = read_image(path)
        samples.append(ImageSample(path.stem, square_resize(pixels, size, str(path)), str(path), notes))
    return samples


@cache
def _ffn_manifest() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("ffn_manifest.json").read_text(encoding="utf-8"))


def _fetch_ffn(kind: str, entry: dict[str, Any], shape: tuple[int, ...], folder: Path, allow_download: bool) -> None:
    """Write the missing PNGs of one FFN set, from ``<root>/ffn/<archive>`` or else from a fresh download."""
    archive = folder.parent / entry["archive"]
    if archive.is_file():
        _extract_ffn(archive, str(archive), entry, shape, folder)
        return

    def missing(reason: str) -> DatasetError:
        return DatasetError(
            f"FFN {kind} images are missing from {folder} and {reason}: put 00.png .. 15.png there "
            f"(or {entry['archive']} in {folder.parent}), {_ROOT_HINT}; source: {entry['url']}"
        )

    if not allow_download:
        raise missing("downloading is disabled")
    try:
        # The archive is kept only once its images have been verified and written.
        _download(entry["url"], archive, lambda tmp: _extract_ffn(tmp, entry["url"], entry, shape, folder))
    except _NETWORK_ERRORS as exc:
        raise missing(f"the download failed ({one_line(exc)})") from None


def _extract_ffn(archive: Path, origin: str, entry: dict[str, Any], shape: tuple[int, ...], folder: Path) -> None:
    """Save the archive's images as ``folder/<file>`` PNGs, each identified by its manifest checksum.

    The FFN npz files hold several splits (``train_data``, the tuning images, and ``test_data``); matching
    by checksum picks whichever holds our images without relying on key names or order.
    """
    expected: dict[str, str] = entry["sha256"]
    found: dict[str, np.ndarray] = {}
    try:
        if not zipfile.is_zipfile(archive):  # e.g. an HTML page instead of the file
            raise ValueError("not a zip file")
        with np.load(archive, allow_pickle=False) as npz:
            for key in npz.files:
                images = npz[key]
                if images.dtype == np.uint8 and images.shape[1:] == shape:
                    found.update((_sha256(image), image) for image in images)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(
            f"{origin}: not a readable npz archive ({one_line(exc)}); "
            f"download {entry['url']} in a browser and save it as {folder.parent / entry['archive']}"
        ) from None
    unmatched = [file for file, digest in expected.items() if digest not in found]
    if unmatched:
        raise DatasetError(
            f"{origin}: checksum mismatch, none of its images matches {folder / unmatched[0]} "
            f"({len(unmatched)} of {len(expected)} unmatched); put the original FFN PNGs in {folder}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for file, digest in expected.items():
        if not (folder / file).is_file():
            with atomic_path(folder / file) as tmp:
                Image.fromarray(found[digest]).save(tmp, format="PNG")


def _fetch_kodak(path: Path, allow_download: bool) -> None:
    url = KODAK_URL.format(file=path.name)

    def missing(reason: str) -> DatasetError:
        return DatasetError(
            f"Kodak image {path} is missing and {reason}: put kodim01.png .. kodim24.png in {path.parent}, "
            f"{_ROOT_HINT}; source: {url}"
        )

    def check(tmp: Path) -> None:
        # No Kodak checksums are known offline, so a download is only checked to decode at a Kodak size.
        try:
            shape = read_image(tmp)[0].shape[:2]
        except DatasetError:
            shape = None
        if shape not in _KODAK_SHAPES:
            raise missing(f"{url} did not return a 768x512 or 512x768 image")

    if not allow_download:
        raise missing("downloading is disabled")
    try:
        _download(url, path, check)
    except _NETWORK_ERRORS as exc:
        raise missing(f"the download failed ({one_line(exc)})") from None


def _download(url: str, dest: Path, check: Callable[[Path], None]) -> None:
    """Fetch ``url`` to ``dest`` through a temporary file that ``check`` must accept; network errors propagate."""
    print(f"fitbench: downloading {url}", file=sys.stderr)
    with _open_url(url) as response, atomic_path(dest) as tmp:  # interrupted or refused: no partial file is left
        _copy_then_check(response, tmp, check)


def _copy_then_check(response: BinaryIO, tmp: Path, check: Callable[[Path], None]) -> None:
    with open(tmp, "wb") as out:
        shutil.copyfileobj(response, out)
    check(tmp)


def _open_url(url: str) -> BinaryIO:
    """The only place that touches the network (the tests replace it)."""
    request = urllib.request.Request(url, headers={"User-Agent": "fitbench"})
    return urllib.request.urlopen(request, timeout=60)


def _matches(pixels: np.ndarray, shape: tuple[int, ...], digest: str) -> bool:
    return pixels.dtype == np.uint8 and pixels.shape == shape and _sha256(pixels) == digest


def _sha256(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()
