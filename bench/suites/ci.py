"""CI regression suite: a small deterministic configuration checked against thresholds kept in the repository.

`python run_bench.py --suite ci` fits every registered representation (and the interpolation references) on the
built-in images at the fixed `ci` preset, and writes each representation's fit as a compression stream; it
compares each measured value (test PSNR; the stream's bits per pixel and its PSNR gap to JPEG at matched rate)
with its threshold in the shipped `bench/reference/ci_thresholds.json` (package data), prints the table and exits 1 naming every
regression.

The same fit rounds differently on another CPU or thread count (ATen's vectorised kernels, MKL's GEMM code branch
and the threads' reduction order all depend on them), so a threshold must sit further from its value than that
rounding moves it. `--update-thresholds` measures how far: it runs the configuration under each of this machine's
`KERNEL_PATHS` (one Python process each), takes each metric's spread (max - min) across them, and writes
threshold = median -/+ margin with margin = max(factor x spread, floor) (`MarginRule`). A metric whose spread
exceeds its rule's `chaotic` limit measures rounding, not the code: it gets no threshold and is listed unchecked.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from fitbench import representations

from ..compression.bitstream import VERSION as STREAM_VERSION
from ..compression.codecs import JPEG
from ..compression.report import matched_table, points_table
from ..compression.runs import CodecRun, RepresentationRun
from ..engine import resolve_device
from ..executor import execute_pending
from ..files import write_atomic
from ..hardware import torch_threads
from ..interpolation import INTERPOLATIONS
from ..options import SuiteOptions, option
from ..paths import inside
from ..planning import FitOptions, load_preset_images, plan_fits, selected_representations
from ..provenance import source_fingerprint
from ..presets import Preset
from ..records import RecordLog, records_of, run_key
from ..runs import FitRun, execute_fit
from . import register_suite

from ..reference_data import CI_THRESHOLDS_FILE  # the shipped thresholds (package data)
DEFAULT_THRESHOLDS = CI_THRESHOLDS_FILE

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
class KernelPath:
    """One way this machine can compute the same fit, as another CPU would: ATen's vectorised kernels for
    `capability` (ATEN_CPU_CAPABILITY; torch does not check a request against the CPU, so a capability above the
    CPU's best is never run: its kernels would die on an illegal instruction), MKL's generic GEMM code
    branch instead of the one it picks for this CPU (MKL_CBWR=COMPATIBLE), and `threads` torch threads."""

    capability: str  # an ATEN_CPU_CAPABILITY value
    threads: int
    generic_gemm: bool = False

    @property
    def name(self) -> str:
        return f"{self.capability}{'-generic-gemm' if self.generic_gemm else ''}-{self.threads}t"

    def environment(self) -> dict[str, str]:
        return {"ATEN_CPU_CAPABILITY": self.capability, **({"MKL_CBWR": "COMPATIBLE"} if self.generic_gemm else {})}


# Each ATen capability (default: no vector code) with MKL's generic GEMM and with its own pick, and at 1 and at 2
# threads, in six runs rather than twelve: every kind of rounding difference appears in several pairings. (AMX and
# AVX512-BF16 change only bf16 arithmetic, which the check never runs: it fits in float32.)
KERNEL_PATHS = (KernelPath("default", 1, generic_gemm=True), KernelPath("default", 2),
                KernelPath("avx2", 1), KernelPath("avx2", 2, generic_gemm=True),
                KernelPath("avx512", 1, generic_gemm=True), KernelPath("avx512", 2))


@dataclass(frozen=True)
class MarginRule:
    """How far a threshold sits from its measured value, for one unit. The spread is the metric's range across the
    kernel paths; margin = max(factor x spread, floor), rounded up to 0.01. A spread above `chaotic` is rounding,
    not a regression signal: that metric gets no threshold. No threshold is ever written within `minimum` of its
    value (`--update-thresholds` refuses), whatever the factor and floor say."""

    unit: str
    factor: float
    floor: float
    minimum: float
    chaotic: float

    def margin(self, spread: float) -> float:
        margin = math.ceil(round(max(self.factor * spread, self.floor) * 100, 6)) / 100
        if margin < self.minimum:
            raise ValueError(f"a margin of {margin:g} {self.unit} is below the {self.minimum:g} {self.unit} minimum "
                             "a threshold keeps from its value; raise the MarginRule's floor in bench/suites/ci.py")
        return margin


# dB: 0.1 dB is about 2.3 % of the mean squared error. bpp: 0.02 bpp is 10 bytes of a 64^2 stream, the size of
# the few-byte moves a stream's entropy coding makes when a weight rounds the other way.
DECIBELS = MarginRule("dB", factor=3.0, floor=0.3, minimum=0.1, chaotic=0.3)
BITS_PER_PIXEL = MarginRule("bpp", factor=3.0, floor=0.05, minimum=0.02, chaotic=0.1)


@dataclass(frozen=True)
class Check:
    """A metric the regression check guards: below (min) or above (max) its threshold is a regression."""

    suite: str
    metric: str
    bound: str  # "min": measured must be >= threshold; "max": measured must be <= threshold
    rule: MarginRule


CHECKS = [
    Check("fitting", "psnr_test", "min", DECIBELS),
    # the stream's PSNR minus JPEG 4:2:0's for the largest JPEG file not above the stream's size (matched.csv)
    Check("compression", "delta_psnr", "min", DECIBELS),
    Check("compression", "bpp", "max", BITS_PER_PIXEL),  # the stream's bits per pixel, from its bytes
]


@dataclass(frozen=True)
class Threshold:
    suite: str
    representation: str
    image: str
    metric: str
    bound: str
    threshold: float
    measured: float  # the value the threshold was derived from: the median across the kernel paths
    spread: float  # max - min of the value across the kernel paths
    margin: float  # threshold = measured -/+ margin
    settings: dict = dataclasses.field(default_factory=dict)  # the representation's settings it was measured with

    @property
    def name(self) -> str:
        return f"{self.suite}/{self.representation}/{self.image}/{self.metric}"

    def passes(self, value: float | None) -> bool:
        if value is None:
            return False
        return value >= self.threshold if self.bound == "min" else value <= self.threshold


@dataclass(frozen=True)
class Unchecked:
    """A metric measured but given no threshold, and why (its spread across kernel paths is chaotic)."""

    suite: str
    representation: str
    image: str
    metric: str
    measured: float | None
    spread: float | None  # None: the metric applied under only some kernel paths
    reason: str
    settings: dict = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.suite}/{self.representation}/{self.image}/{self.metric}"


@dataclass
class ThresholdFile:
    configuration: dict
    thresholds: list[Threshold]
    unchecked: list[Unchecked] = dataclasses.field(default_factory=list)
    kernel_paths: list[str] = dataclasses.field(default_factory=list)  # what the spreads were measured under

    @classmethod
    def load(cls, path: Path) -> "ThresholdFile":
        if not path.is_file():
            raise ValueError(f"thresholds file {path} does not exist; create it with "
                             f"`python run_bench.py --suite ci --update-thresholds --thresholds {path}`")
        try:
            data = json.loads(path.read_text())
            return cls(data["configuration"], [Threshold(**entry) for entry in data["thresholds"]],
                       [Unchecked(**entry) for entry in data.get("unchecked", [])], data.get("kernel_paths", []))
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"thresholds file {path} is not valid ({type(error).__name__}: {error}); "
                             "rewrite it with `python run_bench.py --suite ci --update-thresholds`") from None

    def save(self, path: Path) -> None:
        """Atomically: a check never reads half a file."""
        rules = {rule.unit: dataclasses.asdict(rule) for rule in {check.rule: None for check in CHECKS}}
        data = {"about": "minimum (or maximum) values for `python run_bench.py --suite ci`; threshold = measured "
                         "-/+ margin, measured = the median across the kernel paths, spread = their max - min, "
                         "margin = max(factor x spread, floor) per unit (margin_rules); rewrite with "
                         "--update-thresholds",
                "configuration": self.configuration, "kernel_paths": self.kernel_paths, "margin_rules": rules,
                "thresholds": [dataclasses.asdict(t) for t in sorted(self.thresholds, key=lambda t: t.name)],
                "unchecked": [dataclasses.asdict(u) for u in sorted(self.unchecked, key=lambda u: u.name)]}
        write_atomic(path, json.dumps(data, indent=1) + "\n")


@dataclass(frozen=True)
class CiRun:
    """A suite's run whose key also names the code, the torch version and the kernel path, so a resumed check
    never reuses results computed by other code or rounded another way."""

    run: Any  # FitRun, RepresentationRun or CodecRun
    code: str
    kernel: str  # `kernel_identity`

    @property
    def key(self) -> str:
        return run_key(run=self.run.key, code=self.code, kernel=self.kernel)

    @property
    def label(self) -> str:
        return self.run.label

    @property
    def steps(self) -> int:
        return self.run.steps


@dataclass(frozen=True)
class CiOptions:
    thresholds: Path = option(DEFAULT_THRESHOLDS, "the thresholds file (default: the shipped ci_thresholds.json)")
    update_thresholds: bool = option(False, "rewrite the thresholds file: run the configuration under each kernel "
                                     "path of this machine (bench/suites/ci.py KERNEL_PATHS; a few minutes) and set "
                                     "each margin from the spread")
    measure_only: bool = option(False, "run the configuration and write OUT/ci/measured.json without comparing (what "
                                "--update-thresholds runs under each kernel path)")

    def __post_init__(self) -> None:
        if self.measure_only and self.update_thresholds:
            raise ValueError("--measure-only and --update-thresholds: choose one (--update-thresholds runs "
                             "--measure-only under each kernel path)")


def configuration() -> dict:
    """What the thresholds were measured with; a file measured another way must be rewritten, not compared.
    (Each threshold also keeps its representation's resolved settings: see `compare`.)"""
    return {"preset": dataclasses.asdict(CI_PRESET), "protocol": PROTOCOL, "compression": STREAM}


def settings_of(representation: str) -> dict:
    """The settings the check fits `representation` with ({} for the interpolation references)."""
    return {} if representation in INTERPOLATIONS else CI_PRESET.overrides_for(representation)


def code_fingerprint() -> str:
    """The installed fitbench sources and the torch version: a record measured by other code is measured again."""
    return f"{source_fingerprint()}+torch-{torch.__version__}"


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


Identity = tuple[str, str, str, str]  # (suite, representation, image, metric)


def identity_of(entry: Threshold | Unchecked) -> Identity:
    return entry.suite, entry.representation, entry.image, entry.metric


def kernel_identity(threads: int) -> str:
    """The kernels this process computes with: ATen's capability, MKL's code branch, the thread count."""
    return (f"{torch.backends.cpu.get_cpu_capability()}, MKL_CBWR={os.environ.get('MKL_CBWR') or 'auto'}, "
            f"{threads} thread{'s' if threads > 1 else ''}")


@dataclass(frozen=True)
class Measurement:
    """One run's values and the kernels it ran on: OUT/ci/measured.json, written by --measure-only."""

    kernel: str  # `kernel_identity`
    values: dict[Identity, float | None]

    def save(self, path: Path) -> None:
        rows = [[*identity, value] for identity, value in sorted(self.values.items())]
        write_atomic(path, json.dumps({"kernel": self.kernel, "values": rows}, indent=0) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Measurement":
        data = json.loads(path.read_text())
        return cls(data["kernel"], {tuple(row[:4]): row[4] for row in data["values"]})


def measure_here(options: SuiteOptions, threads: int) -> tuple[dict[Identity, float | None], set[tuple[str, str]]]:
    """Run the configuration in this process on `threads` torch threads, resuming OUT/ci's records; returns the
    measured values and the (representation, image) pairs planned."""
    folder = options.suite_dir("ci")
    logs = {"fitting": RecordLog(folder / "runs.jsonl"), "compression": RecordLog(folder / "compression.jsonl")}
    if options.fresh:
        for log in logs.values():
            if moved := log.set_aside():
                print(f"--fresh: previous records moved to {moved}", file=sys.stderr)
    with torch_threads(threads):
        image_set, images = load_preset_images(options, CI_PRESET)
        code, kernel = code_fingerprint(), kernel_identity(threads)
        runs = {"fitting": [CiRun(fit, code, kernel)
                            for fit in plan_fits(options, CI_PRESET, image_set, images, FitOptions(PROTOCOL))],
                "compression": [CiRun(run, code, kernel) for run in plan_compression(options, image_set, images)]}
        for suite, planned_runs in runs.items():
            execute_pending(planned_runs, logs[suite], execute_ci_run)
    measured = measure({suite: records_of(logs[suite].read(), {run.key for run in planned_runs})
                        for suite, planned_runs in runs.items()})
    return measured, {(run.run.representation, run.run.image.name) for run in runs["fitting"]}


CAPABILITY_ORDER = ("DEFAULT", "AVX2", "AVX512")  # torch's names, in the order each includes the one before


def distinct_kernel_paths() -> list[KernelPath]:
    """KERNEL_PATHS less those this CPU cannot run (a capability above its best: ATen takes the request on trust,
    and an AVX-512 kernel on a CPU without it dies of SIGILL) and those that compute exactly as an earlier one
    (torch says what it chose, asked in a fresh process each)."""
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    ask = lambda environment: subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True,  # noqa: E731
                                             text=True, check=True).stdout.strip()
    best = ask({name: value for name, value in os.environ.items() if name != "ATEN_CPU_CAPABILITY"})
    resolved, seen, distinct = {}, set(), []
    for path in KERNEL_PATHS:
        environment = tuple(sorted(path.environment().items()))
        if environment not in resolved:
            resolved[environment] = ask(environment_for(path))
        chosen = resolved[environment]
        if chosen in CAPABILITY_ORDER and best in CAPABILITY_ORDER and (
                CAPABILITY_ORDER.index(chosen) > CAPABILITY_ORDER.index(best)):
            continue
        if (computes_as := (chosen, path.generic_gemm, path.threads)) not in seen:
            seen.add(computes_as)
            distinct.append(path)
    return distinct


def environment_for(path: KernelPath) -> dict[str, str]:
    """This process's environment with `path`'s kernel choice in place of any the caller set. Idle OpenMP threads
    sleep (OMP_WAIT_POLICY, which changes no result): spinning, a 2-thread path on a busy machine runs ~10x slower."""
    inherited = {name: value for name, value in os.environ.items() if name not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")}
    return {**inherited, "OMP_WAIT_POLICY": "PASSIVE", **path.environment()}


def measure_under(path: KernelPath, options: SuiteOptions, out: Path) -> Measurement:
    """The configuration (narrowed as `options` narrow it) run with `--measure-only` in a fresh Python process on
    `path`'s kernels, writing under `out`: the variables take effect only when torch loads."""
    arguments = ["ci", "--measure-only", "--out", out, "--threads-per-fit", path.threads,
                 "--device", options.device, *(["--fresh"] if options.fresh else [])]
    for flag, value in (("--reps", ",".join(options.representations or [])), ("--max-images", options.max_images),
                        ("--data-root", options.data_root)):
        arguments += [flag, value] if value else []
    for plugin in options.plugins:
        arguments += ["--plugin", plugin]
    out.mkdir(parents=True, exist_ok=True)
    log = inside(out, Path("log.txt"))
    main = "import sys; from fitbench.cli import main; sys.exit(main(sys.argv[1:]))"
    with log.open("w") as output:
        result = subprocess.run([sys.executable, "-c", main, *map(str, arguments)], env=environment_for(path),
                                stdout=output, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise ValueError(f"the ci configuration failed under kernel path {path.name} (exit {result.returncode}); "
                         f"see {log}")
    return Measurement.load(out / "ci" / "measured.json")


def thresholds_from(values_by_path: dict[str, dict[Identity, float | None]]) -> tuple[list[Threshold],
                                                                                      list[Unchecked]]:
    """Each measured metric's threshold from its values across the kernel paths (`MarginRule`), or the reason it
    gets none."""
    checks = {(c.suite, c.metric): c for c in CHECKS}
    thresholds, unchecked = [], []
    for identity in sorted(set().union(*values_by_path.values())):
        suite, representation, image, metric = identity
        if failed := [path for path, values in values_by_path.items() if values.get(identity, 0) is None]:
            raise ValueError(f"{'/'.join(identity)} failed under kernel path {failed[0]}, so it has no value to set "
                             f"a threshold from; see OUT/ci/kernel_paths/{failed[0]}/ci/runs.jsonl")
        values = [values[identity] for values in values_by_path.values() if identity in values]
        rule, measured = checks[(suite, metric)].rule, statistics.median(values)
        spread = round(max(values) - min(values), 3)
        not_checked = functools.partial(Unchecked, *identity, round(measured, 3), settings=settings_of(representation))
        if len(values) < len(values_by_path):  # a stream smaller than any JPEG file under some paths only
            unchecked.append(not_checked(None, f"applies under only {len(values)} of {len(values_by_path)} kernel "
                                               "paths"))
        elif spread > rule.chaotic:
            unchecked.append(not_checked(spread, f"chaotic: moves by {spread:.2f} {rule.unit} across the "
                                         f"kernel paths (limit {rule.chaotic:g} {rule.unit})"))
        else:
            bound = checks[(suite, metric)].bound
            margin = rule.margin(spread)
            threshold = round(round(measured, 3) + (margin if bound == "max" else -margin), 3)
            thresholds.append(Threshold(*identity, bound, threshold, round(measured, 3), spread, margin,
                                        settings_of(representation)))
    return thresholds, unchecked


def write_spread_table(path: Path, values_by_path: dict[str, dict[Identity, float | None]],
                       entries: list[Threshold | Unchecked]) -> None:
    """Per metric: its value under each kernel path, then what --update-thresholds made of them (spread.csv)."""
    with path.open("w", newline="") as file:
        table = csv.writer(file)
        table.writerow(["check", *values_by_path, "median", "spread", "margin", "threshold", "unchecked"])
        for entry in sorted(entries, key=lambda e: e.name):
            per_path = [values.get(identity_of(entry), "") for values in values_by_path.values()]
            checked = isinstance(entry, Threshold)
            table.writerow([entry.name, *per_path, entry.measured, entry.spread, entry.margin if checked else "",
                            entry.threshold if checked else "", "" if checked else entry.reason])


def update_thresholds(options: SuiteOptions, path: Path) -> int:
    """Measure the configuration under every distinct kernel path and rewrite `path`: the measured entries
    replaced, the others (narrowed away by --reps or --max-images) kept."""
    try:
        stored = ThresholdFile.load(path) if path.exists() else None
    except ValueError:  # an older format: replaced whole
        print(f"note: {path} is not in this version's format; none of its entries is kept", file=sys.stderr)
        stored = None
    if stored and stored.configuration != configuration():
        stored = None  # measured another way: none of its entries is kept
    folder = options.suite_dir("ci")
    values_by_path = {}
    for kernel_path in distinct_kernel_paths():
        started = time.monotonic()
        measurement = measure_under(kernel_path, options, folder / "kernel_paths" / kernel_path.name)
        values_by_path[kernel_path.name] = measurement.values
        print(f"kernel path {kernel_path.name} ({measurement.kernel}): {len(measurement.values)} values in "
              f"{time.monotonic() - started:.0f} s", file=sys.stderr)
    thresholds, unchecked = thresholds_from(values_by_path)
    write_spread_table(inside(folder, Path("spread.csv")), values_by_path, [*thresholds, *unchecked])
    fresh = {identity_of(entry) for entry in [*thresholds, *unchecked]}
    kept = lambda entries: [entry for entry in entries if identity_of(entry) not in fresh]
    new = ThresholdFile(configuration(), kept(stored.thresholds if stored else []) + thresholds,
                        kept(stored.unchecked if stored else []) + unchecked, list(values_by_path))
    new.save(path)
    medians = {identity_of(entry): entry.measured for entry in [*thresholds, *unchecked]}
    planned = {(entry.representation, entry.image) for entry in [*thresholds, *unchecked]}
    print_table(compare(new.thresholds, medians, planned, new.unchecked)[0])
    print(f"thresholds rewritten: {path} ({len(thresholds)} set from {len(values_by_path)} kernel paths, "
          f"{len(unchecked)} unchecked); each path's values: {folder / 'spread.csv'}")
    return 0


def compare(thresholds: list[Threshold], measured: dict, planned: set[tuple[str, str]],
            unchecked: list[Unchecked] = ()) -> tuple[list[list], list[str]]:
    """Table rows (one per threshold in scope, plus measurements with none) and the regressions' descriptions."""
    known = set(representations.list_representations()) | set(INTERPOLATIONS)
    rows, regressions, seen = [], [], set()
    for t in sorted(thresholds, key=lambda t: t.name):
        identity = identity_of(t)
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
        rows.append([t.suite, t.representation, t.image, t.metric, value, t.threshold, t.measured, t.spread, status])
    reasons = {identity_of(u): u.reason for u in unchecked}
    for identity, value in sorted(measured.items()):
        if identity not in seen:
            status = (f"unchecked ({reasons[identity]})" if identity in reasons
                      else "new (no threshold; --update-thresholds adds it)")
            rows.append([*identity, value, None, None, None, status])
    return rows, regressions


def print_table(rows: list[list]) -> None:
    header = ["suite", "representation", "image", "metric", "measured", "threshold", "set from", "spread", "status"]
    text = lambda v: "–" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)
    cells = [header] + [[text(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


@register_suite("ci", "regression check: a small deterministic fit of every representation against the shipped "
                "ci_thresholds.json; exit 1 on a regression",
                common=("representations", "images", "data", "device", "executor", "records"), options=CiOptions)
def run_ci(options: SuiteOptions) -> int:
    own: CiOptions = options.own_or(CiOptions)
    # --steps, --seeds, --precision and --compile are not ci flags at all (float32 throughout: bf16 would hand
    # the matmuls to AMX or AVX512-BF16 where a CPU has them); these come with groups ci takes for --reps and
    # --max-images.
    fixed = {"--size": options.size, "--images": options.images,
             "--cpus-per-fit": options.executor.cpus_per_fit if options.executor.kind == "ray" and
             options.executor.cpus_per_fit != 1.0 else None}
    if given := [flag for flag, value in fixed.items() if value is not None]:
        raise ValueError(f"the ci suite runs a fixed configuration; drop {', '.join(given)} "
                         "(only --reps and --max-images narrow it)")
    path: Path = own.thresholds
    threads = options.executor.threads_per_fit or 1  # the thresholds hold at 1 and 2 (KERNEL_PATHS)
    if own.measure_only:
        measured, _ = measure_here(options, threads)
        measurement = Measurement(kernel_identity(threads), measured)
        measurement.save(inside(options.suite_dir("ci"), Path("measured.json")))
        print(f"ci: {len(measured)} values measured on {measurement.kernel}: {options.suite_dir('ci')}/measured.json")
        return 0 if None not in measured.values() else 1
    if own.update_thresholds:
        return update_thresholds(options, path)
    stored = ThresholdFile.load(path)
    if stored.configuration != configuration():
        raise ValueError(f"{path} was measured with another configuration than this version's ci preset; "
                         "rewrite it with --update-thresholds")
    measured, planned = measure_here(options, threads)
    rows, regressions = compare(stored.thresholds, measured, planned, stored.unchecked)
    print_table(rows)
    if regressions:
        print(f"{len(regressions)} regression(s) against {path} ({kernel_identity(threads)}):", file=sys.stderr)
        for regression in regressions:
            print(f"  REGRESSION {regression}", file=sys.stderr)
        return 1
    checked = sum(row[-1] == "ok" for row in rows)
    print(f"ci: all {checked} checks pass against {path} ({kernel_identity(threads)})")
    return 0
