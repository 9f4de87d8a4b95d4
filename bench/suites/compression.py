"""Compression suite: representations written as real bitstreams, against JPEG/WebP/JPEG 2000 at matched rates.

Data flow: presets and ladders -> runs (fit + encode + decode + score, or a codec sweep) -> one record per run in
OUT/compression/points.jsonl -> points.csv, matched.csv, bd.csv, json/, rd.png. See docs/compression.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


from fitbench import representations

from ..compression.bitstream import decode_stream
from ..compression.codecs import available_codecs
from ..compression.entropy import CODER_CHOICES
from ..compression.errors import BitstreamError
from ..compression.ladder import ladder
from ..compression.quantize import parse_quantizer
from ..compression.report import write_reports
from ..compression.runs import CodecRun, CompressionRecord, RepresentationRun
from ..engine import resolve_device
from ..executor import execute_pending
from ..figures import save_png
from ..options import SuiteOptions
from ..presets import Preset, get_preset
from ..records import RecordLog, records_of
from ..runs import FitRun
from . import register_suite
from .fitting import load_preset_images, selected_representations


def _depth(depth: int, **extra) -> dict[str, dict]:
    """The same depth for every representation that has one; the others keep their defaults (the ladder sizes them)."""
    return {name: {"depth": depth, **extra.get(name, {})} for name in ("siren", "relu_mlp", "positional",
                                                                        "fourier_features")}


@dataclass(frozen=True)
class CompressionPreset(Preset):
    targets_bpp: tuple[float, ...] = ()  # ladder rungs, sized for fp16 weights; lower bit-widths go below
    quantizers: tuple[str, ...] = ("fp16", "q8")
    qat_steps: int = 0


COMPRESSION_PRESETS: dict[str, CompressionPreset] = {
    p.name: p
    for p in [
        CompressionPreset(
            "smoke", "tests and CI: one 32^2 image, two sizes, two quantizers, the whole suite in seconds",
            size=32, steps=60, seeds=1, image_set="builtin", max_images=1, overrides={**_depth(2), "fnet": {"depth": 3}},
            targets_bpp=(4.0, 12.0), quantizers=("fp16", "q8"),
        ),
        CompressionPreset(
            "standard", "two built-in images at 128^2, four sizes x fp16/q8/q6 spanning ~0.05-2.4 bpp, 500 steps",
            size=128, steps=500, seeds=1, image_set="builtin", max_images=2,
            # SIREN's 1e-4 is tuned for 10k+ steps; in 500 steps 1e-3 gave 18.0 dB where 1e-4 barely moves
            overrides={**_depth(3, siren={"lr": 1e-3}), "fnet": {"depth": 3}},
            targets_bpp=(0.15, 0.4, 1.0, 2.4), quantizers=("fp16", "q8", "q6"),
        ),
        CompressionPreset(
            "paper", "COIN-like: Kodak at 512^2 (centre crop), 5-layer networks, 2000 steps (GPU-scale)",
            size=512, steps=2000, seeds=1, image_set="kodak", overrides=_depth(5, siren={"lr": 2e-4}),
            targets_bpp=(0.07, 0.15, 0.3, 0.6, 1.2), quantizers=("fp16", "q8", "q6"),
        ),
    ]
}


def add_arguments(group) -> None:
    group.add_argument("--quantizers", help="comma-separated: fp32, fp16, qK (uniform K-bit per tensor) or qKc "
                       "(per channel), K = 4..12 (default: the preset's)")
    group.add_argument("--qat-steps", type=int, help="quantization-aware fine-tune steps per quantizer (default: "
                       "the preset's, 0)")
    group.add_argument("--coder", choices=CODER_CHOICES, default="best",
                       help="entropy coder of the streams (default: best = the smallest of raw, zlib, lzma)")
    group.add_argument("--decode", type=Path, metavar="FILE",
                       help="decode a compression stream: print its header, write FILE.png beside it, and exit")


def plan_runs(options: SuiteOptions, preset: CompressionPreset, image_set: str, images) -> list:
    quantizers = tuple(q.strip() for q in (getattr(options.args, "quantizers", None) or ",".join(preset.quantizers))
                       .split(",") if q.strip())
    for spec in quantizers:
        parse_quantizer(spec)  # fail on a bad --quantizers before any fit starts
    qat_steps = getattr(options.args, "qat_steps", None)
    qat_steps = preset.qat_steps if qat_steps is None else qat_steps
    if qat_steps < 0:
        raise ValueError(f"--qat-steps must be at least 0, got {qat_steps}")
    device = str(resolve_device(options.device))
    steps = options.steps or preset.steps
    pixels = (options.size or preset.size) ** 2
    rungs = {}
    for name in selected_representations(options):
        base = preset.overrides_for(name)
        base.update(options.settings.get(name, {}))
        representations.make_config(name, **base)  # fail on a bad --set before any fit starts
        rungs[name] = ladder(name, base, 3, pixels, preset.targets_bpp)  # sized for RGB: one ladder for every image
    runs: list = []
    for image in images:
        runs += [CodecRun(codec, image, image_set, preset.name) for codec in available_codecs()]
        for name, sizes in rungs.items():
            runs += [RepresentationRun(FitRun(name, image, image_set, "full", preset.name, 0, steps,
                                              tuple(sorted(size.items())), device),
                                       quantizers, qat_steps, getattr(options.args, "coder", "best"))
                     for size in sizes]
    return runs


@register_suite("compression", "write fitted representations as real bitstreams; rate-distortion against JPEG/WebP",
                add_arguments)
def run_compression(options: SuiteOptions) -> int:
    if getattr(options.args, "decode", None):
        return decode_file(options.args.decode)
    preset = get_preset(options.preset, COMPRESSION_PRESETS)
    image_set, images = load_preset_images(options, preset)
    runs = plan_runs(options, preset, image_set, images)
    folder = options.suite_dir("compression")
    log = RecordLog(folder / "points.jsonl")
    if options.fresh and (moved := log.set_aside()):
        print(f"--fresh: previous records moved to {moved}", file=sys.stderr)

    def keep_streams(run, record: CompressionRecord, streams: dict[str, bytes]) -> CompressionRecord:
        for point in record.points:
            if point["setting"] in streams:
                relative = Path("streams") / run.image_set / run.image.name / f"{run.key}-{point['setting']}.fbi"
                relative = Path(str(relative).replace(" ", "_").replace("=", ""))
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                (folder / relative).write_bytes(streams[point["setting"]])
                point["stream"] = str(relative)
        return record

    execute_pending(runs, log, lambda run, on_step: run.execute(on_step), keep_streams)
    current = records_of(log.read(), {run.key for run in runs})
    failed = [r for r in current if r["status"] == "error"]
    for record in failed:
        print(f"error: {record['method']} on {record['image']}: {record['error']}", file=sys.stderr)
    summary = write_reports(current, folder, f"{image_set}, {options.size or preset.size}^2, preset {preset.name} "
                            f"(mean over {len(images)} images)")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.2f}") if not summary.empty
          else "no representation points")
    print(f"results: {folder}/points.jsonl, points.csv, matched.csv, bd.csv, summary.csv, json/, rd.png, streams/")
    return 1 if failed else 0


def decode_file(path: Path) -> int:
    """`--decode FILE`: check a stream, print its header and write the reconstruction beside it."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"--decode {path}: cannot read it ({error.strerror})") from None
    try:
        decoded = decode_stream(data)
    except BitstreamError as error:
        raise ValueError(f"--decode {path}: {error}") from None
    target = path.with_suffix(path.suffix + ".png")
    save_png(decoded.reconstruct(), target)
    print(f"{path}: {decoded.header.summary()}")
    print(f"{decoded.bytes} bytes ({decoded.bpp:.4f} bpp), entropy coder {decoded.coder}; reconstruction: {target}")
    return 0
