"""What the execution layer deals in: runs, the function that executes one, where runs execute (`ExecutorConfig`)
and the local executor. The executors (here, bench/distributed.py) and the code that drives them
(bench/executor.py) import this module; it imports neither, so no import cycle runs through them.

An executor knows runs, not suites: a run has a key, a label and a step count, and `execute(run, on_step)`
returns its (record, artifact). An `execute` that must keep some runs together in one task (batched fitting)
says so with a `tasks(runs)` method (`TaskSplitter`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

from .progress import Progress

EXECUTORS = ("local", "ray")
INSTALL_RAY = 'pip install -e ".[distributed]"'


class Run(Protocol):
    key: str
    label: str
    steps: int


StepCallback = Callable[[int, float], None]
Execute = Callable[[Any, StepCallback], tuple[Any, Any]]  # (run, on_step) -> (record, artifact)



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
        from .engine import device_type  # torch, only when the command line is read

        on_cuda = args.executor == "ray" and device_type(args.device) == "cuda"
        if on_cuda and args.gpus_per_fit == 0:
            raise ValueError("--gpus-per-fit 0: the fits run on CUDA (--device), and Ray gives a task that reserves "
                             "no GPU none; give a share such as 0.25, or --device cpu")
        gpus = args.gpus_per_fit if args.gpus_per_fit is not None else 1.0 if on_cuda else 0.0
        return cls(args.executor, args.ray_address, 1.0 if args.cpus_per_fit is None else args.cpus_per_fit, gpus,
                   args.threads_per_fit, cls.plugin_paths(args.plugins))

    @staticmethod
    def plugin_paths(plugins: list[str]) -> tuple[str, ...]:
        """A plugin file is loaded on the workers by its absolute path, under the module name the driver gave it."""
        return tuple(str(Path(p).expanduser().resolve()) if p.endswith(".py") or Path(p).expanduser().is_file()
                     else p for p in plugins)


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


class TaskSplitter(Protocol):
    """An `execute` that keeps some runs together: the runs of each task, each with the `execute` it calls."""

    def tasks(self, runs: Sequence[Run]) -> list[tuple[Execute, list[Run]]]: ...


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


