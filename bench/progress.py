"""What a suite's fits show while they run, and what they will cost before they run.

`Progress` is the one display of `execute_pending` (bench/executor.py), driven the same way by the local and the
Ray executor: how many fits are done, the time left and the best result so far. On a terminal it is a live bar
(with a second bar over the current fit's steps, locally); in a log, or under CI (`CI=true`), it is plain lines:
one per finished fit with its result, and a `progress:` line at most every PLAIN_EVERY_SECONDS (so after every
fit when fits are slower than that) and after the last one.

The time left is estimated from the fits finished so far, not from a global rate: each representation's mean
seconds per fit times its fits still to run (for one not seen yet, the mean of the fits that take steps, or of
those that take none, such as interpolation references), converted to wall-clock time by how much fit time the
executor gets through per second (about 1 here; the number of workers on Ray).

`show_plan` is `--dry-run`: what a suite would fit, what OUT already holds, and an estimate of the time from a
short probe of each kind of fit, with nothing written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence, TextIO

from tqdm.auto import tqdm

# what runs now, at most this long on the bar: with two Ray workers it ran to 150 characters and squeezed the bar
# itself to one cell on a 150-column terminal
NOW_CHARS = 48
PLAIN_EVERY_SECONDS = 10.0  # plain mode: at most one progress line this often (each fit's result line is extra)
PROBE_SECONDS = 0.5  # --dry-run: training seconds of each probe fit (enough steady steps to average, kept short)
PROBE_TRIES = 3  # --dry-run: probes of one kind of fit at most, while warm-up leaves it too few steps
# The headline metric of each kind of record, and whether higher is better: the first one a record has is its
# suite's "best so far".
BEST_METRICS = (("psnr_test", " dB", True), ("psnr", " dB", True), ("class_acc", "", True), ("fd", "", False),
                ("kid", "", False))
SHOWN = ("psnr_test", "psnr", "bpp", "ssim_full", "fd", "kid", "class_acc")  # a finished fit's line shows these


def record_field(record: Any, name: str) -> Any:
    """A field of a record, a dataclass or a dict; None where it has no such field."""
    return getattr(record, name, None) if dataclasses.is_dataclass(record) else record.get(name)


def what_runs(run: Any) -> str:
    """What a run fits (its representation, or its codec), the unit whose fits cost about the same."""
    codec = getattr(run, "codec", None)
    return getattr(run, "representation", None) or getattr(codec, "name", None) or type(run).__name__


def is_live(stream: TextIO) -> bool:
    """A live bar on a terminal; plain lines in a log or under CI (which may fake a terminal), and on a terminal
    that reports no width (a pseudo-terminal nobody sized, as `script` makes): there tqdm draws a bar of nothing."""
    in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return stream.isatty() and not in_ci and _columns(stream) > 0


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class TimeLeft:
    """The time a suite's remaining fits will take, from the durations of those finished so far."""

    def __init__(self, runs: Sequence[Any]):
        self.left = Counter(what_runs(run) for run in runs)  # fits still to finish, per representation
        self.stepped = {what_runs(run): bool(run.steps) for run in runs}  # whether its fits take steps
        self.spent: dict[str, float] = defaultdict(float)  # seconds the finished fits took, per representation
        self.fits: dict[str, int] = defaultdict(int)  # how many fits those seconds paid for
        # Batched fits (bench/batched.py) are computed with the first of their batch to finish, whose time pays for
        # all of them: those still to come cost (nearly) nothing.
        self.paid = Counter()
        self.work = 0.0  # seconds of every finished fit, where it ran
        # When the first fit began: the wall clock is scaled by work done since then, so start-up (a Ray instance,
        # loading images) is not read as the cost of every fit to come.
        self.started: float | None = None

    def finished(self, run: Any, record: Any, seconds: float) -> None:
        name = what_runs(run)
        self.left[name] -= 1
        if self.started is None:
            self.started = time.monotonic() - seconds
        self.work += seconds
        batch = record_field(record, "batch") or 1
        if batch > 1 and seconds < (record_field(record, "batch_seconds") or 0):  # paid for by its batch's first
            self.paid[name] = max(0, self.paid[name] - 1)
        else:
            self.spent[name] += seconds
            self.fits[name] += batch
            self.paid[name] += batch - 1

    def seconds(self) -> float | None:
        """Wall-clock seconds left, or None before any fit finished."""
        if not self.work or not any(self.fits.values()) or self.started is None:
            return None
        fit_seconds = sum(max(0, left - self.paid[name]) * self._mean(name) for name, left in self.left.items())
        return fit_seconds * (time.monotonic() - self.started) / self.work

    def _mean(self, name: str) -> float:
        """Seconds a fit of `name` takes: its own mean, else that of the fits like it (with or without steps)."""
        seen = [n for n, count in self.fits.items() if count]
        like = [name] if name in seen else [n for n in seen if self.stepped[n] == self.stepped[name]] or seen
        return sum(self.spent[n] for n in like) / sum(self.fits[n] for n in like)


class Best:
    """The best result so far, by the headline metric of the first record that has one."""

    def __init__(self):
        self.metric: tuple[str, str, bool] | None = None
        self.value: float | None = None
        self.name = ""

    def offer(self, record: Any) -> None:
        if record_field(record, "status") != "ok" or record_field(record, "kind") == "reference":
            return  # interpolation references are baselines, not contenders
        if self.metric is None:
            self.metric = next((m for m in BEST_METRICS if _number(record_field(record, m[0]))), None)
        value = _number(record_field(record, self.metric[0])) if self.metric else None
        if value is not None and (self.value is None or (value > self.value) == self.metric[2]):
            self.value = value
            self.name = next((str(n) for n in (record_field(record, f) for f in ("representation", "method", "model"))
                              if n), "")

    def __str__(self) -> str:
        if self.value is None:
            return ""
        name, unit, _ = self.metric
        return f"best: {self.name} {self.value:.2f}{unit}" + ("" if unit else f" {name}")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value == value else None  # NaN is no result


class Progress:
    """The display of one `execute_pending` call: `done` of `total` runs finished before, `runs` to execute."""

    def __init__(self, runs: Sequence[Any], done: int = 0, total: int | None = None, stream: TextIO | None = None,
                 live: bool | None = None):
        self.stream = stream or sys.stderr
        self.live = is_live(self.stream) if live is None else live
        self.done, self.total = done, len(runs) + done if total is None else total
        self.time_left, self.best = TimeLeft(runs), Best()
        self.now = ""  # what runs now, as the executor says
        self.last_line = time.monotonic()  # plain mode: when the last progress line was written
        self.bar = tqdm(total=self.total, initial=done, desc="fits", unit="fit", dynamic_ncols=True,
                        file=self.stream, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                        "[{elapsed}{postfix}]") if self.live and runs else None
        self._show()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def running(self, text: str) -> None:
        """What runs now (the executor's words: a run's label, or what each Ray worker does)."""
        self.now = text
        self._show()

    @contextlib.contextmanager
    def steps(self, run: Any) -> Iterator[Callable[[int, float], None]]:
        """The `on_step` of a fit that runs here: a second bar over its steps when live."""
        if not self.live:
            yield lambda step, loss: None
            return
        with tqdm(total=max(run.steps, 1), desc="  steps", leave=False, dynamic_ncols=True, file=self.stream) as bar:

            def on_step(step: int, loss: float) -> None:
                bar.n = step
                bar.set_postfix(loss=f"{loss:.2e}", refresh=False)
                bar.refresh()

            yield on_step

    def finished(self, run: Any, record: Any, seconds: float, where: str = "") -> None:
        """A run's record is stored: write its line and move the display on."""
        self.done += 1
        self.now = "" if self.done == self.total else self.now  # nothing runs any more
        self.time_left.finished(run, record, seconds)
        self.best.offer(record)
        self.write(f"[{self.done}/{self.total}] {run.label}: {summary(record)}" + (f" [{where}]" if where else ""))
        if self.bar is not None:
            self.bar.update()
            self._show()
        elif time.monotonic() - self.last_line >= PLAIN_EVERY_SECONDS or self.done == self.total:
            self.last_line = time.monotonic()
            self.write(f"progress: {self.status()}")

    def status(self) -> str:
        """'5/12 done, ~3 min left, best: siren 25.10 dB': the plain progress line."""
        return ", ".join(part for part in (f"{self.done}/{self.total} done", self._time(), str(self.best)) if part)

    def write(self, line: str) -> None:
        tqdm.write(line, file=self.stream)  # above a live bar, or a plain line

    def _time(self) -> str:
        if self.done >= self.total:
            return f"in {duration(time.monotonic() - self.time_left.started)}"
        left = self.time_left.seconds()
        return "estimating the time left" if left is None else f"~{duration(left)} left"

    def _show(self) -> None:
        if self.bar is not None:
            now = self.now if len(self.now) <= NOW_CHARS else self.now[: NOW_CHARS - 1] + "…"
            self.bar.set_postfix_str(", ".join(part for part in (self._time(), str(self.best), now) if part),
                                     refresh=True)


def summary(record: Any) -> str:
    """A finished run's result in a few words: its headline metrics and time."""
    row = dataclasses.asdict(record) if dataclasses.is_dataclass(record) else dict(record)
    if row.get("status") == "error":
        return f"ERROR {row.get('error')}"
    parts = [f"{name.replace('_', ' ')} {row[name]:.3g}" if name in ("fd", "kid") else
             f"{name.replace('_', ' ')} {row[name]:.2f}" for name in SHOWN if isinstance(row.get(name), (int, float))]
    for name in ("seconds", "train_seconds"):
        if row.get(name):
            parts.append(f"{row[name]:.1f} s")
    status = row.get("status", "ok")
    return ", ".join(parts) + ("" if status == "ok" else f" [{status}]")


# --- --dry-run ------------------------------------------------------------------------------------------------------

def _fit_of(run: Any):
    """The fit a run trains (a compression run wraps one), or None for runs without steps (references, codecs)."""
    from .runs import FitRun

    fit = getattr(run, "fit", run)
    return fit if isinstance(fit, FitRun) and not fit.is_reference else None


def _training_steps(run: Any) -> int:
    """Optimiser steps a run takes: its fit's, plus a compression run's quantization-aware tuning per quantizer."""
    return _fit_of(run).steps + getattr(run, "qat_steps", 0) * len(getattr(run, "quantizers", ()))


def _cost_class(run: Any) -> tuple:
    """Runs that cost about the same per step: one probe each. The settings a tuning search varies (learning
    rate, omega_0, ...) are taken not to change the cost much."""
    from fitbench import representations

    fit = _fit_of(run)
    if fit is None:
        return (what_runs(run),)
    searched = representations.get_entry(fit.representation).search
    return (fit.representation, fit.image.pixels.shape[:2], fit.protocol, fit.pixels_per_step, fit.precision,
            fit.compile, fit.device, tuple(item for item in fit.overrides if item[0] not in searched))


@dataclass(frozen=True)
class Probe:
    """What one short run of a kind of fit measured: the seconds besides its steady steps (building, the first
    step, scoring), and the seconds of a steady step."""

    fixed: float
    per_step: float = 0.0

    def estimate(self, run: Any) -> float:
        fit = _fit_of(run)
        if fit is None:
            return self.fixed
        training = _training_steps(run) * self.per_step
        return self.fixed + (min(training, fit.budget_seconds) if fit.budget_seconds else training)


def probe(run: Any, execute: Callable) -> Probe:
    """Time `run` here: a fit for PROBE_SECONDS of training (its mean steady step, from its record, extrapolates
    to its steps), again (up to PROBE_TRIES times) while the one-off warm-up of its first step (lazy
    initialisation, first-touch memory) leaves fewer than 3 steps; any other run whole. Nothing is written."""
    from .runs import execute_fit

    fit = _fit_of(run)
    started = time.perf_counter()
    if fit is None:
        execute(run, lambda step, loss: None)
        return Probe(time.perf_counter() - started)
    for _ in range(PROBE_TRIES):
        started = time.perf_counter()
        record, _ = execute_fit(dataclasses.replace(fit, budget_seconds=PROBE_SECONDS, budget_flops=None))
        if record.steps >= min(3, fit.steps):
            break
    wall = time.perf_counter() - started
    per_step = record.step_seconds or record.seconds / max(record.steps, 1)  # one step, or an error
    return Probe(max(0.0, wall - record.steps * per_step), per_step)


@dataclass
class PlanRow:
    fits: int = 0
    done: int = 0
    seconds: float = 0.0  # estimated, for the fits still to run
    settings: set[str] = field(default_factory=set)


def show_plan(runs: Sequence[Any], log, execute: Callable, options, heading: Sequence[str] = (),
              later: Sequence[Any] = ()) -> int:
    """`--dry-run`: print what the suite would run (`runs`, then `later` runs whose choice depends on them), what
    `log` already holds, and the time a probe estimates; returns the exit code 0. Writes nothing."""
    from .hardware import torch_threads

    out = sys.stdout
    done = set() if options.fresh else log.finished_keys()
    print(f"dry run of the {options.suite} suite: nothing is fitted and nothing is written under {options.out}",
          file=out)
    for line in heading:
        print(line, file=out)
    everything = [*runs, *later]
    images = list(dict.fromkeys(f"{run.image_set}/{run.image.name}" for run in everything))
    sizes = sorted({f"{run.image.pixels.shape[1]}x{run.image.pixels.shape[0]}" for run in everything})
    print(f"images: {len(images)} at {', '.join(sizes)}: {', '.join(images)}", file=out)
    if trained := [run for run in everything if _fit_of(run)]:
        steps = sorted({_training_steps(run) for run in trained})
        seeds = sorted({_fit_of(run).seed for run in trained})
        print(f"steps per fit: {', '.join(map(str, steps))}; seeds: {', '.join(map(str, seeds))}", file=out)
    pending = [run for run in runs if run.key not in done] + list(later)
    kinds = list(dict.fromkeys(_cost_class(run) for run in pending))
    if kinds:
        print(f"timing {len(kinds)} kind(s) of fit here, {PROBE_SECONDS:g} s of training each, for a time "
              "estimate ...", file=sys.stderr)
    threads = options.executor.threads_per_fit
    with torch_threads(threads) if threads else contextlib.nullcontext():
        first = {kind: next(run for run in pending if _cost_class(run) == kind) for kind in kinds}
        if kinds:
            probe(first[kinds[0]], execute)  # warms up torch (its first operations are slow), not counted
        probes = {kind: probe(run, execute) for kind, run in first.items()}
    rows: dict[str, PlanRow] = defaultdict(PlanRow)
    for run, is_later in [(run, False) for run in runs] + [(run, True) for run in later]:  # later: none done
        row = rows[what_runs(run)]
        row.fits += 1
        fit = _fit_of(run)
        row.settings.add((fit.settings_from or "source defaults") if fit else "-")
        if is_later or run.key not in done:
            row.seconds += probes[_cost_class(run)].estimate(run)
        else:
            row.done += 1
    width = max(len(name) for name in rows) if rows else 0
    print(f"\n{'':{width}}  fits  done  est. to run  settings from", file=out)
    for name, row in rows.items():
        print(f"{name:{width}}  {row.fits:4d}  {row.done:4d}  {duration(row.seconds):>11}  "
              f"{'; '.join(sorted(row.settings))}", file=out)
    total = sum(row.seconds for row in rows.values())
    already = sum(row.done for row in rows.values())
    print(f"\nfits: {len(runs) + len(later)} planned, {already} already done in {log.path}"
          + (" (--fresh: set aside, all run again)" if options.fresh and log.path.exists() else "")
          + f", {len(pending)} to run", file=out)
    where = ("one after another here" if options.executor.kind == "local" else
             "for one fit after another here; Ray runs several at once")
    print(f"estimated time: ~{duration(total)} {where} (an estimate: each kind of fit trained for "
          f"{PROBE_SECONDS:g} s now, extrapolated to its steps; batching, compilation and a busy machine change it)",
          file=out)
    return 0
