"""Runs a suite's pending runs one by one: progress bars, one record appended per finished run, resume, tracking,
and the exit code of a suite whose runs failed."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable, Protocol, Sequence

from tqdm.auto import tqdm

from . import tracking
from .records import RecordLog


class Run(Protocol):
    key: str
    label: str
    steps: int


StepCallback = Callable[[int, float], None]
Execute = Callable[[Any, StepCallback], tuple[Any, Any]]  # (run, on_step) -> (record, artifact)
OnFinished = Callable[[Any, Any, Any], Any]  # (run, record, artifact) -> record to store (may add paths)


def execute_pending(runs: Sequence[Run], log: RecordLog, execute: Execute, on_finished: OnFinished | None = None,
                    tracker: tracking.Tracker | None = None) -> list[Any]:
    """Execute the runs whose key is not finished in `log`, appending each record as soon as it exists.

    Each finished record is also reported to `tracker` (default: the invocation's, `tracking.active()`).
    Returns the records of this call's runs that failed (status "error"); suites exit non-zero on them.
    """
    tracker = tracker or tracking.active()
    if note := log.repair():
        print(f"note: {note}", file=sys.stderr)
    done = log.finished_keys()
    pending = [run for run in runs if run.key not in done]
    skipped = len(runs) - len(pending)
    if skipped:
        print(f"resuming: {skipped} of {len(runs)} runs already finished in {log.path}", file=sys.stderr)
    failed = []
    bar = tqdm(pending, desc="runs", unit="run", dynamic_ncols=True, file=sys.stderr, disable=None)  # off in logs
    for index, run in enumerate(bar, 1):
        bar.set_postfix_str(run.label)
        with tqdm(total=max(run.steps, 1), desc="  steps", leave=False, dynamic_ncols=True, file=sys.stderr,
                  disable=None) as steps:

            def on_step(step: int, loss: float) -> None:
                steps.n = step
                steps.set_postfix(loss=f"{loss:.2e}", refresh=False)
                steps.refresh()

            record, artifact = execute(run, on_step)
        if on_finished:
            record = on_finished(run, record, artifact)
        log.append(record)
        tracker.log_run(run.label, record, log.path.parent)
        tqdm.write(f"[{index + skipped}/{len(runs)}] {run.label}: {_summary(record)}", file=sys.stderr)
        if _field(record, "status") == "error":
            failed.append(record)
    bar.close()
    return failed


def _field(record: Any, name: str) -> Any:
    return getattr(record, name, None) if dataclasses.is_dataclass(record) else record.get(name)


def report_failures(failed: list[Any], describe: Callable[[Any], str]) -> int:
    """Print one line per failed run and return the suite's exit code: 1 if any run failed, else 0."""
    for record in failed:
        print(f"error: {describe(record)}: {_field(record, 'error')}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} run(s) failed; they are retried when the same command runs again", file=sys.stderr)
    return 1 if failed else 0


SHOWN = ("psnr_test", "psnr", "bpp", "ssim_full", "fd", "kid", "class_acc")  # the headline metrics of each suite


def _summary(record: Any) -> str:
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
