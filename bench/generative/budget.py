"""What each model may spend on training, and the clock that measures it: every model of a preset gets the same.

A budget is epochs, wall-clock seconds, or this process's CPU seconds (`time.process_time`: every thread's CPU
time, so two busy threads spend two CPU seconds per wall second). Epochs are the presets' default: they give the
same training whatever else the machine is doing. Wall-clock time counts the time other processes hold the cores;
CPU time much less so, but not nothing (threads that wait for a descheduled sibling spin), and it does not count
GPU work, so on CUDA a time budget is wall-clock seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

KINDS = {
    "epochs": "full passes over the training images",
    "seconds": "wall-clock seconds of training (time.perf_counter)",
    "cpu_seconds": "CPU seconds of this process, all threads (time.process_time); CPU devices only",
}
CLOCKS: dict[str, Callable[[], float]] = {
    "seconds": lambda: time.perf_counter(),  # looked up at call time, so tests can substitute a fake clock
    "cpu_seconds": lambda: time.process_time(),
}


@dataclass(frozen=True)
class Budget:
    kind: str  # a key of KINDS
    amount: float

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown budget kind {self.kind!r}; choose from: "
                             + "; ".join(f"{k} ({v})" for k, v in KINDS.items()))
        if not self.amount > 0 or (self.kind == "epochs" and self.amount != int(self.amount)):
            raise ValueError(f"a budget of {self.kind} must be a positive {'whole ' if self.kind == 'epochs' else ''}"
                             f"number, got {self.amount!r}")

    @classmethod
    def parse(cls, text: str) -> "Budget":
        """'epochs=20', 'seconds=150' or 'cpu_seconds=300'."""
        kind, _, amount = text.partition("=")
        try:
            value = float(amount)
        except ValueError:
            raise ValueError(f"--budget {text!r}: expected KIND=AMOUNT, e.g. cpu_seconds=300, seconds=150 or "
                             "epochs=20") from None
        return cls(kind.strip(), int(value) if kind.strip() == "epochs" and value == int(value) else value)

    @property
    def epochs(self) -> int | None:
        return int(self.amount) if self.kind == "epochs" else None

    @property
    def clock(self) -> Callable[[], float] | None:
        """The clock a time budget is measured on; None for an epoch budget."""
        return CLOCKS.get(self.kind)

    def check_device(self, device: str) -> None:
        if self.kind == "cpu_seconds" and device != "cpu":
            raise ValueError(f"budget {self}: CPU time does not count GPU work; on {device} pass --budget "
                             "seconds=N (wall clock) or --budget epochs=N")

    def __str__(self) -> str:
        return f"{self.kind}={self.amount:g}"
