"""A fitted representation as real bytes, and back.

Layout (all integers little-endian; docs/compression.md has the full specification):

    magic b"FBIC" | version u8 | coder u8 | crc32 u32 of the coded body | coded body
    body = header length u16 | header JSON (UTF-8) | payload (the quantizer's bytes, trainable tensors in
           `named_parameters` order)

The header names the representation, its full config (so fixed buffers such as Fourier features' B are rebuilt
from the config's seed, never stored), the output channels, the image size and the quantizer. Decoding checks
every size against a hard limit before allocating, builds the model and loads the tensors. JSON and raw numbers
only: nothing in a stream is ever executed (no pickle).
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fitbench import representations

from ..engine import reconstruct
from ..protocol import coordinate_grid
from .entropy import CODERS, compress, decompress
from .errors import BitstreamError
from .quantize import Quantizer, parse_quantizer

MAGIC = b"FBIC"
VERSION = 1
PREFIX = struct.Struct("<4sBBI")  # magic, version, coder id, crc32 of the coded body
HEADER_LENGTH = struct.Struct("<H")
MAX_HEADER = 4096  # bytes of header JSON
MAX_SIDE = 16384  # image height or width
MAX_PIXELS = 1 << 26
MAX_ELEMENTS = 1 << 26  # trainable values in one model
MAX_CONFIG_INT = 4096  # any config integer but the seed (widths, depths, grids): even a meta build of more is slow
MAX_UNSIZED_INT = 1024  # the same where the model cannot be sized on the meta device and must really be built


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """What a stream stores: the parameters the fit trains (fixed buffers are rebuilt from the config)."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


@dataclass(frozen=True)
class StreamHeader:
    representation: str
    config: dict
    out_features: int
    height: int
    width: int
    quantizer: str
    tensors: int
    elements: int

    def summary(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.config.items())
        return (f"{self.representation} ({settings}) -> {self.out_features} channel(s), {self.height}x{self.width} "
                f"pixels; {self.tensors} tensors, {self.elements} values quantized as {self.quantizer}")


@dataclass
class DecodedStream:
    header: StreamHeader
    model: nn.Module
    coder: str
    bytes: int

    @property
    def bpp(self) -> float:
        return 8 * self.bytes / (self.header.height * self.header.width)

    def reconstruct(self, device: str = "cpu") -> np.ndarray:
        """The decoded model's image, (H, W, C) in [0, 1]."""
        h = self.header
        model = self.model.to(device)
        return reconstruct(model, coordinate_grid(h.height, h.width), (h.height, h.width, h.out_features), device,
                           1 << 16)


def encode_model(model: nn.Module, height: int, width: int, quantizer: Quantizer, coder: str = "best") -> bytes:
    """Bytes of `model` (made by `representations.build`) for an image of `height` x `width` pixels."""
    params = trainable(model)
    header = StreamHeader(
        representation=model.representation, config=_non_default(model.representation, model.config),
        out_features=_out_features(model, params), height=height, width=width, quantizer=quantizer.spec,
        tensors=len(params), elements=sum(p.numel() for _, p in params),
    )
    text = json.dumps(dataclasses.asdict(header), separators=(",", ":")).encode()
    if len(text) > MAX_HEADER:
        raise ValueError(f"{model.representation}: stream header of {len(text)} bytes exceeds {MAX_HEADER}")
    body = HEADER_LENGTH.pack(len(text)) + text + quantizer.pack([p for _, p in params])
    coder_id, coded = compress(body, coder)
    return PREFIX.pack(MAGIC, VERSION, coder_id, zlib.crc32(coded)) + coded


def decode_stream(data: bytes) -> DecodedStream:
    """The model a stream holds; any damage raises one `BitstreamError` naming what is wrong."""
    if len(data) < PREFIX.size:
        raise BitstreamError(f"not a fitbench stream: {len(data)} bytes, shorter than the {PREFIX.size}-byte prefix")
    magic, version, coder_id, crc = PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError(f"not a fitbench stream: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise BitstreamError(f"stream format version {version} is not supported; this fitbench reads version {VERSION}")
    coded = data[PREFIX.size:]
    if zlib.crc32(coded) != crc:
        raise BitstreamError("damaged stream: checksum mismatch (truncated or altered bytes)")
    body = decompress(coder_id, coded)
    header, payload = _split_body(body)
    quantizer = parse_quantizer_checked(header.quantizer)
    model = _build_checked(header)
    params = trainable(model)
    shapes = [tuple(p.shape) for _, p in params]
    expected = quantizer.payload_size(shapes)
    if len(payload) != expected:
        raise BitstreamError(f"damaged stream: payload is {len(payload)} bytes, {header.quantizer} weights of "
                             f"{header.representation} need {expected}")
    with torch.no_grad():
        for (_, param), tensor in zip(params, quantizer.unpack(payload, shapes)):
            if not torch.isfinite(tensor).all():
                raise BitstreamError("damaged stream: a stored weight is not a finite number")
            param.copy_(tensor)
    return DecodedStream(header, model, CODERS[coder_id][0], len(data))


def _non_default(name: str, config) -> dict:
    """Only the settings that differ from the representation's defaults: the decoder rebuilds the rest, and at
    low rates every header byte counts (the full config cost 135-180 coded bytes, ~0.08 bpp on a 128^2 image)."""
    defaults = dataclasses.asdict(representations.make_config(name))
    return {k: v for k, v in dataclasses.asdict(config).items() if defaults[k] != v}


def parse_quantizer_checked(spec) -> Quantizer:
    try:
        return parse_quantizer(str(spec))
    except ValueError as error:
        raise BitstreamError(f"damaged stream: {error}") from None


def _out_features(model: nn.Module, params) -> int:
    with torch.no_grad():
        probe = next(iter(params))[1]
        return int(model(torch.zeros(1, 2, device=probe.device)).shape[-1])


_FIELD_TYPES = {"representation": str, "config": dict, "out_features": int, "height": int, "width": int,
                "quantizer": str, "tensors": int, "elements": int}


def _split_body(body: bytes) -> tuple[StreamHeader, bytes]:
    if len(body) < HEADER_LENGTH.size:
        raise BitstreamError("damaged stream: body too short for a header")
    (length,) = HEADER_LENGTH.unpack_from(body)
    if length > MAX_HEADER or HEADER_LENGTH.size + length > len(body):
        raise BitstreamError(f"damaged stream: header length {length} is impossible (limit {MAX_HEADER}, body "
                             f"{len(body)} bytes)")
    try:
        fields = json.loads(body[HEADER_LENGTH.size:HEADER_LENGTH.size + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise BitstreamError(f"damaged stream: header is not JSON ({error})") from None
    if not isinstance(fields, dict) or set(fields) != set(_FIELD_TYPES):
        raise BitstreamError(f"damaged stream: header must have exactly the fields {', '.join(_FIELD_TYPES)}")
    for name, kind in _FIELD_TYPES.items():
        if not isinstance(fields[name], kind) or isinstance(fields[name], bool):
            raise BitstreamError(f"damaged stream: header field {name!r} is not a {kind.__name__}")
    header = StreamHeader(**fields)
    if not (0 < header.height <= MAX_SIDE and 0 < header.width <= MAX_SIDE
            and header.height * header.width <= MAX_PIXELS):
        raise BitstreamError(f"damaged stream: image size {header.height}x{header.width} is out of range")
    if not (0 < header.out_features <= 4 and 0 < header.tensors <= 1024 and 0 < header.elements <= MAX_ELEMENTS):
        raise BitstreamError("damaged stream: channel, tensor or value count out of range")
    return header, body[HEADER_LENGTH.size + length:]


def _checked_config(header: StreamHeader) -> dict:
    """The header's config, each value of its field's type (so a lying config fails before anything is built)."""
    try:
        config_cls = representations.get_entry(header.representation).config_cls
    except representations.UnknownRepresentationError as error:
        raise BitstreamError(f"stream needs a representation this install lacks: {error}") from None
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    for name, value in header.config.items():
        if name not in defaults:
            raise BitstreamError(f"damaged stream: {header.representation} has no setting {name!r}")
        expected = type(defaults[name])
        numeric = expected is float and isinstance(value, int) and not isinstance(value, bool)
        if not (type(value) is expected or numeric) or (isinstance(value, float) and not math.isfinite(value)):
            raise BitstreamError(f"damaged stream: {header.representation}.{name} = {value!r} is not a valid "
                                 f"{expected.__name__}")
        if expected is int and name != "seed" and abs(value) > MAX_CONFIG_INT:
            raise BitstreamError(f"damaged stream: {header.representation}.{name} = {value} exceeds {MAX_CONFIG_INT}")
    return header.config


def _build_checked(header: StreamHeader) -> nn.Module:
    config = _checked_config(header)
    try:  # size the model without allocating it
        with torch.device("meta"):
            count = representations.count_parameters(
                representations.build(header.representation, header.out_features, **config))
    except Exception:  # noqa: BLE001 - some representations cannot be built on the meta device
        count = None
    if count is None and any(type(v) is int and abs(v) > MAX_UNSIZED_INT for k, v in config.items() if k != "seed"):
        raise BitstreamError(f"damaged stream: a {header.representation} setting exceeds {MAX_UNSIZED_INT}")
    if count is not None and count != header.elements:
        raise BitstreamError(f"damaged stream: header says {header.elements} values, its config has {count}")
    try:
        model = representations.build(header.representation, header.out_features, **config)
    except Exception as error:  # noqa: BLE001 - a config that does not build is a damaged stream, not a crash
        raise BitstreamError(f"damaged stream: its {header.representation} config does not build ({error})") from None
    params = trainable(model)
    if len(params) != header.tensors or sum(p.numel() for _, p in params) != header.elements:
        raise BitstreamError(f"damaged stream: header says {header.tensors} tensors / {header.elements} values, "
                             f"the model has {len(params)} / {sum(p.numel() for _, p in params)}")
    return model.eval()
