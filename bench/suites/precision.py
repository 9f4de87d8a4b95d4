"""Precision suite: what bf16 matmuls cost each representation at the end of a fit, measured on tuning images.

Every representation is fitted at a fitting preset's budget (default: standard) in fp32 and in bf16 on the
FFN tuning images — never on images a preset reports — and the mean test-PSNR difference (fp32 minus bf16) with
its 95 % interval over the images is its bf16 cost. Writes OUT/precision/runs.jsonl (resumable), cost.csv, and
OUT/reference/bf16_cost.json (only at the standard preset's own budget, merged per representation); copied to
bench/reference/bf16_cost.json (package data), it is what `--precision auto` reads (bench/precision.py).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..engine import resolve_device
from ..executor import execute_pending, report_failures
from ..files import write_atomic
from ..options import SuiteOptions
from ..planning import FitOptions, load_preset_images, plan_fits
from ..precision import BF16_COST_FILE, BF16_TOLERANCE_DB, native_bf16
from ..presets import FITTING_PRESETS, get_preset
from ..provenance import commit, device_name, fitbench_version
from ..records import RecordLog, records_of
from ..runs import execute_fit
from ..stats import ci_half_width
from . import register_suite

AUTO_PRESET = "standard"  # the budget --precision auto's decision is measured at
TUNING_IMAGES = (("ffn-natural", 2), ("ffn-text", 2))  # the FFN paper's tuning images, as the tune suite's plan


@register_suite("precision", "bf16's test-PSNR cost per representation at the end of a fit, on tuning images; "
                "writes the file --precision auto reads",
                common=("preset", "representations", "settings", "images", "data", "steps", "seeds", "device", "executor",
                        "records"),
                presets=FITTING_PRESETS, default_preset=AUTO_PRESET)
def run_precision(options: SuiteOptions) -> int:
    preset = get_preset(options.preset)
    if options.images:
        if options.images == preset.image_set:
            raise ValueError(f"--images {options.images}: preset {preset.name} reports on that set, and its settings "
                             "must not be chosen on it; measure on tuning images (the default: ffn-natural, ffn-text)")
        sets = [(options.images, options.max_images)]
    else:
        sets = [(name, options.max_images or count) for name, count in TUNING_IMAGES]
    folder = options.suite_dir("precision")
    log = RecordLog(folder / "runs.jsonl")
    runs = []
    for image_set, count in sets:
        _, images = load_preset_images(dataclasses.replace(options, images=image_set, max_images=count), preset)
        for precision in ("fp32", "bf16"):
            runs += plan_fits(dataclasses.replace(options, seeds=options.seeds or 1), preset, image_set, images,
                              FitOptions(precision=precision), with_references=False)
    failed = execute_pending(runs, log, execute_fit)
    records = records_of(log.read(), {run.key for run in runs})
    table = bf16_costs(records)
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "cost.csv", index=False)
    device = str(resolve_device(options.device))
    with pd.option_context("display.width", 200):
        print(table.round(3).to_string(index=False))
    reference = options.out / "reference" / BF16_COST_FILE.name
    if preset.name == AUTO_PRESET and options.steps is None:
        write_costs(table, reference, preset.name, sets, device_name(device))
        where = f"{reference} (merged: representations not measured now keep their earlier costs)"
    else:  # a smaller budget's cost says little about the end of a standard fit
        where = f"{folder / 'cost.csv'} only; {reference.name} is written at --preset {AUTO_PRESET}'s own budget"
    print(f"bf16 costs: {where}; native bf16 here: {native_bf16(device) or 'none (auto keeps fp32)'}")
    return report_failures(failed, lambda r: f"{r.representation} on {r.image} ({r.precision})")


def bf16_costs(records: list[dict]) -> pd.DataFrame:
    """Per representation: mean test PSNR in fp32 and bf16 over the images (and seeds), and the paired cost."""
    ok = pd.DataFrame([r for r in records if r["status"] == "ok"])
    if ok.empty:
        return pd.DataFrame(columns=["representation", "fp32", "bf16", "cost_db", "ci95", "fits", "within_tolerance"])
    pairs = ok.pivot_table(index=["representation", "image_set", "image", "seed"], columns="precision",
                           values="psnr_test").dropna()
    rows = []
    for name, part in pairs.groupby(level="representation"):
        cost = (part["fp32"] - part["bf16"]).to_numpy()
        rows.append({"representation": name, "fp32": part["fp32"].mean(), "bf16": part["bf16"].mean(),
                     "cost_db": float(np.mean(cost)), "ci95": ci_half_width(cost), "fits": len(cost),
                     "within_tolerance": bool(np.mean(cost) <= BF16_TOLERANCE_DB)})
    return pd.DataFrame(rows)


def write_costs(table: pd.DataFrame, path: Path, preset: str, sets, device: str) -> None:
    """The file --precision auto reads: each representation's cost, with where and how it was measured. Merged
    into the file already there, so measuring some representations keeps the others' costs; the top-level fields
    describe the latest measurement."""
    path.parent.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(path.read_text()).get("representations", {}) if path.is_file() else {}
    checkout = commit()  # a git call: once, not per representation
    measured = {
        "tolerance_db": BF16_TOLERANCE_DB, "preset": preset, "tuning_images": [list(s) for s in sets],
        "measured_on": device, "fitbench_version": fitbench_version(), "commit": checkout,
        "representations": {**earlier, **{
            row.representation: {"cost_db": round(row.cost_db, 4), "ci95": round(row.ci95, 4),
                                 "fp32": round(row.fp32, 4), "bf16": round(row.bf16, 4), "fits": int(row.fits),
                                 "measured_on": device, "commit": checkout} for row in table.itertuples()}},
    }
    write_atomic(path, json.dumps(measured, indent=1) + "\n")  # never a half-written file for auto to read
