"""A fitted representation as real bytes, and back. Format version 2 (docs/compression.md has the specification).

    prefix  = magic b"FBIC" | version u8 (2) | coder u8 | crc32 u32 of everything after the prefix
    rest    = header length u16 | header (raw DEFLATE of UTF-8 JSON, preset dictionary HEADER_DICTIONARY)
              | payload (the quantizer's bytes, trainable tensors in `named_parameters` order, coded by `coder`)

The header names the representation (and the plugin it came from, if any), every setting that decides the
function it computes (`model_settings`: all of them, not only those that differ from today's defaults, so a
stream does not change meaning when a default does), the output channels, the image size and the quantizer.

Decoding trusts nothing: the header is checked against hard limits, its settings by the representation's own
validation, and the cost of building and rendering the model is measured on the meta device before anything
is paid (bench/compression/sizing.py). JSON and raw numbers only: nothing in a stream is ever executed,
and a stream never loads a plugin; it names the one it needs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
import zlib
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from fitbench import representations

from .codecs import to_uint8
from .entropy import CODERS, compress, decompress
from .errors import BitstreamError, printable, quoted
from .quantize import BITS, Quantizer, parse_quantizer
from .sizing import COST_MODEL, BudgetExceeded, Meter, RenderCost, build_bounded, render_cost

MAGIC = b"FBIC"
VERSION = 2
PREFIX = struct.Struct("<4sBBI")  # magic, version, coder id, crc32 of everything after the prefix
HEADER_LENGTH = struct.Struct("<H")
MAX_HEADER = 4096  # stored (deflated) header bytes
MAX_HEADER_JSON = 16384  # header JSON once inflated
MAX_SIDE = 16384  # image height or width
MAX_PIXELS = 1 << 24  # 16.8 Mpixel (4096^2; a Kodak image is 0.39)
MAX_ELEMENTS = 1 << 24  # trainable values of one model (COIN's largest network has ~30 thousand)
MAX_TENSORS = 1024
# Estimated seconds of a decode (payload, build, probes, rendering, PNG) on the reference machine (sizing.COST_MODEL,
# whose prices are the slowest seen, measured under load). A quarter below the 5 s that `--decode` of any stream
# may take there, Python's and torch's start-up (~3 s) aside: streams at the limit took up to 5.4 s under a load
# average of 6.5 (docs/compression.md).
MAX_DECODE_SECONDS = 4.0
ACTIVATIONS_PER_CHUNK = 1 << 24  # elements created per rendered chunk: bounds the memory of the reconstruction
# The largest coded payload a valid stream can have: MAX_ELEMENTS values as qKc codes of the most bits with one
# channel each (a float16 offset and step per value), plus what a coder adds to incompressible bytes (DEFLATE's and
# LZMA2's stored blocks: a few bytes per 64 KiB; ans: a 5-byte model per tensor and 32-bit words).
MAX_PAYLOAD = 4 * MAX_ELEMENTS + math.ceil(BITS[-1] * MAX_ELEMENTS / 8)
MAX_STREAM_BYTES = PREFIX.size + HEADER_LENGTH.size + MAX_HEADER + MAX_PAYLOAD + MAX_PAYLOAD // 256 + (1 << 16)
# Bytes a header is likely to contain (its own field names; no representation's): DEFLATE refers back to them
# instead of spelling them out. Over the twelve representations' headers it saved 88 bytes each on average (156
# -> 68; docs/compression.md), 0.011 bpp at 256^2. Part of format version 2: never change it.
HEADER_DICTIONARY = (b'false,true,0.0,{"representation":"","plugin":null,"config":{"seed":0,"width":,"depth":},'
                     b'"out_features":3,"height":256,"width":256,"quantizer":"q8","tensors":,"elements":}')
V1_REFUSAL = ("stream format version 1 is no longer read: it stored only the settings that differed from the "
              "defaults of the fitbench that wrote it, so it cannot be decoded reliably; this fitbench reads "
              f"version {VERSION}: encode the fit again")


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """What a stream stores: the parameters the fit trains (fixed buffers are rebuilt from the config)."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


@dataclass(frozen=True)
class StreamHeader:
    representation: str
    plugin: str | None  # the plugin (module or file) that registers the representation; None: built in
    config: dict
    out_features: int
    height: int
    width: int
    quantizer: str
    tensors: int
    elements: int

    def summary(self) -> str:
        """One line; what the stream wrote in it (its plugin's name above all) escaped and quoted: a stream cannot
        move the cursor, clear the screen or pass a command off as a path."""
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        plugin = f" from plugin {quoted(self.plugin)} (a plugin runs code)" if self.plugin else ""
        return printable(f"{self.representation}{plugin} ({settings}) -> {self.out_features} channel(s), "
                         f"{self.height}x{self.width} pixels; {self.tensors} tensors, {self.elements} values "
                         f"quantized as {self.quantizer}")


@dataclass
class DecodedStream:
    header: StreamHeader
    model: nn.Module
    coder: str
    bytes: int
    cost: RenderCost  # the reconstruction's cost, as the decoder measured it on the stream's weights
    notes: list[str] = field(default_factory=list)  # e.g. settings the stream predates, filled with defaults
    render_seconds: float | None = None  # rendering stops past these estimated seconds (None: no limit)

    @property
    def bpp(self) -> float:
        return 8 * self.bytes / (self.header.height * self.header.width)

    def reconstruct(self, device: str = "cpu") -> np.ndarray:
        """The decoded model's image, (H, W, C) float32 in [0, 1]."""
        return self._render(device, np.float32, lambda values: values)

    def image8(self, device: str = "cpu") -> np.ndarray:
        """The 8-bit image (H, W, C) a reader of the stream gets: `to_uint8` of `reconstruct`, in a quarter of the
        memory."""
        return self._render(device, np.uint8, to_uint8)

    def _render(self, device: str, dtype, convert) -> np.ndarray:
        h = self.header
        image = np.empty((h.height, h.width, h.out_features), dtype)
        model = self.model.to(device).eval()
        # Metered by the prices the estimate used: a model whose cost the probes did not see stops at the limit.
        meter = (Meter(self.render_seconds, ACTIVATIONS_PER_CHUNK) if self.render_seconds is not None
                 else nullcontext())
        with torch.no_grad():
            for rows, columns, coords in self._chunks():
                try:
                    with meter:
                        values = model(coords.to(device))
                except BudgetExceeded as error:
                    raise BitstreamError(f"stream refused: rendering this {h.representation} stopped at row "
                                         f"{rows.start} of {h.height}: {error}, the decoder's limit; its weights cost "
                                         "more where its probes did not look") from None
                values = values.float().cpu()
                if not torch.isfinite(values.sum()) and not torch.isfinite(values).all():  # one pass when finite
                    raise BitstreamError(f"the decoded {h.representation} outputs values that are not finite "
                                         "numbers; the stream's weights or settings are damaged")
                block = convert(values.clamp(0, 1).numpy())
                image[rows, columns] = block.reshape(rows.stop - rows.start, columns.stop - columns.start, -1)
        return image

    def _chunks(self) -> Iterator[tuple[slice, slice, torch.Tensor]]:
        """(rows, columns, coordinates) of blocks of at most `size` pixels, whole rows where a row fits; the
        coordinates equal `protocol.coordinate_grid`'s for those pixels."""
        h = self.header
        size = self.cost.chunk_pixels(ACTIVATIONS_PER_CHUNK)
        ys = torch.arange(h.height, dtype=torch.float32) / h.height
        xs = torch.arange(h.width, dtype=torch.float32) / h.width
        step_rows, step_columns = max(1, size // h.width), min(size, h.width)
        for top in range(0, h.height, step_rows):
            rows = slice(top, min(top + step_rows, h.height))
            for left in range(0, h.width, step_columns):
                columns = slice(left, min(left + step_columns, h.width))
                grid_y, grid_x = torch.meshgrid(ys[rows], xs[columns], indexing="ij")
                yield rows, columns, torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)


def encode_model(model: nn.Module, height: int, width: int, quantizer: Quantizer, coder: str = "best") -> bytes:
    """Bytes of `model` (made by `representations.build`) for an image of `height` x `width` pixels."""
    params = trainable(model)
    header = StreamHeader(
        representation=model.representation, plugin=representations.get_entry(model.representation).plugin,
        config=representations.model_settings(model.config), out_features=_out_features(model, params),
        height=height, width=width, quantizer=quantizer.spec, tensors=len(params),
        elements=sum(p.numel() for _, p in params),
    )
    stored = _deflate(json.dumps(dataclasses.asdict(header), separators=(",", ":"), allow_nan=False).encode())
    if len(stored) > MAX_HEADER:
        raise ValueError(f"{model.representation}: stream header of {len(stored)} bytes exceeds {MAX_HEADER}")
    tensors = [p for _, p in params]
    layout = quantizer.layout([tuple(p.shape) for p in tensors])
    coder_id, coded = compress(quantizer.pack(tensors), layout, coder)
    rest = HEADER_LENGTH.pack(len(stored)) + stored + coded
    return PREFIX.pack(MAGIC, VERSION, coder_id, zlib.crc32(rest)) + rest


def read_stream(path: Path) -> bytes:
    """A stream file's bytes, read only when it can be a stream: a file over MAX_STREAM_BYTES (or a device or pipe
    that goes on) is refused before it is read."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(MAX_STREAM_BYTES + 1) if size <= MAX_STREAM_BYTES else b""
    if size > MAX_STREAM_BYTES or len(data) > MAX_STREAM_BYTES:
        raise BitstreamError(f"not a fitbench stream: {max(size, len(data)):,} bytes or more, over the "
                             f"{MAX_STREAM_BYTES:,} bytes a stream can have")
    return data


def decode_stream(data: bytes, max_seconds: float | None = MAX_DECODE_SECONDS) -> DecodedStream:
    """The model a stream holds; any damage, lie or excessive cost raises one `BitstreamError` naming it.
    `max_seconds`: the decode's estimated seconds on the reference machine above which the stream is refused
    (sizing.COST_MODEL); None for no limit (a stream this process has just written)."""
    limit = math.inf if max_seconds is None else max_seconds
    header, coder_id, coded = read_header(data)
    settings, notes = _settings(header)
    quantizer = _quantizer(header.quantizer)
    pixels = header.height * header.width
    fixed = header.elements * COST_MODEL.stored_value + pixels * header.out_features * COST_MODEL.output_value
    if fixed > limit:
        raise _too_costly(header, fixed, limit)
    try:
        model = build_bounded(header.representation, header.out_features, settings, header.elements, header.tensors)
    except BudgetExceeded as error:
        raise BitstreamError(f"damaged stream: its {header.representation} settings make a model far larger than "
                             f"its {header.tensors} tensors of {header.elements} stored values ({error})") from None
    except Exception as error:  # noqa: BLE001 - a config that does not build is a damaged stream, not a crash
        raise BitstreamError(f"damaged stream: its {header.representation} settings do not build "
                             f"({type(error).__name__}: {error})") from None
    params = trainable(model)
    counts = (len(params), sum(p.numel() for _, p in params))
    if counts != (header.tensors, header.elements):
        raise BitstreamError(f"damaged stream: header says {header.tensors} tensors / {header.elements} values, its "
                             f"settings make {counts[0]} / {counts[1]}")
    shapes = [tuple(p.shape) for _, p in params]
    payload = decompress(coder_id, coded, quantizer.layout(shapes))
    with torch.no_grad():
        for (_, param), tensor in zip(params, quantizer.unpack(payload, shapes)):
            if not torch.isfinite(tensor).all():
                raise BitstreamError("damaged stream: a stored weight is not a finite number")
            param.copy_(tensor)
    # priced with the stream's own weights: what a model computes per pixel can depend on them (Gaussians' sizes)
    try:
        cost = render_cost(model.eval(), header.height, header.width, ACTIVATIONS_PER_CHUNK, limit - fixed)
    except BudgetExceeded as error:
        raise BitstreamError(f"stream refused: probing its {header.representation} on a few pixels stopped ({error}"
                             f"), over the decoder's limit of {limit:.3g} s or a chunk's memory") from None
    fixed += cost.probe_seconds
    seconds = fixed + cost.seconds(pixels, cost.chunk_pixels(ACTIVATIONS_PER_CHUNK))
    if seconds > limit:
        raise _too_costly(header, seconds, limit)
    # the meter allows the rendering a quarter over the estimate (the limit's margin below 5 s): chunks of the image
    # price a little differently from the probes, and a stream just within the limit should not stop at its last row
    return DecodedStream(header, model, CODERS[coder_id].name, len(data), cost, notes,
                         None if max_seconds is None else 1.25 * (max_seconds - fixed))


def _too_costly(header: StreamHeader, seconds: float, limit: float) -> BitstreamError:
    return BitstreamError(f"stream refused: decoding {header.height}x{header.width} pixels with this "
                          f"{header.representation} is estimated at {seconds:.3g} s on the reference machine, over "
                          f"the decoder's limit of {limit:.3g} s")


_FIELD_TYPES = {"representation": str, "plugin": (str, type(None)), "config": dict, "out_features": int,
                "height": int, "width": int, "quantizer": str, "tensors": int, "elements": int}


def read_header(data: bytes) -> tuple[StreamHeader, int, bytes]:
    """(header, coder id, coded payload): the prefix, checksum and header checked against hard limits."""
    if len(data) < PREFIX.size:
        raise BitstreamError(f"not a fitbench stream: {len(data)} bytes, shorter than the {PREFIX.size}-byte prefix")
    magic, version, coder_id, crc = PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError(f"not a fitbench stream: magic {magic!r}, expected {MAGIC!r}")
    if version == 1:
        raise BitstreamError(V1_REFUSAL)
    if version != VERSION:
        raise BitstreamError(f"stream format version {version} is not supported; this fitbench reads version "
                             f"{VERSION}")
    rest = data[PREFIX.size:]
    if zlib.crc32(rest) != crc:
        raise BitstreamError("damaged stream: checksum mismatch (truncated or altered bytes)")
    if len(rest) < HEADER_LENGTH.size:
        raise BitstreamError("damaged stream: too short for a header")
    (length,) = HEADER_LENGTH.unpack_from(rest)
    if length > MAX_HEADER or HEADER_LENGTH.size + length > len(rest):
        raise BitstreamError(f"damaged stream: header length {length} is impossible (limit {MAX_HEADER}, "
                             f"{len(rest)} bytes after the prefix)")
    header = _parse_header(_inflate(rest[HEADER_LENGTH.size:HEADER_LENGTH.size + length]))
    return header, coder_id, rest[HEADER_LENGTH.size + length:]


def _parse_header(text: bytes) -> StreamHeader:
    try:
        fields = json.loads(text.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
        raise BitstreamError(f"damaged stream: header is not valid JSON ({error})") from None
    if not isinstance(fields, dict) or set(fields) != set(_FIELD_TYPES):
        raise BitstreamError(f"damaged stream: header must have exactly the fields {', '.join(_FIELD_TYPES)}")
    for name, kind in _FIELD_TYPES.items():
        if not isinstance(fields[name], kind) or isinstance(fields[name], bool):
            raise BitstreamError(f"damaged stream: header field {name!r} has the wrong type")
    header = StreamHeader(**fields)
    if not (0 < header.height <= MAX_SIDE and 0 < header.width <= MAX_SIDE):
        raise BitstreamError(f"damaged stream: image size {header.height}x{header.width} is out of range "
                             f"(1..{MAX_SIDE} a side)")
    if header.height * header.width > MAX_PIXELS:
        raise BitstreamError(f"stream refused: {header.height}x{header.width} pixels is over the decoder's limit of "
                             f"{MAX_PIXELS:,}")
    if not (0 < header.out_features <= 4 and 0 < header.tensors <= MAX_TENSORS
            and 0 < header.elements <= MAX_ELEMENTS):
        raise BitstreamError(f"damaged stream: channels {header.out_features}, tensors {header.tensors} or values "
                             f"{header.elements} out of range (1..4, 1..{MAX_TENSORS}, 1..{MAX_ELEMENTS:,})")
    return header


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise ValueError(f"key {duplicate!r} appears twice")
    return dict(pairs)


def _no_constants(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _settings(header: StreamHeader) -> tuple[dict, list[str]]:
    """The header's settings, validated by the representation's own config; settings the stream predates (its
    representation gained them later) are filled with today's defaults and noted."""
    try:
        entry = representations.get_entry(header.representation)
    except representations.UnknownRepresentationError as error:
        if header.plugin:
            plugin = quoted(header.plugin)
            raise BitstreamError(f"stream needs representation {header.representation!r} from plugin {plugin}, not "
                                 f"loaded; a plugin runs code: if you trust it, add --plugin {plugin} (a stream never "
                                 "loads code)") from None
        raise BitstreamError(f"stream needs a representation this install lacks: {error}") from None
    try:
        config = representations.make_config(header.representation, **header.config)
    except (ValueError, TypeError) as error:
        raise BitstreamError(f"damaged stream: {error}") from None
    settings = representations.model_settings(config)
    missing = sorted(set(settings) - set(header.config))
    notes = [f"the stream predates {entry.name} settings {', '.join(missing)}; decoded with today's defaults "
             f"({', '.join(f'{k}={settings[k]!r}' for k in missing)})"] if missing else []
    return settings, notes


def _quantizer(spec: str) -> Quantizer:
    try:
        return parse_quantizer(spec)
    except ValueError as error:
        raise BitstreamError(f"damaged stream: {error}") from None


def _deflate(text: bytes) -> bytes:
    encoder = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=HEADER_DICTIONARY)
    return encoder.compress(text) + encoder.flush()


def _inflate(stored: bytes) -> bytes:
    decoder = zlib.decompressobj(-15, zdict=HEADER_DICTIONARY)
    try:
        text = decoder.decompress(stored, MAX_HEADER_JSON + 1)
    except zlib.error as error:
        raise BitstreamError(f"damaged stream: header does not inflate ({error})") from None
    if not decoder.eof or decoder.unused_data or len(text) > MAX_HEADER_JSON:
        raise BitstreamError("damaged stream: header is cut short, too long or followed by extra bytes")
    return text


def _out_features(model: nn.Module, params) -> int:
    with torch.no_grad():
        probe = next(iter(params))[1]
        return int(model(torch.zeros(1, 2, device=probe.device)).shape[-1])


def stream_overhead(data: bytes) -> dict[str, int]:
    """Bytes of a stream by part: prefix, header, payload (what the notes' overhead analysis reads)."""
    (length,) = HEADER_LENGTH.unpack_from(data, PREFIX.size)
    return {"prefix": PREFIX.size, "header": HEADER_LENGTH.size + length,
            "payload": len(data) - PREFIX.size - HEADER_LENGTH.size - length}

