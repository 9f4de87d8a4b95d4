"""Named sizes of a suite: how big the images and networks are and how long fits run.

A preset names a size class ("tiny", "standard"; None: the sources' own sizes) and each representation says
in its own registration what that class means for it, so no preset lists representations by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fitbench import representations

from .repro import PAPER, SETTINGS_BY_SET, TEST_SETS
from .tuned import SHIPPED, TunedSettings, load_tuned, tuned_path


@dataclass(frozen=True)
class PresetBase:
    """What every suite's presets have: a name for --preset and a line for --list and --help."""

    name: str
    description: str


@dataclass(frozen=True)
class Preset(PresetBase):
    """A preset of the suites that fit images (fitting, tune, precision, ci; compression and speed extend it)."""

    size: int  # image side after centre crop and resize
    steps: int  # full-batch Adam steps per fit
    seeds: int
    image_set: str
    max_images: int | None = None
    size_class: str | None = None  # each representation's declared sizes for this class; None: its defaults
    # Settings every representation has (RepresentationConfig's: schedule, lr_final, ...) set for all of them.
    common: Mapping[str, Any] = field(default_factory=dict)
    # Config overrides per representation on top of the size class (for a suite's own fixed configuration).
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Settings chosen by `--suite tune` for this preset (bench/tuned.py): a file, read when it exists.
    tuned: str | None = None
    # Every representation sized by its size knob to about this many trainable parameters (None: the size class's
    # sizes), so a table compares representations at one size; tuned at that size.
    params: int | None = None

    def tuned_settings(self) -> TunedSettings | None:
        return load_tuned(Path(self.tuned)) if self.tuned else None

    def overrides_for(self, representation: str) -> dict[str, Any]:
        """Common settings, then the size class, then tuned values, then the preset's own overrides."""
        tuned = self.tuned_settings()
        return {**self.common, **representations.sized_overrides(representation, self.size_class),
                **(tuned.chosen(representation) if tuned else {}), **self.overrides.get(representation, {})}

    def settings_from(self, representation: str, image_set: str) -> str:
        """Where a representation's tuned settings came from ("" where it runs on its source defaults), and a
        warning when `image_set` is one they were tuned on (then the scores are not an independent evaluation) or
        when they were tuned at another budget than this preset's."""
        tuned = self.tuned_settings()
        if not tuned or not tuned.chosen(representation):
            return ""
        budget = tuned.data.get("budget", {})
        other = [f"{name} {budget.get(name)} (here {mine})" for name, mine in
                 (("steps", self.steps), ("size", self.size), ("params", self.params)) if budget.get(name) != mine]
        return (tuned.label + (" — TUNED ON THIS IMAGE SET" if image_set in tuned.tuning_images else "")
                + (f" — TUNED AT ANOTHER BUDGET: {', '.join(other)}" if other else ""))


# The FFN paper's split: its test images are where presets report; its tuning images (ffn-natural, ffn-text) are
# where `--suite tune` chooses settings. `builtin` (skimage's photographs) stays for smoke runs and demos.
EVALUATION_SETS = "ffn-natural-test,ffn-text-test"


class UnknownPresetError(ValueError):
    pass


FITTING_PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "smoke",
            "tests and CI: tiny images and networks, the whole suite in seconds",
            size=32, steps=100, seeds=1, image_set="builtin", max_images=2, size_class="tiny",
        ),
        Preset(
            "standard",
            "every representation on the FFN paper's 32 test images at 256^2 (128^2 training grid), "
            "laptop-sized networks (3x128 for the MLPs), 300 steps, 1 seed",
            # 128^2 training grid: the FFN protocol at half the FFN resolution, to fit 2 CPU cores. The image is the
            # unit of every statistic (bench/stats.py): 32 images with one seed each beat fewer images x more seeds.
            size=256, steps=300, seeds=1, image_set=EVALUATION_SETS, size_class="standard",
            tuned=str(tuned_path(SHIPPED, "standard")),
        ),
        Preset(
            "quick",
            "the default: every representation on the FFN paper's 32 test images at 128^2 (64^2 training grid), "
            "each sized to 12,288 parameters (as many as training values), 150 steps, 1 seed, tuned at that size",
            # As many parameters as training values (64^2 pixels x 3), the FFN paper's own ratio (a 4 x 256 ReLU
            # MLP, about 200k parameters, on a 256^2 x 3 training grid): one size for every representation, so the
            # table compares representations, not sizes. 150 steps: the whole evaluation (416 fits) within 15
            # minutes on 2 CPU cores (README, "Measured here"). Its tuned settings ship in
            # bench/reference/tuned/quick.json (package data), tuned at this size and budget.
            size=128, steps=150, seeds=1, image_set=EVALUATION_SETS, size_class="standard", params=64 * 64 * 3,
            tuned=str(tuned_path(SHIPPED, "quick")),
        ),
        Preset(
            "paper",
            "the FFN protocol on its test images: 512^2 images, 256^2 training grid, 2000 full-batch steps, the "
            "sources' network sizes, the FFN settings of natural or text images per set (GPU-scale; docs/repro.md)",
            size=PAPER.size, steps=PAPER.steps, seeds=1, image_set=TEST_SETS["natural"],
        ),
    ]
}

# Settings that depend on the image set, per preset, on top of the preset's own overrides: the FFN paper chose
# sigma, s and the no-mapping learning rate apart for its natural and its text images (bench/repro.py).
IMAGE_SET_OVERRIDES: dict[str, Mapping[str, Mapping[str, Mapping[str, Any]]]] = {"paper": SETTINGS_BY_SET}


def for_image_set(preset: Preset, image_set: str) -> Preset:
    """`preset` with its overrides for `image_set` added, where it has some."""
    extra = IMAGE_SET_OVERRIDES.get(preset.name, {}).get(image_set)
    if not extra:
        return preset
    names = {*preset.overrides, *extra}
    return dataclasses.replace(preset, overrides={n: {**preset.overrides.get(n, {}), **extra.get(n, {})}
                                                  for n in names})


def get_preset(name: str, presets: Mapping[str, PresetBase] = FITTING_PRESETS) -> Any:
    try:
        return presets[name]
    except KeyError:
        raise UnknownPresetError(f"unknown preset {name!r}; choose from: {', '.join(presets)}") from None


# --- tuning plans: how `python run_bench.py tune` searches for each preset (bench/suites/tune.py) ---

SEEDS = (0, 1)  # the finalists' seeds: a choice that holds for one seed only is not kept


@dataclass(frozen=True)
class TuningPlan:
    """Screening on the first image of each set (the full grid, grown past its edges where the best point sits on
    one), then the best `finalists` points on every tuning image with both SEEDS; the best mean of those wins."""

    image_sets: tuple[tuple[str, int], ...]  # (image set, how many of its images), never one the preset evaluates
    finalists: int = 3
    max_extensions: int = 2  # per searched setting

    def fits_per_representation(self, grid_points: int = 12) -> int:
        """Fits per representation before any extension (each adds a row or a column of the grid on the
        screening images)."""
        screening = len(self.image_sets)
        return grid_points * screening + self.finalists * (len(SEEDS) * self.images - screening)

    @property
    def images(self) -> int:
        return sum(count for _, count in self.image_sets)


# The FFN paper's own tuning images (16 natural, 16 text) are what the presets are tuned on.
TUNING_PLANS = {
    "standard": TuningPlan((("ffn-natural", 2), ("ffn-text", 2))),
    "quick": TuningPlan((("ffn-natural", 1), ("ffn-text", 1))),  # one image of each kind
}
