"""Runs a suite's pending runs: their progress (bench/progress.py), one record appended per finished run, resume,
tracking, and the exit code of a suite whose runs failed.

Where the runs execute is the invocation's executor (`--executor`, activated by the CLI like the tracker): here,
one after another (`LocalExecutor`), or as Ray tasks on a local instance or a cluster (bench/distributed.py).
Either way this process is the only writer of the records: each is appended (fsynced) as it arrives, in whatever
order the runs finish, so interruption, resume and the folder lock behave the same.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator, Sequence

from . import tracking
from .execution import (EXECUTORS, Execute, Executor, ExecutorConfig, Finished, LocalExecutor, Run,  # noqa: F401
                        RunsLostError, StepCallback)
from .progress import Progress, record_field
from .records import RecordLog

OnFinished = Callable[[Any, Any, Any], Any]  # (run, record, artifact) -> record to store (may add paths)


_ACTIVE: Executor = LocalExecutor()


def active() -> Executor:
    """The executor of the current invocation (a LocalExecutor unless the CLI activated another)."""
    return _ACTIVE


@contextlib.contextmanager
def activate(config: ExecutorConfig) -> Iterator[Executor]:
    """Make `config`'s executor the active one for a suite's invocation; Ray is joined at the first pending run
    (never for a suite with nothing to do) and left when the invocation ends. (A suite whose runs must execute
    here, such as speed, does not take --executor at all.)"""
    global _ACTIVE
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
