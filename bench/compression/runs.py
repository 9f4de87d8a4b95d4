"""What one compression run is, and turning it into a record of rate points.

A `RepresentationRun` fits one ladder size of one representation to one image (the `full` protocol, keeping the
weights of the lowest training loss), then for each quantizer of the preset fine-tunes a copy through that
quantizer (quantization-aware, straight-through), writes it as a stream, decodes the stream and scores the
decoded model: what is reported is what a reader of the bytes gets. A `CodecRun` sweeps one classical codec's
quality. Both give a `CompressionRecord`, the suite's contract.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.metadata
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from fitbench import representations
from fitbench.datasets import ImageSample

from .. import metrics
from ..engine import FitConfig, fit_image, pixel_sampler, train
from ..protocol import coordinate_grid, make_split
from ..records import run_key
from ..runs import FitRun
from .bitstream import VERSION, decode_stream, encode_model, trainable
from .codecs import Codec, RatePoint, score_point, to_uint8
from .entropy import CODER_IDS, CODERS, applicable
from .quantize import Quantizer, parse_quantizer


@dataclass
class CompressionRecord:
    """All rate points of one method (one representation size, or one codec's sweep) on one image."""

    method: str  # representation or codec name
    kind: str  # "representation" or "codec"
    image: str
    image_set: str
    preset: str
    size: int  # image height
    status: str  # ok | diverged | error
    width: int = 0  # image width (the paper preset keeps Kodak's 768 x 512)
    library: str = ""  # what wrote the bytes, with versions ("Pillow 13.0.0, libjpeg-turbo 3.2.0", ...)
    config: dict[str, Any] = field(default_factory=dict)
    params: int = 0
    steps: int = 0
    seconds: float = 0.0  # fit time, quantization-aware tuning included
    fit_psnr: float | None = None  # the fitted float model's 8-bit PSNR, before quantization (what streams lose)
    qat_steps: int = 0
    points: list[dict] = field(default_factory=list)  # RatePoint fields
    error: str | None = None
    device: str = "cpu"
    key: str = ""
    created: float = field(default_factory=time.time)


def stream_library() -> str:
    """What writes a representation's stream, with versions."""
    return (f"fitbench stream format {VERSION}, torch {torch.__version__}, "
            f"constriction {importlib.metadata.version('constriction')}")


@dataclass(frozen=True)
class RepresentationRun:
    """One fit (the fitting suite's `FitRun`, `full` protocol), then one stream per quantizer."""

    fit: FitRun
    quantizers: tuple[str, ...]
    qat_steps: int = 0
    coder: str = "best"

    representation = property(lambda self: self.fit.representation)
    image = property(lambda self: self.fit.image)
    image_set = property(lambda self: self.fit.image_set)
    preset = property(lambda self: self.fit.preset)
    steps = property(lambda self: self.fit.steps)
    device = property(lambda self: self.fit.device)

    @property
    def key(self) -> str:
        return run_key(suite="compression", fit=self.fit.key, width=self.image.pixels.shape[1],
                       quantizers=self.quantizers, qat_steps=self.qat_steps, coder=self.coder, stream=VERSION)

    @property
    def size_label(self) -> str:
        return size_label(self.representation, dict(self.fit.overrides))

    @property
    def label(self) -> str:
        return f"{self.representation} {self.size_label} on {self.image.name}"

    def execute(self, on_step: Callable[[int, float], None] | None = None) -> tuple[CompressionRecord, dict]:
        """Fit, then per quantizer: tune, encode, decode, score; returns the record and {setting: stream bytes}."""
        pixels = self.image.pixels
        height, width = pixels.shape[:2]
        record = _record(self, self.representation, "representation", library=stream_library(), steps=self.steps,
                         qat_steps=self.qat_steps)
        streams: dict[str, bytes] = {}
        try:
            model = self.fit.build()
            record.config, record.params = self.fit.config, representations.count_parameters(model)
            fit = dataclasses.replace(self.fit.fit_config(), keep_best=True, curve=False)
            outcome = fit_image(model, pixels, make_split("full", height, width), fit, on_step)
            record.seconds, record.steps, record.status = outcome.seconds, outcome.steps_done, outcome.status
            truth8 = to_uint8(pixels)
            record.fit_psnr = metrics.psnr(truth8 / 255, to_uint8(outcome.reconstruction) / 255)
            for spec in self.quantizers:
                quantizer = parse_quantizer(spec)
                started = time.perf_counter()
                tuned = quantization_aware_tune(model, quantizer, pixels, dataclasses.replace(
                    fit, steps=self.qat_steps, lr=fit.lr / 10, seconds=None, flops=None))  # small steps: stay near
                record.seconds += time.perf_counter() - started
                start = time.perf_counter()
                data = encode_model(tuned.cpu(), height, width, quantizer, self.coder)
                encoded = time.perf_counter()
                # the bytes it has just written: rendered whatever the decoder's limit for other files says
                reconstruction = decode_stream(data, max_seconds=None).image8(self.device)
                decoded = time.perf_counter()
                setting = f"{self.size_label} {spec}"
                point = score_point(setting, len(data), truth8, reconstruction, encoded - start, decoded - encoded)
                point.coder = CODERS[data[5]].name
                point.coder_bytes = coder_sizes(tuned.cpu(), height, width, quantizer)
                record.points.append(dataclasses.asdict(point))
                streams[setting] = data
        except Exception as error:  # one failed run is recorded and the suite goes on
            record.status, record.error = "error", f"{type(error).__name__}: {error}"
            record.config["traceback"] = traceback.format_exc(limit=3).splitlines()[-3:]
        return record, streams


def coder_sizes(model: nn.Module, height: int, width: int, quantizer: Quantizer) -> dict[str, int]:
    """The stream's size with each entropy coder that applies to it: the coder comparison on real streams."""
    layout = quantizer.layout([tuple(p.shape) for _, p in trainable(model)])
    return {name: len(encode_model(model, height, width, quantizer, name))
            for name, coder_id in CODER_IDS.items() if applicable(coder_id, layout)}


@dataclass(frozen=True)
class CodecRun:
    codec: type[Codec]
    image: ImageSample = field(compare=False, repr=False)
    image_set: str
    preset: str
    steps: int = 0  # nothing to optimise; the progress bar shows one unit

    @property
    def key(self) -> str:
        return run_key(suite="compression", method=self.codec.name, image=self.image.name, image_set=self.image_set,
                       preset=self.preset, size=self.image.pixels.shape[0], width=self.image.pixels.shape[1],
                       qualities=self.codec.qualities, library=self.codec.library())

    @property
    def label(self) -> str:
        return f"{self.codec.name} on {self.image.name}"

    def execute(self, on_step=None) -> tuple[CompressionRecord, dict]:
        record = _record(self, self.codec.name, "codec", library=self.codec.library(),
                         config={"description": self.codec.description})
        try:
            truth8 = to_uint8(self.image.pixels)
            points: list[RatePoint] = [self.codec(quality).run(truth8) for quality in self.codec.qualities]
            record.points, record.status = [dataclasses.asdict(p) for p in points], "ok"
        except Exception as error:  # e.g. a Pillow build without the codec
            record.error = f"{type(error).__name__}: {error}"
        return record, {}


def _record(run, method: str, kind: str, **fields) -> CompressionRecord:
    height, width = run.image.pixels.shape[:2]
    return CompressionRecord(method=method, kind=kind, image=run.image.name, image_set=run.image_set,
                             preset=run.preset, size=height, width=width, status="error",
                             device=getattr(run, "device", "cpu"), key=run.key, **fields)


def size_label(representation: str, overrides: dict[str, Any]) -> str:
    """The settings that size a representation, compactly: 'width=16' (its knob and what follows it)."""
    knob = representations.get_entry(representation).knob
    shown = set(knob.overrides(overrides[knob.field])) if knob and knob.field in overrides else set(overrides)
    return " ".join(f"{k}={v}" for k, v in sorted(overrides.items()) if k in shown) or "defaults"


def quantization_aware_tune(model: nn.Module, quantizer: Quantizer, pixels: np.ndarray, fit: FitConfig
                            ) -> nn.Module:
    """A copy of `model` fine-tuned for `fit.steps` through the quantizer (the model itself when steps is 0).

    Straight-through estimator: the forward pass sees the quantized weights, the gradient reaches the float
    ones. With `fit.keep_best` the copy ends at the weights whose quantized version had the lowest loss, which
    includes the untuned start: tuning never makes a stream worse on the training pixels.
    """
    if fit.steps == 0:
        return model
    device = torch.device(fit.device)
    tuned = copy.deepcopy(model).to(device)
    weights = dict(trainable(tuned))
    coords = coordinate_grid(*pixels.shape[:2]).to(device)
    values = torch.from_numpy(pixels.reshape(-1, pixels.shape[2])).to(device)
    pick = pixel_sampler(len(coords), fit.pixels_per_step, device)

    def loss() -> torch.Tensor:
        index = pick()
        coords_, values_ = (coords, values) if index is None else (coords[index], values[index])
        quantized = {name: w + (quantizer.fake_quantize(w) - w).detach() for name, w in weights.items()}
        return torch.mean((functional_call(tuned, quantized, (coords_,)) - values_) ** 2)[None]

    train(loss, list(weights.values()), 1, fit)
    return tuned
