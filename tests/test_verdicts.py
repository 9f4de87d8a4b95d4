"""Verdicts a reviewer accepts: budgets, and settings tuned apart from evaluation (statistics: test_statistics.py)."""

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from fitbench import representations as R
from fitbench.report import leaderboard_markdown, summarize
from fitbench.suites.tune import Search, grid_points, search_axes, step_past
from fitbench.tuned import SHIPPED, TUNER, is_clean_commit


def record(representation, image, seed, psnr, kind="representation", **extra):
    return {"representation": representation, "kind": kind, "image": image, "image_set": "builtin",
            "protocol": "alternate", "preset": "standard", "seed": seed, "steps": 0 if kind == "reference" else 300,
            "max_steps": 0 if kind == "reference" else 300, "params": 0 if kind == "reference" else 100,
            "status": "ok", "psnr_test": psnr, "psnr_full": psnr, "ssim_full": 0.5, "psnr_train": psnr,
            "seconds": 1.0, "key": f"{representation}-{image}-{seed}-{extra}", **extra}


def test_each_budget_gets_its_own_table_with_the_references():
    rows = [record("bicubic", "img0", 0, 25, kind="reference"), record("bicubic", "img1", 0, 26, kind="reference")]
    for budget in (None, 10.0, 60.0):
        rows += [record("fast", image, 0, 24 + (budget or 0) / 60, budget_seconds=budget) for image in ("img0", "img1")]
    summary = summarize(rows)
    assert sorted(set(summary["budget"])) == ["10 s", "300 steps", "60 s"]
    assert (summary["representation"] == "bicubic").sum() == 3  # the reference in each table
    markdown = leaderboard_markdown(summary)
    assert "budget 10 s" in markdown and "budget 60 s" in markdown and "budget 300 steps" in markdown


def test_every_search_space_is_a_full_grid_of_twelve_points_around_the_starting_settings():
    for name in R.list_representations():
        start = R.make_config(name, **R.sized_overrides(name, "standard"))  # what the quick and standard presets tune
        declared = R.get_entry(name).search
        assert "lr" in declared, f"{name} must let the tuner choose its learning rate"
        assert all(getattr(start, k) in v for k, v in declared.items()), f"{name}: starting settings not in its grid"
        points = grid_points(search_axes(name, start))
        assert len(points) == 12 and len({json.dumps(p, sort_keys=True) for p in points}) == 12, name
        for lr in declared["lr"]:  # each learning rate with every value of the other setting
            assert sum(p["lr"] == lr for p in points) == 12 // len(declared["lr"]), name


def test_a_starting_value_missing_from_the_grid_joins_it():
    axes = search_axes("rbf", R.make_config("rbf", lr=0.02))
    assert axes["lr"] == [0.015, 0.02, 0.05, 0.15, 0.5] and len(grid_points(axes)) == 15


def test_a_grid_grows_past_the_edge_its_best_point_sits_on_at_most_twice_per_setting():
    search = Search("grid", {"lr": [0.01, 0.1], "levels": [1, 2, 4]}, base={})
    assert len(search.grow({"lr": 0.1, "levels": 2}, limit=2)) == 1 and search.axes["lr"] == [0.01, 0.1, 1.0]
    search.grow({"lr": 1.0, "levels": 4}, limit=2)  # both on their upper edges
    assert search.axes == {"lr": [0.01, 0.1, 1.0, 10.0], "levels": [1, 2, 4, 8]}
    assert search.grow({"lr": 10.0, "levels": 2}, limit=2) == []  # lr has had its two extensions
    assert "after 2 extension(s)" in search.stopped["lr"]
    search.grow({"lr": 1.0, "levels": 1}, limit=2)  # a level below 1 is not valid
    assert search.axes["levels"] == [1, 2, 4, 8] and "outside its valid range" in search.stopped["levels"]
    assert [(e["setting"], e["value"], e["direction"]) for e in search.extensions] == [
        ("lr", 1.0, "up"), ("lr", 10.0, "up"), ("levels", 8, "up")]
    assert step_past(["constant", "cosine"], upward=True) is None  # categories do not extend


def test_tuning_on_the_images_a_preset_evaluates_is_refused(run_cli, tmp_path):
    from fitbench.presets import get_preset

    evaluated = get_preset("standard").image_set.split(",")[-1]  # any one of the sets it evaluates on
    code, _, err = run_cli("--suite", "tune", "--preset", "standard", "--images", evaluated, "--out", tmp_path)
    assert code == 2 and f"refusing to tune preset standard on {evaluated}" in err and "evaluates on" in err


def smooth_images(folder, count=2, side=40):
    folder.mkdir(parents=True)
    y, x = np.mgrid[0:side, 0:side] / side
    for i in range(count):
        image = np.stack([np.sin((3 + i) * x * 4), np.cos(4 * y * 3), x * y], -1) * 0.5 + 0.5
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"tune{i}.png")
    return folder


def small_rbf_space(monkeypatch, **search):
    """rbf with a tiny search space, so that a tuning test runs a handful of fits."""
    from fitbench.representations import registry

    entry = registry.get_entry("rbf")
    monkeypatch.setitem(registry._REGISTRY, "rbf", dataclasses.replace(entry, search=search))


def test_tune_writes_its_choice_and_a_fit_that_reads_it_names_it(run_cli, tmp_path, monkeypatch):
    small_rbf_space(monkeypatch, lr=(0.05, 0.15), width_in_spacings=(0.7,))
    tuning = smooth_images(tmp_path / "tuning")
    code, out, err = run_cli("--suite", "tune", "--preset", "smoke", "--reps", "rbf", "--images", tuning,
                             "--steps", "20", "--out", tmp_path / "out")
    assert code == 0
    tuned = json.loads((tmp_path / "out" / "reference" / "tuned" / "smoke.json").read_text())
    entry = tuned["representations"]["rbf"]
    assert tuned["tuner"] == TUNER and tuned["clean_commit"] == is_clean_commit(tuned["commit"])
    assert tuned["tuning_images"] == {str(tuning): ["tune0", "tune1"]} and tuned["budget"]["steps"] == 20
    finalists = [t for t in entry["trials"] if t["final"] is not None]
    assert entry["score"] == max(t["final"] for t in finalists) and entry["chosen"] in [t["settings"] for t in finalists]
    # every point screened on tune0; a grid that grew says so on stderr and in the file
    assert len(entry["trials"]) == 2 + len(entry["extensions"]) and all(t["screening"] for t in entry["trials"])
    assert all(f"adding {e['value']:g}" in err for e in entry["extensions"])
    fits = [json.loads(line) for line in (tmp_path / "out" / "tune" / "runs.jsonl").read_text().splitlines()]
    final_fits = [f for f in fits if f["seed"] == 1 or f["image"] == "tune1"]
    assert {(f["image"], f["seed"]) for f in final_fits} == {("tune1", 0), ("tune0", 1), ("tune1", 1)}
    assert len(final_fits) == 3 * len(finalists) and len(finalists) == min(3, len(entry["trials"]))

    path = tmp_path / "out" / "reference" / "tuned" / "smoke.json"
    code, _, _ = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "rbf", "--max-images", "1",
                         "--steps", "5", "--tuned", path, "--out", tmp_path / "fit")
    assert code == 0
    fit = [json.loads(line) for line in (tmp_path / "fit" / "fitting" / "runs.jsonl").read_text().splitlines()
           if '"rbf"' in line][0]
    assert all(fit["config"][k] == v for k, v in entry["chosen"].items())
    assert fit["settings_from"].startswith("tuned: ") and "TUNED ON THIS IMAGE SET" not in fit["settings_from"]
    assert "Settings: tuned: " in (tmp_path / "fit" / "fitting" / "leaderboard.md").read_text()


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.json")), ids=lambda p: p.name)
def test_every_shipped_tuned_file_comes_from_this_tuner_and_a_clean_commit(path):
    tuned = json.loads(path.read_text())
    rerun = f"run `python run_bench.py --suite tune --preset {path.stem}` from a clean checkout and commit its file"
    assert tuned.get("tuner") == TUNER, f"{path} was made by the old tuner: {rerun}"
    assert is_clean_commit(tuned.get("commit")), f"{path} was tuned from uncommitted code ({tuned.get('commit')}): {rerun}"


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.json")), ids=lambda p: p.name)
def test_every_shipped_tuned_file_was_tuned_at_its_presets_budget_and_size(path):
    from fitbench.presets import FITTING_PRESETS

    preset, budget = FITTING_PRESETS[path.stem], json.loads(path.read_text())["budget"]
    tuned_at = (budget["steps"], budget["size"], budget.get("params"), budget["size_class"])
    assert tuned_at == (preset.steps, preset.size, preset.params, preset.size_class), (
        f"{path} was tuned at (steps, size, params, size class) {tuned_at}, but preset {preset.name} fits at "
        f"{(preset.steps, preset.size, preset.params, preset.size_class)}: tune it again")
    assert "TUNED AT ANOTHER BUDGET" not in preset.settings_from("siren", "ffn-natural-test")


def test_settings_tuned_at_another_budget_say_so_in_every_record(tmp_path):
    path = tmp_path / "quick.json"
    path.write_text(json.dumps({"tuner": 2, "commit": "0" * 40, "budget": {"steps": 200, "size": 128},
                                "representations": {"siren": {"chosen": {"lr": 0.001}}}}))
    import dataclasses

    from fitbench.presets import FITTING_PRESETS

    preset = dataclasses.replace(FITTING_PRESETS["quick"], tuned=str(path))
    assert preset.settings_from("siren", "ffn-natural-test").endswith(
        f"TUNED AT ANOTHER BUDGET: steps 200 (here {preset.steps}), params None (here 12288)")


def test_an_old_tuned_file_is_read_labelled_and_its_absolute_choices_win(tmp_path):
    from fitbench.tuned import load_tuned

    path = tmp_path / "quick.json"
    path.write_text(json.dumps({"commit": "0" * 40 + "+dirty", "representations": {"siren": {"chosen": {
        "lr": 0.001, "omega_0": 15.0}}}}))
    tuned = load_tuned(path)
    assert "made by the old tuner" in tuned.label and "from uncommitted code" in tuned.label
    overrides = {**R.sized_overrides("siren", "standard"), **tuned.chosen("siren")}  # as a preset merges them
    assert R.build("siren", 3, training_grid=R.TrainingGrid(64, 64), **overrides).config.omega_0 == 15.0


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


def test_the_finalists_are_scored_on_every_tuning_image_with_a_second_seed(run_cli, tmp_path, monkeypatch):
    from fitbench.suites import tune

    small_rbf_space(monkeypatch, lr=(0.05, 0.15), width_in_spacings=(0.5, 0.7))
    tuning = smooth_images(tmp_path / "tuning", count=3)
    monkeypatch.setitem(tune.TUNING_PLANS, "smoke", tune.TuningPlan(((str(tuning), 3),), finalists=1))
    code, _, _ = run_cli("--suite", "tune", "--preset", "smoke", "--reps", "rbf", "--steps", "10",
                         "--max-extensions", "0", "--out", tmp_path / "out")
    assert code == 0
    fits = [json.loads(line) for line in (tmp_path / "out" / "tune" / "runs.jsonl").read_text().splitlines()]
    assert len(fits) == 4 + 2 + 3  # the 2 x 2 grid on the first image; the finalist on the two others, then seed 1
    assert sorted((f["image"], f["seed"]) for f in fits if f["seed"] == 1) == [("tune0", 1), ("tune1", 1), ("tune2", 1)]
    entry = json.loads((tmp_path / "out" / "reference" / "tuned" / "smoke.json").read_text())["representations"]["rbf"]
    finalist = [t for t in entry["trials"] if t["final"] is not None]
    assert len(finalist) == 1 and finalist[0]["fits"] == 6 and entry["chosen"] == finalist[0]["settings"]
    assert finalist[0]["screening"] == max(t["screening"] for t in entry["trials"])
