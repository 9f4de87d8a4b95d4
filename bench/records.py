"""Result records: the one contract between the engine and everything that reports.

Every finished run appends one JSON object to `OUT/<suite>/runs.jsonl` as soon as it finishes (flushed and
fsynced), so an interrupted suite loses at most the run in flight and the next invocation skips what is done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

FINISHED = ("ok", "diverged")  # runs with another status (errors) are tried again on the next invocation


@dataclass
class FitRecord:
    """One fit of one representation (or interpolation reference) to one image."""

    representation: str
    kind: str  # "representation" or "reference" (interpolation rows)
    image: str
    image_set: str
    protocol: str
    preset: str
    seed: int
    steps: int
    size: int
    params: int
    lr: float | None
    config: dict[str, Any]
    status: str  # ok | diverged | error
    psnr_train: float | None = None
    psnr_test: float | None = None
    psnr_full: float | None = None
    ssim_full: float | None = None
    seconds: float = 0.0
    step_seconds: float = 0.0  # mean steady training step (the first step, with any compilation, excluded)
    warmup_seconds: float = 0.0  # the first step: compilation, graph capture, first-touch allocation
    gflops: float = 0.0  # achieved matmul GFLOP/s over the steady steps (bench/flops.py)
    peak_fraction: float = 0.0  # gflops / the matmul peak measured in the same process at this precision
    precision: str = "fp32"
    batch: int = 1  # models fitted together in one batched computation (bench/batched.py)
    batch_seconds: float = 0.0  # the batch's training time; `seconds` is this fit's share of it
    budget_seconds: float | None = None  # the fit's training-time budget, if it had one (steps is then a cap)
    budget_flops: float | None = None  # the fit's matmul-FLOP budget, if it had one
    pixels_per_step: int | None = None  # training pixels sampled per step (None: all, full batch)
    error: str | None = None
    device: str = "cpu"
    reconstruction: str | None = None  # PNG path relative to the suite folder
    # {"step", "loss"} every log_every steps; "eval": {"step", "seconds", "psnr_test"} at log-spaced steps
    curve: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    created: float = field(default_factory=time.time)


def run_key(**identity: Any) -> str:
    """A stable id of what a run computes, so a rerun of the same command finds it done."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class RecordLog:
    """Append-only JSON-lines file of records (dataclasses or dicts)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        """All records, the last one per key winning; a line cut short by a kill is ignored."""
        if not self.path.exists():
            return []
        latest: dict[str, dict] = {}
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            latest[record.get("key") or str(len(latest))] = record
        return list(latest.values())

    def finished_keys(self) -> set[str]:
        return {r["key"] for r in self.read() if r.get("status") in FINISHED}

    def append(self, record: Any) -> None:
        row = dataclasses.asdict(record) if dataclasses.is_dataclass(record) else dict(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._terminate_partial_line()
        with self.path.open("a") as f:
            f.write(json.dumps(row, allow_nan=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def set_aside(self) -> Path | None:
        """For --fresh: move the log away (never delete results) and return where it went."""
        if not self.path.exists():
            return None
        backup = self.path.with_name(f"{self.path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
        self.path.rename(backup)
        return backup

    def _terminate_partial_line(self) -> None:
        # A kill mid-write can leave a line without its newline; start the next record on a fresh line.
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                last = f.read(1)
            if last != b"\n":
                with self.path.open("a") as f:
                    f.write("\n")


def records_of(rows: Iterable[dict], keys: set[str]) -> list[dict]:
    return [r for r in rows if r.get("key") in keys]
