"""Tune suite: choose each representation's settings for a preset on tuning images only.

For every representation, the search space it declares beside itself (registry `search`: the learning rate
on a log grid and the one or two settings that matter most) is tried at the preset's budget, the same number
of trials for each, on the tuning images — never on the images the preset evaluates on: every trial on the
first image of each tuning set, then the best few on the rest (successive halving). The best mean test PSNR
over all tuning images wins. Writes OUT/tune/runs.jsonl (every trial fit, resumable), OUT/tune/trials.csv and trials.png, and
OUT/reference/tuned/<preset>.json with the chosen values and their provenance, which the preset then reads
(with the default --out, that is the shipped results/reference/tuned/<preset>.json).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fitbench import representations
from fitbench.datasets import load_images

from ..engine import resolve_device
from ..executor import execute_pending, report_failures
from ..options import SuiteOptions
from ..presets import Preset, get_preset
from ..provenance import commit, fitbench_version
from ..records import RecordLog, records_of
from ..runs import FitRun, execute_fit
from ..tuned import save_tuned, tuned_path
from . import register_suite
from .fitting import selected_representations

PROTOCOL = "alternate"


@dataclass(frozen=True)
class TuningPlan:
    """Successive halving in two rounds: every trial on the first image of each tuning set, then the best
    `finalists` of each representation on the rest; the best mean over all tuning images wins."""

    image_sets: tuple[tuple[str, int], ...]  # (image set, how many of its images), never one the preset evaluates
    trials: int = 12  # per representation, the same for every one
    finalists: int = 4  # trials per representation that go on to the second round


# The FFN paper's own tuning images (16 natural, 16 text) are what the standard preset is tuned on.
TUNING_PLANS = {
    "standard": TuningPlan((("ffn-natural", 2), ("ffn-text", 2))),
    # one image of each kind and half the trials: 12 fits per representation
    "quick": TuningPlan((("ffn-natural", 1), ("ffn-text", 1)), trials=6, finalists=6),
}


def add_arguments(group) -> None:
    group.add_argument("--trials", type=int, help="tune: trials per representation (default: the plan's, 12); "
                       "each declared search space must have at least this many points")


def trial_settings(name: str, trials: int, seed: int = 0) -> list[dict]:
    """`trials` points of the representation's declared grid: all of it, or a fixed-seed sample of a larger one."""
    space = representations.get_entry(name).search
    if not space:
        raise ValueError(f"{name} declares no search space (register(..., search={{...}})); it cannot be tuned")
    grid = [dict(zip(space, values)) for values in itertools.product(*space.values())]
    if len(grid) < trials:
        raise ValueError(f"{name}'s search space has {len(grid)} points, fewer than the {trials} trials every "
                         "representation gets; declare a larger space or pass --trials")
    return grid if len(grid) == trials else random.Random(seed).sample(grid, trials)


def tuning_sets(options: SuiteOptions, preset: Preset, plan: TuningPlan | None) -> list[tuple[str, int | None]]:
    """(image set, how many images) to tune on; refuses any set the preset evaluates on."""
    if options.images:
        sets = [(spec.strip(), options.max_images) for spec in options.images.split(",") if spec.strip()]
    elif plan:
        sets = [(name, options.max_images or count) for name, count in plan.image_sets]
    else:
        raise ValueError(f"preset {preset.name} has no tuning images here; give a set with --images (never "
                         f"{preset.image_set}, which it evaluates on)")
    for name, _ in sets:
        if name == preset.image_set or Path(name).expanduser().resolve() == Path(preset.image_set).expanduser().resolve():
            raise ValueError(f"refusing to tune preset {preset.name} on {name}: preset {preset.name} evaluates on "
                             f"{preset.image_set}; tune on other images (e.g. ffn-natural, ffn-text)")
    return sets


@register_suite("tune", "choose each representation's settings for a preset on tuning images only; writes "
                "OUT/reference/tuned/<preset>.json", add_arguments)
def run_tune(options: SuiteOptions) -> int:
    preset = get_preset(options.preset)
    plan = TUNING_PLANS.get(preset.name)
    trials = getattr(options.args, "trials", None) or (plan.trials if plan else 12)
    wanted = tuning_sets(options, preset, plan)
    names = selected_representations(options)
    grids = {name: trial_settings(name, trials) for name in names}  # every space checked before any fit
    size, steps = options.size or preset.size, options.steps or preset.steps
    sets = [(name, load_images(name, size, options.data_root, limit=count)) for name, count in wanted]
    device = str(resolve_device(options.device))
    untuned = dataclasses.replace(preset, tuned=None)  # tuning starts from the source defaults and size class
    trial_of: dict[str, tuple[str, int]] = {}  # run key -> (representation, trial index)

    def runs_for(trials_of: dict[str, list[int]], round_images) -> list[FitRun]:
        runs = []
        for name, indices in trials_of.items():
            for index in indices:
                overrides = {**untuned.overrides_for(name), **options.settings.get(name, {}), **grids[name][index]}
                for image_set, images in round_images:
                    for image in images:
                        runs.append(FitRun(name, image, image_set, PROTOCOL, f"tune-{preset.name}", 0, steps,
                                           tuple(sorted(overrides.items())), device))
                        trial_of[runs[-1].key] = (name, index)
        return runs

    folder = options.suite_dir("tune")
    log = RecordLog(folder / "runs.jsonl")
    if options.fresh and (moved := log.set_aside()):
        print(f"--fresh: previous records moved to {moved}", file=sys.stderr)
    started = time.perf_counter()
    finalists = plan.finalists if plan else trials
    first = runs_for({name: list(range(len(grid))) for name, grid in grids.items()}, [(n, i[:1]) for n, i in sets])
    failed = execute_pending(first, log, execute_fit)
    ranked = trial_table(records_of(log.read(), {run.key for run in first}), grids, trial_of)
    best = {name: ranked[ranked["representation"] == name].sort_values("score", ascending=False, na_position="last")
            ["trial"].head(finalists).tolist() for name in grids}
    second = runs_for(best, [(n, i[1:]) for n, i in sets])
    failed += execute_pending(second, log, execute_fit)
    table = trial_table(records_of(log.read(), {run.key for run in first + second}), grids, trial_of)
    table.to_csv(folder / "trials.csv", index=False)
    plot_trials(table, folder / "trials.png", f"tuning preset {preset.name} ({steps} steps, {size}^2)")
    chosen = choose(table, grids)
    path = tuned_path(options.out / "reference" / "tuned", preset.name)
    save_tuned(path, {
        "about": f"settings of preset {preset.name} chosen by `python run_bench.py --suite tune --preset "
                 f"{preset.name}`: the best mean test PSNR over the tuning images, never the evaluation images",
        "preset": preset.name, "fitbench_version": fitbench_version(), "commit": commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "budget": {"steps": steps, "size": size, "protocol": PROTOCOL, "size_class": preset.size_class,
                   "device": device},
        "tuning_images": {name: [image.name for image in images] for name, images in sets},
        "trials_per_representation": trials, "finalists_per_representation": finalists,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "representations": chosen,
    })
    print_choices(chosen)
    print(f"results: {folder}/runs.jsonl, trials.csv, trials.png; chosen settings: {path}")
    return report_failures(failed, lambda r: f"{r.representation} trial on {r.image}")


def trial_table(records: list[dict], grids: dict[str, list[dict]], trial_of: dict[str, tuple[str, int]]
                ) -> pd.DataFrame:
    """One row per (representation, trial): its settings and test PSNR per tuning image and on average.

    A trial with a failed or diverged fit scores nan: it cannot be chosen."""
    scores: dict[tuple[str, int], dict[str, float]] = {}
    for record in records:
        ok = record["status"] == "ok"
        scores.setdefault(trial_of[record["key"]], {})[f"{record['image_set']}/{record['image']}"] = (
            record["psnr_test"] if ok else float("nan"))
    rows = []
    for name, grid in grids.items():
        for index, trial in enumerate(grid):
            per_image = scores.get((name, index), {})
            values = list(per_image.values())
            score = float(np.mean(values)) if values and all(math.isfinite(v) for v in values) else float("nan")
            rows.append({"representation": name, "trial": index, "settings": trial, "score": score,
                         "images": len(values), **per_image})
    return pd.DataFrame(rows)


def choose(table: pd.DataFrame, grids: dict[str, list[dict]]) -> dict:
    """Per representation: the chosen settings, their score, the source defaults they replace, every trial."""
    chosen = {}
    for name in grids:
        trials = table[table["representation"] == name]
        finite = trials[np.isfinite(trials["score"]) & (trials["images"] == trials["images"].max())]  # finalists
        if finite.empty:
            print(f"warning: every trial of {name} failed or diverged; it keeps its source defaults", file=sys.stderr)
            continue
        best = finite.loc[finite["score"].idxmax()]
        defaults = representations.make_config(name)
        chosen[name] = {
            "chosen": best["settings"], "score": round(float(best["score"]), 4),
            "source_defaults": {k: getattr(defaults, k) for k in best["settings"]},
            "source": representations.get_entry(name).source,
            "trials": [{"settings": row.settings, "images": row.images,
                        "score": None if not math.isfinite(row.score) else round(row.score, 4)}
                       for row in trials.itertuples()],
        }
    return chosen


def print_choices(chosen: dict) -> None:
    print("| representation | chosen | mean test PSNR on tuning images (dB) | source defaults |")
    print("|---|---|---|---|")
    for name, entry in chosen.items():
        show = lambda values: ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"  # noqa: E731
                                        for k, v in values.items())
        print(f"| {name} | {show(entry['chosen'])} | {entry['score']:.2f} | {show(entry['source_defaults'])} |")


def plot_trials(table: pd.DataFrame, path: Path, title: str) -> None:
    """One panel per representation: mean test PSNR of each trial against its learning rate, a line per
    value of the other setting."""
    from ..figures import plt

    names = list(dict.fromkeys(table["representation"]))
    if not names:
        return
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False,
                                layout="constrained")
    for ax, name in zip(axes.flat, names):
        trials = table[table["representation"] == name]
        others = sorted({tuple((k, v) for k, v in s.items() if k != "lr") for s in trials["settings"]}, key=str)
        for other in others:
            part = trials[[tuple((k, v) for k, v in s.items() if k != "lr") == other for s in trials["settings"]]]
            lrs = [s.get("lr", math.nan) for s in part["settings"]]
            order = np.argsort(lrs)
            ax.plot(np.asarray(lrs)[order], part["score"].to_numpy()[order], "-o", markersize=3,
                    label=", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in other))
        ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("lr", fontsize=8)
        ax.set_ylabel("test PSNR (dB)", fontsize=8)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    figure.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
