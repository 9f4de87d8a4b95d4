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
from PIL import Image, features

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


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """(H, W, C) floats in [0, 1] -> the 8-bit image every method is scored on."""
    return (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)


def score_point(setting: str, data_size: int, truth8: np.ndarray, decoded: np.ndarray, encode_seconds: float,
                decode_seconds: float) -> RatePoint:
    """Score a decoded (H, W, C) image, 8-bit or float in [0, 1], against the 8-bit ground truth."""
    decoded8 = decoded if decoded.dtype == np.uint8 else to_uint8(decoded)
    a, b = truth8.astype(np.float32) / 255, decoded8.astype(np.float32) / 255
    return RatePoint(setting, data_size, 8 * data_size / (truth8.shape[0] * truth8.shape[1]), metrics.psnr(a, b),
                     metrics.ssim(a, b), encode_seconds, decode_seconds)


class Codec(ABC):
    """An image codec with one quality knob; subclasses say how to write the bytes."""

    name: str
    description: str
    qualities: tuple  # the sweep the suite runs

    def __init__(self, quality):
        self.quality = quality

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


class JPEG(Codec):
    name, description = "jpeg", "JPEG (libjpeg through Pillow), 4:2:0, optimized Huffman tables"
    qualities = tuple(range(1, 101))  # every quality, so matched rates find the largest file under a target

    def encode(self, image):
        return self._save(image, format="JPEG", quality=self.quality, optimize=True)


class WebP(Codec):
    name, description = "webp", "WebP lossy (libwebp through Pillow), method 6"
    qualities = tuple(range(0, 101, 5))

    def encode(self, image):
        return self._save(image, format="WEBP", quality=self.quality, method=6)


class JPEG2000(Codec):
    name, description = "jpeg2000", "JPEG 2000 (OpenJPEG through Pillow), irreversible, quality = compression ratio"
    qualities = (400, 200, 150, 100, 70, 50, 35, 25, 16, 10, 6, 4)

    def encode(self, image):
        return self._save(image, format="JPEG2000", quality_mode="rates", quality_layers=[self.quality],
                          irreversible=True)


def available_codecs() -> list[type[Codec]]:
    """JPEG and WebP always; JPEG 2000 where Pillow was built with OpenJPEG."""
    codecs = [JPEG]
    codecs += [WebP] if features.check("webp") else []
    codecs += [JPEG2000] if features.check("jpg_2000") else []
    return codecs
