"""Tune suite: choose each representation's settings for a preset on tuning images only.

For every representation, the search space it declares beside itself (registry `search`: the learning rate on a
log grid and the one setting that matters most, frequencies in units of the training grid's so that one space
serves every image size) is tried as a full grid at the preset's budget, on the tuning images — never on the images
the preset evaluates on:

1. Screening: every grid point (the starting settings always among them) on the first image of each tuning set.
   Where the best point sits on an edge of a numeric axis, the axis grows one step past that edge (the step of its
   two outermost values) and the new row or column of the grid is screened too, at most `max_extensions` times per
   setting; each extension is printed and recorded.
2. Finals: the best `finalists` points are fitted on every tuning image with seeds 0 and 1; the best mean over those
   fits wins.

Writes OUT/tune/runs.jsonl (every fit, resumable), OUT/tune/trials.csv and trials.png, and
OUT/reference/tuned/<preset>.json with the chosen values and their provenance. To ship it, copy it to
bench/reference/tuned/<preset>.json (package data), which the preset reads; only a file tuned from committed code
may ship, see bench/tuned.py. The fits of the finals' winner are checked too: where it sits on an edge of its grid
(a finalist that was not the screening's best), the grid grows again and the round repeats.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fitbench import representations
from fitbench.datasets import load_images

from ..engine import resolve_device
from ..executor import execute_pending, report_failures
from ..options import SuiteOptions, option
from ..planning import selected_representations, sized_for
from ..protocol import training_grid
from ..presets import FITTING_PRESETS, SEEDS, TUNING_PLANS, Preset, TuningPlan, get_preset  # noqa: F401
from ..progress import show_plan
from ..provenance import commit, fitbench_version
from ..records import RecordLog, records_of
from ..runs import FitRun, execute_fit
from ..tuned import TUNER, is_clean_commit, save_tuned, tuned_path
from . import register_suite
from .fitting import DEFAULT_PRESET

PROTOCOL = "alternate"


@dataclass(frozen=True)
class TuneOptions:
    max_extensions: int | None = option(None, "how often a searched setting's grid may grow past the edge its best "
                                        "point sits on (default: the plan's, 2; 0: never)", metavar="N")

    def __post_init__(self) -> None:
        if self.max_extensions is not None and self.max_extensions < 0:
            raise ValueError(f"--max-extensions must be 0 or more, got {self.max_extensions}")


Axes = dict[str, list]  # searched setting -> its values, in order


def search_axes(name: str, start: representations.RepresentationConfig) -> Axes:
    """The representation's declared grid with the starting config's value of each setting among its values."""
    declared = representations.get_entry(name).search
    if not declared:
        raise ValueError(f"{name} declares no search space (register(..., search={{...}})); it cannot be tuned")
    if "lr" not in declared:
        raise ValueError(f"{name}'s search space lacks lr: every representation's learning rate is tuned")
    axes = {}
    for setting, values in declared.items():
        values, current = list(values), getattr(start, setting)
        if current is not None and current not in values:
            values = sorted([*values, current]) if _numeric(values) else [*values, current]
        axes[setting] = values
    return axes


def grid_points(axes: Axes) -> list[dict[str, Any]]:
    """Every combination of the axes' values: each learning rate with each value of the other setting."""
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def step_past(values: list, upward: bool) -> int | float | None:
    """The next value past an edge of a numeric axis, a geometric step (that of the two outermost values) where
    they are positive, else an arithmetic one; None where the axis cannot grow (not numbers, one value)."""
    if len(values) < 2 or not _numeric(values):
        return None
    edge, inner = (values[-1], values[-2]) if upward else (values[0], values[1])
    new = edge * edge / inner if edge > 0 and inner > 0 else 2 * edge - inner
    new = round(new) if all(isinstance(v, int) for v in values) else float(f"{new:.6g}")  # no 1.0000000000000002
    return None if new in values else new


@dataclass
class Search:
    """One representation's grid as it grows: its axes, and what each extension added and why."""

    name: str
    axes: Axes
    base: dict[str, Any]  # overrides every trial starts from (preset, size class, --set)
    extensions: list[dict] = field(default_factory=list)
    stopped: dict[str, str] = field(default_factory=dict)  # setting -> why its winner stays on an edge

    def grow(self, winner: dict[str, Any], limit: int) -> list[str]:
        """Extend each axis whose edge `winner` sits on, within `limit` extensions per setting; what it did."""
        done = []
        for setting, values in self.axes.items():
            if len(values) < 2 or winner[setting] not in (values[0], values[-1]):
                self.stopped.pop(setting, None)
                continue
            upward = winner[setting] == values[-1]
            direction, edge = ("up", "upper") if upward else ("down", "lower")
            new = step_past(values, upward)
            if new is None:
                self.stopped[setting] = f"at the {edge} edge of values that do not extend"
            elif sum(e["setting"] == setting for e in self.extensions) >= limit:
                self.stopped[setting] = f"at the {edge} edge after {limit} extension(s)"
            elif not valid(self.name, {**self.base, setting: new}):
                self.stopped[setting] = f"at the {edge} edge: {new:g} is outside its valid range"
            else:
                self.axes[setting] = [*values, new] if upward else [new, *values]
                self.extensions.append({"setting": setting, "value": new, "direction": direction,
                                        "winner_before": winner[setting]})
                done.append(f"{setting} = {winner[setting]:g}, the best, is at the {edge} edge of its grid: adding "
                            f"{new:g} (extension {sum(e['setting'] == setting for e in self.extensions)} of {limit})")
        return done


def valid(name: str, overrides: dict[str, Any]) -> bool:
    try:
        representations.make_config(name, **overrides)
        return True
    except ValueError:
        return False


def tuning_sets(options: SuiteOptions, preset: Preset, plan: TuningPlan | None) -> list[tuple[str, int | None]]:
    """(image set, how many images) to tune on; refuses any set the preset evaluates on."""
    if options.images:
        sets = [(spec.strip(), options.max_images) for spec in options.images.split(",") if spec.strip()]
    elif plan:
        sets = [(name, options.max_images or count) for name, count in plan.image_sets]
    else:
        raise ValueError(f"preset {preset.name} has no tuning images here; give a set with --images (never "
                         f"{preset.image_set}, which it evaluates on)")
    evaluated = [spec.strip() for spec in preset.image_set.split(",")]
    for name, _ in sets:
        if any(name == spec or Path(name).expanduser().resolve() == Path(spec).expanduser().resolve()
               for spec in evaluated):
            raise ValueError(f"refusing to tune preset {preset.name} on {name}: preset {preset.name} evaluates on "
                             f"{preset.image_set}; tune on other images (e.g. ffn-natural, ffn-text)")
    return sets


def settings_key(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True)


@register_suite("tune", "choose each representation's settings for a preset on tuning images only; writes "
                "OUT/reference/tuned/<preset>.json",
                common=("preset", "representations", "settings", "images", "data", "steps", "device", "executor",
                        "records", "dry_run"),
                options=TuneOptions, presets=FITTING_PRESETS, default_preset=DEFAULT_PRESET)
def run_tune(options: SuiteOptions) -> int:
    own: TuneOptions = options.own_or(TuneOptions)
    preset = get_preset(options.preset)
    plan = TUNING_PLANS.get(preset.name) or TuningPlan(())
    limit = plan.max_extensions if own.max_extensions is None else own.max_extensions
    wanted = tuning_sets(options, preset, TUNING_PLANS.get(preset.name))
    names = selected_representations(options)
    untuned = dataclasses.replace(preset, tuned=None)  # tuning starts from the source defaults and size class
    base = {name: representations.merge_overrides(name, untuned.overrides_for(name), options.settings.get(name, {}))
            for name in names}
    searches = {name: Search(name, search_axes(name, representations.make_config(name, **base[name])), base[name])
                for name in names}  # every space checked before any fit
    size, steps = options.size or preset.size, options.steps or preset.steps
    sets = [(name, load_images(name, size, options.data_root, limit=count)) for name, count in wanted]
    screening_images = [(set_name, images[:1]) for set_name, images in sets]
    device = str(resolve_device(options.device))
    trial_of: dict[str, tuple[str, str]] = {}  # run key -> (representation, settings key)

    def runs_for(name: str, points: list[dict], images_of, seed: int) -> list[FitRun]:
        runs = []
        for point in points:
            overrides = representations.merge_overrides(name, base[name], point)
            for image_set, images in images_of:
                for image in images:
                    if preset.params is not None:  # each point at the preset's size, as the fitting suite sizes it
                        overrides, _ = sized_for(name, preset.params, image.pixels.shape[2],
                                                 training_grid(PROTOCOL, *image.pixels.shape[:2]), overrides)
                    runs.append(FitRun(name, image, image_set, PROTOCOL, f"tune-{preset.name}", seed, steps,
                                       tuple(sorted(overrides.items())), device))
                    trial_of[runs[-1].key] = (name, settings_key(point))
        return runs

    def finals_for(name: str, points: list[dict]) -> list[FitRun]:
        rest = [(set_name, images[1:]) for set_name, images in sets]
        return (runs_for(name, points, rest, SEEDS[0])
                + [run for seed in SEEDS[1:] for run in runs_for(name, points, sets, seed)])

    def grow_grids(names_to_grow, winner_of) -> list[FitRun]:
        """The screening runs of the points each grid gains past the edge `winner_of(name)` sits on."""
        new_runs = []
        for name in names_to_grow:
            winner = winner_of(name)
            for line in searches[name].grow(winner, limit) if winner is not None else []:
                print(f"tune {name}: {line}", file=sys.stderr)
            seen = {settings_key(p) for p in planned[name]}
            fresh = [p for p in grid_points(searches[name].axes) if settings_key(p) not in seen]
            planned[name] += fresh
            new_runs += runs_for(name, fresh, screening_images, SEEDS[0])
        return new_runs

    folder = options.suite_dir("tune")
    log = RecordLog(folder / "runs.jsonl")
    planned = {name: grid_points(search.axes) for name, search in searches.items()}
    screening = [run for name, points in planned.items() for run in runs_for(name, points, screening_images, SEEDS[0])]
    if options.dry_run:  # extensions and finalists depend on the screening: stand-ins
        stand_ins = [run for name, points in planned.items() for run in finals_for(name, points[:plan.finalists])]
        return show_plan(screening, log, execute_fit, options, later=stand_ins, heading=[
            f"tuning preset {preset.name}: the full grid of each search space on the first image of each set "
            f"({', '.join(f'{n} {len(p)}' for n, p in planned.items())} points), grown past an edge its best "
            f"point sits on at most {limit} time(s) per setting (not counted here), then the best "
            f"{plan.finalists} on every tuning image with seeds {', '.join(map(str, SEEDS))}"])
    if options.fresh and (moved := log.set_aside()):
        print(f"--fresh: previous records moved to {moved}", file=sys.stderr)
    started = time.perf_counter()
    failed = execute_pending(screening, log, execute_fit)
    all_runs = list(screening)
    screened = {run.key for run in screening}
    growing = set(names)
    while growing:
        # Grow each grid past the edges its best screening point sits on, screening the new points, again ...
        while growing:
            table = trial_table(records_of(log.read(), {run.key for run in all_runs}), trial_of, screened)
            new_runs = grow_grids(sorted(growing), lambda name: best_point(table, name))
            growing = {run.representation for run in new_runs}
            failed += execute_pending(new_runs, log, execute_fit)
            all_runs += new_runs
            screened |= {run.key for run in new_runs}
        # ... then the best few on every tuning image with both seeds; where the finals' winner sits on an edge
        # (a finalist that was not the screening's best), its grid grows again and the round repeats.
        table = trial_table(records_of(log.read(), {run.key for run in all_runs}), trial_of, screened)
        round_finals = [run for name in names for run in finals_for(name, top_points(table, name, plan.finalists))]
        failed += execute_pending(round_finals, log, execute_fit)
        all_runs += round_finals
        table = trial_table(records_of(log.read(), {run.key for run in all_runs}), trial_of, screened)
        new_runs = grow_grids(names, lambda name: next(iter(top_points(table, name, 1, "final")), None))
        growing = {run.representation for run in new_runs}
        failed += execute_pending(new_runs, log, execute_fit)
        all_runs += new_runs
        screened |= {run.key for run in new_runs}
    table = trial_table(records_of(log.read(), {run.key for run in all_runs}), trial_of, screened)
    table.to_csv(folder / "trials.csv", index=False)
    plot_trials(table, folder / "trials.png", f"tuning preset {preset.name} ({steps} steps, {size}^2)")
    chosen = choose(table, searches, base)
    made_at = commit()
    path = tuned_path(options.out / "reference" / "tuned", preset.name)
    save_tuned(path, {
        "tuner": TUNER,
        "about": f"settings of preset {preset.name} chosen by `python run_bench.py tune --preset "
                 f"{preset.name}`: the best mean test PSNR over the tuning images, never the evaluation images",
        "preset": preset.name, "fitbench_version": fitbench_version(), "commit": made_at,
        "clean_commit": is_clean_commit(made_at), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "budget": {"steps": steps, "size": size, "protocol": PROTOCOL, "size_class": preset.size_class,
                   "params": preset.params, "device": device},
        "tuning_images": {name: [image.name for image in images] for name, images in sets},
        "search": {"screening": "the full grid on the first image of each tuning set, seed 0",
                   "max_extensions_per_setting": limit, "finalists": plan.finalists, "final_seeds": list(SEEDS)},
        "fits": len(all_runs), "wall_seconds": round(time.perf_counter() - started, 1),
        "representations": chosen,
    })
    if not is_clean_commit(made_at):
        print(f"warning: tuned from uncommitted code ({made_at}): {path} is marked so and may not ship (tests/"
              "test_verdicts.py refuses it under bench/reference/tuned/); commit, then tune again", file=sys.stderr)
    print_choices(chosen)
    print(f"results: {folder}/runs.jsonl, trials.csv, trials.png; chosen settings: {path}")
    return report_failures(failed, lambda r: f"{r.representation} trial on {r.image}")


def trial_table(records: list[dict], trial_of: dict[str, tuple[str, str]], screening: set[str]) -> pd.DataFrame:
    """One row per (representation, grid point): its settings, the screening score (mean test PSNR of its
    screening fits) and, for a finalist, the final score (the mean of all its fits: every image, both seeds).
    A failed or diverged fit makes its score nan: such a point cannot be chosen."""
    fits: dict[tuple[str, str], list[tuple[bool, float]]] = {}
    for record in records:
        psnr = record["psnr_test"] if record["status"] == "ok" else float("nan")
        fits.setdefault(trial_of[record["key"]], []).append((record["key"] in screening, psnr))
    rows = [{"representation": name, "settings": json.loads(key), "fits": len(scores),
             "screening": _mean([psnr for screened, psnr in scores if screened]),
             "final": _mean([psnr for _, psnr in scores]) if not all(s for s, _ in scores) else math.nan}
            for (name, key), scores in fits.items()]
    return pd.DataFrame(rows, columns=["representation", "settings", "fits", "screening", "final"])


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values and all(math.isfinite(v) for v in values) else math.nan


def top_points(table: pd.DataFrame, name: str, count: int, column: str = "screening") -> list[dict]:
    rows = table[(table["representation"] == name) & np.isfinite(table[column])]
    return rows.sort_values(column, ascending=False, kind="stable")["settings"].head(count).tolist()


def best_point(table: pd.DataFrame, name: str) -> dict | None:
    best = top_points(table, name, 1)
    return best[0] if best else None


def choose(table: pd.DataFrame, searches: dict[str, Search], base: dict[str, dict]) -> dict:
    """Per representation: the chosen settings (the best final score), the starting settings they replace, the
    grid as it grew, the settings still on an edge and why, and every point's scores."""
    chosen = {}
    for name, search in searches.items():
        best = top_points(table, name, 1, "final")
        if not best:
            print(f"warning: every trial of {name} failed or diverged; it keeps its source defaults", file=sys.stderr)
            continue
        rows = table[table["representation"] == name]
        row = rows[[settings_key(s) == settings_key(best[0]) for s in rows["settings"]]].iloc[0]
        start = representations.make_config(name, **base[name])
        chosen[name] = {
            "chosen": best[0], "score": round(float(row["final"]), 4), "screening_score": round(float(row["screening"]), 4),
            "source_defaults": {k: getattr(start, k) for k in best[0]},
            "source": representations.get_entry(name).source,
            "search_space": search.axes, "extensions": search.extensions,
            "on_edge": {k: why for k, why in search.stopped.items()
                        if best[0][k] in (search.axes[k][0], search.axes[k][-1])},
            "trials": [{"settings": r.settings, "fits": r.fits, "screening": _rounded(r.screening),
                        "final": _rounded(r.final)} for r in rows.itertuples()],
        }
    return chosen


def _rounded(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def print_choices(chosen: dict) -> None:
    print("| representation | chosen | mean test PSNR of the finals (dB) | starting settings | still on an edge |")
    print("|---|---|---|---|---|")
    for name, entry in chosen.items():
        show = lambda values: ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"  # noqa: E731
                                        for k, v in values.items())
        edges = "; ".join(f"{k} {why}" for k, why in entry["on_edge"].items()) or "no"
        print(f"| {name} | {show(entry['chosen'])} | {entry['score']:.2f} | {show(entry['source_defaults'])} "
              f"| {edges} |")


def plot_trials(table: pd.DataFrame, path: Path, title: str) -> None:
    """One panel per representation: screening test PSNR of each grid point against its learning rate, a line
    per value of the other setting; finalists ringed."""
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
        other = lambda s: tuple((k, v) for k, v in s.items() if k != "lr")  # noqa: E731
        for value in sorted({other(s) for s in trials["settings"]}, key=str):
            part = trials[[other(s) == value for s in trials["settings"]]]
            lrs = np.asarray([s.get("lr", math.nan) for s in part["settings"]])
            order = np.argsort(lrs)
            ax.plot(lrs[order], part["screening"].to_numpy()[order], "-o", markersize=3,
                    label=", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in value))
            final = np.isfinite(part["final"].to_numpy())
            ax.plot(lrs[final], part["screening"].to_numpy()[final], "o", markersize=7, fillstyle="none", color="k")
        ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("lr", fontsize=8)
        ax.set_ylabel("screening test PSNR (dB)", fontsize=8)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    figure.suptitle(title + "; ringed: finalists", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
