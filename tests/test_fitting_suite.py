"""The fitting suite end to end on the smoke preset: the results contract, determinism, resume, failures."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import numpy as np
import pytest
import torch

from fitbench import representations as R
from fitbench.interpolation import INTERPOLATIONS

REPO = Path(__file__).resolve().parents[1]
CONTRACT = {"representation", "image", "protocol", "preset", "seed", "steps", "params", "psnr_train", "psnr_test",
            "psnr_full", "ssim_full", "seconds", "status"}


def read_runs(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "fitting" / "runs.jsonl").read_text().splitlines()]


def test_smoke_writes_the_contract_for_every_representation(run_cli, tmp_path):
    code, stdout, _ = run_cli("--suite", "fitting", "--preset", "smoke", "--out", tmp_path)
    assert code == 0
    runs = read_runs(tmp_path)
    assert all(CONTRACT <= set(r) for r in runs)
    fitted = {r["representation"] for r in runs if r["kind"] == "representation"}
    assert fitted == set(R.list_representations())
    assert {r["representation"] for r in runs if r["kind"] == "reference"} == set(INTERPOLATIONS)
    assert all(r["status"] == "ok" for r in runs)
    summary = pd.read_csv(tmp_path / "fitting" / "summary.csv")
    assert {"psnr_test_mean", "psnr_test_std", "ssim_full_mean"} <= set(summary.columns)
    assert set(summary["representation"]) == fitted | set(INTERPOLATIONS)
    leaderboard = (tmp_path / "fitting" / "leaderboard.md").read_text()
    assert "| siren |" in leaderboard and "bicubic" in leaderboard
    assert sorted(p.name for p in (tmp_path / "fitting" / "grids").glob("*.png")) == [
        "builtin-astronaut.png", "builtin-camera.png"]
    assert "leaderboard" in stdout.lower()


def test_same_command_twice_gives_identical_metrics(run_cli, tmp_path):
    args = ["--suite", "fitting", "--preset", "smoke", "--reps", "siren,fourier_features,rbf", "--max-images", "1"]
    for name in ("a", "b"):
        assert run_cli(*args, "--out", tmp_path / name)[0] == 0
    def strip(rows):  # everything but wall-clock times
        kept = [{k: r[k] for k in ("key", "psnr_test", "psnr_full", "ssim_full", "curve")} for r in rows]
        for row in kept:
            row["curve"].get("eval", {}).pop("seconds", None)
        return kept

    a, b = strip(read_runs(tmp_path / "a")), strip(read_runs(tmp_path / "b"))
    assert a == b and any(row["curve"].get("eval", {}).get("psnr_test") for row in a)


def test_killed_suite_resumes_where_it_stopped(tmp_path):
    command = [sys.executable, str(REPO / "run_bench.py"), "--suite", "fitting", "--preset", "smoke",
               "--out", str(tmp_path), "--steps", "300"]
    log = tmp_path / "fitting" / "runs.jsonl"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = read_runs(tmp_path)

    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    resumed = re.search(r"resuming: (\d+) of (\d+) runs already finished", finished.stderr)
    assert resumed, finished.stderr
    kept, total = int(resumed[1]), int(resumed[2])
    assert kept == len(before) and 4 <= kept < total, "the kill should land part-way through the runs"
    after = read_runs(tmp_path)
    assert len(after) == total and len({r["key"] for r in after}) == total
    assert after[: len(before)] == before  # finished runs are kept as they were, not redone


def test_fresh_moves_old_results_aside(run_cli, tmp_path):
    args = ["--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--max-images", "1", "--out", tmp_path]
    run_cli(*args)
    code, _, err = run_cli(*args, "--fresh")
    assert code == 0 and "moved to" in err
    assert len(list((tmp_path / "fitting").glob("runs.jsonl.*.bak"))) == 1


@pytest.fixture
def broken_representations():
    @R.register("_test_diverges", R.RepresentationConfig)
    def diverges(config, out_features):
        """Returns NaN."""
        class NaNs(torch.nn.Linear):
            def forward(self, x):
                return super().forward(x) * float("nan")
        return NaNs(2, out_features)

    @R.register("_test_raises", R.RepresentationConfig)
    def raises(config, out_features):
        """Fails to build."""
        raise RuntimeError("out of coffee")

    yield
    for name in ("_test_diverges", "_test_raises"):
        R.registry._REGISTRY.pop(name)


def test_diverged_and_failing_runs_are_recorded_and_the_suite_goes_on(run_cli, tmp_path, broken_representations):
    code, _, err = run_cli("--suite", "fitting", "--preset", "smoke", "--max-images", "1",
                           "--reps", "_test_diverges,_test_raises,relu_mlp", "--out", tmp_path)
    assert code == 1  # a run that raised fails the suite (a diverged fit is a result, not a failure)
    assert "error: _test_raises on camera: RuntimeError: out of coffee" in err and "1 run(s) failed" in err
    status = {r["representation"]: r for r in read_runs(tmp_path)}
    assert status["_test_diverges"]["status"] == "diverged"
    assert status["_test_raises"]["status"] == "error"
    assert status["_test_raises"]["error"] == "RuntimeError: out of coffee"
    assert status["relu_mlp"]["status"] == "ok"
    assert "ERROR RuntimeError: out of coffee" in err


def test_batched_fitting_matches_one_by_one(run_cli, tmp_path):
    args = ["--suite", "fitting", "--preset", "smoke", "--reps", "siren,relu_mlp", "--seeds", "2", "--max-images", "1"]
    assert run_cli(*args, "--batch", "on", "--out", tmp_path / "on")[0] == 0
    assert run_cli(*args, "--batch", "off", "--out", tmp_path / "off")[0] == 0
    on = {r["key"]: r for r in read_runs(tmp_path / "on") if r["kind"] == "representation"}
    off = {r["key"]: r for r in read_runs(tmp_path / "off") if r["kind"] == "representation"}
    assert on.keys() == off.keys() and all(r["batch"] == 2 for r in on.values())
    for key in on:
        assert on[key]["psnr_test"] == pytest.approx(off[key]["psnr_test"], abs=0.05)


def test_a_grid_shows_each_panel_and_its_error_on_the_fixed_scale(tmp_path):
    """Each panel fills a GRID_CELL square: the reconstruction in its own colour, its |error| map in the palette's
    colour for that error (half the scale: level 128)."""
    from PIL import Image

    from fitbench.figures import ERROR_RANGE, GRID_CELL, error_palette, reconstruction_grid

    truth = np.zeros((32, 32, 3), np.float32)
    flat = np.full_like(truth, ERROR_RANGE / 2)
    reconstruction_grid(truth, [("flat\n1.00 dB", flat)], "a hand case", tmp_path / "grid.png")
    pixels = np.asarray(Image.open(tmp_path / "grid.png").convert("RGB")).reshape(-1, 3)

    def count(colour) -> int:
        return int((pixels == np.asarray(colour, np.uint8)).all(axis=1).sum())

    assert count((32, 32, 32)) >= GRID_CELL**2  # 0.125 * 255, rounded half up (a few text pixels match too)
    assert count(error_palette()[128]) >= GRID_CELL**2  # the error map (and the bar's band at that level)
    assert count((0, 0, 0)) >= GRID_CELL**2 + 3 * GRID_CELL**2 // 4  # the truth, and the training pixels' zeros
