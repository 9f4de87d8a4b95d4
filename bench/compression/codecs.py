"""Classical image codecs through Pillow, in the style of CompressAI's `utils/bench/codecs.py`.

A `Codec` turns an 8-bit image into bytes and back; `run` times both directions and scores the result, returning
the same plain point every method's record carries (`RatePoint`).
"""

from __future__ import annotations

import io
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import PIL
from PIL import Image, features

from fitbench.datasets.image_io import to_uint8  # the 8-bit image every method is scored on

from .. import metrics


@dataclass
class RatePoint:
    """One operating point of one method on one image: what every table and plot of the suite reads."""

    setting: str  # "q=50" for a codec, "<size> <quantizer>" for a representation
    bytes: int
    bpp: float  # 8 * bytes / (H * W), from the bytes written
    psnr: float  # on 8-bit output against the 8-bit image
    ssim: float
    encode_seconds: float
    decode_seconds: float
    stream: str | None = None  # the stream file, relative to the suite folder (representations only)
    coder: str | None = None  # the entropy coder the stream uses (representations only)
    coder_bytes: dict[str, int] | None = None  # the stream's size with each coder that applies (representations)


def score_point(setting: str, data_size: int, truth8: np.ndarray, decoded: np.ndarray, encode_seconds: float,
                decode_seconds: float) -> RatePoint:
    """Score a decoded (H, W, C) image, 8-bit or float in [0, 1], against the 8-bit ground truth."""
    decoded8 = decoded if decoded.dtype == np.uint8 else to_uint8(decoded)
    a, b = truth8.astype(np.float32) / 255, decoded8.astype(np.float32) / 255
    return RatePoint(setting, data_size, 8 * data_size / (truth8.shape[0] * truth8.shape[1]), metrics.psnr(a, b),
                     metrics.ssim(a, b), encode_seconds, decode_seconds)


class Codec(ABC):
    """An image codec with one quality knob; subclasses say how to write the bytes and which library does it."""

    name: str
    description: str
    qualities: tuple  # the sweep the suite runs
    feature: str  # Pillow's name for the library (PIL.features), whose version every record names

    def __init__(self, quality):
        self.quality = quality

    @classmethod
    def available(cls) -> bool:
        return features.check(cls.feature)

    @classmethod
    def library(cls) -> str:
        """"Pillow 13.0.0, libjpeg-turbo 3.2.0": what wrote the bytes, for the record."""
        return f"Pillow {PIL.__version__}, {_library_version(cls.feature)}"

    @abstractmethod
    def encode(self, image: Image.Image) -> bytes: ...

    def decode(self, data: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(data)))

    def run(self, truth8: np.ndarray) -> RatePoint:
        """Encode and decode the 8-bit (H, W, C) image; C = 1 is coded as grayscale."""
        image = Image.fromarray(truth8[..., 0] if truth8.shape[2] == 1 else truth8)
        start = time.perf_counter()
        data = self.encode(image)
        encoded = time.perf_counter()
        decoded = self.decode(data)
        decoded_at = time.perf_counter()
        decoded = decoded.reshape(truth8.shape[:2] + (-1,))[..., : truth8.shape[2]]
        return score_point(f"q={self.quality}", len(data), truth8, decoded, encoded - start, decoded_at - encoded)

    @staticmethod
    def _save(image: Image.Image, **options) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, **options)
        return buffer.getvalue()


def _library_version(feature: str) -> str:
    if feature == "jpg" and features.check_feature("libjpeg_turbo"):
        return f"libjpeg-turbo {features.version_feature('libjpeg_turbo')} (libjpeg API {features.version('jpg')})"
    names = {"jpg": "libjpeg", "webp": "libwebp", "jpg_2000": "OpenJPEG"}
    return f"{names.get(feature, feature)} {features.version(feature) or 'version unknown'}"


class JPEG(Codec):
    """The anchor of every BD-rate and matched-rate comparison: JPEG as most files are written (4:2:0)."""

    name, description = "jpeg", "JPEG 4:2:0 chroma subsampling (Pillow's default), optimized Huffman tables"
    qualities = tuple(range(1, 101))  # every quality, so matched rates find the largest file under a target
    feature = "jpg"
    subsampling = "4:2:0"

    def encode(self, image):
        return self._save(image, format="JPEG", quality=self.quality, optimize=True, subsampling=self.subsampling)


class JPEG444(JPEG):
    """JPEG with full-resolution chroma: what JPEG can do at high rates, where 4:2:0 hits a ceiling set by the
    halved chroma (docs/compression.md has the measured gap)."""

    name, description = "jpeg444", "JPEG 4:4:4 (no chroma subsampling), optimized Huffman tables"
    subsampling = "4:4:4"


class WebP(Codec):
    name, description = "webp", "WebP lossy, method 6 (slowest, best)"
    qualities = tuple(range(0, 101, 5))
    feature = "webp"

    def encode(self, image):
        return self._save(image, format="WEBP", quality=self.quality, method=6)


class JPEG2000(Codec):
    name, description = "jpeg2000", "JPEG 2000, irreversible wavelet, quality = compression ratio"
    qualities = (400, 200, 150, 100, 70, 50, 35, 25, 16, 10, 6, 4)
    feature = "jpg_2000"

    def encode(self, image):
        return self._save(image, format="JPEG2000", quality_mode="rates", quality_layers=[self.quality],
                          irreversible=True)


CODECS: tuple[type[Codec], ...] = (JPEG, JPEG444, WebP, JPEG2000)
ANCHOR = JPEG.name  # BD-rate and matched-rate comparisons are against this codec


def available_codecs() -> list[type[Codec]]:
    """The codecs this Pillow was built with (JPEG always; WebP and JPEG 2000 where their libraries are)."""
    return [codec for codec in CODECS if codec.available()]
