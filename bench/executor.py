"""Runs a suite's pending runs: their progress (bench/progress.py), one record appended per finished run, resume,
tracking, and the exit code of a suite whose runs failed.

Where the runs execute is the invocation's executor (`--executor`, activated by the CLI like the tracker): here,
one after another (`LocalExecutor`), or as Ray tasks on a local instance or a cluster (bench/distributed.py).
Either way this process is the only writer of the records: each is appended (fsynced) as it arrives, in whatever
order the runs finish, so interruption, resume and the folder lock behave the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

from . import tracking
from .progress import Progress, record_field
from .records import RecordLog


class Run(Protocol):
    key: str
    label: str
    steps: int


StepCallback = Callable[[int, float], None]
Execute = Callable[[Any, StepCallback], tuple[Any, Any]]  # (run, on_step) -> (record, artifact)
OnFinished = Callable[[Any, Any, Any], Any]  # (run, record, artifact) -> record to store (may add paths)

EXECUTORS = ("local", "ray")
INSTALL_RAY = 'pip install -e ".[distributed]"'
# Suites whose runs always execute here, and why (`--executor ray` runs them locally with a note).
LOCAL_SUITES = {
    "generative": "its runs share one in-memory scoring context (the data and the feature network)",
    "speed": "it measures this machine",
}


@dataclass(frozen=True)
class ExecutorConfig:
    """Where a suite's runs execute: `--executor` and its options."""

    kind: str = "local"  # local: one after another in this process; ray: as Ray tasks
    ray_address: str | None = None  # ray: join this cluster (None: $RAY_ADDRESS, else start a local instance)
    cpus_per_fit: float = 1.0  # ray: CPUs each task reserves
    gpus_per_fit: float = 0.0  # ray: GPUs each task reserves (fits on CUDA need some); a fraction shares a GPU
    threads_per_fit: int | None = None  # torch threads per fit (None: torch's default here, the fit's CPUs on Ray)
    plugins: tuple[str, ...] = ()  # ray: the --plugin files and modules every worker loads before it reads a run

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ValueError(f"--executor {self.kind}: choose {' or '.join(EXECUTORS)}")
        if not self.cpus_per_fit > 0:
            raise ValueError(f"--cpus-per-fit must be positive, got {self.cpus_per_fit:g}")
        if self.gpus_per_fit < 0 or (self.gpus_per_fit > 1 and not float(self.gpus_per_fit).is_integer()):
            raise ValueError(f"--gpus-per-fit {self.gpus_per_fit:g}: give a fraction of one GPU (e.g. 0.25) or a "
                             "whole number of GPUs")
        if self.threads_per_fit is not None and self.threads_per_fit < 1:
            raise ValueError(f"--threads-per-fit must be at least 1, got {self.threads_per_fit}")
        if self.kind == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError(f"--executor ray needs Ray, which is not installed; install it with: {INSTALL_RAY}")

    @classmethod
    def from_args(cls, args) -> "ExecutorConfig":
        """From the command line; Ray's options without `--executor ray` are a mistake worth one line."""
        ray_only = {"--ray-address": args.ray_address, "--cpus-per-fit": args.cpus_per_fit,
                    "--gpus-per-fit": args.gpus_per_fit}
        if args.executor != "ray" and (given := [flag for flag, value in ray_only.items() if value is not None]):
            raise ValueError(f"{', '.join(given)} only apply to --executor ray; add --executor ray or drop them")
        # Ray hides the GPUs from a task that reserves none, so fits on CUDA reserve a whole one unless told.
        on_cuda = args.executor == "ray" and _fits_on_cuda(args.device)
        if on_cuda and args.gpus_per_fit == 0:
            raise ValueError("--gpus-per-fit 0: the fits run on CUDA (--device), and Ray gives a task that reserves "
                             "no GPU none; give a share such as 0.25, or --device cpu")
        gpus = args.gpus_per_fit if args.gpus_per_fit is not None else 1.0 if on_cuda else 0.0
        # A plugin file is loaded on the workers by its absolute path, under the module name the driver gave it.
        plugins = tuple(str(Path(p).expanduser().resolve()) if p.endswith(".py") or Path(p).expanduser().is_file()
                        else p for p in args.plugins)
        return cls(args.executor, args.ray_address, 1.0 if args.cpus_per_fit is None else args.cpus_per_fit, gpus,
                   args.threads_per_fit, plugins)


def _fits_on_cuda(device: str) -> bool:
    """Whether --device puts the fits on CUDA (as the suites resolve it: bench/engine.py resolve_device)."""
    import torch

    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


class RunsLostError(RuntimeError):
    """Runs that executed nowhere: on Ray, a task whose worker died on every retry or could not load its runs.
    Every other run is recorded first; nothing is recorded for these, so the same command runs them again."""


@dataclass
class Finished:
    """A run's result as it reaches the driver, where it was computed ("" here) and how long it took there."""

    run: Any
    record: Any
    artifact: Any
    where: str = ""
    seconds: float = 0.0


class Executor(Protocol):
    def results(self, runs: Sequence[Run], execute: Execute, progress: Progress) -> Iterator[Finished]:
        """Execute `runs`, yielding each result as it exists (in any order) and telling `progress` what runs."""

    def close(self) -> None: ...


class LocalExecutor:
    """Runs each run here, one after another, with the progress of its steps."""

    def __init__(self, threads_per_fit: int | None = None):
        self.threads_per_fit = threads_per_fit

    def results(self, runs: Sequence[Run], execute: Execute, progress: Progress) -> Iterator[Finished]:
        from .hardware import torch_threads

        for run in runs:
            progress.running(run.label)
            with progress.steps(run) as on_step, (torch_threads(self.threads_per_fit) if self.threads_per_fit
                                                  else contextlib.nullcontext()):
                started = time.perf_counter()
                record, artifact = execute(run, on_step)
                seconds = time.perf_counter() - started
            yield Finished(run, record, artifact, seconds=seconds)

    def close(self) -> None:
        pass


_ACTIVE: Executor = LocalExecutor()


def active() -> Executor:
    """The executor of the current invocation (a LocalExecutor unless the CLI activated another)."""
    return _ACTIVE


@contextlib.contextmanager
def activate(config: ExecutorConfig, suite: str = "") -> Iterator[Executor]:
    """Make `config`'s executor the active one for a suite's invocation; Ray is joined at the first pending run
    (never for a suite with nothing to do) and left when the invocation ends."""
    global _ACTIVE
    if config.kind == "ray" and suite in LOCAL_SUITES:
        print(f"note: the {suite} suite runs here, not on Ray: {LOCAL_SUITES[suite]}", file=sys.stderr)
        config = dataclasses.replace(config, kind="local")
    if config.kind == "ray":
        from .distributed import RayExecutor  # Ray is an optional extra: imported only when asked for

        executor: Executor = RayExecutor(config)
    else:
        executor = LocalExecutor(config.threads_per_fit)
    previous, _ACTIVE = _ACTIVE, executor
    try:
        yield executor
    finally:
        _ACTIVE = previous
        executor.close()


def execute_pending(runs: Sequence[Run], log: RecordLog, execute: Execute, on_finished: OnFinished | None = None,
                    tracker: tracking.Tracker | None = None, executor: Executor | None = None) -> list[Any]:
    """Execute the runs whose key is not finished in `log`, appending each record as soon as it exists.

    The runs execute on `executor` (default: the invocation's, `active()`); `execute` runs where they do, and
    `on_finished` (which writes artifacts) here. Each finished record is also reported to `tracker` (default:
    the invocation's, `tracking.active()`). Returns the records of this call's runs that failed (status "error");
    suites exit non-zero on them.
    """
    tracker = tracker or tracking.active()
    executor = executor or active()
    if note := log.repair():
        print(f"note: {note}", file=sys.stderr)
    done = log.finished_keys()
    pending = [run for run in runs if run.key not in done]
    skipped = len(runs) - len(pending)
    if skipped:
        print(f"resuming: {skipped} of {len(runs)} runs already finished in {log.path}", file=sys.stderr)
    failed = []
    with Progress(pending, done=skipped, total=len(runs)) as progress:
        for finished in executor.results(pending, execute, progress):
            record = finished.record
            if on_finished:
                record = on_finished(finished.run, record, finished.artifact)
            log.append(record)
            tracker.log_run(finished.run.label, record, log.path.parent)
            progress.finished(finished.run, record, finished.seconds, finished.where)
            if record_field(record, "status") == "error":
                failed.append(record)
    return failed


def report_failures(failed: list[Any], describe: Callable[[Any], str]) -> int:
    """Print one line per failed run and return the suite's exit code: 1 if any run failed, else 0."""
    for record in failed:
        print(f"error: {describe(record)}: {record_field(record, 'error')}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} run(s) failed; they are retried when the same command runs again", file=sys.stderr)
    return 1 if failed else 0
