"""Bitstreams: exact round trips for every representation and quantizer, and damaged streams that fail cleanly."""

import json
import random
import struct
import time
import zlib

import numpy as np
import pytest
import torch

from fitbench import representations as R
from fitbench.compression.bitstream import HEADER_LENGTH, MAGIC, PREFIX, decode_stream, encode_model
from fitbench.compression.entropy import compress
from fitbench.compression.errors import BitstreamError
from fitbench.compression.quantize import UniformQuantizer, parse_quantizer

SMALL = {"width": 8, "depth": 2, "num_features": 4, "num_frequencies": 4, "grid": 6}
SMALL_FNET = {"width": 3, "depth": 2}


def small_model(name: str, channels: int = 3, seed: int = 0):
    fields = {f.name for f in __import__("dataclasses").fields(R.get_entry(name).config_cls)}
    overrides = SMALL_FNET if name == "fnet" else {k: v for k, v in SMALL.items() if k in fields}
    torch.manual_seed(seed)
    model = R.build(name, channels, seed=seed, **overrides)
    with torch.no_grad():  # non-trivial weights everywhere (RBF coefficients start at zero)
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("name", R.list_representations())
@pytest.mark.parametrize("spec", ["fp32", "fp16", "q8", "q5c", "q12"])
def test_decoded_model_computes_what_the_quantizer_promised(name, spec):
    model = small_model(name, channels=1 if spec == "q5c" else 3)
    quantizer = parse_quantizer(spec)
    data = encode_model(model, 40, 24, quantizer)
    decoded = decode_stream(data)
    assert (decoded.header.representation, decoded.header.height, decoded.header.width) == (name, 40, 24)
    assert decoded.bytes == len(data) and decoded.bpp == 8 * len(data) / (40 * 24)
    for (_, original), (_, restored) in zip(
        [(n, p) for n, p in model.named_parameters() if p.requires_grad],
        [(n, p) for n, p in decoded.model.named_parameters() if p.requires_grad],
    ):
        assert torch.equal(quantizer.fake_quantize(original), restored)  # bit-exact: encoder and decoder agree
    for (_, a), (_, b) in zip(model.named_buffers(), decoded.model.named_buffers()):
        assert torch.equal(a, b)  # fixed buffers (Fourier features' B) rebuilt from the seed, not stored


def test_uniform_quantization_error_is_at_most_half_a_step_and_per_channel_is_finer():
    torch.manual_seed(0)
    weight = torch.randn(16, 32) * torch.logspace(-2, 0, 16)[:, None]  # rows of very different scales
    for bits in (4, 8, 12):
        per_tensor = UniformQuantizer(f"q{bits}", bits, False)
        step = (weight.max() - weight.min()) / (2**bits - 1)
        assert (per_tensor.fake_quantize(weight) - weight).abs().max() <= step / 2 * 1.01
    coarse = (UniformQuantizer("q6", 6, False).fake_quantize(weight) - weight).pow(2).mean()
    fine = (UniformQuantizer("q6c", 6, True).fake_quantize(weight) - weight).pow(2).mean()
    assert fine < coarse / 4


def test_payload_is_bit_packed():
    model = small_model("siren")
    count = R.count_parameters(model)
    raw = {spec: len(encode_model(model, 32, 32, parse_quantizer(spec), coder="raw")) for spec in ("q4", "q8", "q12")}
    assert raw["q8"] - raw["q4"] == pytest.approx(count * 4 / 8, abs=2)
    assert raw["q12"] - raw["q8"] == pytest.approx(count * 4 / 8, abs=2)


def test_bad_quantizer_specs_are_refused():
    for spec in ("q3", "q13", "fp8", "int8", ""):
        with pytest.raises(ValueError, match="unknown quantizer"):
            parse_quantizer(spec)


def restamp(body: bytes, coder: str = "zlib", magic: bytes = MAGIC, version: int = 1) -> bytes:
    """A stream around `body` with a valid checksum: damage the checksum cannot catch."""
    coder_id, coded = compress(body, coder)
    return PREFIX.pack(magic, version, coder_id, zlib.crc32(coded)) + coded


def body_parts(data: bytes) -> tuple[dict, bytes]:
    body = zlib.decompress(data[PREFIX.size:])
    (length,) = HEADER_LENGTH.unpack_from(body)
    return json.loads(body[2:2 + length]), body[2 + length:]


def with_header(header: dict, payload: bytes) -> bytes:
    text = json.dumps(header).encode()
    return restamp(HEADER_LENGTH.pack(len(text)) + text + payload)


@pytest.fixture(scope="module")
def stream() -> bytes:
    return encode_model(small_model("siren"), 32, 32, parse_quantizer("q8"), coder="zlib")


LIES = {
    "huge width": lambda h: h["config"].update(width=10**9),
    "huge depth": lambda h: h["config"].update(depth=10**7),
    "deep and wide": lambda h: h["config"].update(depth=4000, width=4000),
    "negative width": lambda h: h["config"].update(width=-3),
    "string width": lambda h: h["config"].update(width="8"),
    "nan omega": lambda h: h["config"].update(omega_0=float("nan")),
    "unknown setting": lambda h: h["config"].update(evil="__import__('os')"),
    "unknown representation": lambda h: h.update(representation="pickle"),
    "huge image": lambda h: h.update(height=10**6),
    "zero image": lambda h: h.update(width=0),
    "element count": lambda h: h.update(elements=h["elements"] + 1),
    "tensor count": lambda h: h.update(tensors=h["tensors"] + 1),
    "quantizer": lambda h: h.update(quantizer="q2"),
    "wrong quantizer": lambda h: h.update(quantizer="q12"),
    "channels": lambda h: h.update(out_features=2**40),
    "missing field": lambda h: h.pop("width"),
    "extra field": lambda h: h.update(pickle="cos\nsystem"),
    "bool as int": lambda h: h.update(height=True),
}


@pytest.mark.parametrize("lie", LIES)
def test_a_header_that_lies_is_refused(stream, lie):
    header, payload = body_parts(stream)
    LIES[lie](header)
    with pytest.raises(BitstreamError, match="damaged stream|not supported|lacks"):
        decode_stream(with_header(header, payload))


def test_structural_damage_with_a_valid_checksum_is_refused(stream):
    header, payload = body_parts(stream)
    text = json.dumps(header).encode()
    cases = {
        "short payload": with_header(header, payload[:-1]),
        "long payload": with_header(header, payload + b"\0"),
        "header length past the body": restamp(HEADER_LENGTH.pack(60000) + text + payload),
        "header not JSON": restamp(HEADER_LENGTH.pack(5) + b"\x80abcd" + payload),
        "header a list": restamp(HEADER_LENGTH.pack(2) + b"[]" + payload),
        "deep JSON": restamp(HEADER_LENGTH.pack(4000) + b"[" * 4000),
        "empty body": restamp(b""),
        "wrong magic": restamp(HEADER_LENGTH.pack(len(text)) + text + payload, magic=b"PK\x03\x04"),
        "future version": restamp(HEADER_LENGTH.pack(len(text)) + text + payload, version=2),
        "zip bomb": restamp(b"\0" * (80 << 20)),
        "non-finite weights": with_header({**header, "quantizer": "fp32"},
                                          np.full(header["elements"], np.inf, "<f4").tobytes()),
    }
    for name, data in cases.items():
        with pytest.raises(BitstreamError):
            decode_stream(data)
        assert name


def test_hundreds_of_mutated_streams_each_raise_one_clear_error_quickly(stream):
    rng = random.Random(0)
    lzma_stream = encode_model(small_model("fourier_features"), 16, 16, parse_quantizer("fp16"), coder="lzma")
    mutants = []
    for base in (stream, lzma_stream):
        mutants += [base[:cut] for cut in rng.sample(range(len(base)), 60)]  # truncated
        for _ in range(150):  # flipped, inserted and deleted bytes
            data = bytearray(base)
            position = rng.randrange(len(data))
            kind = rng.choice(("flip", "insert", "delete", "splice"))
            if kind == "flip":
                data[position] ^= 1 << rng.randrange(8)
            elif kind == "insert":
                data.insert(position, rng.randrange(256))
            elif kind == "delete":
                del data[position]
            else:
                data[position:position + 8] = rng.randbytes(8)
            mutants.append(bytes(data))
    mutants += [rng.randbytes(rng.randrange(0, 400)) for _ in range(100)]  # random bytes
    mutants += [MAGIC + bytes([1]) + rng.randbytes(rng.randrange(0, 200)) for _ in range(100)]  # plausible prefix
    assert len(mutants) == 620
    start = time.perf_counter()
    for data in mutants:
        if data in (stream, lzma_stream):
            continue
        with pytest.raises(BitstreamError) as caught:
            decode_stream(data)
        assert "\n" not in str(caught.value) and len(str(caught.value)) < 300
    assert time.perf_counter() - start < 60  # no hang: a generous bound, not a benchmark


def test_a_prefix_alone_is_a_clear_error():
    with pytest.raises(BitstreamError, match="shorter than"):
        decode_stream(MAGIC)
    with pytest.raises(BitstreamError, match="magic"):
        decode_stream(struct.pack("<4sBBI", b"\x89PNG", 1, 0, 0))


def test_lying_sizes_for_a_representation_without_meta_support_are_bounded():
    data = encode_model(small_model("rbf"), 16, 16, parse_quantizer("fp16"), coder="zlib")
    header, payload = body_parts(data)
    header["config"]["grid"] = 3000
    with pytest.raises(BitstreamError, match="exceeds"):
        decode_stream(with_header(header, payload))
