"""The typed options every suite receives from the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .executor import ExecutorConfig


@dataclass
class SuiteOptions:
    suite: str
    preset: str = "standard"
    representations: list[str] | None = None  # None: every registered representation
    images: str | None = None  # image set name or folder; None: the preset's
    steps: int | None = None  # None: the preset's
    seeds: int | None = None
    size: int | None = None
    max_images: int | None = None
    device: str = "auto"
    out: Path = Path("results")
    data_root: Path | None = None
    fresh: bool = False
    wandb: bool = False  # --wandb: report runs to Weights & Biases (see bench/tracking.py)
    wandb_project: str | None = None  # None: $WANDB_PROJECT or "fitbench"
    wandb_entity: str | None = None  # None: $WANDB_ENTITY or the account's default
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # --set rep.field=value
    plugins: list[str] = field(default_factory=list)  # --plugin: files or modules that register representations
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # --executor and its options: where runs execute
    args: argparse.Namespace = field(default_factory=argparse.Namespace)  # suite-specific flags

    def suite_dir(self, name: str | None = None) -> Path:
        return self.out / (name or self.suite)
