"""Result records: the one contract between the engine and everything that reports.

Every finished run appends one JSON object to `OUT/<suite>/runs.jsonl` as soon as it finishes (flushed and
fsynced), so an interrupted suite loses at most the run in flight and the next invocation skips what is done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .files import write_atomic
from .paths import inside_out

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
    steps: int  # steps done (a budget in seconds or FLOPs, or divergence, can end a fit before max_steps)
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
    precision_from: str = ""  # why --precision auto chose it (bench/precision.py); "" when the user named it
    batch: int = 1  # models fitted together in one batched computation (bench/batched.py)
    batch_seconds: float = 0.0  # the batch's training time; `seconds` is this fit's share of it
    budget_seconds: float | None = None  # the fit's training-time budget, if it had one (steps is then a cap)
    budget_flops: float | None = None  # the fit's matmul-FLOP budget, if it had one
    pixels_per_step: int | None = None  # training pixels sampled per step (None: all, full batch)
    max_steps: int = 0  # the step budget (the cap when the budget is in seconds or FLOPs)
    settings_from: str = ""  # where the settings came from: a tuned-settings file, or "" for source defaults
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
        """All records, the last one per key winning; a malformed line is skipped with one warning naming it."""
        if not self.path.exists():
            return []
        latest: dict[str, dict] = {}
        for number, record in self._lines():
            if record is None:
                _warn_once(f"warning: {self.path} line {number} is not a JSON record; ignored (the next run of "
                           "this suite moves it aside)")
                continue
            latest[record.get("key") or f"line {number}"] = record
        return list(latest.values())

    def finished_keys(self) -> set[str]:
        return {r["key"] for r in self.read() if r.get("status") in FINISHED}

    def append(self, record: Any) -> None:
        row = dataclasses.asdict(record) if dataclasses.is_dataclass(record) else dict(record)
        path = inside_out(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(row, allow_nan=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def repair(self) -> str | None:
        """Before a run appends: make the file valid JSON lines again, keeping every good record.

        A kill in the middle of an append leaves a torn last line; an edit by hand can leave anything. Bad lines
        are moved to a side file (never deleted) and the file is rewritten atomically. Returns what was done.
        """
        if not self.path.exists():
            return None
        text = self.path.read_bytes()
        lines = list(self._lines(text))
        bad = [number for number, record in lines if record is None]
        torn = bool(text) and not text.endswith(b"\n")
        if not bad and not torn:
            return None
        raw = text.decode("utf-8", errors="replace").split("\n")
        good = [raw[number - 1] for number, record in lines if record is not None]
        side = self.path.with_name(f"{self.path.name}.malformed-{time.strftime('%Y%m%d-%H%M%S')}")
        inside_out(side).write_text("".join(f"line {n}: {raw[n - 1]}\n" for n in bad))
        write_atomic(inside_out(self.path), "".join(line + "\n" for line in good))
        torn_note = ", the last one torn by an interrupted write" if torn else ""
        return f"{self.path}: moved {len(bad)} malformed line(s){torn_note} to {side.name}; {len(good)} record(s) kept"

    def _lines(self, text: bytes | None = None):
        """(line number, record or None if the line is not a JSON object), for every non-empty line."""
        text = self.path.read_bytes() if text is None else text
        for number, line in enumerate(text.decode("utf-8", errors="replace").split("\n"), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            yield number, record if isinstance(record, dict) else None

    def set_aside(self) -> Path | None:
        """For --fresh: move the log away (never delete results) and return where it went."""
        if not self.path.exists():
            return None
        backup = self.path.with_name(f"{self.path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
        inside_out(self.path).rename(inside_out(backup))
        return backup


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        print(message, file=sys.stderr)


def records_of(rows: Iterable[dict], keys: set[str]) -> list[dict]:
    return [r for r in rows if r.get("key") in keys]
