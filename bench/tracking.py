"""Experiment tracking: every suite's runs reported to Weights & Biases with `--wandb`, and to nothing otherwise.

How runs map to W&B runs (docs/tracking.md says why): one W&B run per record (one fit, one compression point,
...), named after the run and grouped by a per-invocation group id (`job_type` = the suite), holding the run's
config, its per-step loss/PSNR curve and its final metrics; plus one `<suite> summary` run per invocation in the
same group, holding the suite's figures (grids, rd.png, samples) as images and its records as `wandb.Table`s.

Suites need no tracking code: the CLI activates a tracker for the invocation, `execute_pending` reports each
finished record to `active()`, and the CLI logs the suite folder's figures and records when the suite returns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import netrc
import os
import secrets
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Protocol
from urllib.parse import urlparse

from .metrics import psnr_from_mse
from .records import RecordLog

INIT_TIMEOUT_S = 30  # an unreachable server must not hold a suite up for wandb's default of 90 s
SKIP_IMAGE_FOLDERS = {"reconstructions"}  # per-run PNGs: logged with their run, not again in the summary


class Tracker(Protocol):
    def log_run(self, label: str, record: Any, folder: Path) -> None: ...

    def finish_suite(self, folder: Path, exit_code: int) -> None: ...


class NullTracker:
    """The default: tracking off."""

    def log_run(self, label: str, record: Any, folder: Path) -> None:
        pass

    def finish_suite(self, folder: Path, exit_code: int) -> None:
        pass


_ACTIVE: Tracker = NullTracker()


def active() -> Tracker:
    """The tracker of the current invocation (a NullTracker unless the CLI activated one)."""
    return _ACTIVE


@contextlib.contextmanager
def activate(tracker: Tracker) -> Iterator[Tracker]:
    global _ACTIVE
    previous, _ACTIVE = _ACTIVE, tracker
    try:
        yield tracker
    finally:
        _ACTIVE = previous


@dataclasses.dataclass
class WandbSettings:
    project: str
    entity: str | None  # None: wandb's default (WANDB_ENTITY or the account's)
    mode: str  # "online" or "offline"
    directory: Path  # wandb writes <directory>/wandb/
    group: str
    suite: str


class WandbTracker:
    """Logs to W&B; any W&B failure turns tracking off with one warning and never fails the suite."""

    def __init__(self, settings: WandbSettings):
        import wandb  # the `tracking` extra; imported only when asked for

        self.wandb, self.settings, self.run, self.failed = wandb, settings, None, False

    # --- one W&B run per record -------------------------------------------------------------------------
    def log_run(self, label: str, record: Any, folder: Path) -> None:
        """One W&B run holding a finished record: its settings, its own curves, its numbers, its image.

        The curves come from the record rather than being streamed while the fit runs, so a fit from a batched
        group, or from a worker process, is logged with exactly its own curve.
        """
        row = dataclasses.asdict(record) if dataclasses.is_dataclass(record) else dict(record)
        self._init(name=label, config={"key": row.get("key")})

        def log() -> None:
            if not self.run:
                return
            for step, values in sorted(curve_history(row).items()):
                self.run.log(values, step=step)
            config, metrics = split_record(row)
            self.run.config.update(config, allow_val_change=True)
            self.run.summary.update(metrics)
            image = row.get("reconstruction")
            if isinstance(image, str) and (folder / image).is_file():
                self.run.log({"reconstruction": self.wandb.Image(str(folder / image))})

        self._guard(log)
        self._finish(exit_code=0 if row.get("status") != "error" else 1)

    # --- one summary run per invocation ---------------------------------------------------------------------
    def finish_suite(self, folder: Path, exit_code: int) -> None:
        self._finish(exit_code=1)  # a run left open by an interrupted fit
        if not folder.is_dir():
            return
        self._init(name=f"{self.settings.suite} summary", config={"suite": self.settings.suite}, job_type="summary")

        def log() -> None:
            if not self.run:
                return
            images = {str(path.relative_to(folder).with_suffix("")): self.wandb.Image(str(path))
                      for path in sorted(folder.rglob("*.png"))
                      if not SKIP_IMAGE_FOLDERS & set(path.relative_to(folder).parts)}
            tables = {f"records/{path.stem}": records_table(self.wandb, RecordLog(path).read())
                      for path in sorted(folder.glob("*.jsonl"))}
            self.run.log({**images, **{k: v for k, v in tables.items() if v is not None}})
            self.run.summary["exit_code"] = exit_code

        self._guard(log)
        self._finish(exit_code=exit_code)
        self._guard(self.wandb.teardown)  # stop wandb's service so every run file is complete when we return
        if self.settings.mode == "offline" and not self.failed:
            print(f"W&B: offline runs are in {self.settings.directory / 'wandb'}; upload them with "
                  f"`wandb sync {self.settings.directory / 'wandb'}/offline-run-*`", file=sys.stderr)

    # --- plumbing -------------------------------------------------------------------------------------------
    def _init(self, name: str, config: dict, job_type: str | None = None) -> None:
        if self.failed:
            return
        s = self.settings
        self._guard(lambda: setattr(self, "run", self.wandb.init(
            project=s.project, entity=s.entity, group=s.group, job_type=job_type or s.suite, name=name,
            config=config, dir=str(s.directory), mode=s.mode, reinit="create_new",
            settings=self.wandb.Settings(init_timeout=INIT_TIMEOUT_S, silent=True, console="off"))))

    def _finish(self, exit_code: int) -> None:
        run, self.run = self.run, None
        if run is not None:
            self._guard(lambda: run.finish(exit_code=exit_code))

    def _guard(self, action) -> None:
        if self.failed:
            return
        try:
            action()
        except Exception as error:  # tracking is a convenience: never let it stop a suite
            self.failed, self.run = True, None
            print(f"warning: W&B tracking stopped ({type(error).__name__}: {error}); the suite goes on, "
                  "results are still written to the output folder", file=sys.stderr)


def curve_history(row: dict) -> dict[int, dict[str, float]]:
    """step -> values to log, from a record's curve: the training loss, the training PSNR where the loss is the
    pixel MSE (fitting records, which carry `psnr_train`), and the held-out PSNR curve against training time."""
    curve = row.get("curve") or {}
    history: dict[int, dict[str, float]] = {}
    pixel_mse = "psnr_train" in row
    for step, loss in zip(curve.get("step", []), curve.get("loss", [])):
        history.setdefault(step, {})["train/loss"] = loss
        if pixel_mse:
            history[step]["train/psnr"] = psnr_from_mse(loss)
    evaluated = curve.get("eval") or {}
    for step, seconds, psnr in zip(evaluated.get("step", []), evaluated.get("seconds", []),
                                   evaluated.get("psnr_test", [])):
        history.setdefault(step, {}).update({"test/psnr": psnr, "train/seconds": seconds})
    return history


def split_record(row: dict) -> tuple[dict, dict]:
    """A record's identity and settings (W&B config) and its numbers (W&B summary); curves are logged per step."""
    config, metrics = {}, {}
    for name, value in row.items():
        if name == "curve":
            continue
        if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
            metrics[name] = value
        if not isinstance(value, float):
            config[name] = value  # ints such as seed, steps and params identify a run, so they go in both
    return config, metrics


def records_table(wandb, rows: list[dict]):
    """Records as a wandb.Table: nested values as JSON text, curves left out (they are in each run's history)."""
    if not rows:
        return None
    columns = sorted({name for row in rows for name in row} - {"curve"})
    cell = lambda v: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
    return wandb.Table(columns=columns, data=[[cell(row.get(name)) for name in columns] for row in rows])


def server_url() -> str:
    return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")


def server_reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the W&B server opens within `timeout` seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(server_url()).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def make_tracker(enabled: bool, suite: str, out: Path, project: str | None = None,
                 entity: str | None = None) -> Tracker:
    """A W&B tracker for `--wandb` (offline without an API key), else a NullTracker; never raises."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if not enabled:
        return NullTracker()
    if mode == "disabled":
        print("W&B: WANDB_MODE=disabled, tracking is off", file=sys.stderr)
        return NullTracker()
    if mode not in ("online", "offline"):
        mode = "online" if has_api_key() else "offline"
        if mode == "offline":
            print(f"W&B: no API key (WANDB_API_KEY or `wandb login`), logging offline under {out / 'wandb'}",
                  file=sys.stderr)
    if mode == "online" and not server_reachable(server_url()):
        mode = "offline"  # wandb itself would wait INIT_TIMEOUT_S per run before giving up
        print(f"W&B: {server_url()} cannot be reached, logging offline under {out / 'wandb'} (sync later)",
              file=sys.stderr)
    settings = WandbSettings(
        project=project or os.environ.get("WANDB_PROJECT") or "fitbench",
        entity=entity or os.environ.get("WANDB_ENTITY") or None, mode=mode, directory=out,
        group=f"{suite}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}", suite=suite)
    try:
        out.mkdir(parents=True, exist_ok=True)
        return WandbTracker(settings)
    except ImportError:
        print("warning: --wandb needs the wandb package: pip install -e \".[tracking]\"; tracking is off",
              file=sys.stderr)
        return NullTracker()
