"""The CI regression check: thresholds written from a run, passing, and failing on a regression injected into the
code or a threshold out of reach; for fitting (test PSNR) and compression (bits per pixel and the PSNR gap to JPEG
at matched rate) alike."""

import dataclasses
import json

import pytest

from fitbench.engine import FitConfig
from fitbench.suites.ci import DEFAULT_THRESHOLDS, Threshold, ThresholdFile, compare, configuration, settings_of

NARROW = ["--suite", "ci", "--reps", "relu_mlp", "--max-images", "1"]  # one fit: the check's logic, not its size


def test_update_then_pass_then_fail_when_a_threshold_is_out_of_reach(run_cli, tmp_path, monkeypatch):
    thresholds = tmp_path / "thresholds.json"
    code, stdout, _ = run_cli(*NARROW, "--out", tmp_path, "--thresholds", thresholds, "--update-thresholds")
    assert code == 0 and "thresholds rewritten" in stdout
    written = ThresholdFile.load(thresholds)
    record = json.loads((tmp_path / "ci" / "runs.jsonl").read_text().splitlines()[-1])
    entries = {(t.suite, t.representation, t.metric): t for t in written.thresholds}
    assert set(entries) == {("fitting", "relu_mlp", "psnr_test"), ("fitting", "bilinear", "psnr_test"),
                            ("fitting", "bicubic", "psnr_test"), ("compression", "relu_mlp", "bpp"),
                            ("compression", "relu_mlp", "delta_psnr")}
    fitted = entries[("fitting", "relu_mlp", "psnr_test")]
    assert fitted.measured == pytest.approx(record["psnr_test"], abs=1e-3)
    assert fitted.threshold == pytest.approx(record["psnr_test"] - 0.5, abs=0.01)

    # the compression entries are the stream's own numbers: its bytes, and JPEG's file at that size
    stream = next(json.loads(line) for line in (tmp_path / "ci" / "compression.jsonl").read_text().splitlines()
                  if json.loads(line)["kind"] == "representation")
    jpeg = next(json.loads(line) for line in (tmp_path / "ci" / "compression.jsonl").read_text().splitlines()
                if json.loads(line)["method"] == "jpeg")
    point = stream["points"][0]
    match = max((p for p in jpeg["points"] if p["bytes"] <= point["bytes"]), key=lambda p: p["bytes"])
    assert point["bpp"] == pytest.approx(8 * point["bytes"] / 64**2)
    assert entries[("compression", "relu_mlp", "bpp")].measured == pytest.approx(point["bpp"], abs=1e-3)
    assert entries[("compression", "relu_mlp", "bpp")].threshold == pytest.approx(point["bpp"] + 0.1, abs=0.01)
    assert entries[("compression", "relu_mlp", "delta_psnr")].measured == pytest.approx(
        point["psnr"] - match["psnr"], abs=1e-3)

    code, stdout, _ = run_cli(*NARROW, "--out", tmp_path, "--thresholds", thresholds)
    assert code == 0 and "all 5 checks pass" in stdout

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
    for entry in data["thresholds"]:
        if entry["representation"] == "relu_mlp" and entry["bound"] == "min":
            entry["threshold"] = entry["measured"] + 10  # out of reach
        if entry["metric"] == "bpp":
            entry["threshold"] = entry["measured"] - 0.01  # the stream grew past its maximum
    thresholds.write_text(json.dumps(data))
    code, stdout, err = run_cli(*NARROW, "--out", tmp_path, "--thresholds", thresholds)
    assert code == 1
    assert "REGRESSION fitting/relu_mlp/camera/psnr_test" in err and "3 regression(s)" in err
    assert "REGRESSION compression/relu_mlp/camera/delta_psnr" in err
    assert "REGRESSION compression/relu_mlp/camera/bpp" in err and "threshold <= " in err
    assert "bicubic" not in err  # only the regressions are named
    assert "REGRESSION" in stdout  # and the table marks them


def test_a_threshold_whose_representation_is_gone_is_a_regression():
    gone = Threshold("fitting", "removed_rep", "camera", "psnr_test", "min", 20.0, 20.5, 0.5)
    kept = Threshold("fitting", "relu_mlp", "camera", "psnr_test", "min", 20.0, 20.5, 0.5, settings_of("relu_mlp"))
    measured = {("fitting", "relu_mlp", "camera", "psnr_test"): 21.0,
                ("fitting", "siren", "camera", "psnr_test"): 25.0}
    rows, regressions = compare([gone, kept], measured, {("relu_mlp", "camera"), ("siren", "camera")})
    assert regressions == ["fitting/removed_rep/camera/psnr_test: no result, threshold >= 20.00"]
    assert [row[-1] for row in rows] == ["ok", "NOT MEASURED", "new (no threshold; --update-thresholds adds it)"]


def test_a_threshold_measured_with_other_settings_asks_for_new_thresholds():
    measured = {("fitting", "relu_mlp", "camera", "psnr_test"): 30.0}
    older = Threshold("fitting", "relu_mlp", "camera", "psnr_test", "min", 20.0, 20.5, 0.5,
                      {**settings_of("relu_mlp"), "width": 7})
    rows, regressions = compare([older], measured, {("relu_mlp", "camera")})
    assert rows[0][-1] == "SETTINGS CHANGED" and "rerun with --update-thresholds" in regressions[0]


def test_max_thresholds_bound_from_above():
    bpp = Threshold("compression", "siren", "camera", "bpp", "max", 2.0, 1.8, 0.2)
    assert bpp.passes(1.9) and not bpp.passes(2.1) and not bpp.passes(None)


def test_the_repository_thresholds_match_this_version_of_the_ci_configuration():
    stored = ThresholdFile.load(DEFAULT_THRESHOLDS)
    assert stored.configuration == configuration(), "rerun: python run_bench.py --suite ci --update-thresholds"
    for t in stored.thresholds:  # a floor sits the margin below the measured value, a ceiling above it
        assert t.threshold == pytest.approx(t.measured + (t.margin if t.bound == "max" else -t.margin), abs=0.01), t


@pytest.mark.parametrize("args, message", [
    (["--steps", "5"], "the ci suite runs a fixed configuration; drop --steps"),
    (["--threads-per-fit", "2"], "the ci suite runs a fixed configuration; drop --threads-per-fit"),
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
