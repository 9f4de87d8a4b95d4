"""Lossless coders for a stream's payload. `best` keeps whichever is smallest for that payload.

- `raw`, `zlib` (raw DEFLATE, RFC 1951, level 9) and `lzma` (raw LZMA2, preset 9e): byte coders from the
  standard library; they work on any payload and know nothing of its structure.
- `ans`: an entropy coder with a fitted model per tensor, for the integer codes of the `qK`/`qKc` quantizers
  (COIN++'s and Strümpler et al.'s recipe: quantize, then arithmetic-code). Each tensor's codes get the
  discretised Student-t distribution (2 or 4 degrees of freedom; or uniform) whose location and scale code them
  in the fewest bits, and the codes are written with the asymmetric-numeral-systems coder of the `constriction`
  package. The model is stored beside the codes (family byte, float16 location and scale: 5 bytes a tensor).

Why Student-t with 2 or 4 degrees of freedom: their CDFs need only +, -, x, / and sqrt, which IEEE 754 rounds
exactly on every machine, so encoder and decoder compute bit-identical probability tables (a Gaussian's erf or
a Laplacian's exp comes from the platform's maths library and may differ in the last bit, which would make a
stream undecodable elsewhere). On fitted SIREN and ReLU-MLP weights they code within 0.5 % of the better of a
fitted Gaussian and Laplacian (docs/compression.md).
"""

from __future__ import annotations

import lzma
import struct
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import BitstreamError
from .quantize import PayloadLayout, pack_bits, unpack_bits

# raw (no 60-byte xz container), preset 9e with a 1 MiB dictionary: as small as the default 64 MiB on stream-sized
# payloads and 10x faster (allocating the dictionary dominated). Part of format version 2: the decoder needs it.
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20}]


def _zlib_encode(payload: bytes, layout: PayloadLayout) -> bytes:
    encoder = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw DEFLATE: the stream's CRC already checks the bytes
    return encoder.compress(payload) + encoder.flush()


def _zlib_decode(data: bytes, layout: PayloadLayout) -> bytes:
    decoder = zlib.decompressobj(-15)
    try:
        payload = decoder.decompress(data, layout.size + 1)  # never more than the payload can be: no bomb
    except zlib.error as error:
        raise BitstreamError(f"damaged stream: the zlib payload does not decode ({error})") from None
    if not decoder.eof or decoder.unused_data or decoder.unconsumed_tail:
        raise BitstreamError("damaged stream: the zlib payload is cut short, too long or followed by extra bytes")
    return payload


def _lzma_encode(payload: bytes, layout: PayloadLayout) -> bytes:
    return lzma.compress(payload, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)


def _lzma_decode(data: bytes, layout: PayloadLayout) -> bytes:
    decoder = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    try:
        payload = decoder.decompress(data, max_length=layout.size + 1)
    except lzma.LZMAError as error:
        raise BitstreamError(f"damaged stream: the lzma payload does not decode ({error})") from None
    if not decoder.eof or decoder.unused_data:
        raise BitstreamError("damaged stream: the lzma payload is cut short, too long or followed by extra bytes")
    return payload


# ---- ans: a fitted model per tensor, coded with constriction's ANS coder -------------------------------------

UNIFORM, STUDENT_T2, STUDENT_T4 = 0, 2, 4  # model family byte = degrees of freedom (0: every code equally likely)
_MODEL = struct.Struct("<Bee")  # family, location, scale (code units, float16)
_SCALES = np.geomspace(0.25, 4096, 57)  # scale candidates, 4 per octave


def _student_t_cdf(x: np.ndarray, family: int) -> np.ndarray:
    """Student-t CDF with 2 or 4 degrees of freedom (exact closed forms with sqrt only)."""
    if family == STUDENT_T2:
        return 0.5 + x / (2 * np.sqrt(2 + x * x))
    u = 1 + x * x / 4
    return 0.5 + 0.375 * x / np.sqrt(u) * (1 - x * x / (12 * u))


def probabilities(family: int, location, scale, symbols: int) -> np.ndarray:
    """P(code = k), k = 0..symbols-1: the distribution integrated over [k - 1/2, k + 1/2] (not normalised:
    constriction normalises and gives every code a non-zero probability). An array of scales gives one row each."""
    if family == UNIFORM:
        return np.ones(symbols)
    scale = np.asarray(scale, dtype=np.float64)[..., None]
    edges = (np.arange(symbols + 1, dtype=np.float64) - 0.5 - location) / scale
    return np.maximum(np.diff(_student_t_cdf(edges, family), axis=-1), 0.0)  # a rounding wobble is not negative


def fit_model(codes: np.ndarray, symbols: int) -> tuple[int, float, float]:
    """The (family, location, scale) that codes `codes` in the fewest bits, parameters as float16 stores them."""
    histogram = np.bincount(codes, minlength=symbols).astype(np.float64)
    used = histogram > 0
    best = (len(codes) * np.log2(symbols), (UNIFORM, 0.0, 0.0))
    scales = np.unique(_SCALES[_SCALES <= 2 * symbols].astype(np.float16)).astype(np.float64)
    for location in {float(np.float16(np.mean(codes))), float(np.float16(np.median(codes)))}:
        for family in (STUDENT_T2, STUDENT_T4):
            p = probabilities(family, location, scales, symbols)
            p = np.maximum(p / p.sum(axis=1, keepdims=True), 1e-300)
            costs = -(np.log2(p[:, used]) @ histogram[used])
            if costs.min() < best[0]:
                best = (float(costs.min()), (family, location, float(scales[costs.argmin()])))
    return best[1]


def _categorical(model: tuple[int, float, float], symbols: int):
    import constriction  # imported here: only the ans coder needs it

    return constriction.stream.model.Categorical(probabilities(*model, symbols), perfect=False)


def _split(codes: np.ndarray, counts: tuple[int, ...]) -> list[np.ndarray]:
    return np.split(codes, np.cumsum(counts)[:-1]) if counts else []


def _ans_encode(payload: bytes, layout: PayloadLayout) -> bytes:
    import constriction

    symbols = 1 << layout.bits
    codes = unpack_bits(payload[layout.side:], layout.bits, sum(layout.counts)).astype(np.int32)
    tensors = _split(codes, layout.counts)
    models = [fit_model(t, symbols) if len(t) else (UNIFORM, 0.0, 0.0) for t in tensors]
    coder = constriction.stream.stack.AnsCoder()
    for tensor, model in reversed(list(zip(tensors, models))):  # a stack: the first tensor is decoded first
        if len(tensor):
            coder.encode_reverse(tensor, _categorical(model, symbols))
    table = b"".join(_MODEL.pack(*model) for model in models)
    return payload[:layout.side] + table + coder.get_compressed().astype("<u4").tobytes()


def _ans_decode(data: bytes, layout: PayloadLayout) -> bytes:
    import constriction

    symbols, start = 1 << layout.bits, layout.side + _MODEL.size * len(layout.counts)
    if len(data) < start or (len(data) - start) % 4:
        raise BitstreamError("damaged stream: the ans payload is cut short or not whole 32-bit words")
    models = [_MODEL.unpack_from(data, layout.side + _MODEL.size * i) for i in range(len(layout.counts))]
    for family, location, scale in models:
        if family not in (UNIFORM, STUDENT_T2, STUDENT_T4) or (family != UNIFORM and not (
                np.isfinite(location) and np.isfinite(scale) and scale > 0)):
            raise BitstreamError("damaged stream: an ans tensor model is not valid")
    try:
        coder = constriction.stream.stack.AnsCoder(np.frombuffer(data[start:], "<u4").astype(np.uint32))
        tensors = [coder.decode(_categorical(model, symbols), count) if count else np.zeros(0, np.int32)
                   for model, count in zip(models, layout.counts)]
    except Exception as error:  # noqa: BLE001 - constriction reports damaged words through several types
        raise BitstreamError(f"damaged stream: the ans payload does not decode ({type(error).__name__})") from None
    if not coder.is_empty():
        raise BitstreamError("damaged stream: the ans payload has bytes left over after the last code")
    codes = np.concatenate(tensors) if tensors else np.zeros(0, np.int32)
    return data[:layout.side] + pack_bits(codes.astype(np.uint16), layout.bits)


@dataclass(frozen=True)
class Coder:
    name: str
    encode: Callable[[bytes, PayloadLayout], bytes]
    decode: Callable[[bytes, PayloadLayout], bytes]  # returns the payload; raises BitstreamError on damage
    codes_only: bool = False  # models the quantizer's integer codes, so only for qK / qKc payloads


def _raw_decode(data: bytes, layout: PayloadLayout) -> bytes:
    return data


# id in the stream -> coder
CODERS = {
    0: Coder("raw", lambda payload, layout: payload, _raw_decode),
    1: Coder("zlib", _zlib_encode, _zlib_decode),
    2: Coder("lzma", _lzma_encode, _lzma_decode),
    3: Coder("ans", _ans_encode, _ans_decode, codes_only=True),
}
CODER_IDS = {coder.name: coder_id for coder_id, coder in CODERS.items()}
CODER_CHOICES = (*CODER_IDS, "best")


def applicable(coder_id: int, layout: PayloadLayout) -> bool:
    return not CODERS[coder_id].codes_only or layout.bits is not None


def compress(payload: bytes, layout: PayloadLayout, coder: str) -> tuple[int, bytes]:
    """(coder id, coded payload); `best` tries every coder that applies and keeps the smallest."""
    if coder == "best":
        return min((compress(payload, layout, CODERS[i].name) for i in CODERS if applicable(i, layout)),
                   key=lambda pair: len(pair[1]))
    if coder not in CODER_IDS:
        raise ValueError(f"unknown entropy coder {coder!r}; choose from: {', '.join(CODER_CHOICES)}")
    if not applicable(CODER_IDS[coder], layout):
        raise ValueError(f"the {coder} coder codes the integer codes of qK/qKc quantizers, not float weights; "
                         "use best, raw, zlib or lzma")
    return CODER_IDS[coder], CODERS[CODER_IDS[coder]].encode(payload, layout)


def decompress(coder_id: int, data: bytes, layout: PayloadLayout) -> bytes:
    """The payload, exactly `layout.size` bytes, or a BitstreamError."""
    if coder_id not in CODERS or not applicable(coder_id, layout):
        raise BitstreamError(f"damaged stream: entropy coder id {coder_id} is unknown or does not fit its quantizer")
    payload = CODERS[coder_id].decode(data, layout)
    if len(payload) != layout.size:
        raise BitstreamError(f"damaged stream: payload is {len(payload)} bytes, its header's weights need "
                             f"{layout.size}")
    return payload
