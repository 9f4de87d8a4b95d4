"""CI regression suite: a small deterministic configuration checked against thresholds kept in the repository.

`python run_bench.py --suite ci` fits every registered representation (and the interpolation references) on the
built-in images at the fixed `ci` preset, and writes each representation's fit as a compression stream; it
compares each measured value (test PSNR; the stream's bits per pixel and its PSNR gap to JPEG at matched rate)
with its threshold in `results/reference/ci_thresholds.json`, prints the table and exits 1 naming every
regression. `--update-thresholds` rewrites the file from the run: threshold = measured - margin (or + margin for
a maximum).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

import fitbench
from fitbench import datasets, representations

from ..compression.bitstream import VERSION as STREAM_VERSION
from ..compression.codecs import JPEG
from ..compression.report import matched_table, points_table
from ..compression.runs import CodecRun, RepresentationRun
from ..engine import resolve_device
from ..executor import execute_pending
from ..hardware import torch_threads
from ..interpolation import INTERPOLATIONS
from ..options import SuiteOptions
from ..presets import Preset
from ..records import RecordLog, records_of, run_key
from ..runs import FitRun, execute_fit
from . import register_suite
from .fitting import load_preset_images, plan_fits, selected_representations

REPOSITORY = Path(__file__).resolve().parents[2]
DEFAULT_THRESHOLDS = REPOSITORY / "results" / "reference" / "ci_thresholds.json"

# Tiny networks at 64^2 for 300 steps: about 1 s a fit on one core. Each representation's "tiny" size class
# (declared in its own file) sets its networks, so a new representation is checked with no edit here; the
# thresholds file records the resolved settings, so changing a size class asks for new thresholds.
CI_PRESET = Preset("ci", "the CI regression check's fixed configuration", size=64, steps=300, seeds=1,
                   image_set="builtin", max_images=2, size_class="tiny")
PROTOCOL = "alternate"
# The compression check: the same networks fitted to every pixel, tuned through 8-bit quantization and written as
# a stream with the compression suite's recipe (best weights, quantization-aware tuning, the best entropy coder).
STREAM = {"protocol": "full", "quantizer": "q8", "qat_steps": 30, "coder": "best", "anchor": JPEG.name,
          "format": STREAM_VERSION}


@dataclass(frozen=True)
class Check:
    """A metric the regression check guards, and how far below (min) or above (max) the measurement it sits."""

    suite: str
    metric: str
    bound: str  # "min": measured must be >= threshold; "max": measured must be <= threshold
    margin: float  # threshold = measured -/+ margin when the file is written

    def threshold_for(self, measured: float) -> float:
        return round(measured - self.margin if self.bound == "min" else measured + self.margin, 2)


CHECKS = [
    Check("fitting", "psnr_test", "min", margin=0.5),
    # the stream's PSNR minus JPEG 4:2:0's for the largest JPEG file not above the stream's size (matched.csv)
    Check("compression", "delta_psnr", "min", margin=0.5),
    Check("compression", "bpp", "max", margin=0.1),  # the stream's bits per pixel, from its bytes
]


@dataclass(frozen=True)
class Threshold:
    suite: str
    representation: str
    image: str
    metric: str
    bound: str
    threshold: float
    measured: float  # the value the threshold was derived from
    margin: float
    settings: dict = dataclasses.field(default_factory=dict)  # the representation's settings it was measured with

    @property
    def name(self) -> str:
        return f"{self.suite}/{self.representation}/{self.image}/{self.metric}"

    def passes(self, value: float | None) -> bool:
        if value is None:
            return False
        return value >= self.threshold if self.bound == "min" else value <= self.threshold


@dataclass
class ThresholdFile:
    configuration: dict
    thresholds: list[Threshold]

    @classmethod
    def load(cls, path: Path) -> "ThresholdFile":
        if not path.is_file():
            raise ValueError(f"thresholds file {path} does not exist; create it with "
                             f"`python run_bench.py --suite ci --update-thresholds --thresholds {path}`")
        try:
            data = json.loads(path.read_text())
            return cls(data["configuration"], [Threshold(**entry) for entry in data["thresholds"]])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"thresholds file {path} is not valid ({type(error).__name__}: {error}); "
                             "rewrite it with `python run_bench.py --suite ci --update-thresholds`") from None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = sorted(self.thresholds, key=lambda t: t.name)
        data = {"about": "minimum (or maximum) values for `python run_bench.py --suite ci`; threshold = measured "
                         "-/+ margin; rewrite with --update-thresholds",
                "configuration": self.configuration, "thresholds": [dataclasses.asdict(t) for t in entries]}
        path.write_text(json.dumps(data, indent=1) + "\n")


@dataclass(frozen=True)
class CiRun:
    """A suite's run whose key also names the code and torch version, so a resumed check never reuses stale
    results."""

    run: Any  # FitRun, RepresentationRun or CodecRun
    code: str

    @property
    def key(self) -> str:
        return run_key(run=self.run.key, code=self.code)

    @property
    def label(self) -> str:
        return self.run.label

    @property
    def steps(self) -> int:
        return self.run.steps


def add_arguments(group) -> None:
    group.add_argument("--thresholds", type=Path, default=DEFAULT_THRESHOLDS,
                       help="ci: the thresholds file (default: results/reference/ci_thresholds.json)")
    group.add_argument("--update-thresholds", action="store_true",
                       help="ci: rewrite the thresholds file from this run (measured minus the margin)")


def configuration() -> dict:
    """What the thresholds were measured with; a file measured another way must be rewritten, not compared.
    (Each threshold also keeps its representation's resolved settings: see `compare`.)"""
    return {"preset": dataclasses.asdict(CI_PRESET), "protocol": PROTOCOL, "threads": 1, "compression": STREAM}


def settings_of(representation: str) -> dict:
    """The settings the check fits `representation` with ({} for the interpolation references)."""
    return {} if representation in INTERPOLATIONS else CI_PRESET.overrides_for(representation)


def code_fingerprint() -> str:
    """A hash of the installed fitbench sources and the torch version."""
    digest = hashlib.sha1(torch.__version__.encode())
    roots = [Path(module.__file__).parent for module in (fitbench, representations, datasets)]
    for path in sorted(p for root in roots for p in root.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def plan_compression(options: SuiteOptions, image_set: str, images: list) -> list:
    """Per image: JPEG's sweep (the anchor), and a stream of every representation at its CI settings."""
    device = str(resolve_device(options.device))
    runs = []
    for image in images:
        runs.append(CodecRun(JPEG, image, image_set, CI_PRESET.name))
        for name in selected_representations(options):
            fit = FitRun(name, image, image_set, STREAM["protocol"], CI_PRESET.name, 0, CI_PRESET.steps,
                         tuple(sorted(settings_of(name).items())), device)
            runs.append(RepresentationRun(fit, (STREAM["quantizer"],), STREAM["qat_steps"], STREAM["coder"]))
    return runs


def execute_ci_run(run: CiRun, on_step: Callable[[int, float], None]) -> tuple[Any, object]:
    record, artifact = execute_fit(run.run, on_step) if isinstance(run.run, FitRun) else run.run.execute(on_step)
    return dataclasses.replace(record, key=run.key), artifact


def fitting_values(records: list[dict]) -> dict[tuple[str, str], dict[str, float] | None]:
    """(representation, image) -> the fitting metrics (None for a failed run)."""
    return {(r["representation"], r["image"]): (r if r.get("status") == "ok" else None) for r in records}


def compression_values(records: list[dict]) -> dict[tuple[str, str], dict[str, float] | None]:
    """(representation, image) -> bpp and delta_psnr of its one stream (None for a failed run). A stream smaller
    than JPEG's smallest file has no JPEG to match, so no delta_psnr: that check does not apply to it (its bpp
    check still does)."""
    values = {(r["method"], r["image"]): None for r in records if r["kind"] == "representation"}
    matched = matched_table(points_table(records))
    for row in matched.to_dict("records"):
        values[(row["method"], row["image"])] = {"bpp": row["bpp"], **(
            {"delta_psnr": row["delta_psnr"]} if math.isfinite(row["delta_psnr"]) else {})}
    return values


SUITE_VALUES = {"fitting": fitting_values, "compression": compression_values}


def measure(records: dict[str, list[dict]]) -> dict[tuple[str, str, str, str], float | None]:
    """(suite, representation, image, metric) -> measured value (None for a failed run), from each suite's
    records; a metric that does not apply to a run (see `compression_values`) is left out."""
    values = {}
    for check in CHECKS:
        for (representation, image), metrics in SUITE_VALUES[check.suite](records.get(check.suite, [])).items():
            if metrics is not None and check.metric not in metrics:
                continue  # not applicable to this run
            value = None if metrics is None else metrics[check.metric]
            values[(check.suite, representation, image, check.metric)] = None if value is None else float(value)
    return values


def updated_thresholds(old: list[Threshold], measured: dict) -> list[Threshold]:
    """The measured entries rewritten, the others (not part of this run) kept."""
    checks = {(c.suite, c.metric): c for c in CHECKS}
    fresh = {}
    for (suite, representation, image, metric), value in measured.items():
        if value is None:
            raise ValueError(f"{suite}/{representation}/{image} failed, so it has no value to set a threshold from; "
                             f"see OUT/ci/runs.jsonl")
        check = checks[(suite, metric)]
        fresh[(suite, representation, image, metric)] = Threshold(
            suite, representation, image, metric, check.bound, check.threshold_for(value), round(value, 3),
            check.margin, settings_of(representation))
    kept = [t for t in old if (t.suite, t.representation, t.image, t.metric) not in fresh]
    return kept + list(fresh.values())


def compare(thresholds: list[Threshold], measured: dict, planned: set[tuple[str, str]]) -> tuple[list[list], list[str]]:
    """Table rows (one per threshold in scope, plus new measurements) and the regressions' descriptions."""
    known = set(representations.list_representations()) | set(INTERPOLATIONS)
    rows, regressions, seen = [], [], set()
    for t in sorted(thresholds, key=lambda t: t.name):
        identity = (t.suite, t.representation, t.image, t.metric)
        seen.add(identity)
        if (t.representation, t.image) not in planned and t.representation in known:
            continue  # narrowed away by --reps or --max-images
        value = measured.get(identity)
        status = "ok" if t.passes(value) else ("NOT MEASURED" if identity not in measured else "REGRESSION")
        if t.representation in known and t.settings != settings_of(t.representation):
            status = "SETTINGS CHANGED"
            regressions.append(f"{t.name}: measured with other settings than {t.representation}'s tiny size class "
                               "now gives; rerun with --update-thresholds")
        elif status != "ok":
            got = "no result" if value is None else f"{value:.2f}"
            regressions.append(f"{t.name}: {got}, threshold {'>=' if t.bound == 'min' else '<='} {t.threshold:.2f}")
        rows.append([t.suite, t.representation, t.image, t.metric, value, t.threshold, t.measured, status])
    for identity, value in sorted(measured.items()):
        if identity not in seen:
            rows.append([*identity, value, None, None, "new (no threshold; --update-thresholds adds it)"])
    return rows, regressions


def print_table(rows: list[list]) -> None:
    header = ["suite", "representation", "image", "metric", "measured", "threshold", "set from", "status"]
    text = lambda v: "–" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)
    cells = [header] + [[text(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


@register_suite("ci", "regression check: a small deterministic fit of every representation against "
                "results/reference/ci_thresholds.json; exit 1 on a regression", add_arguments)
def run_ci(options: SuiteOptions) -> int:
    # threads too: the thresholds hold float results of one-thread reductions (`configuration()["threads"]`)
    fixed = {"--steps": options.steps, "--size": options.size, "--seeds": options.seeds, "--images": options.images,
             "--set": options.settings or None, "--threads-per-fit": getattr(options.args, "threads_per_fit", None),
             "--cpus-per-fit": getattr(options.args, "cpus_per_fit", None)}
    if given := [flag for flag, value in fixed.items() if value is not None]:
        raise ValueError(f"the ci suite runs a fixed configuration; drop {', '.join(given)} "
                         "(only --reps and --max-images narrow it)")
    path: Path = options.args.thresholds
    update = options.args.update_thresholds
    stored = ThresholdFile.load(path) if path.exists() or not update else None
    if stored and stored.configuration != configuration():
        if not update:
            raise ValueError(f"{path} was measured with another configuration than this version's ci preset; "
                             "rewrite it with --update-thresholds")
        stored = None  # measured another way: none of its entries is kept

    folder = options.suite_dir("ci")
    logs = {"fitting": RecordLog(folder / "runs.jsonl"), "compression": RecordLog(folder / "compression.jsonl")}
    if options.fresh:
        for log in logs.values():
            if moved := log.set_aside():
                print(f"--fresh: previous records moved to {moved}", file=sys.stderr)
    with torch_threads(1):  # the same float reductions on every machine
        image_set, images = load_preset_images(options, CI_PRESET)
        code = code_fingerprint()
        runs = {"fitting": [CiRun(fit, code) for fit in plan_fits(options, CI_PRESET, image_set, images, PROTOCOL)],
                "compression": [CiRun(run, code) for run in plan_compression(options, image_set, images)]}
        for suite, planned_runs in runs.items():
            execute_pending(planned_runs, logs[suite], execute_ci_run)
    measured = measure({suite: records_of(logs[suite].read(), {run.key for run in planned_runs})
                        for suite, planned_runs in runs.items()})
    planned = {(run.run.representation, run.run.image.name) for run in runs["fitting"]}

    if update:
        new = ThresholdFile(configuration(), updated_thresholds(stored.thresholds if stored else [], measured))
        new.save(path)
        print_table(compare(new.thresholds, measured, planned)[0])
        print(f"thresholds rewritten: {path} ({len(new.thresholds)} entries, measured minus the margin)")
        return 0
    rows, regressions = compare(stored.thresholds, measured, planned)
    print_table(rows)
    if regressions:
        print(f"{len(regressions)} regression(s) against {path}:", file=sys.stderr)
        for regression in regressions:
            print(f"  REGRESSION {regression}", file=sys.stderr)
        return 1
    print(f"ci: all {len(rows)} checks pass against {path}")
    return 0
