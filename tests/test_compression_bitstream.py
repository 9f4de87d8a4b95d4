"""Bitstreams: exact round trips for every representation, quantizer and coder; self-describing headers; and
damaged, lying or costly streams refused with one clear line."""

import json
import re
import shlex
import struct
import sys
import zlib

import numpy as np
import pytest
import torch

from fitbench import representations as R
from fitbench.compression import entropy
from fitbench.compression.bitstream import (
    MAGIC,
    MAX_DECODE_SECONDS,
    MAX_STREAM_BYTES,
    PREFIX,
    V1_REFUSAL,
    VERSION,
    _deflate,
    decode_stream,
    encode_model,
    read_stream,
    stream_overhead,
)
from fitbench.compression.errors import MAX_MESSAGE, BitstreamError
from fitbench.compression.quantize import PayloadLayout, UniformQuantizer, pack_bits, parse_quantizer
from fitbench.compression.sizing import COST_MODEL, RenderCost
from fitbench.representations import registry

from support.fuzz import restamp, split, with_header_text


def small_model(name: str, channels: int = 3, seed: int = 0, **overrides):
    """The representation at its declared "tiny" size, with non-trivial weights (RBF coefficients start at zero)."""
    torch.manual_seed(seed)
    model = R.build(name, channels, seed=seed, **{**R.sized_overrides(name, "tiny"), **overrides})
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    return model


def stored(model) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("name", R.list_representations())
@pytest.mark.parametrize("spec, coder", [("fp32", "raw"), ("fp16", "best"), ("q8", "ans"), ("q5c", "zlib"),
                                         ("q12", "lzma")])
def test_decoded_model_computes_what_the_quantizer_promised(name, spec, coder):
    model = small_model(name, channels=1 if spec == "q5c" else 3)
    quantizer = parse_quantizer(spec)
    data = encode_model(model, 40, 24, quantizer, coder)
    decoded = decode_stream(data)
    assert (decoded.header.representation, decoded.header.height, decoded.header.width) == (name, 40, 24)
    assert decoded.bytes == len(data) and decoded.bpp == 8 * len(data) / (40 * 24)
    assert coder == "best" or decoded.coder == coder
    for original, restored in zip(stored(model), stored(decoded.model)):
        assert torch.equal(quantizer.fake_quantize(original), restored)  # bit-exact: encoder and decoder agree
    for a, b in zip(model.buffers(), decoded.model.buffers()):
        assert torch.equal(a, b)  # fixed buffers (Fourier features' B) rebuilt from the seed, not stored


def test_the_header_holds_every_setting_that_decides_the_function():
    model = small_model("siren")
    header = json.loads(split(encode_model(model, 16, 16, parse_quantizer("q8")))[2])
    assert header["config"] == json.loads(json.dumps(R.model_settings(model.config)))
    assert set(header["config"]) == set(R.model_settings(R.make_config("siren")))  # defaults included
    assert not set(header["config"]) & {"lr", "schedule", "adam_betas"}  # optimiser settings do not decide it


def test_a_changed_default_does_not_change_what_an_old_stream_decodes_to(monkeypatch):
    model = small_model("siren")
    data = encode_model(model, 16, 16, parse_quantizer("fp32"))
    config_cls = R.get_entry("siren").config_cls
    monkeypatch.setattr(config_cls, "__init__", _with_default(config_cls.__init__, omega_0=7.0))
    assert R.make_config("siren").omega_0 == 7.0  # today's default moved ...
    decoded = decode_stream(data)
    assert decoded.model.config.omega_0 == model.config.omega_0  # ... the stream still says what it was written with
    coords = torch.rand(50, 2)
    assert torch.equal(decoded.model(coords), model(coords))


def _with_default(init, **defaults):
    def patched(self, *args, **kwargs):
        init(self, *args, **{**defaults, **kwargs})

    return patched


def test_a_stream_that_predates_a_setting_decodes_with_its_default_and_says_so():
    data = encode_model(small_model("siren"), 16, 16, parse_quantizer("q8"))
    header = json.loads(split(data)[2])
    del header["config"]["omega_0"]
    decoded = decode_stream(with_header_text(data, json.dumps(header).encode()))
    assert decoded.model.config.omega_0 == R.make_config("siren").omega_0
    assert len(decoded.notes) == 1 and "predates siren settings omega_0" in decoded.notes[0]


def test_version_1_streams_are_refused_with_one_line_naming_the_version():
    data = encode_model(small_model("siren"), 16, 16, parse_quantizer("q8"))
    old = restamp(data[PREFIX.size:], version=1, coder_id=data[5])
    with pytest.raises(BitstreamError) as caught:
        decode_stream(old)
    assert str(caught.value) == V1_REFUSAL and "version 1" in V1_REFUSAL and f"version {VERSION}" in V1_REFUSAL
    with pytest.raises(BitstreamError, match="version 3 is not supported"):
        decode_stream(restamp(data[PREFIX.size:], version=3, coder_id=data[5]))


PLUGIN = '''
from dataclasses import dataclass
from torch import nn
from fitbench.representations import RepresentationConfig, register

@dataclass
class ToyConfig(RepresentationConfig):
    width: int = 4

@register("toy_from_plugin", ToyConfig)
def toy(config, out_features):
    """A linear map, from a plugin file."""
    return nn.Linear(2, out_features)
'''


def test_a_stream_names_the_plugin_it_needs_and_never_loads_it(tmp_path, monkeypatch):
    plugin = tmp_path / "toy_plugin.py"
    plugin.write_text(PLUGIN)
    monkeypatch.setattr(registry, "_REGISTRY", registry._REGISTRY.copy())  # the registration is undone afterwards
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    R.load_plugin(str(plugin))
    data = encode_model(R.build("toy_from_plugin", 3), 8, 8, parse_quantizer("fp16"))
    assert json.loads(split(data)[2])["plugin"] == str(plugin.resolve())
    assert decode_stream(data).header.representation == "toy_from_plugin"
    del registry._REGISTRY["toy_from_plugin"]  # a fresh process that was not given --plugin
    with pytest.raises(BitstreamError) as caught:
        decode_stream(data)
    message = str(caught.value)
    name = shlex.quote(str(plugin.resolve()))
    assert f"from plugin {name}," in message and f"--plugin {name} " in message
    assert "a plugin runs code" in message and "never loads code" in message


def test_text_a_stream_supplies_is_printed_escaped_and_quoted_never_raw():
    plugin = "\x1b[2J\x1b[H x.py; rm -rf ~ \u202e"  # clear the screen, a shell command, a right-to-left override
    data = lying(encode_model(small_model("siren"), 8, 8, parse_quantizer("q8")), lambda h: h.update(plugin=plugin))
    summary = decode_stream(data).header.summary()
    assert "'\\x1b[2J\\x1b[H x.py; rm -rf ~ \\u202e' (a plugin runs code)" in summary
    with pytest.raises(BitstreamError) as caught:
        decode_stream(lying(data, lambda h: h.update(representation="not_loaded")))
    for line in (summary, str(caught.value)):
        assert line.isprintable() and "rm -rf ~ \\u202e'" in line
    assert "--plugin '\\x1b[2J\\x1b[H x.py; rm -rf ~ \\u202e'" in str(caught.value)


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
    raw = {spec: stream_overhead(encode_model(model, 32, 32, parse_quantizer(spec), coder="raw"))["payload"]
           for spec in ("q4", "q8", "q12")}
    assert raw["q8"] - raw["q4"] == pytest.approx(count * 4 / 8, abs=1)
    assert raw["q12"] - raw["q8"] == pytest.approx(count * 4 / 8, abs=1)


def test_the_ans_coder_codes_peaked_codes_near_their_entropy_and_uniform_ones_at_their_width():
    rng = np.random.default_rng(0)
    peaked = np.clip(np.round(rng.standard_normal(20000) * 6 + 128), 0, 255).astype(np.uint16)
    uniform = rng.integers(0, 256, 20000).astype(np.uint16)
    for codes, expected_bits in ((peaked, _entropy_bits(peaked)), (uniform, 8 * len(uniform))):
        layout = PayloadLayout(side=0, bits=8, counts=(len(codes),))
        payload = pack_bits(codes, 8)
        coded = entropy.CODERS[entropy.CODER_IDS["ans"]].encode(payload, layout)
        assert entropy.decompress(entropy.CODER_IDS["ans"], coded, layout) == payload
        assert 8 * len(coded) <= expected_bits * 1.02 + 64  # within 2 % of the empirical entropy (+ model, words)
    assert entropy.fit_model(uniform, 256)[0] == entropy.UNIFORM
    assert entropy.fit_model(peaked, 256)[0] in (entropy.STUDENT_T2, entropy.STUDENT_T4)


def _entropy_bits(codes: np.ndarray) -> float:
    p = np.bincount(codes) / len(codes)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum() * len(codes))


def test_the_ans_probability_tables_use_only_exactly_rounded_arithmetic():
    # Student-t with 2 and 4 degrees of freedom in closed form: the same bits on every machine
    from scipy import stats

    x = np.linspace(-40, 40, 321)
    for family, dof in ((entropy.STUDENT_T2, 2), (entropy.STUDENT_T4, 4)):
        assert np.abs(entropy._student_t_cdf(x, family) - stats.t(dof).cdf(x)).max() < 1e-12


def test_best_picks_the_smallest_coder_and_ans_is_refused_for_float_weights():
    model = small_model("relu_mlp")
    q8 = parse_quantizer("q8")
    sizes = {coder: len(encode_model(model, 16, 16, q8, coder)) for coder in ("raw", "zlib", "lzma", "ans")}
    assert len(encode_model(model, 16, 16, q8, "best")) == min(sizes.values())
    with pytest.raises(ValueError, match="the ans coder codes the integer codes"):
        encode_model(model, 16, 16, parse_quantizer("fp16"), "ans")


def test_bad_quantizer_specs_are_refused():
    for spec in ("q3", "q13", "fp8", "int8", ""):
        with pytest.raises(ValueError, match="unknown quantizer"):
            parse_quantizer(spec)


@pytest.mark.parametrize("spec", ["q08", "q+8", "q\uff18", "q\u0668", " q8", "q8\n", "Q8", "q8C", "fp016"])
def test_only_the_canonical_quantizer_names_are_accepted(spec):
    with pytest.raises(ValueError, match=re.escape(f"unknown quantizer {spec!r}; use fp32, fp16, qK or qKc")):
        parse_quantizer(spec)
    data = encode_model(small_model("siren"), 8, 8, parse_quantizer("q8"))
    with pytest.raises(BitstreamError, match="damaged stream: unknown quantizer"):
        decode_stream(lying(data, lambda h: h.update(quantizer=spec)))


@pytest.fixture(scope="module")
def stream() -> bytes:
    return encode_model(small_model("siren"), 32, 32, parse_quantizer("q8"), coder="zlib")


def lying(data: bytes, change) -> bytes:
    header = json.loads(split(data)[2])
    change(header)
    return with_header_text(data, json.dumps(header).encode())


LIES = {
    "huge width": lambda h: h["config"].update(width=10**9),
    "huge depth": lambda h: h["config"].update(depth=10**7),
    "deep and wide": lambda h: h["config"].update(depth=4000, width=4000),
    "negative width": lambda h: h["config"].update(width=-3),
    "string width": lambda h: h["config"].update(width="8"),
    "float width": lambda h: h["config"].update(width=8.5),
    "huge integer": lambda h: h["config"].update(width=10**4000 if sys.get_int_max_str_digits() == 0 else 10**100),
    "unknown setting": lambda h: h["config"].update(evil="__import__('os')"),
    "unknown representation": lambda h: h.update(representation="pickle"),
    "huge image": lambda h: h.update(height=10**6),
    "image over the pixel limit": lambda h: h.update(height=8192, width=8192),
    "zero image": lambda h: h.update(width=0),
    "element count": lambda h: h.update(elements=h["elements"] + 1),
    "tensor count": lambda h: h.update(tensors=h["tensors"] + 1),
    "quantizer": lambda h: h.update(quantizer="q2"),
    "wrong quantizer": lambda h: h.update(quantizer="q12"),
    "channels": lambda h: h.update(out_features=2**40),
    "missing field": lambda h: h.pop("width"),
    "extra field": lambda h: h.update(pickle="cos\nsystem"),
    "bool as int": lambda h: h.update(height=True),
    "plugin of the wrong type": lambda h: h.update(plugin=3),
}


@pytest.mark.parametrize("lie", LIES)
def test_a_header_that_lies_is_refused(stream, lie):
    with pytest.raises(BitstreamError, match="damaged stream|not supported|lacks|refused"):
        decode_stream(lying(stream, LIES[lie]))


@pytest.mark.parametrize("name, setting, value, message", [
    ("rbf", "amplitude", 0.0, "rbf.amplitude = 0.0 is not valid"),
    ("rbf", "amplitude", -1.0, "rbf.amplitude = -1.0 is not valid"),
    ("positional", "max_log2", 1000.0, "positional.max_log2 = 1000.0 is not valid"),
    ("fnet", "depth", 4096, "fnet.depth = 4096 is not valid"),
])
def test_settings_that_would_make_the_reconstruction_nan_or_huge_fail_the_representations_own_validation(
        name, setting, value, message):
    data = encode_model(small_model(name), 16, 16, parse_quantizer("fp16"))
    with pytest.raises(BitstreamError, match=message):
        decode_stream(lying(data, lambda h: h["config"].update({setting: value})))


@pytest.mark.parametrize("name, settings, stopped_by", [
    ("fnet", {"depth": 1024}, "registers more than 70 parameters"),  # 6 stored tensors + 64
    ("fnet", {"depth": 1024, "width": 16}, "creates more than"),
    ("siren", {"depth": 10**6}, "registers more than"),
    ("siren", {"width": 10**9}, "asks for more than"),  # refused before the allocation is attempted
])
def test_a_lying_size_stops_the_build_early(name, settings, stopped_by):
    data = encode_model(small_model(name, **({"width": 2, "depth": 2} if name == "fnet" else {})), 16, 16,
                        parse_quantizer("fp16"))
    with pytest.raises(BitstreamError, match=f"far larger than its .* stored values .*{stopped_by}"):
        decode_stream(lying(data, lambda h: h["config"].update(settings)))


def test_an_honest_stream_whose_reconstruction_costs_too_much_is_refused_before_rendering():
    model = small_model("relu_mlp", width=256, depth=3)
    data = encode_model(model, 16, 16, parse_quantizer("q4"))
    costly = lying(data, lambda h: h.update(height=4096, width=4096))  # ~2e5 per pixel x 1.7e7 pixels
    with pytest.raises(BitstreamError, match=f"estimated at .* s .* over the decoder.s limit of {MAX_DECODE_SECONDS:g} s"):
        decode_stream(costly)


def test_writing_the_image_is_priced_so_a_cheap_model_cannot_ask_for_a_huge_image_for_free():
    # A 2^2 grid at 4096^2: ~20 counted operations a pixel, within the old limit of 2^37 operations, took 22 s to
    # decode (mostly the PNG). Every pixel and channel's conversion and PNG is priced now, before anything is built.
    data = encode_model(small_model("grid", resolution=2), 16, 16, parse_quantizer("q8"))
    huge = lying(data, lambda h: h.update(height=4096, width=4096))
    writing = 4096 * 4096 * 3 * COST_MODEL.output_value
    with pytest.raises(BitstreamError, match=f"4096x4096 pixels with this grid is estimated at {writing:.3g} s"):
        decode_stream(huge, max_seconds=writing * 0.99)
    assert decode_stream(data).cost.seconds_per_pixel < 1e-7  # the model itself is cheap


def test_every_representation_at_its_standard_size_decodes_a_256_image_within_the_limit():
    for name in R.list_representations():
        model = small_model(name, **R.sized_overrides(name, "standard"),
                            **({"resolution": 256} if name == "gaussians_2d" else {}))
        assert decode_stream(encode_model(model, 256, 256, parse_quantizer("q8"), "zlib")).header.width == 256


def gaussians(cholesky: float, side: int, count: int = 256) -> bytes:
    """A Gaussian splat stream whose Gaussians all have Cholesky factors `cholesky` (200: each covers the image)."""
    model = small_model("gaussians_2d", num_gaussians=count, resolution=side)
    with torch.no_grad():
        model.position.zero_(), model.cholesky.fill_(cholesky)
    return encode_model(model, side, side, parse_quantizer("q8"))


def test_a_stream_is_priced_by_its_own_weights_so_gaussians_covering_the_image_are_refused():
    # The cost was measured on a fresh model before the stream's weights were loaded: Gaussians a pixel wide. The
    # audit's stream (1,024 Gaussians of Cholesky values 200 at 512^2, 173 bytes) decoded for 57 s.
    small, large = decode_stream(gaussians(0.5, 64)).cost, decode_stream(gaussians(200.0, 64)).cost
    assert large.seconds_per_pixel > 10 * small.seconds_per_pixel  # 256 Gaussians on every pixel, not a few
    with pytest.raises(BitstreamError, match="stream refused: .*gaussians_2d"):
        decode_stream(gaussians(200.0, 256))


def test_rendering_is_metered_and_stops_at_the_limit_whatever_the_probes_saw(stream):
    decoded = decode_stream(stream)
    decoded.render_seconds = 1e-4  # as if the probes had seen a fraction of what the weights cost
    with pytest.raises(BitstreamError, match="stream refused: rendering this siren stopped at row 0 of 32"):
        decoded.image8()


def test_a_file_larger_than_any_stream_is_refused_before_it_is_read(tmp_path):
    # A 3 GB sparse file took 3.6 GB of memory to be told "bad magic"; a stream's size is bounded by the format.
    huge = tmp_path / "huge.fbi"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_STREAM_BYTES + 1)  # sparse: no disk blocks
    with pytest.raises(BitstreamError, match=f"{MAX_STREAM_BYTES + 1:,} bytes or more, over the {MAX_STREAM_BYTES:,}"):
        read_stream(huge)
    honest = tmp_path / "honest.fbi"
    honest.write_bytes(encode_model(small_model("siren"), 8, 8, parse_quantizer("q8")))
    assert read_stream(honest) == honest.read_bytes()
    assert MAX_STREAM_BYTES < 100 << 20  # the largest payload (2^24 values as q12c with one channel each) and more


def test_weights_that_make_the_reconstruction_non_finite_are_refused_not_rendered(stream):
    decoded = decode_stream(stream)
    with torch.no_grad():
        decoded.model.head.bias.fill_(float("inf"))
    with pytest.raises(BitstreamError, match="not finite"):
        decoded.image8()


def test_duplicate_keys_and_non_json_numbers_are_refused(stream):
    _, _, text, _ = split(stream)
    cases = {
        "duplicate top-level key": text.replace(b'{"representation"', b'{"height":8,"representation"', 1),
        "duplicate setting": text.replace(b'"config":{', b'"config":{"width":8,', 1),
        "NaN": text.replace(b'"omega_0":30.0', b'"omega_0":NaN', 1),
        "Infinity": text.replace(b'"omega_0":30.0', b'"omega_0":Infinity', 1),
    }
    for name, changed in cases.items():
        assert changed != text, name
        with pytest.raises(BitstreamError, match="not valid JSON") as caught:
            decode_stream(with_header_text(stream, changed))
        assert "twice" in str(caught.value) or "not a number JSON allows" in str(caught.value)


def test_error_lines_are_one_bounded_line_whatever_the_stream_quotes(stream):
    long_value = "x\n" * 5000
    with pytest.raises(BitstreamError) as caught:
        decode_stream(lying(stream, lambda h: h["config"].update(omega_0=long_value)))
    assert "\n" not in str(caught.value) and len(str(caught.value)) <= MAX_MESSAGE


def assemble(text: bytes, payload: bytes, coder_id: int) -> bytes:
    """A version-2 stream of this header JSON and this coded payload, with a valid checksum."""
    stored = _deflate(text)
    return restamp(struct.pack("<H", len(stored)) + stored + payload, VERSION, coder_id)


def test_structural_damage_with_a_valid_checksum_is_refused(stream):
    version, coder_id, text, payload = split(stream)
    header = json.loads(text)
    fp32 = json.dumps({**header, "quantizer": "fp32"}).encode()
    cases = {
        "short payload": restamp(stream[PREFIX.size:-1], version, coder_id),
        "long payload": restamp(stream[PREFIX.size:] + b"\0", version, coder_id),
        "header length past the end": restamp(struct.pack("<H", 60000) + stream[PREFIX.size + 2:], version, coder_id),
        "header not deflate": restamp(struct.pack("<H", 40) + b"\xff" * 40 + payload, version, coder_id),
        "empty": restamp(b"", version, coder_id),
        "unknown coder": restamp(stream[PREFIX.size:], version, 9),
        "ans for a float quantizer": assemble(fp32, payload, entropy.CODER_IDS["ans"]),
    }
    for name, data in cases.items():
        with pytest.raises(BitstreamError):
            decode_stream(data)
    infinite = np.full(header["elements"], np.inf, "<f4").tobytes()
    with pytest.raises(BitstreamError, match="not a finite number"):
        decode_stream(assemble(fp32, infinite, entropy.CODER_IDS["raw"]))


def test_a_payload_bomb_stops_at_the_payload_size(stream):
    _, _, text, _ = split(stream)
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    coded = bomb.compress(b"\0" * (80 << 20)) + bomb.flush()
    with pytest.raises(BitstreamError, match="too long"):
        decode_stream(assemble(text, coded, entropy.CODER_IDS["zlib"]))


def test_a_prefix_alone_is_a_clear_error():
    with pytest.raises(BitstreamError, match="shorter than"):
        decode_stream(MAGIC)
    with pytest.raises(BitstreamError, match="magic"):
        decode_stream(struct.pack("<4sBBI", b"\x89PNG", 2, 0, 0))


@pytest.mark.parametrize("chunk", [100, 20, 1 << 16])  # whole rows, pieces of rows, the whole image
def test_rendering_in_chunks_gives_the_image_of_the_whole_grid(chunk):
    from fitbench.engine import reconstruct
    from fitbench.protocol import coordinate_grid

    decoded = decode_stream(encode_model(small_model("siren"), 37, 53, parse_quantizer("fp32")))
    decoded.cost = RenderCost(0.0, 0.0, 2**24 / chunk, 0.0)  # chunks of `chunk` pixels
    expected = reconstruct(decoded.model, coordinate_grid(37, 53), (37, 53, 3), "cpu", 1 << 16)
    assert np.array_equal(decoded.reconstruct(), expected)
