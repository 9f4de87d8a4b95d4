"""Compression suite: representations written as real bitstreams, against JPEG/WebP/JPEG 2000 at matched rates.

Data flow: presets and ladders -> runs (fit + quantization-aware tuning + encode + decode + score, or a codec
sweep) -> one record per run in OUT/compression/points.jsonl -> points.csv, matched.csv, bd.csv, summary.csv,
coders.csv, published.csv, json/, rd.png. See docs/compression.md.
"""

from __future__ import annotations

import dataclasses
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fitbench import representations
from fitbench.datasets import ImageSample
from fitbench.datasets.image_io import read_image

from ..compression.bitstream import MAX_DECODE_SECONDS, decode_stream, read_stream
from ..compression.codecs import available_codecs
from ..compression.entropy import CODER_CHOICES
from ..compression.errors import BitstreamError
from ..compression.ladder import ladder
from ..compression.quantize import parse_quantizer
from ..compression.report import write_reports
from ..compression.runs import CodecRun, CompressionRecord, RepresentationRun
from ..engine import resolve_device
from ..executor import execute_pending, report_failures
from ..hardware import torch_threads
from ..options import SuiteOptions, option
from ..paths import inside, safe_name
from ..planning import load_preset_images, selected_representations
from ..presets import Preset, get_preset
from ..progress import show_plan
from ..records import RecordLog, records_of
from ..runs import FitRun
from . import register_suite


@dataclass(frozen=True)
class CompressionPreset(Preset):
    targets_bpp: tuple[float, ...] = ()  # ladder rungs: each representation sized for these rates ...
    reference_bits: int = 8  # ... at this many bits per value (lower bit-widths of the same fit go lower)
    quantizers: tuple[str, ...] = ("q8", "q6")
    qat_steps: int = 0  # quantization-aware fine-tuning per quantizer, before writing
    pixels_per_step: int | None = None  # random training pixels per step (None: all of them)
    full_size: bool = False  # the images at their own size and shape (Kodak's 768 x 512), not square crops


# The recipe of the INR-compression papers (COIN: best weights; COIN++ and Strümpler et al.: quantization-aware
# training, then entropy coding), in every preset: the fit keeps the weights of its lowest training loss, each
# quantizer gets a fine-tune through it, the `best` coder includes an arithmetic coder with a fitted model per
# tensor, and a representation without a learning-rate schedule of its own decays its rate (cosine to 0.1x).
RECIPE_SCHEDULE = "cosine"

COMPRESSION_PRESETS: dict[str, CompressionPreset] = {
    p.name: p
    for p in [
        CompressionPreset(
            "smoke", "tests and CI: one 32^2 image, two sizes, fp16 and q8, the whole suite in seconds",
            size=32, steps=60, seeds=1, image_set="builtin", max_images=1, size_class="tiny",
            targets_bpp=(16.0, 40.0), reference_bits=16, quantizers=("fp16", "q8"), qat_steps=10,
        ),
        CompressionPreset(
            "standard", "every representation on two built-in images at 256^2, three sizes each for 0.12-0.6 bpp at "
            "8 bits, q8 and q6 after quantization-aware tuning, 800 steps of 4096 random pixels",
            # 4096 random pixels a step: on a tuning image (ffn-natural 01 at 256^2, SIREN and ReLU MLP at 0.3 bpp)
            # as good as every pixel at 5-10x less CPU a step; the budget goes into steps instead
            size=256, steps=800, seeds=1, image_set="builtin", max_images=2, size_class="standard",
            targets_bpp=(0.12, 0.25, 0.6), reference_bits=8, quantizers=("q8", "q6"), qat_steps=40,
            pixels_per_step=4096,
        ),
        CompressionPreset(
            "paper", "COIN's setting (EmilienDupont/coin main.py): the 24 Kodak images at full 768x512, every "
            "pixel every step, 10,000 steps, best weights, fp16 plus q8/q6 with the recipe (GPU-scale)",
            size=512, steps=10_000, seeds=1, image_set="kodak", full_size=True,
            targets_bpp=(0.07, 0.15, 0.3, 0.6, 1.2), reference_bits=16, quantizers=("fp16", "q8", "q6"),
            qat_steps=1000,
        ),
    ]
}


@dataclass(frozen=True)
class CompressionOptions:
    quantizers: str | None = option(None, "comma-separated: fp32, fp16, qK (uniform K-bit per tensor) or qKc (per "
                                    "channel), K = 4..12 (default: the preset's)")
    qat_steps: int | None = option(None, "quantization-aware fine-tune steps per quantizer (default: the preset's)")
    coder: str = option("best", "entropy coder of the streams (default: best = the smallest of raw, zlib, lzma and, "
                        "for qK/qKc, ans: an arithmetic coder with a fitted model per tensor)", choices=CODER_CHOICES)
    decode: Path | None = option(None, "decode a compression stream: print its header, write its reconstruction to "
                                 "OUT/compression/decoded/FILE.png, and exit", metavar="FILE")
    decode_seconds: float = option(MAX_DECODE_SECONDS, "refuse a stream whose decode is estimated above S seconds on "
                                   f"the reference machine (default {MAX_DECODE_SECONDS:g}); raise it only for a "
                                   "stream you trust", metavar="S")

    def __post_init__(self) -> None:
        if self.qat_steps is not None and self.qat_steps < 0:
            raise ValueError(f"--qat-steps must be at least 0, got {self.qat_steps}")
        for spec in self.quantizer_list(()):
            parse_quantizer(spec)  # fail on a bad --quantizers before any fit starts

    def quantizer_list(self, preset_default: tuple[str, ...]) -> tuple[str, ...]:
        text = self.quantizers or ",".join(preset_default)
        return tuple(q.strip() for q in text.split(",") if q.strip())


def plan_runs(options: SuiteOptions, preset: CompressionPreset, image_set: str, images: list[ImageSample]) -> list:
    own: CompressionOptions = options.own_or(CompressionOptions)
    quantizers = own.quantizer_list(preset.quantizers)
    qat_steps = preset.qat_steps if own.qat_steps is None else own.qat_steps
    device = str(resolve_device(options.device))
    steps = options.steps or preset.steps
    pixels = images[0].pixels.shape[0] * images[0].pixels.shape[1]  # one ladder for every image (Kodak: one size)
    coder = own.coder
    rungs = {}
    for name in selected_representations(options):
        base = recipe_settings(name, preset, options.settings.get(name, {}))
        rung = ladder(name, base, 3, pixels, preset.targets_bpp, preset.reference_bits)  # sized for RGB
        for line in rung.unreachable:
            print(f"warning: {line}", file=sys.stderr)
        if rung.sizes:
            rungs[name] = rung.sizes
        else:
            print(f"warning: {name} is left out: none of the preset's rates is within its size knob's range",
                  file=sys.stderr)
    runs: list = []
    for image in images:
        runs += [CodecRun(codec, image, image_set, preset.name) for codec in available_codecs()]
        for name, sizes in rungs.items():
            runs += [RepresentationRun(FitRun(name, image, image_set, "full", preset.name, 0, steps,
                                              tuple(sorted(size.items())), device,
                                              pixels_per_step=preset.pixels_per_step),
                                       quantizers, qat_steps, coder)
                     for size in sizes]
    return runs


def recipe_settings(name: str, preset: CompressionPreset, given: dict) -> dict:
    """The preset's settings for `name`, the recipe's schedule where it has none of its own, then --set."""
    settings = preset.overrides_for(name)
    if representations.make_config(name, **settings).schedule == "constant" and "schedule" not in preset.common:
        settings["schedule"] = RECIPE_SCHEDULE
    settings.update(given)
    representations.make_config(name, **settings)  # fail on a bad --set before any fit starts
    return settings


def full_size_images(images: list[ImageSample]) -> list[ImageSample]:
    """The same images at their own size and shape, read again from their files (no crop, no resize)."""
    full = []
    for image in images:
        path = Path(image.source)
        if not path.is_file():
            raise ValueError(f"a full-size preset reads each image from its file, but {image.name} comes from "
                             f"{image.source}; use a file-based image set (kodak, or a folder) or give --size")
        pixels, notes = read_image(path)
        pixels = pixels.astype(np.float32) / 255 if pixels.dtype == np.uint8 else np.clip(pixels, 0, 1)
        full.append(dataclasses.replace(image, pixels=pixels.astype(np.float32), notes=notes))
    return full


@register_suite("compression", "write fitted representations as real bitstreams; rate-distortion against JPEG/WebP",
                common=("preset", "representations", "settings", "images", "data", "steps", "device", "executor",
                        "records", "tracking", "dry_run"),
                options=CompressionOptions, presets=COMPRESSION_PRESETS, default_preset="standard")
def run_compression(options: SuiteOptions) -> int:
    own: CompressionOptions = options.own_or(CompressionOptions)
    if own.decode:
        if options.dry_run:
            raise ValueError("--dry-run shows the plan of fits, and --decode fits nothing; drop one of them")
        return decode_file(own.decode, options.suite_dir("compression"), own.decode_seconds)
    preset = get_preset(options.preset, COMPRESSION_PRESETS)
    image_set, images = load_preset_images(options, preset)
    if preset.full_size and options.size is None:
        images = full_size_images(images)
    runs = plan_runs(options, preset, image_set, images)
    folder = options.suite_dir("compression")
    log = RecordLog(folder / "points.jsonl")
    # One intra-op thread on CPU: at compression sizes (thousands of parameters) a second thread costs more than it
    # gives; on the shared 2-core machine one thread fitted 3-7x faster per step than two (docs/compression.md).
    threads = torch_threads(1) if resolve_device(options.device).type == "cpu" else nullcontext()
    execute = lambda run, on_step: run.execute(on_step)  # noqa: E731
    if options.dry_run:
        with threads:
            return show_plan(runs, log, execute, options, heading=[
                f"preset {preset.name}: each representation sized for {', '.join(map(str, preset.targets_bpp))} "
                f"bpp at {preset.reference_bits} bits, then one stream per quantizer; every codec's sweep"])
    if options.fresh and (moved := log.set_aside()):
        print(f"--fresh: previous records moved to {moved}", file=sys.stderr)

    def keep_streams(run, record: CompressionRecord, streams: dict[str, bytes]) -> CompressionRecord:
        for point in record.points:
            if point["setting"] in streams:
                relative = stream_path(run, point["setting"])
                target = inside(folder, relative)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(streams[point["setting"]])
                point["stream"] = str(relative)
        return record

    with threads:
        failed = execute_pending(runs, log, execute, keep_streams)
    current = records_of(log.read(), {run.key for run in runs})
    height, width = images[0].pixels.shape[:2]
    summary = write_reports(current, folder, f"{image_set}, {height}x{width}, preset {preset.name} "
                            f"(mean over {len(images)} images)")
    shown = [c for c in summary.columns if c == "method" or c.startswith(("psnr@", "jpeg@", "bd_"))]
    print(summary[shown].to_string(index=False, float_format=lambda v: f"{v:.2f}") if not summary.empty
          else "no representation points")
    print(f"(PSNR in dB at each bpp, NaN outside a curve's range; every codec's in {folder}/summary.csv)")
    print(f"results: {folder}/points.jsonl, points.csv, matched.csv, bd.csv, summary.csv, coders.csv, published.csv, "
          "json/, rd.png, streams/")
    return report_failures(failed, lambda record: f"{record.method} on {record.image}")


def stream_path(run, setting: str) -> Path:
    """Where a run's stream goes, relative to the suite folder: every part a safe name (an image set given as a
    path, or a setting with spaces and '=', never leaves the folder or splits into folders)."""
    return (Path("streams") / safe_name(run.image_set) / safe_name(run.image.name)
            / f"{safe_name(f'{run.key}-{setting}')}.fbi")


def decode_file(path: Path, folder: Path, max_seconds: float = MAX_DECODE_SECONDS) -> int:
    """`--decode FILE`: check a stream, print its header, write its reconstruction under OUT/compression/decoded/."""
    try:  # one thread, as COST_MODEL is measured: a second thread stalls each call of a busy machine for a time slice
        with torch_threads(1):
            decoded = decode_stream(read_stream(path), max_seconds)
            image = decoded.image8()
    except OSError as error:
        raise ValueError(f"--decode {path}: cannot read it ({error.strerror or type(error).__name__}); give a "
                         "stream file (.fbi)") from None
    except BitstreamError as error:
        raise ValueError(f"--decode {path}: {error}") from None
    try:
        target = inside(folder, Path("decoded") / f"{safe_name(path.name)}.png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).save(target, format="PNG")
    except OSError as error:
        raise ValueError(f"--decode {path}: cannot write {target} ({error.strerror or type(error).__name__}); "
                         "choose another --out") from None
    for note in decoded.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{path}: {decoded.header.summary()}")
    print(f"{decoded.bytes} bytes ({decoded.bpp:.4f} bpp), entropy coder {decoded.coder}; reconstruction: {target}")
    return 0
