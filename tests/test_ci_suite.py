"""The CI regression check: thresholds written from a run, passing, and failing when a threshold is out of reach."""

import json

import pytest

from fitbench.suites.ci import DEFAULT_THRESHOLDS, Threshold, ThresholdFile, compare, configuration, settings_of

NARROW = ["--suite", "ci", "--reps", "relu_mlp", "--max-images", "1"]  # one fit: the check's logic, not its size


def test_update_then_pass_then_fail_when_a_threshold_is_out_of_reach(run_cli, tmp_path):
    thresholds = tmp_path / "thresholds.json"
    code, stdout, _ = run_cli(*NARROW, "--out", tmp_path, "--thresholds", thresholds, "--update-thresholds")
    assert code == 0 and "thresholds rewritten" in stdout
    written = ThresholdFile.load(thresholds)
    record = json.loads((tmp_path / "ci" / "runs.jsonl").read_text().splitlines()[-1])
    entries = {t.representation: t for t in written.thresholds}
    assert set(entries) == {"relu_mlp", "bilinear", "bicubic"}
    assert entries["relu_mlp"].measured == pytest.approx(record["psnr_test"], abs=1e-3)
    assert entries["relu_mlp"].threshold == pytest.approx(record["psnr_test"] - 0.5, abs=0.01)

    code, stdout, _ = run_cli(*NARROW, "--out", tmp_path, "--thresholds", thresholds)
    assert code == 0 and "all 3 checks pass" in stdout

    data = json.loads(thresholds.read_text())
    for entry in data["thresholds"]:
        if entry["representation"] == "relu_mlp":
            entry["threshold"] = entry["measured"] + 10  # out of reach
    thresholds.write_text(json.dumps(data))
    code, stdout, err = run_cli(*NARROW, "--out", tmp_path, "--thresholds", thresholds)
    assert code == 1
    assert "REGRESSION fitting/relu_mlp/camera/psnr_test" in err and "1 regression(s)" in err
    assert "bicubic" not in err  # only the regression is named
    assert "REGRESSION" in stdout  # and the table marks it


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
    assert all(t.threshold == pytest.approx(t.measured - t.margin, abs=0.01) for t in stored.thresholds)


@pytest.mark.parametrize("args, message", [
    (["--steps", "5"], "the ci suite runs a fixed configuration; drop --steps"),
    (["--thresholds", "/nonexistent/t.json"], "does not exist; create it with"),
])
def test_bad_input_is_one_clear_error(run_cli, tmp_path, args, message):
    code, _, err = run_cli("--suite", "ci", "--out", tmp_path, *args)
    assert code == 2 and err.startswith("error: ") and message in err
