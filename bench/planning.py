"""Planning: from a suite's options and preset to the list of fits it runs. Every suite that fits images plans here
(fitting, compression, tune, ci, precision, speed): the representations it selects, the images it loads, the
settings each fit gets and the budget that bounds it.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

from fitbench import representations
from fitbench.datasets import ImageSample, load_images
from fitbench.representations.registry import parameters_missed

from .engine import PRECISIONS, resolve_device
from .interpolation import INTERPOLATIONS
from .options import SuiteOptions, option
from .precision import choose_precision, load_bf16_costs
from .presets import TUNING_PLANS, Preset, for_image_set, get_preset
from .protocol import PROTOCOLS, training_grid
from .runs import FitRun

MAX_TIMED_STEPS = 10**7  # a time-budgeted fit's step cap when --steps does not set one


def _positive_float(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"{flag}: budgets must be positive, got {text}")
    return value


@dataclass(frozen=True)
class FitOptions:
    """How each planned fit runs: the fitting suite's flags (the other suites that plan fits set them in code)."""

    protocol: str = option("alternate", "alternate = train on y[::2, ::2], test on y[1::2, 1::2] (FFN); full = all "
                           "pixels", choices=PROTOCOLS)
    precision: str = option("fp32", "bf16 runs the wide matmuls in bf16; auto takes bf16 for a representation only "
                            "where the device has native bf16 and its measured cost (the shipped bf16_cost.json, "
                            "the precision suite) is at most 0.1 dB; each record says what was chosen and why",
                            choices=(*PRECISIONS, "auto"))
    compile: bool = option(False, "torch.compile each fit's step (pays off on long fits; compile time is recorded)")
    budget_seconds: str | None = option(None, "bound each fit by training seconds on its own clock instead of steps "
                                        "(evaluation excluded), e.g. 10,60 for one leaderboard per budget; --steps "
                                        "then only caps them", metavar="S[,S...]")
    budget_flops: float | None = option(None, "bound each fit by matmul FLOPs (forward + backward, bench/flops.py)",
                                        metavar="F")
    pixels_per_step: int | None = option(None, "train on N random training pixels per step (a pass over a "
                                         "fixed-seed permutation, as the original scripts' minibatches) instead "
                                         "of all of them", metavar="N")
    params: int | None = option(None, "size every representation by its size knob to about N trainable parameters, "
                                "so the table compares representations rather than sizes (preset label gets "
                                "@Nparams); one whose knob cannot come within 1.5x of N is fitted at the nearest "
                                "size, with a warning", metavar="N")

    def __post_init__(self) -> None:
        self.seconds  # noqa: B018 -- parsed here so a bad --budget-seconds fails before any fit
        if self.budget_flops is not None and not self.budget_flops > 0:
            raise ValueError(f"--budget-flops must be positive, got {self.budget_flops}")
        if self.pixels_per_step is not None and self.pixels_per_step < 1:
            raise ValueError(f"--pixels-per-step must be at least 1, got {self.pixels_per_step}")
        if self.params is not None and self.params < 1:
            raise ValueError(f"--params must be at least 1, got {self.params}")

    @property
    def seconds(self) -> tuple[float | None, ...]:
        """One set of runs per time budget; (None,): the step budget."""
        if not self.budget_seconds:
            return (None,)
        return tuple(_positive_float(v, "--budget-seconds") for v in self.budget_seconds.split(","))


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


def preset_with_tuned(options: SuiteOptions, tuned: str | None) -> Preset:
    """The preset named by --preset, with --tuned's settings file in place of its own. A preset whose tuned file
    does not exist yet is refused before any fit (its scores would not be the preset's), unless --tuned none."""
    preset = get_preset(options.preset)
    if tuned is None:
        if preset.tuned and not Path(preset.tuned).is_file():
            message = untuned_preset(preset, options)
            if not options.dry_run:
                raise ValueError(message)
            print(f"note: {message}", file=sys.stderr)  # the plan shows what --tuned none would run
        return preset
    if tuned != "none" and not Path(tuned).is_file():
        raise ValueError(f"--tuned {tuned}: no such file; give a file written by the tune suite, or none")
    return dataclasses.replace(preset, tuned=None if tuned == "none" else tuned)


def untuned_preset(preset: Preset, options: SuiteOptions) -> str:
    """Why a preset without its tuned file does not run, what tuning it costs, and the two ways on."""
    plan = TUNING_PLANS.get(preset.name)
    cost = (f"{plan.fits_per_representation() * len(selected_representations(options))} fits at the preset's "
            "budget; add --dry-run to it for a time estimate here" if plan else "add --dry-run to it for its cost")
    return (f"preset {preset.name} has no tuned settings ({preset.tuned} is missing): tune it first with "
            f"`python run_bench.py tune --preset {preset.name}` ({cost}), or pass --tuned none to run it "
            "on the source defaults on purpose")


def sized_for(name: str, params: int, channels: int, grid, overrides: dict) -> tuple[dict, str | None]:
    """`overrides` with `name`'s size knob set for about `params` parameters, counted on the grid the fit trains on
    (as the fit builds its model), and why it cannot come near (None when it does)."""
    sized, missed = _sized_for(name, params, channels, grid, tuple(sorted(overrides.items())))
    return dict(sized), missed


@functools.lru_cache(maxsize=None)  # one search per representation and settings, not one per image
def _sized_for(name: str, params: int, channels: int, grid, overrides: tuple) -> tuple[dict, str | None]:
    sized = representations.knob_for_parameters(name, params, channels, dict(overrides), grid)
    return sized, parameters_missed(name, params, channels, sized, training_grid=grid)


def plan_fits(options: SuiteOptions, preset: Preset, image_set: str, images: list[ImageSample],
              fit: FitOptions = FitOptions(), with_references: bool = True) -> list[FitRun]:
    """Every (image, representation, budget, seed), plus the interpolation references under the alternate protocol."""
    preset = for_image_set(preset, image_set)
    device = str(resolve_device(options.device))
    timed = fit.seconds != (None,)
    steps = options.steps or (MAX_TIMED_STEPS if timed else preset.steps)
    costs = load_bf16_costs() if fit.precision == "auto" else {}
    label = preset.name if fit.params is None else f"{preset.name}@{fit.params}params"
    params = preset.params if fit.params is None else fit.params
    names = selected_representations(options)
    runs = []
    missed = set()  # why a representation cannot be sized to --params, said once each
    for image in images:
        if with_references and fit.protocol == "alternate":
            runs += [FitRun(name, image, image_set, fit.protocol, label, 0, 0) for name in INTERPOLATIONS]
        for name in names:
            overrides = representations.merge_overrides(name, preset.overrides_for(name),
                                                        options.settings.get(name, {}))
            if params is not None:
                overrides, miss = sized_for(name, params, image.pixels.shape[2],
                                            training_grid(fit.protocol, *image.pixels.shape[:2]), overrides)
                missed.add(miss)
            representations.make_config(name, **overrides)  # fail on a bad --set before any fit starts
            chosen = choose_precision(fit.precision, device, name, costs)
            for seconds in fit.seconds:
                for seed in range(options.seeds or preset.seeds):
                    runs.append(FitRun(name, image, image_set, fit.protocol, label, seed, steps,
                                       tuple(sorted(overrides.items())), device, chosen.precision, fit.compile,
                                       budget_seconds=seconds, budget_flops=fit.budget_flops,
                                       pixels_per_step=fit.pixels_per_step,
                                       settings_from=preset.settings_from(name, image_set),
                                       precision_from=chosen.reason))
    for line in sorted(filter(None, missed)):
        source = f"--params {params}" if fit.params is not None else f"preset {preset.name}'s {params:,} parameters"
        print(f"warning: {source}: {line}; it is fitted at that size (the params column shows it)", file=sys.stderr)
    return runs
