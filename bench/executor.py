"""Runs a suite's pending runs one by one: progress bars, one record appended per finished run, resume, tracking."""

from __future__ import annotations

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
                    tracker: tracking.Tracker | None = None) -> None:
    """Execute the runs whose key is not finished in `log`, appending each record as soon as it exists.

    Each run is also reported to `tracker` (default: the invocation's, `tracking.active()`): its curve as it
    runs and its record when it finishes.
    """
    tracker = tracker or tracking.active()
    done = log.finished_keys()
    pending = [run for run in runs if run.key not in done]
    skipped = len(runs) - len(pending)
    if skipped:
        print(f"resuming: {skipped} of {len(runs)} runs already finished in {log.path}", file=sys.stderr)
    bar = tqdm(pending, desc="runs", unit="run", dynamic_ncols=True, file=sys.stderr, disable=None)  # off in logs
    for index, run in enumerate(bar, 1):
        bar.set_postfix_str(run.label)
        tracker.start_run(run.label, run.key)
        with tqdm(total=max(run.steps, 1), desc="  steps", leave=False, dynamic_ncols=True, file=sys.stderr,
                  disable=None) as steps:

            def on_step(step: int, loss: float) -> None:
                steps.n = step
                steps.set_postfix(loss=f"{loss:.2e}", refresh=False)
                steps.refresh()
                tracker.log_step(step, loss)

            record, artifact = execute(run, on_step)
        if on_finished:
            record = on_finished(run, record, artifact)
        log.append(record)
        tracker.finish_run(record, log.path.parent)
        tqdm.write(f"[{index + skipped}/{len(runs)}] {run.label}: {_summary(record)}", file=sys.stderr)
    bar.close()


def _summary(record: Any) -> str:
    get = record.get if isinstance(record, dict) else lambda name, default=None: getattr(record, name, default)
    status = get("status")
    if status == "error":
        return f"ERROR {get('error')}"
    parts = [f"{name.replace('_', ' ')} {get(name):.2f}" for name in ("psnr_test", "psnr", "ssim_full")
             if isinstance(get(name), (int, float))]
    if get("seconds"):
        parts.append(f"{get('seconds'):.1f} s")
    return ", ".join(parts) + ("" if status == "ok" else f" [{status}]")
