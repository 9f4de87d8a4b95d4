"""The CI regression check: thresholds written from runs under several kernel paths, passing under each, and failing
on a regression injected into the code or a threshold out of reach; for fitting (test PSNR) and compression (bits
per pixel and the PSNR gap to JPEG at matched rate) alike."""

import dataclasses
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from fitbench.engine import FitConfig
from fitbench.interpolation import INTERPOLATIONS
from fitbench.suites import ci
from fitbench.suites.ci import (BITS_PER_PIXEL, DECIBELS, DEFAULT_THRESHOLDS, CHECKS, KernelPath, MarginRule,
                                Threshold, ThresholdFile, compare, configuration, environment_for,
                                settings_of, thresholds_from)

REPOSITORY = Path(__file__).resolve().parents[1]
NARROW = ["--suite", "ci", "--reps", "relu_mlp", "--max-images", "1"]  # one fit: the check's logic, not its size
# Two kernel paths that share no vector code and no thread count: what a test can afford of KERNEL_PATHS.
TWO_PATHS = (KernelPath("default", 1, generic_gemm=True), KernelPath("avx2", 2))
CHECKED_SUBSET = "finer,relu_mlp"  # the two whose values moved most between CPUs when the margins were set


def records(folder: Path, file: str) -> list[dict]:
    return [json.loads(line) for line in (folder / "ci" / file).read_text().splitlines()]


def stream_values(folder: Path) -> tuple[float, float]:
    """(bpp, delta_psnr) of the one stream in `folder`, from the records: its bytes, and JPEG's file at that size."""
    stream = next(r for r in records(folder, "compression.jsonl") if r["kind"] == "representation")
    jpeg = next(r for r in records(folder, "compression.jsonl") if r["method"] == "jpeg")
    point = stream["points"][0]
    match = max((p for p in jpeg["points"] if p["bytes"] <= point["bytes"]), key=lambda p: p["bytes"])
    assert point["bpp"] == pytest.approx(8 * point["bytes"] / 64**2)
    return point["bpp"], point["psnr"] - match["psnr"]


def test_update_then_pass_then_fail_when_a_threshold_is_out_of_reach(run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(ci, "KERNEL_PATHS", TWO_PATHS)
    thresholds = tmp_path / "thresholds.json"
    code, stdout, err = run_cli(*NARROW, "--out", tmp_path, "--thresholds", thresholds, "--update-thresholds")
    assert code == 0 and "thresholds rewritten" in stdout, err
    written = ThresholdFile.load(thresholds)
    assert written.kernel_paths == ["default-generic-gemm-1t", "avx2-2t"]
    # each path ran in its own process on its own kernels (or this CPU's best below them)
    folders = [tmp_path / "ci" / "kernel_paths" / name for name in written.kernel_paths]
    kernels = [json.loads((folder / "ci" / "measured.json").read_text())["kernel"] for folder in folders]
    assert kernels[0] == "DEFAULT, MKL_CBWR=COMPATIBLE, 1 thread" and kernels[1].endswith("MKL_CBWR=auto, 2 threads")

    entries = {(t.suite, t.representation, t.metric): t for t in written.thresholds + written.unchecked}
    assert set(entries) == {("fitting", "relu_mlp", "psnr_test"), ("compression", "relu_mlp", "bpp"),
                            ("compression", "relu_mlp", "delta_psnr"),
                            *(("fitting", name, "psnr_test") for name in INTERPOLATIONS)}
    # measured = the median across the paths, spread = their range, margin = max(factor x spread, floor)
    fitted = [next(r for r in records(folder, "runs.jsonl") if r["representation"] == "relu_mlp")["psnr_test"]
              for folder in folders]
    streams = [stream_values(folder) for folder in folders]
    for key, values, rule in [(("fitting", "relu_mlp", "psnr_test"), fitted, DECIBELS),
                              (("compression", "relu_mlp", "bpp"), [bpp for bpp, _ in streams], BITS_PER_PIXEL),
                              (("compression", "relu_mlp", "delta_psnr"), [delta for _, delta in streams], DECIBELS)]:
        entry = entries[key]
        assert entry.measured == pytest.approx(statistics.median(values), abs=1e-3)
        assert entry.spread == pytest.approx(max(values) - min(values), abs=2e-3)
        if isinstance(entry, Threshold):
            assert entry.margin == pytest.approx(rule.margin(entry.spread)) and entry.margin >= rule.minimum
            assert entry.threshold == pytest.approx(entry.measured + entry.margin * (1 if entry.bound == "max" else -1))
            assert all(entry.passes(value) for value in values)
    assert (tmp_path / "ci" / "spread.csv").read_text().startswith(
        "check,default-generic-gemm-1t,avx2-2t,median,spread,margin,threshold,unchecked")

    # the check passes under each path it was measured on, and in this process (this CPU's own kernels)
    for path in TWO_PATHS:
        result = subprocess.run([sys.executable, "run_bench.py", *NARROW, "--out", tmp_path / path.name,
                                 "--thresholds", thresholds, "--threads-per-fit", str(path.threads)],
                                cwd=REPOSITORY, env=environment_for(path), capture_output=True, text=True)
        assert result.returncode == 0 and "checks pass" in result.stdout, result.stderr
    code, stdout, _ = run_cli(*NARROW, "--out", tmp_path / "here", "--thresholds", thresholds)
    assert code == 0 and f"all {len(written.thresholds)} checks pass" in stdout

    # a real regression, injected into the code: every fit's learning rate 100x too small. The check must catch it
    # from the measurements alone (a fresh --out: records of unchanged source files would be reused).
    original = FitConfig.for_representation.__func__
    monkeypatch.setattr(FitConfig, "for_representation", classmethod(
        lambda cls, config, steps, **settings: dataclasses.replace(original(cls, config, steps, **settings),
                                                                   lr=config.lr / 100)))
    code, stdout, err = run_cli(*NARROW, "--out", tmp_path / "injected", "--thresholds", thresholds)
    monkeypatch.undo()
    assert code == 1 and "regression(s)" in err, err
    assert "REGRESSION fitting/relu_mlp/camera/psnr_test" in err
    assert "REGRESSION compression/relu_mlp/camera/delta_psnr" in err

    data = json.loads(thresholds.read_text())
    data["unchecked"] = []
    data["thresholds"] += [{**entry, "threshold": entry["measured"], "spread": 0.0, "margin": 0.2}
                           for entry in json.loads(thresholds.read_text())["unchecked"]]
    for entry in data["thresholds"]:
        if entry["representation"] == "relu_mlp" and entry["bound"] == "min":
            entry["threshold"] = entry["measured"] + 10  # out of reach
        if entry["metric"] == "bpp":
            entry["threshold"] = entry["measured"] - 0.01  # the stream grew past its maximum
    thresholds.write_text(json.dumps(data))
    code, stdout, err = run_cli(*NARROW, "--out", tmp_path / "here", "--thresholds", thresholds)
    assert code == 1
    assert "REGRESSION fitting/relu_mlp/camera/psnr_test" in err and "3 regression(s)" in err
    assert "REGRESSION compression/relu_mlp/camera/delta_psnr" in err
    assert "REGRESSION compression/relu_mlp/camera/bpp" in err and "threshold <= " in err
    assert "bicubic" not in err  # only the regressions are named
    assert "REGRESSION" in stdout  # and the table marks them


def test_a_threshold_whose_representation_is_gone_is_a_regression():
    gone = Threshold("fitting", "removed_rep", "camera", "psnr_test", "min", 20.0, 20.5, 0.1, 0.5)
    kept = Threshold("fitting", "relu_mlp", "camera", "psnr_test", "min", 20.0, 20.5, 0.1, 0.5,
                     settings_of("relu_mlp"))
    measured = {("fitting", "relu_mlp", "camera", "psnr_test"): 21.0,
                ("fitting", "siren", "camera", "psnr_test"): 25.0}
    rows, regressions = compare([gone, kept], measured, {("relu_mlp", "camera"), ("siren", "camera")})
    assert regressions == ["fitting/removed_rep/camera/psnr_test: no result, threshold >= 20.00"]
    assert [row[-1] for row in rows] == ["ok", "NOT MEASURED", "new (no threshold; --update-thresholds adds it)"]


def test_a_threshold_measured_with_other_settings_asks_for_new_thresholds():
    measured = {("fitting", "relu_mlp", "camera", "psnr_test"): 30.0}
    older = Threshold("fitting", "relu_mlp", "camera", "psnr_test", "min", 20.0, 20.5, 0.1, 0.5,
                      {**settings_of("relu_mlp"), "width": 7})
    rows, regressions = compare([older], measured, {("relu_mlp", "camera")})
    assert rows[0][-1] == "SETTINGS CHANGED" and "rerun with --update-thresholds" in regressions[0]


def test_max_thresholds_bound_from_above():
    bpp = Threshold("compression", "siren", "camera", "bpp", "max", 2.0, 1.8, 0.01, 0.2)
    assert bpp.passes(1.9) and not bpp.passes(2.1) and not bpp.passes(None)


def test_the_repository_thresholds_match_this_version_of_the_ci_configuration():
    stored = ThresholdFile.load(DEFAULT_THRESHOLDS)
    assert stored.configuration == configuration(), "rerun: python run_bench.py --suite ci --update-thresholds"
    # measured across vector widths and thread counts, not on one path
    assert len(stored.kernel_paths) >= 2 and any(name.endswith("-2t") for name in stored.kernel_paths)
    rules = {(c.suite, c.metric): c.rule for c in CHECKS}
    for t in stored.thresholds:  # a floor sits the margin below the measured value, a ceiling above it
        rule = rules[(t.suite, t.metric)]
        assert t.spread <= rule.chaotic and t.margin == pytest.approx(rule.margin(t.spread), abs=0.01), t
        assert t.threshold == pytest.approx(t.measured + (t.margin if t.bound == "max" else -t.margin), abs=1e-6), t
    for u in stored.unchecked:
        assert u.spread is None or u.spread > rules[(u.suite, u.metric)].chaotic, u


IDENTITY = ("fitting", "siren", "camera", "psnr_test")


@pytest.mark.parametrize("values, measured, spread, threshold", [
    ([20.0, 20.05, 20.01], 20.01, 0.05, 19.71),  # a small spread: the floor, 0.3 dB
    ([20.0, 20.15, 20.04], 20.04, 0.15, 19.59),  # 3 x spread above the floor
])
def test_a_margin_is_the_larger_of_three_spreads_and_the_floor(values, measured, spread, threshold):
    thresholds, unchecked = thresholds_from({f"path{i}": {IDENTITY: v} for i, v in enumerate(values)})
    assert unchecked == [] and len(thresholds) == 1
    t = thresholds[0]
    assert (t.measured, t.spread, t.threshold) == pytest.approx((measured, spread, threshold))
    assert all(t.passes(v) for v in values) and t.settings == settings_of("siren")


def test_a_bpp_ceiling_sits_above_every_path():
    bpp = ("compression", "siren", "camera", "bpp")
    [t], _ = thresholds_from({"a": {bpp: 2.30}, "b": {bpp: 2.32}})
    assert t.bound == "max" and t.margin == pytest.approx(0.06) and t.threshold == pytest.approx(2.37)


def test_a_chaotic_metric_or_one_that_applies_on_some_paths_only_gets_no_threshold():
    delta = ("compression", "siren", "camera", "delta_psnr")
    thresholds, unchecked = thresholds_from({"a": {IDENTITY: 20.0, delta: -3.0}, "b": {IDENTITY: 20.5}})
    assert thresholds == []
    reasons = {u.metric: u.reason for u in unchecked}
    assert reasons["psnr_test"].startswith("chaotic: moves by 0.50 dB")
    assert "applies under only 1 of 2 kernel paths" in reasons["delta_psnr"]
    # the check lists it, and does not fail on it
    rows, regressions = compare([], {IDENTITY: 19.0}, {("siren", "camera")}, unchecked)
    assert regressions == [] and rows[0][-1].startswith("unchecked (chaotic")


def test_a_failed_path_names_itself():
    with pytest.raises(ValueError, match="failed under kernel path b"):
        thresholds_from({"a": {IDENTITY: 20.0}, "b": {IDENTITY: None}})


def test_no_threshold_is_written_within_the_minimum_of_its_value():
    careless = MarginRule("dB", factor=3.0, floor=0.05, minimum=0.1, chaotic=0.3)
    assert careless.margin(0.04) == pytest.approx(0.12)
    with pytest.raises(ValueError, match="below the 0.1 dB minimum"):
        careless.margin(0.01)
    for rule in (DECIBELS, BITS_PER_PIXEL):  # the shipped rules never come near it
        assert rule.floor >= rule.minimum and rule.margin(0.0) >= rule.minimum


@pytest.mark.slow
def test_the_repository_thresholds_hold_under_two_kernel_paths(tmp_path):
    """The shipped file, checked as another CPU would run it: no vector code with MKL's generic GEMM on 2 threads,
    and AVX2 on 1 (a subset of representations keeps it short)."""
    for path in (KernelPath("default", 2, generic_gemm=True), KernelPath("avx2", 1)):
        result = subprocess.run([sys.executable, "run_bench.py", "--suite", "ci", "--reps", CHECKED_SUBSET,
                                 "--out", tmp_path / path.name, "--threads-per-fit", str(path.threads)],
                                cwd=REPOSITORY, env=environment_for(path), capture_output=True, text=True)
        assert result.returncode == 0 and "checks pass" in result.stdout, (path, result.stdout, result.stderr)


@pytest.mark.parametrize("args, message", [
    (["--steps", "5"], "unrecognized arguments: --steps 5"),  # not a ci flag at all: its configuration is fixed
    (["--set", "siren.width=8"], "unrecognized arguments: --set"),
    (["--precision", "bf16"], "unrecognized arguments: --precision"),
    (["--size", "64"], "the ci suite runs a fixed configuration; drop --size"),
    (["--measure-only", "--update-thresholds"], "--measure-only and --update-thresholds: choose one"),
    (["--thresholds", "/nonexistent/t.json"], "does not exist; create it with"),
])
def test_bad_input_is_one_clear_error(run_cli, tmp_path, args, message):
    code, _, err = run_cli("--suite", "ci", "--out", tmp_path, *args)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and message in errors[0]


def test_a_stream_smaller_than_any_jpeg_file_is_checked_on_its_rate_only():
    from fitbench.suites.ci import measure

    jpeg = {"method": "jpeg", "kind": "codec", "image": "camera", "status": "ok",
            "points": [{"setting": "q=1", "bytes": 300, "bpp": 0.6, "psnr": 20.0}]}
    tiny = {"method": "rbf", "kind": "representation", "image": "camera", "status": "ok",
            "points": [{"setting": "grid=4 q8", "bytes": 100, "bpp": 0.2, "psnr": 15.0}]}
    failed = {"method": "siren", "kind": "representation", "image": "camera", "status": "error", "points": []}
    measured = measure({"compression": [jpeg, tiny, failed]})
    assert measured == {("compression", "rbf", "camera", "bpp"): 0.2,  # no JPEG that small: no delta_psnr
                        ("compression", "siren", "camera", "bpp"): None,  # a failed run fails every check
                        ("compression", "siren", "camera", "delta_psnr"): None}
