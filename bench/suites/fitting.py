"""Fitting suite: every representation (and interpolation references) on an image set, one record per fit."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from fitbench import representations
from fitbench.datasets import ImageSample, load_images
from fitbench.representations.registry import parameters_missed

from ..engine import PRECISIONS, resolve_device
from ..executor import execute_pending, report_failures
from ..figures import load_png, reconstruction_grid, save_png
from ..interpolation import INTERPOLATIONS
from ..options import SuiteOptions
from ..paths import inside, safe_name
from ..presets import Preset, for_image_set, get_preset
from ..progress import show_plan
from ..protocol import PROTOCOLS
from ..precision import choose_precision, load_bf16_costs
from ..records import FitRecord, RecordLog, records_of
from ..report import write_tables
from ..runs import BatchedFits, FitRun, execute_fit
from . import register_suite

MAX_TIMED_STEPS = 10**7  # a time-budgeted fit's step cap when --steps does not set one


def add_arguments(group) -> None:
    group.add_argument("--protocol", choices=PROTOCOLS, default="alternate",
                       help="fitting: alternate = train on y[::2, ::2], test on y[1::2, 1::2] (FFN); full = all pixels")
    group.add_argument("--precision", choices=(*PRECISIONS, "auto"), default="fp32",
                       help="fitting: bf16 runs the wide matmuls in bf16; auto takes bf16 for a representation only "
                       "where the device has native bf16 and its measured cost (results/reference/bf16_cost.json, "
                       "--suite precision) is at most 0.1 dB; each record says what was chosen and why")
    group.add_argument("--compile", action="store_true",
                       help="fitting: torch.compile each fit's step (pays off on long fits; compile time is recorded)")
    group.add_argument("--batch", choices=("auto", "on", "off"), default="auto",
                       help="fitting: fit the images and seeds of one representation as one batched computation; "
                       "auto (default) times a few steps both ways for each group of such fits and batches only "
                       "where that is faster")
    group.add_argument("--budget-seconds", metavar="S[,S...]",
                       help="fitting: bound each fit by training seconds instead of steps (evaluation excluded), "
                       "e.g. 10,60 for one leaderboard per budget; --steps then only caps them")
    group.add_argument("--budget-flops", type=float, metavar="F",
                       help="fitting: bound each fit by matmul FLOPs (forward + backward, bench/flops.py)")
    group.add_argument("--pixels-per-step", type=int, metavar="N",
                       help="fitting: train on N random training pixels per step (a pass over a fixed-seed "
                       "permutation, as the seed scripts' minibatches) instead of all of them")
    group.add_argument("--params", type=int, metavar="N",
                       help="fitting: size every representation by its size knob to about N trainable parameters, so "
                       "the table compares representations rather than sizes (preset label gets @Nparams); one whose "
                       "knob cannot come within 1.5x of N is fitted at the nearest size, with a warning")
    group.add_argument("--tuned", metavar="FILE|none",
                       help="fitting: tuned settings to use (default: the preset's file from --suite tune, "
                       "results/reference/tuned/<preset>.json; none: each representation's source defaults)")


@dataclass(frozen=True)
class Budget:
    """What bounds each fit besides the step count, from --budget-seconds, --budget-flops, --pixels-per-step."""

    seconds: tuple[float | None, ...] = (None,)  # one set of runs per entry; None: the step budget
    flops: float | None = None
    pixels_per_step: int | None = None

    @classmethod
    def from_options(cls, options: SuiteOptions) -> "Budget":
        args = options.args
        text = getattr(args, "budget_seconds", None)
        seconds = tuple(_positive_float(v, "--budget-seconds") for v in text.split(",")) if text else (None,)
        flops = getattr(args, "budget_flops", None)
        if flops is not None and not flops > 0:
            raise ValueError(f"--budget-flops must be positive, got {flops}")
        pixels = getattr(args, "pixels_per_step", None)
        if pixels is not None and pixels < 1:
            raise ValueError(f"--pixels-per-step must be at least 1, got {pixels}")
        return cls(seconds, flops, pixels)


def _positive_float(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"{flag}: budgets must be positive, got {text}")
    return value


def preset_for(options: SuiteOptions) -> Preset:
    """The preset named by --preset, with --tuned's settings file in place of its own. A preset whose tuned file
    does not exist yet is refused before any fit (its scores would not be the preset's), unless --tuned none."""
    preset = get_preset(options.preset)
    tuned = getattr(options.args, "tuned", None)
    if tuned is None:
        if preset.tuned and not Path(preset.tuned).is_file():
            message = untuned_preset(preset, options)
            if not getattr(options.args, "dry_run", False):
                raise ValueError(message)
            print(f"note: {message}", file=sys.stderr)  # the plan shows what --tuned none would run
        return preset
    if tuned != "none" and not Path(tuned).is_file():
        raise ValueError(f"--tuned {tuned}: no such file; give a file written by --suite tune, or none")
    return dataclasses.replace(preset, tuned=None if tuned == "none" else tuned)


def untuned_preset(preset: Preset, options: SuiteOptions) -> str:
    """Why a preset without its tuned file does not run, what tuning it costs, and the two ways on."""
    from .tune import TUNING_PLANS

    plan = TUNING_PLANS.get(preset.name)
    cost = (f"{plan.fits_per_representation() * len(selected_representations(options))} fits at the preset's "
            "budget; add --dry-run to it for a time estimate here" if plan else "add --dry-run to it for its cost")
    return (f"preset {preset.name} has no tuned settings ({preset.tuned} is missing): tune it first with "
            f"`python run_bench.py --suite tune --preset {preset.name}` ({cost}), or pass --tuned none to run it "
            "on the source defaults on purpose")


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


def load_image_sets(options: SuiteOptions, preset: Preset) -> list[tuple[str, list[ImageSample]]]:
    """Each image set of a comma-separated --images (or the preset's, e.g. the FFN paper's two test sets), loaded as
    `load_preset_images` loads one; each gets its own table, and one more over them all."""
    spec = options.images or preset.image_set
    return [load_preset_images(dataclasses.replace(options, images=name.strip()), preset)
            for name in spec.split(",") if name.strip()]


def plan_fits(options: SuiteOptions, preset: Preset, image_set: str, images: list[ImageSample], protocol: str,
              with_references: bool = True) -> list[FitRun]:
    """Every (image, representation, budget, seed), plus the interpolation references under the alternate protocol."""
    preset = for_image_set(preset, image_set)
    device = str(resolve_device(options.device))
    budget = Budget.from_options(options)
    timed = budget.seconds != (None,)
    steps = options.steps or (MAX_TIMED_STEPS if timed else preset.steps)
    precision, compile = getattr(options.args, "precision", "fp32"), getattr(options.args, "compile", False)
    costs = load_bf16_costs() if precision == "auto" else {}
    params = getattr(options.args, "params", None)
    label = preset.name if params is None else f"{preset.name}@{params}params"
    names = selected_representations(options)
    runs = []
    missed = set()  # why a representation cannot be sized to --params, said once each
    for image in images:
        if with_references and protocol == "alternate":
            runs += [FitRun(name, image, image_set, protocol, label, 0, 0) for name in INTERPOLATIONS]
        for name in names:
            overrides = representations.merge_overrides(name, preset.overrides_for(name),
                                                        options.settings.get(name, {}))
            if params is not None:
                overrides = representations.knob_for_parameters(name, params, image.pixels.shape[2], overrides)
                missed.add(parameters_missed(name, params, image.pixels.shape[2], overrides))
            representations.make_config(name, **overrides)  # fail on a bad --set before any fit starts
            chosen = choose_precision(precision, device, name, costs)
            for seconds in budget.seconds:
                for seed in range(options.seeds or preset.seeds):
                    runs.append(FitRun(name, image, image_set, protocol, label, seed, steps,
                                       tuple(sorted(overrides.items())), device, chosen.precision, compile,
                                       budget_seconds=seconds, budget_flops=budget.flops,
                                       pixels_per_step=budget.pixels_per_step,
                                       settings_from=preset.settings_from(name, image_set),
                                       precision_from=chosen.reason))
    for line in sorted(filter(None, missed)):
        print(f"warning: --params {params}: {line}; it is fitted at that size (the params column shows it)",
              file=sys.stderr)
    return runs


@register_suite("fitting", "fit each representation to each image (alternate-pixel protocol), score PSNR/SSIM",
                add_arguments)
def run_fitting(options: SuiteOptions) -> int:
    preset = preset_for(options)
    image_sets = load_image_sets(options, preset)
    protocol = getattr(options.args, "protocol", "alternate")
    runs = [run for image_set, images in image_sets for run in plan_fits(options, preset, image_set, images, protocol)]
    folder = options.suite_dir("fitting")
    log = RecordLog(folder / "runs.jsonl")
    if getattr(options.args, "dry_run", False):
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

    batch = getattr(options.args, "batch", "auto")
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
    from ..report import leaderboard_markdown, rank_tests, summarize

    print(leaderboard_markdown(summarize(records), rank_tests(records)))
    print(f"results: {folder}/runs.jsonl, summary.csv, leaderboard.md, cd/ (rank diagrams), grids/")
