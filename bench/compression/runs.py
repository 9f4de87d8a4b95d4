"""What one compression run is, and turning it into a record of rate points.

A `RepresentationRun` fits one ladder size of one representation to one image (the `full` protocol), then writes
the fit as a stream with every quantizer of the preset; each point is scored from the model decoded from those
bytes, so what is reported is what a reader of the stream gets. A `CodecRun` sweeps one classical codec's quality.
Both give a `CompressionRecord`, the suite's contract.
"""

from __future__ import annotations

import copy
import dataclasses
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

from ..engine import FitConfig, fit_image, train
from ..protocol import coordinate_grid, make_split
from ..records import run_key
from ..runs import FitRun
from .bitstream import decode_stream, encode_model, trainable
from .codecs import Codec, RatePoint, score_point, to_uint8
from .quantize import Quantizer, parse_quantizer


@dataclass
class CompressionRecord:
    """All rate points of one method (one representation size, or one codec's sweep) on one image."""

    method: str  # representation or codec name
    kind: str  # "representation" or "codec"
    image: str
    image_set: str
    preset: str
    size: int
    status: str  # ok | diverged | error
    config: dict[str, Any] = field(default_factory=dict)
    params: int = 0
    steps: int = 0
    seconds: float = 0.0
    qat_steps: int = 0
    points: list[dict] = field(default_factory=list)  # RatePoint fields
    error: str | None = None
    device: str = "cpu"
    key: str = ""
    created: float = field(default_factory=time.time)


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
        return run_key(suite="compression", fit=self.fit.key, quantizers=self.quantizers, qat_steps=self.qat_steps,
                       coder=self.coder)

    @property
    def label(self) -> str:
        return f"{self.representation} {_size_label(dict(self.fit.overrides))} on {self.image.name}"

    def execute(self, on_step: Callable[[int, float], None] | None = None) -> tuple[CompressionRecord, dict]:
        """Fit, encode with each quantizer, decode, score; returns the record and {setting: stream bytes}."""
        pixels = self.image.pixels
        height, width, channels = pixels.shape
        record = _record(self, self.representation, "representation", steps=self.steps, qat_steps=self.qat_steps)
        streams: dict[str, bytes] = {}
        try:
            config = self.fit.config
            torch.manual_seed(config["seed"])
            model = representations.build(self.representation, out_features=channels, **config)
            record.config, record.params = config, representations.count_parameters(model)
            split = make_split("full", height, width)
            outcome = fit_image(model, pixels, split, FitConfig(self.steps, config["lr"], self.device,
                                                                precision=self.fit.precision), on_step)
            record.seconds, record.steps, record.status = outcome.seconds, outcome.steps_done, outcome.status
            truth8 = to_uint8(pixels)
            for spec in self.quantizers:
                quantizer = parse_quantizer(spec)
                tuned = quantization_aware_tune(model, quantizer, pixels, self.qat_steps, config["lr"], self.device)
                start = time.perf_counter()
                data = encode_model(tuned.cpu(), height, width, quantizer, self.coder)
                encoded = time.perf_counter()
                reconstruction = decode_stream(data).reconstruct(self.device)
                decoded = time.perf_counter()
                setting = f"{_size_label(dict(self.fit.overrides))} {spec}"
                point = score_point(setting, len(data), truth8, reconstruction, encoded - start, decoded - encoded)
                record.points.append(dataclasses.asdict(point))
                streams[setting] = data
        except Exception as error:  # one failed run is recorded and the suite goes on
            record.status, record.error = "error", f"{type(error).__name__}: {error}"
            record.config["traceback"] = traceback.format_exc(limit=3).splitlines()[-3:]
        return record, streams


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
                       preset=self.preset, size=self.image.pixels.shape[0], qualities=self.codec.qualities)

    @property
    def label(self) -> str:
        return f"{self.codec.name} on {self.image.name}"

    def execute(self, on_step=None) -> tuple[CompressionRecord, dict]:
        record = _record(self, self.codec.name, "codec", config={"description": self.codec.description})
        try:
            truth8 = to_uint8(self.image.pixels)
            points: list[RatePoint] = [self.codec(quality).run(truth8) for quality in self.codec.qualities]
            record.points, record.status = [dataclasses.asdict(p) for p in points], "ok"
        except Exception as error:  # e.g. a Pillow build without the codec
            record.error = f"{type(error).__name__}: {error}"
        return record, {}


def _record(run, method: str, kind: str, **fields) -> CompressionRecord:
    return CompressionRecord(method=method, kind=kind, image=run.image.name, image_set=run.image_set,
                             preset=run.preset, size=run.image.pixels.shape[0], status="error",
                             device=getattr(run, "device", "cpu"), key=run.key, **fields)


def _size_label(overrides: dict[str, Any]) -> str:
    """The size fields of a config, compactly: 'depth=3 width=16'."""
    return " ".join(f"{k}={v}" for k, v in sorted(overrides.items()) if k not in ("lr", "seed"))


def quantization_aware_tune(model: nn.Module, quantizer: Quantizer, pixels: np.ndarray, steps: int, lr: float,
                            device: str) -> nn.Module:
    """A copy of `model` fine-tuned for `steps` through the quantizer (the model itself when steps is 0).

    Straight-through estimator: the forward pass sees the quantized weights, the gradient reaches the float ones.
    """
    if steps == 0:
        return model
    tuned = copy.deepcopy(model).to(device)
    weights = dict(trainable(tuned))
    coords = coordinate_grid(*pixels.shape[:2]).to(device)
    values = torch.from_numpy(pixels.reshape(-1, pixels.shape[2])).to(device)

    def loss() -> torch.Tensor:
        quantized = {name: w + (quantizer.fake_quantize(w) - w).detach() for name, w in weights.items()}
        return torch.mean((functional_call(tuned, quantized, (coords,)) - values) ** 2)[None]

    train(loss, list(weights.values()), 1, FitConfig(steps, lr / 10, device))  # small steps: stay near the fit
    return tuned
