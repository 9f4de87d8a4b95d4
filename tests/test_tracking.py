"""W&B tracking: an offline run directory holds what was logged; tracking never fails a suite."""

import json
import math
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fitbench import tracking
from fitbench.executor import execute_pending
from fitbench.interpolation import INTERPOLATIONS
from fitbench.records import RecordLog

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

SMOKE = ["--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--max-images", "1"]


@pytest.fixture
def no_wandb_account(monkeypatch, tmp_path):
    """No API key anywhere, so --wandb must go offline; nothing reaches a network."""
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / ".config" / "wandb"))


def read_wandb_file(path: Path) -> list:
    """The protobuf records of a `.wandb` file: LevelDB-log framing (32 KiB blocks, 7-byte chunk headers)."""
    data, block, position, chunks, records = path.read_bytes(), 32768, 7, [], []  # 7: the file header
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if kind == 0:
            break
        chunks.append(data[position + 7:position + 7 + length])
        position += 7 + length
        if kind in (1, 4):  # FULL or LAST: a record is complete
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            records.append(record)
            chunks = []
    return records


@dataclass
class OfflineRun:
    name: str
    group: str
    config: dict
    history: list[dict]
    summary: dict
    files: list[str]


def read_offline_run(folder: Path) -> OfflineRun:
    run = OfflineRun("", "", {}, [], {}, [str(p.relative_to(folder / "files")) for p in (folder / "files").rglob("*")])
    key = lambda item: ".".join(item.nested_key) or item.key
    for record in read_wandb_file(next(folder.glob("*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.name, run.group = record.run.display_name, record.run.run_group
        elif kind == "config":
            run.config.update({key(item): json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            run.history.append({key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            run.summary.update({key(item): json.loads(item.value_json) for item in record.summary.update})
    return run


def test_offline_run_directory_holds_the_logged_metrics(run_cli, tmp_path, no_wandb_account):
    code, _, err = run_cli(*SMOKE, "--out", tmp_path, "--wandb", "--wandb-project", "fitbench-test")
    assert code == 0
    assert "no API key" in err and "wandb sync" in err
    records = {r["representation"]: r for r in RecordLog(tmp_path / "fitting" / "runs.jsonl").read()}
    folders = sorted((tmp_path / "wandb").glob("offline-run-*"))
    runs = {run.name: run for run in map(read_offline_run, folders)}
    assert set(runs) == {"relu_mlp on camera (seed 0)", "fitting summary",
                         *(f"{name} on camera (seed 0)" for name in INTERPOLATIONS)}
    assert len({run.group for run in runs.values()}) == 1  # one invocation, one group

    fit, record = runs["relu_mlp on camera (seed 0)"], records["relu_mlp"]
    assert fit.config["representation"] == "relu_mlp" and fit.config["key"] == record["key"]
    assert fit.config["config"]["width"] == record["config"]["width"]
    assert fit.summary["psnr_test"] == pytest.approx(record["psnr_test"])
    assert fit.summary["ssim_full"] == pytest.approx(record["ssim_full"])
    curve = [row for row in fit.history if "train/loss" in row]
    assert [row["_step"] for row in curve] == record["curve"]["step"]
    assert [row["train/loss"] for row in curve] == pytest.approx(record["curve"]["loss"])
    assert [row["train/psnr"] for row in curve] == pytest.approx([-10 * math.log10(v) for v in record["curve"]["loss"]])
    assert any(name.startswith("media/images/reconstruction") for name in fit.files)

    summary = runs["fitting summary"]
    assert any(name.startswith("media/table/records/runs") for name in summary.files)
    assert any(name.startswith("media/images/grids/builtin-camera") for name in summary.files)
    table = json.loads(next((folders[0].parent).glob("*/files/media/table/records/runs*.table.json")).read_text())
    assert len(table["data"]) == 1 + len(INTERPOLATIONS) and "psnr_test" in table["columns"]

    synced = subprocess.run([sys.executable, "-m", "wandb", "sync", "--dry-run", str(tmp_path / "wandb")],
                            capture_output=True, text=True, timeout=120)
    assert synced.returncode == 0, synced.stderr
    assert f"Would sync {len(folders)} run(s)" in synced.stdout + synced.stderr


def test_wandb_mode_disabled_turns_tracking_off(run_cli, tmp_path, no_wandb_account, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    code, _, err = run_cli(*SMOKE, "--out", tmp_path, "--wandb")
    assert code == 0 and "WANDB_MODE=disabled" in err
    assert not (tmp_path / "wandb").exists()


def test_a_failing_wandb_never_fails_the_suite(run_cli, tmp_path, no_wandb_account, monkeypatch):
    def unreachable(**kwargs):
        raise TimeoutError("no network")

    monkeypatch.setattr(wandb, "init", unreachable)
    code, _, err = run_cli(*SMOKE, "--out", tmp_path, "--wandb")
    assert code == 0
    assert err.count("W&B tracking stopped (TimeoutError: no network)") == 1  # said once, not per run
    assert len(RecordLog(tmp_path / "fitting" / "runs.jsonl").read()) == 1 + len(INTERPOLATIONS)


@dataclass(frozen=True)
class ToyRun:
    key: str
    label: str
    steps: int = 20


class RecordingTracker:
    def __init__(self):
        self.events = []

    def log_run(self, label, record, folder):
        self.events.append(("run", label, record["key"], folder))

    def finish_suite(self, folder, exit_code):
        self.events.append(("suite", exit_code))


def test_execute_pending_reports_every_new_record_to_the_active_tracker(tmp_path):
    def execute(run, on_step):
        for step in (10, 20):
            on_step(step, 1.0 / step)
        return {"key": run.key, "status": "ok"}, None

    log = RecordLog(tmp_path / "toy" / "runs.jsonl")
    log.append({"key": "done", "status": "ok"})  # finished before: resumed, so not reported again
    tracker = RecordingTracker()
    with tracking.activate(tracker):
        execute_pending([ToyRun("done", "old"), ToyRun("a", "new")], log, execute)
    assert tracker.events == [("run", "new", "a", tmp_path / "toy")]
    assert isinstance(tracking.active(), tracking.NullTracker)  # deactivated afterwards


def test_each_record_is_logged_with_its_own_curve_and_psnr_only_for_pixel_losses():
    fit = {"psnr_train": 20.0, "curve": {"step": [10, 20], "loss": [0.01, 0.001],
                                         "eval": {"step": [1, 20], "seconds": [0.1, 2.0], "psnr_test": [10.0, 25.0]}}}
    history = tracking.curve_history(fit)
    assert history[10] == {"train/loss": 0.01, "train/psnr": pytest.approx(20.0)}
    assert history[20] == {"train/loss": 0.001, "train/psnr": pytest.approx(30.0), "test/psnr": 25.0,
                           "train/seconds": 2.0}
    generative = {"fd": 12.0, "curve": {"step": [10], "loss": [250.0]}}  # a loss that is not a pixel MSE
    assert tracking.curve_history(generative) == {10: {"train/loss": 250.0}}


def test_an_unreachable_server_is_found_in_seconds_not_thirty(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.delenv("WANDB_MODE", raising=False)
    tracker = tracking.make_tracker(True, "fitting", tmp_path)
    assert tracker.settings.mode == "offline" and "cannot be reached" in capsys.readouterr().err


def test_record_fields_split_into_config_and_metrics():
    config, metrics = tracking.split_record({"representation": "siren", "seed": 0, "psnr_test": 20.5,
                                             "config": {"lr": 1e-3}, "curve": {"loss": [1.0]}, "ok": True})
    assert config == {"representation": "siren", "seed": 0, "config": {"lr": 1e-3}, "ok": True}
    assert metrics == {"seed": 0, "psnr_test": 20.5}
