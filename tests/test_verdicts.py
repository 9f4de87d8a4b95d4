"""Verdicts a reviewer accepts (issue 9): intervals, paired tests, budgets, and settings tuned apart from evaluation."""

import json

import numpy as np
import pytest
from PIL import Image
from scipy import stats as scipy_stats

from fitbench import representations as R
from fitbench.report import leaderboard_markdown, summarize
from fitbench.stats import ci_half_width, paired_comparison, wilcoxon_p
from fitbench.suites.tune import trial_settings


def test_interval_matches_scipy_and_a_hand_case():
    values = [20.0, 21.0, 23.0, 22.5, 19.5]
    low, high = scipy_stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert ci_half_width(values) == pytest.approx((high - low) / 2)
    assert ci_half_width([1.0, 3.0]) == pytest.approx(12.7062 * 1.0, rel=1e-4)  # t(0.975, 1) * s / sqrt(2), s = sqrt 2
    assert np.isnan(ci_half_width([5.0]))


def test_wilcoxon_exact_p_of_five_positive_differences_is_two_over_thirty_two():
    assert wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(2 / 32)
    assert wilcoxon_p([0.5, -0.1, 0.2, -0.3, 0.4]) > 0.3
    assert np.isnan(wilcoxon_p([0.0, 0.2]))


def test_paired_comparison_verdicts():
    clear = paired_comparison({f"img{i}": [1.0 + 0.01 * i, 1.02 + 0.01 * i] for i in range(5)})
    assert clear.verdict == "above" and clear.images == 5 and clear.pairs == 10
    assert paired_comparison({f"img{i}": [-1.0 - 0.1 * i] for i in range(4)}).verdict == "below"
    assert paired_comparison({"a": [1.0], "b": [-1.2], "c": [0.3]}).verdict == "not distinguishable"
    assert paired_comparison({"a": [1.0]}).verdict == "one run: no interval"


def record(representation, image, seed, psnr, kind="representation", **extra):
    return {"representation": representation, "kind": kind, "image": image, "image_set": "builtin",
            "protocol": "alternate", "preset": "standard", "seed": seed, "steps": 0 if kind == "reference" else 300,
            "max_steps": 0 if kind == "reference" else 300, "params": 0 if kind == "reference" else 100,
            "status": "ok", "psnr_test": psnr, "psnr_full": psnr, "ssim_full": 0.5, "psnr_train": psnr,
            "seconds": 1.0, "key": f"{representation}-{image}-{seed}-{extra}", **extra}


def test_summary_carries_intervals_and_the_paired_gap_to_bicubic():
    rng = np.random.default_rng(0)
    images = [f"img{i}" for i in range(5)]
    rows = [record("bicubic", image, 0, 25 + i, kind="reference") for i, image in enumerate(images)]
    rows += [record("good", image, s, 25 + i + 1 + rng.normal(0, 0.05)) for i, image in enumerate(images) for s in range(3)]
    rows += [record("coin", image, s, 25 + i + rng.normal(0, 1)) for i, image in enumerate(images) for s in range(3)]
    summary = summarize(rows).set_index("representation")
    good = summary.loc["good"]
    assert good["delta_bicubic_mean"] == pytest.approx(1.0, abs=0.05)
    assert good["verdict"] == "above bicubic" and good["delta_bicubic_p"] == pytest.approx(2 / 32)
    scores = [r["psnr_test"] for r in rows if r["representation"] == "good"]
    assert good["psnr_test_ci95"] == pytest.approx(ci_half_width(scores))
    assert summary.loc["coin", "verdict"] == "not distinguishable from bicubic"
    table = leaderboard_markdown(summarize(rows))
    assert "above bicubic" in table and "not distinguishable from bicubic" in table and "0.062 (5)" in table


def test_each_budget_gets_its_own_table_with_the_references():
    rows = [record("bicubic", "img0", 0, 25, kind="reference"), record("bicubic", "img1", 0, 26, kind="reference")]
    for budget in (None, 10.0, 60.0):
        rows += [record("fast", image, 0, 24 + (budget or 0) / 60, budget_seconds=budget) for image in ("img0", "img1")]
    summary = summarize(rows)
    assert sorted(set(summary["budget"])) == ["10 s", "300 steps", "60 s"]
    assert (summary["representation"] == "bicubic").sum() == 3  # the reference in each table
    markdown = leaderboard_markdown(summary)
    assert "budget 10 s" in markdown and "budget 60 s" in markdown and "budget 300 steps" in markdown


def test_every_registered_search_space_gives_the_same_number_of_trials():
    for name in R.list_representations():
        assert len(trial_settings(name, 12)) == 12, name
        assert "lr" in R.get_entry(name).search, f"{name} must let the tuner choose its learning rate"


def test_a_search_space_smaller_than_the_trials_is_refused():
    with pytest.raises(ValueError, match="fewer than the 13 trials"):
        trial_settings("siren", 13)


def test_tuning_on_the_images_a_preset_evaluates_is_refused(run_cli, tmp_path):
    code, _, err = run_cli("--suite", "tune", "--preset", "standard", "--images", "builtin", "--out", tmp_path)
    assert code == 2 and "refusing to tune preset standard on builtin" in err and "evaluates on builtin" in err


def smooth_images(folder, count=2, side=40):
    folder.mkdir(parents=True)
    y, x = np.mgrid[0:side, 0:side] / side
    for i in range(count):
        image = np.stack([np.sin((3 + i) * x * 4), np.cos(4 * y * 3), x * y], -1) * 0.5 + 0.5
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"tune{i}.png")
    return folder


def test_tune_writes_its_choice_and_a_fit_that_reads_it_names_it(run_cli, tmp_path):
    tuning = smooth_images(tmp_path / "tuning")
    code, out, _ = run_cli("--suite", "tune", "--preset", "smoke", "--reps", "rbf", "--images", tuning,
                           "--trials", "3", "--steps", "20", "--out", tmp_path / "out")
    assert code == 0
    tuned = json.loads((tmp_path / "out" / "reference" / "tuned" / "smoke.json").read_text())
    entry = tuned["representations"]["rbf"]
    assert len(entry["trials"]) == 3 and entry["score"] == max(t["score"] for t in entry["trials"])
    assert tuned["tuning_images"] == {str(tuning): ["tune0", "tune1"]} and tuned["budget"]["steps"] == 20
    trials = [json.loads(line) for line in (tmp_path / "out" / "tune" / "runs.jsonl").read_text().splitlines()]
    assert len(trials) == 6 and {t["image"] for t in trials} == {"tune0", "tune1"}

    path = tmp_path / "out" / "reference" / "tuned" / "smoke.json"
    code, _, _ = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "rbf", "--max-images", "1",
                         "--steps", "5", "--tuned", path, "--out", tmp_path / "fit")
    assert code == 0
    fit = [json.loads(line) for line in (tmp_path / "fit" / "fitting" / "runs.jsonl").read_text().splitlines()
           if '"rbf"' in line][0]
    assert all(fit["config"][k] == v for k, v in entry["chosen"].items())
    assert fit["settings_from"].startswith("tuned: ") and "TUNED ON THIS IMAGE SET" not in fit["settings_from"]
    assert "Settings: tuned: " in (tmp_path / "fit" / "fitting" / "leaderboard.md").read_text()


def test_parameter_matched_sizes_land_near_the_target(run_cli, tmp_path):
    code, _, _ = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "siren,relu_mlp,rbf", "--params", "3000",
                         "--max-images", "1", "--steps", "3", "--out", tmp_path)
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "fitting" / "runs.jsonl").read_text().splitlines()]
    fitted = [r for r in rows if r["kind"] == "representation"]
    assert {r["preset"] for r in rows} == {"smoke@3000params"}
    assert all(abs(r["params"] - 3000) / 3000 < 0.25 for r in fitted), [(r["representation"], r["params"]) for r in fitted]


def test_a_time_budget_is_recorded_and_bounds_the_fit(run_cli, tmp_path):
    code, _, _ = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--max-images", "1",
                         "--budget-seconds", "0.5", "--out", tmp_path)
    assert code == 0
    fit = [json.loads(line) for line in (tmp_path / "fitting" / "runs.jsonl").read_text().splitlines()
           if '"relu_mlp"' in line][0]
    assert fit["budget_seconds"] == 0.5 and fit["seconds"] < 5 and fit["steps"] < fit["max_steps"]
    assert fit["curve"]["eval"]["seconds"][-1] <= fit["seconds"] + 1e-3  # (stored to 0.1 ms)


def test_tuning_halves_the_trials_after_the_first_image_of_each_set(run_cli, tmp_path, monkeypatch):
    from fitbench.suites import tune

    tuning = smooth_images(tmp_path / "tuning", count=3)
    monkeypatch.setitem(tune.TUNING_PLANS, "smoke", tune.TuningPlan(((str(tuning), 3),), trials=3, finalists=1))
    code, _, _ = run_cli("--suite", "tune", "--preset", "smoke", "--reps", "rbf", "--steps", "10",
                         "--out", tmp_path / "out")
    assert code == 0
    fits = [json.loads(line) for line in (tmp_path / "out" / "tune" / "runs.jsonl").read_text().splitlines()]
    assert len(fits) == 3 + 2  # three trials on the first image, the one finalist on the two others
    entry = json.loads((tmp_path / "out" / "reference" / "tuned" / "smoke.json").read_text())["representations"]["rbf"]
    finalist = [t for t in entry["trials"] if t["images"] == 3]
    assert len(finalist) == 1 and entry["chosen"] == finalist[0]["settings"]
    first_round = {json.dumps(t["settings"]): t["score"] for t in entry["trials"]}
    assert len(first_round) == 3
