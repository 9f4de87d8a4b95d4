"""Fitting suite: every representation (and interpolation references) on an image set, one record per fit."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from fitbench.datasets import ImageSample

from ..engine import device_type
from ..executor import execute_pending, report_failures
from ..figures import load_png, reconstruction_grid, save_png
from ..options import SuiteOptions, option
from ..paths import inside, safe_name
from ..planning import FitOptions, load_image_sets, plan_fits, preset_with_tuned
from ..presets import FITTING_PRESETS, Preset
from ..progress import show_plan
from ..records import FitRecord, RecordLog, records_of
from ..report import write_tables
from ..runs import BatchedFits, FitRun, execute_fit
from . import register_suite

DEFAULT_PRESET = "quick"  # tuned, 32 test images, a verdict in about a quarter of an hour on 2 CPU cores


@dataclass(frozen=True)
class FittingOptions(FitOptions):
    batch: str = option("auto", "fit the images and seeds of one representation as one batched computation; auto: "
                        "on CUDA, times a few steps both ways for each group of such fits and batches only where "
                        "that is faster; on a CPU, one by one (never under --budget-seconds: each fit gets the whole "
                        "budget on its own clock)", choices=("auto", "on", "off"))
    tuned: str | None = option(None, "tuned settings to use (default: the preset's shipped file, written by the tune "
                               "suite; none: each representation's source defaults)", metavar="FILE|none")


@register_suite("fitting", "fit each representation to each image (alternate-pixel protocol), score PSNR/SSIM",
                common=("preset", "representations", "settings", "images", "data", "steps", "seeds", "device",
                        "executor", "records", "tracking", "dry_run"),
                options=FittingOptions, presets=FITTING_PRESETS, default_preset=DEFAULT_PRESET)
def run_fitting(options: SuiteOptions) -> int:
    own: FittingOptions = options.own_or(FittingOptions)
    preset = preset_with_tuned(options, own.tuned)
    image_sets = load_image_sets(options, preset)
    runs = [run for image_set, images in image_sets for run in plan_fits(options, preset, image_set, images, own)]
    folder = options.suite_dir("fitting")
    log = RecordLog(folder / "runs.jsonl")
    if options.dry_run:
        return show_plan(runs, log, execute_fit, options,
                         heading=[describe_preset(preset, ", ".join(name for name, _ in image_sets))])
    if options.fresh and (moved := log.set_aside()):
        print(f"--fresh: previous records moved to {moved}", file=sys.stderr)

    def keep_reconstruction(run: FitRun, record: FitRecord, reconstruction) -> FitRecord:
        if reconstruction is not None:
            relative = (Path("reconstructions") / safe_name(run.image_set) / safe_name(run.image.name)
                        / f"{safe_name(run.representation)}-{run.key}.png")
            save_png(reconstruction, inside(folder, relative))
            record = dataclasses.replace(record, reconstruction=str(relative))
        return record

    # auto on a CPU: one by one. Batched CPU steps measured 0.91-1.10x of one by one (docs/speed.md), and the
    # 3-step trials that would decide it there cost ~30 worker-seconds of the main job and contradicted themselves
    # between its two image sets (FINER 577 against 335 ms, then 324 against 409).
    batch = "off" if own.batch == "auto" and device_type(options.device) == "cpu" else own.batch
    execute = execute_fit if batch == "off" else BatchedFits(runs, log, measure=batch == "auto")
    failed = execute_pending(runs, log, execute, keep_reconstruction)
    records = log.read()
    write_tables(records, folder)
    current = records_of(records, {run.key for run in runs})
    for image_set, images in image_sets:
        write_images(images, image_set, folder)
        write_grids([r for r in current if r["image_set"] == image_set], images, folder)
    print_leaderboard(current, folder)
    return report_failures(failed, lambda r: f"{r.representation} on {r.image}")


def describe_preset(preset: Preset, image_set: str) -> str:
    """The --dry-run plan's first line: the preset, and where the settings not tuned come from."""
    sizes = f"size class {preset.size_class}" if preset.size_class else "the sources' network sizes"
    tuned = (f"tuned settings from {preset.tuned}" if preset.tuned and Path(preset.tuned).is_file() else
             "no tuned settings")
    return f"preset {preset.name} on {image_set}: {sizes}, {tuned}"


def write_images(images: list[ImageSample], image_set: str, folder: Path) -> None:
    """The ground truth each fit was scored against (cropped and resized), for reports: images/<set>/<image>.png."""
    for image in images:
        save_png(image.pixels, inside(folder, Path("images") / safe_name(image_set) / f"{safe_name(image.name)}.png"))


def write_grids(records: list[dict], images: list[ImageSample], folder: Path) -> None:
    """One PNG per image: ground truth, each representation's first-seed reconstruction, and error maps. A record
    whose PNG is gone (records copied without their reconstructions/) keeps its scores and leaves its panel out."""
    shown = [r for r in records if r.get("reconstruction") and r["seed"] == 0]
    if missing := [r for r in shown if not (folder / r["reconstruction"]).is_file()]:
        print(f"note: {len(missing)} reconstructions are missing from {folder / 'reconstructions'} (e.g. "
              f"{missing[0]['reconstruction']}); the grids leave them out", file=sys.stderr)
    for image in images:
        rows = [r for r in shown if r["image"] == image.name and r not in missing]
        rows.sort(key=lambda r: (r["kind"] != "reference", -(r["psnr_test"] or 0)))
        panels = [(f"{r['representation']}\n{r['psnr_test']:.2f} dB test", load_png(folder / r["reconstruction"]))
                  for r in rows]
        if panels:
            title = f"{image.name} ({rows[0]['image_set']}, preset {rows[0]['preset']}, {rows[0]['protocol']})"
            name = f"{safe_name(rows[0]['image_set'])}-{safe_name(image.name)}.png"
            reconstruction_grid(image.pixels, panels, title, inside(folder, Path("grids") / name))


def print_leaderboard(records: list[dict], folder: Path) -> None:
    from ..report import leaderboard_markdown, rank_tests, summarize

    print(leaderboard_markdown(summarize(records), rank_tests(records)))
    print(f"results: {folder}/runs.jsonl, summary.csv, leaderboard.md, cd/ (rank diagrams), grids/")
