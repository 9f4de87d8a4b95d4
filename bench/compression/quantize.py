"""Weight quantizers: a list of float tensors <-> payload bytes.

`fp32` and `fp16` store the values as they are (fp16 is COIN's format). `qK` is uniform K-bit quantization
(K = 4..12) with one (offset, step) pair per tensor, `qKc` one pair per output channel (row of a weight matrix);
the pairs are stored as float16 and the codes bit-packed, so the entropy coder sees K bits per weight.
The encoder and decoder share `dequantize`, so the weights the encoder scores are exactly the decoded ones.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

from .errors import BitstreamError

Shape = tuple[int, ...]


@dataclass(frozen=True)
class PayloadLayout:
    """How a quantizer lays out its payload, for entropy coders that model the codes themselves:
    `side` bytes (offsets and steps) first, then, where `bits` is set, one `bits`-bit code per value, tensor by
    tensor (`counts` values each), most significant bit first, padded to a byte."""

    side: int
    bits: int | None  # None: the payload is float values, not codes
    counts: tuple[int, ...]

    @property
    def size(self) -> int:
        values = sum(self.counts)
        return self.side + (math.ceil(self.bits * values / 8) if self.bits else 0)


@dataclass(frozen=True)
class Quantizer:
    """Base: stores float values of one dtype as they are."""

    spec: str = "fp32"

    @property
    def dtype(self) -> np.dtype:
        return np.dtype("<f4") if self.spec == "fp32" else np.dtype("<f2")

    def payload_size(self, shapes: list[Shape]) -> int:
        return sum(math.prod(s) for s in shapes) * self.dtype.itemsize

    def layout(self, shapes: list[Shape]) -> PayloadLayout:
        return PayloadLayout(self.payload_size(shapes), None, tuple(math.prod(s) for s in shapes))

    def fake_quantize(self, tensor: torch.Tensor) -> torch.Tensor:
        """What the decoder will see for `tensor` (used by quantization-aware fine-tuning)."""
        return tensor.detach().to(torch.float16 if self.spec == "fp16" else torch.float32).float()

    def pack(self, tensors: list[torch.Tensor]) -> bytes:
        return b"".join(t.detach().cpu().numpy().astype(self.dtype).tobytes() for t in tensors)

    def unpack(self, data: bytes, shapes: list[Shape]) -> list[torch.Tensor]:
        values = np.frombuffer(data, dtype=self.dtype).astype(np.float32)
        return _split(values, shapes)


@dataclass(frozen=True)
class UniformQuantizer(Quantizer):
    bits: int = 8
    per_channel: bool = False

    def _channels(self, shape: Shape) -> int:
        return shape[0] if self.per_channel and len(shape) >= 2 else 1

    def payload_size(self, shapes: list[Shape]) -> int:
        return self.layout(shapes).size

    def layout(self, shapes: list[Shape]) -> PayloadLayout:
        side = 4 * sum(self._channels(s) for s in shapes)  # float16 offset and step per channel
        return PayloadLayout(side, self.bits, tuple(math.prod(s) for s in shapes))

    def _ranges(self, tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(offset, step) per channel, rounded to float16 as they are stored."""
        rows = tensor.detach().float().reshape(self._channels(tuple(tensor.shape)), -1)
        low, high = rows.min(dim=1).values, rows.max(dim=1).values
        step = ((high - low) / (2**self.bits - 1)).clamp_min(2**-14)  # smallest normal float16: never zero
        return low.half().float(), step.half().float()

    def _codes(self, tensor: torch.Tensor, low: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        rows = tensor.detach().float().reshape(len(low), -1)
        return torch.round((rows - low[:, None]) / step[:, None]).clamp(0, 2**self.bits - 1)

    def fake_quantize(self, tensor: torch.Tensor) -> torch.Tensor:
        low, step = self._ranges(tensor)
        codes = self._codes(tensor, low, step)
        return (low[:, None] + codes * step[:, None]).reshape(tensor.shape)

    def pack(self, tensors: list[torch.Tensor]) -> bytes:
        sides, codes = [], []
        for tensor in tensors:
            low, step = self._ranges(tensor)
            sides.append(torch.stack([low, step], dim=1).reshape(-1))
            codes.append(self._codes(tensor, low, step).reshape(-1))
        side = torch.cat(sides).numpy().astype("<f2").tobytes()
        return side + pack_bits(torch.cat(codes).numpy().astype(np.uint16), self.bits)

    def unpack(self, data: bytes, shapes: list[Shape]) -> list[torch.Tensor]:
        channels = [self._channels(s) for s in shapes]
        side = np.frombuffer(data[: 4 * sum(channels)], dtype="<f2").astype(np.float32).reshape(-1, 2)
        if not np.isfinite(side).all():
            raise BitstreamError("damaged stream: a quantization offset or step is not a finite number")
        codes = unpack_bits(data[4 * sum(channels):], self.bits, sum(math.prod(s) for s in shapes))
        values, start, row = np.empty(len(codes), np.float32), 0, 0
        for shape, count in zip(shapes, channels):
            size = math.prod(shape)
            block = codes[start:start + size].reshape(count, -1)
            low, step = side[row:row + count, 0:1], side[row:row + count, 1:2]
            values[start:start + size] = (low + block * step).reshape(-1)
            start, row = start + size, row + count
        return _split(values, shapes)


def _split(values: np.ndarray, shapes: list[Shape]) -> list[torch.Tensor]:
    tensors, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        tensors.append(torch.from_numpy(values[start:start + size].copy()).reshape(shape))
        start += size
    return tensors


def pack_bits(codes: np.ndarray, bits: int) -> bytes:
    """Each code as `bits` bits, most significant first, codes back to back."""
    planes = (codes[:, None] >> np.arange(bits - 1, -1, -1, dtype=np.uint16)) & 1
    return np.packbits(planes.astype(np.uint8).reshape(-1)).tobytes()


def unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    """The `count` codes of `pack_bits`, as float32 (exact: codes have at most 12 bits)."""
    planes = np.unpackbits(np.frombuffer(data, np.uint8), count=count * bits).reshape(count, bits)
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.float32)
    return planes.astype(np.float32) @ weights


BITS = range(4, 13)
# The canonical names only, in ASCII: `q08`, ` q8`, `q８` (a full-width digit) are not `q8`, so a stream's header
# and a command line each name a quantizer one way.
QUANTIZER_SPEC = re.compile(rf"fp32|fp16|q({'|'.join(map(str, BITS))})(c?)", re.ASCII)


def parse_quantizer(spec: str) -> Quantizer:
    """`fp32`, `fp16`, `qK` (uniform K-bit, per tensor) or `qKc` (per channel), K from 4 to 12, exactly so written."""
    match = QUANTIZER_SPEC.fullmatch(spec)
    if not match:
        raise ValueError(f"unknown quantizer {spec!r}; use fp32, fp16, qK or qKc with K from {BITS[0]} to {BITS[-1]} "
                         "in plain digits, no leading zero (e.g. q8, q6c)")
    if match.group(1):
        return UniformQuantizer(spec, int(match.group(1)), bool(match.group(2)))
    return Quantizer(spec)
