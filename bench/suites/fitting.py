"""Fitting suite: every representation (and interpolation references) on an image set, one record per fit."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from fitbench import representations
from fitbench.datasets import ImageSample, load_images

from ..engine import PRECISIONS, resolve_device
from ..executor import execute_pending, report_failures
from ..figures import load_png, reconstruction_grid, save_png
from ..interpolation import INTERPOLATIONS
from ..options import SuiteOptions
from ..paths import inside, safe_name
from ..presets import Preset, get_preset
from ..protocol import PROTOCOLS
from ..records import FitRecord, RecordLog, records_of
from ..report import write_tables
from ..runs import BatchedFits, FitRun, execute_fit
from . import register_suite


def add_arguments(group) -> None:
    group.add_argument("--protocol", choices=PROTOCOLS, default="alternate",
                       help="fitting: alternate = train on y[::2, ::2], test on y[1::2, 1::2] (FFN); full = all pixels")
    group.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="fitting: bf16 runs the wide matmuls in bf16 (see docs/speed.md for its measured cost)")
    group.add_argument("--compile", action="store_true",
                       help="fitting: torch.compile each fit's step (pays off on long fits; compile time is recorded)")
    group.add_argument("--batch", choices=("auto", "on", "off"), default="auto",
                       help="fitting: fit the images and seeds of one representation as one batched computation; "
                       "auto = on CUDA only (on this 2-core CPU it was up to 2.3x slower than one by one at 256^2)")


def selected_representations(options: SuiteOptions) -> list[str]:
    """--reps (default: every registered representation), each checked, and --set checked against them."""
    names = options.representations or representations.list_representations()
    for name in [*names, *options.settings]:
        representations.get_entry(name)  # raises with the valid names
    for name, settings in options.settings.items():
        if "seed" in settings:
            raise ValueError(f"--set {name}.seed: a fit's seed comes from --seeds (seeds 0..N-1), not --set")
        representations.make_config(name, **settings)  # type and range, before any fit starts
    return names


def load_preset_images(options: SuiteOptions, preset: Preset) -> tuple[str, list[ImageSample]]:
    image_set = options.images or preset.image_set
    images = load_images(image_set, options.size or preset.size, options.data_root,
                         limit=options.max_images or preset.max_images)
    for image in images:
        for note in image.notes:
            print(f"note: {image.source}: {note}", file=sys.stderr)
    return image_set, images


def plan_fits(options: SuiteOptions, preset: Preset, image_set: str, images: list[ImageSample], protocol: str,
              with_references: bool = True) -> list[FitRun]:
    """Every (image, representation, seed), plus the interpolation references under the alternate protocol."""
    device = str(resolve_device(options.device))
    steps = options.steps or preset.steps
    precision, compile = getattr(options.args, "precision", "fp32"), getattr(options.args, "compile", False)
    runs = []
    for image in images:
        if with_references and protocol == "alternate":
            runs += [FitRun(name, image, image_set, protocol, preset.name, 0, 0) for name in INTERPOLATIONS]
        for name in selected_representations(options):
            overrides = preset.overrides_for(name)
            overrides.update(options.settings.get(name, {}))
            representations.make_config(name, **overrides)  # fail on a bad --set before any fit starts
            for seed in range(options.seeds or preset.seeds):
                runs.append(FitRun(name, image, image_set, protocol, preset.name, seed, steps,
                                   tuple(sorted(overrides.items())), device, precision, compile))
    return runs


@register_suite("fitting", "fit each representation to each image (alternate-pixel protocol), score PSNR/SSIM",
                add_arguments)
def run_fitting(options: SuiteOptions) -> int:
    preset = get_preset(options.preset)
    image_set, images = load_preset_images(options, preset)
    runs = plan_fits(options, preset, image_set, images, getattr(options.args, "protocol", "alternate"))
    folder = options.suite_dir("fitting")
    log = RecordLog(folder / "runs.jsonl")
    if options.fresh and (moved := log.set_aside()):
        print(f"--fresh: previous records moved to {moved}", file=sys.stderr)

    def keep_reconstruction(run: FitRun, record: FitRecord, reconstruction) -> FitRecord:
        if reconstruction is not None:
            relative = (Path("reconstructions") / safe_name(run.image_set) / safe_name(run.image.name)
                        / f"{safe_name(run.representation)}-{run.key}.png")
            save_png(reconstruction, inside(folder, relative))
            record = dataclasses.replace(record, reconstruction=str(relative))
        return record

    batch = getattr(options.args, "batch", "auto")
    batched = batch == "on" or (batch == "auto" and resolve_device(options.device).type == "cuda")
    execute = BatchedFits(runs, log) if batched else execute_fit
    failed = execute_pending(runs, log, execute, keep_reconstruction)
    records = log.read()
    write_tables(records, folder)
    current = records_of(records, {run.key for run in runs})
    write_images(images, image_set, folder)
    write_grids(current, images, folder)
    print_leaderboard(current, folder)
    return report_failures(failed, lambda r: f"{r.representation} on {r.image}")


def write_images(images: list[ImageSample], image_set: str, folder: Path) -> None:
    """The ground truth each fit was scored against (cropped and resized), for reports: images/<set>/<image>.png."""
    for image in images:
        save_png(image.pixels, inside(folder, Path("images") / safe_name(image_set) / f"{safe_name(image.name)}.png"))


def write_grids(records: list[dict], images: list[ImageSample], folder: Path) -> None:
    """One PNG per image: ground truth, each representation's first-seed reconstruction, and error maps."""
    for image in images:
        rows = [r for r in records if r["image"] == image.name and r.get("reconstruction") and r["seed"] == 0]
        rows.sort(key=lambda r: (r["kind"] != "reference", -(r["psnr_test"] or 0)))
        panels = [(f"{r['representation']}\n{r['psnr_test']:.2f} dB test", load_png(folder / r["reconstruction"]))
                  for r in rows]
        if panels:
            title = f"{image.name} ({rows[0]['image_set']}, preset {rows[0]['preset']}, {rows[0]['protocol']})"
            name = f"{safe_name(rows[0]['image_set'])}-{safe_name(image.name)}.png"
            reconstruction_grid(image.pixels, panels, title, inside(folder, Path("grids") / name))


def print_leaderboard(records: list[dict], folder: Path) -> None:
    from ..report import leaderboard_markdown, summarize

    print(leaderboard_markdown(summarize(records)))
    print(f"results: {folder}/runs.jsonl, summary.csv, leaderboard.md, grids/")
