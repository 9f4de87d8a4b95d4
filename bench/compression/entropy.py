"""Lossless coders for a stream's body, from the standard library. `best` keeps whichever is smallest."""

from __future__ import annotations

import lzma
import zlib

from .errors import BitstreamError

MAX_BODY = 64 << 20  # a decoded body larger than this is refused before it is allocated

_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]  # raw: no 60-byte xz container


def _lzma_decompress(data: bytes) -> bytes:
    decoder = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    body = decoder.decompress(data, max_length=MAX_BODY + 1)
    if not decoder.eof:
        raise BitstreamError("damaged stream: the lzma body is cut short or too large")
    return body


def _zlib_decompress(data: bytes) -> bytes:
    decoder = zlib.decompressobj()
    body = decoder.decompress(data, MAX_BODY + 1)
    if not decoder.eof or decoder.unused_data:
        raise BitstreamError("damaged stream: the zlib body is cut short, too large or followed by extra bytes")
    return body


# id in the stream -> (name, compress, decompress)
CODERS = {
    0: ("raw", bytes, bytes),
    1: ("zlib", lambda b: zlib.compress(b, 9), _zlib_decompress),
    2: ("lzma", lambda b: lzma.compress(b, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS), _lzma_decompress),
}
CODER_IDS = {name: coder_id for coder_id, (name, _, _) in CODERS.items()}
CODER_CHOICES = (*CODER_IDS, "best")


def compress(body: bytes, coder: str) -> tuple[int, bytes]:
    """(coder id, coded body); `best` tries every coder and keeps the smallest."""
    if coder == "best":
        return min((compress(body, name) for name in CODER_IDS), key=lambda pair: len(pair[1]))
    if coder not in CODER_IDS:
        raise ValueError(f"unknown entropy coder {coder!r}; choose from: {', '.join(CODER_CHOICES)}")
    return CODER_IDS[coder], CODERS[CODER_IDS[coder]][1](body)


def decompress(coder_id: int, data: bytes) -> bytes:
    if coder_id not in CODERS:
        raise BitstreamError(f"damaged stream: unknown entropy coder id {coder_id}")
    try:
        body = CODERS[coder_id][2](data)
    except (lzma.LZMAError, zlib.error) as error:
        raise BitstreamError(f"damaged stream: {CODERS[coder_id][0]} body does not decode ({error})") from None
    if len(body) > MAX_BODY:
        raise BitstreamError(f"stream body decodes to more than {MAX_BODY} bytes; refused")
    return body
