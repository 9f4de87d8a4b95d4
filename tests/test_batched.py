"""Batched fitting equals fitting one by one, and the fitting suite uses it with one record per fit."""

import copy
import json

import numpy as np
import pytest
import torch

from fitbench import representations as R
from fitbench.batched import can_batch, fit_batch
from fitbench.engine import FitConfig, fit_image
from fitbench.protocol import make_split


# wire and gauss: their exp activation is a custom autograd.Function, batched through its generated vmap rule
@pytest.mark.parametrize("name", ["siren", "fourier_features", "rbf", "wire", "gauss"])
def test_batched_fit_equals_sequential_fits(name):
    rng = np.random.default_rng(0)
    images = [rng.random((12, 12, 3)).astype(np.float32) for _ in range(3)]
    split = make_split("alternate", 12, 12)
    overrides = {"grid": 6} if name == "rbf" else {"width": 16, "depth": 2, "num_features": 8}
    overrides = {k: v for k, v in overrides.items() if k in R.make_config(name).__dataclass_fields__}
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(R.build(name, seed=seed, **overrides))
    config = FitConfig(steps=20, lr=1e-3, log_every=5)
    one_by_one = [fit_image(copy.deepcopy(m), image, split, config) for m, image in zip(models, images)]
    together = fit_batch(models, images, split, config)
    for single, batched in zip(one_by_one, together):
        assert batched.batch == 3 and batched.steps_done == single.steps_done == 20
        np.testing.assert_allclose(batched.curve["loss"], single.curve["loss"], rtol=1e-4)
        np.testing.assert_allclose(batched.reconstruction, single.reconstruction, atol=1e-5)
    assert not np.allclose(together[0].reconstruction, together[1].reconstruction)  # the models are distinct


def test_a_diverging_model_does_not_disturb_the_others():
    rng = np.random.default_rng(1)
    images = [rng.random((8, 8, 1)).astype(np.float32) for _ in range(2)]
    split = make_split("full", 8, 8)
    models = [R.build("relu_mlp", out_features=1, width=8, depth=1) for _ in range(2)]
    healthy = copy.deepcopy(models[1])
    with torch.no_grad():
        models[0].mlp[0].weight.fill_(float("nan"))
    config = FitConfig(steps=10, lr=1e-2, log_every=2)
    broken, good = fit_batch(models, images, split, config)
    alone = fit_image(healthy, images[1], split, config)
    assert broken.status == "diverged" and good.status == "ok"
    np.testing.assert_allclose(good.reconstruction, alone.reconstruction, atol=1e-6)


def test_custom_autograd_representations_fall_back_to_one_by_one():
    assert can_batch("siren")
    assert not can_batch("fnet")  # its Fourier layer is a custom autograd.Function without vmap support


def test_fitting_suite_batches_seeds_and_keeps_one_record_each(run_cli, tmp_path):
    code, _, _ = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp,fnet", "--max-images", "1",
                         "--seeds", "2", "--steps", "20", "--batch", "on", "--out", tmp_path)
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "fitting" / "runs.jsonl").read_text().splitlines()]
    fitted = {(r["representation"], r["seed"]): r for r in rows if r["kind"] == "representation"}
    assert set(fitted) == {("relu_mlp", 0), ("relu_mlp", 1), ("fnet", 0), ("fnet", 1)}
    assert fitted["relu_mlp", 0]["batch"] == 2 and fitted["fnet", 0]["batch"] == 1
    assert fitted["relu_mlp", 0]["psnr_test"] != fitted["relu_mlp", 1]["psnr_test"]
    assert all(r["gflops"] > 0 and 0 < r["peak_fraction"] for r in fitted.values())


@pytest.mark.parametrize("pays", [True, False])
def test_batch_auto_batches_only_where_its_trial_finds_it_faster(run_cli, tmp_path, monkeypatch, pays):
    import fitbench.runs as runs
    import fitbench.suites.fitting as fitting
    from fitbench.batched import BatchTrial

    trials = []

    def fake_trial(models, images, split, config):
        trials.append(len(models))
        return BatchTrial(len(models), 1.0, 2.0 if pays else 0.5)

    monkeypatch.setattr(runs, "time_batching", fake_trial)
    monkeypatch.setattr(fitting, "device_type", lambda name: "cuda")  # auto trials only where the fits run on CUDA
    code, _, err = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--max-images", "1",
                           "--seeds", "3", "--steps", "10", "--out", tmp_path)  # --batch auto is the default
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "fitting" / "runs.jsonl").read_text().splitlines()]
    batches = [r["batch"] for r in rows if r["kind"] == "representation"]
    assert trials == [3]  # one trial per group, even when the group is then fitted one by one
    assert batches == ([3, 3, 3] if pays else [1, 1, 1])
    assert "batch auto: relu_mlp at 32^2, 3 fits" in err and ("-> batched" if pays else "-> one by one") in err


def test_batch_auto_on_a_cpu_fits_one_by_one_without_a_trial(run_cli, tmp_path, monkeypatch):
    import fitbench.runs as runs

    monkeypatch.setattr(runs, "time_batching", lambda *a: pytest.fail("no batching trial on a CPU"))
    code, _, err = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--max-images", "1",
                           "--seeds", "3", "--steps", "10", "--device", "cpu", "--out", tmp_path)
    assert code == 0 and "batch auto" not in err
    rows = [json.loads(line) for line in (tmp_path / "fitting" / "runs.jsonl").read_text().splitlines()]
    assert [r["batch"] for r in rows if r["kind"] == "representation"] == [1, 1, 1]
    code, _, _ = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--max-images", "1",
                         "--seeds", "3", "--steps", "10", "--device", "cpu", "--batch", "on", "--fresh",
                         "--out", tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "fitting" / "runs.jsonl").read_text().splitlines()]
    assert code == 0 and [r["batch"] for r in rows if r["kind"] == "representation"] == [3, 3, 3]  # still on request


def test_a_batching_trial_times_both_ways_and_leaves_the_models_untouched(one_thread):
    from fitbench.batched import time_batching

    images = [np.random.default_rng(i).random((16, 16, 3)).astype(np.float32) for i in range(2)]
    models = [R.build("relu_mlp", width=16, depth=2) for _ in range(2)]
    before = [copy.deepcopy(m.state_dict()) for m in models]
    trial = time_batching(models, images, make_split("alternate", 16, 16), FitConfig(steps=10, lr=1e-3), steps=2)
    assert trial.count == 2 and trial.batched_seconds > 0 and trial.sequential_seconds > 0
    for model, state in zip(models, before):
        for name, value in model.state_dict().items():
            assert torch.equal(value, state[name])


def test_under_a_time_budget_every_fit_runs_alone_on_its_own_clock(run_cli, tmp_path):
    """A batch shares one clock: under --budget-seconds its members would each be credited a share of the budget.
    So time-budgeted fits are never batched, even with --batch on; each trains for about the whole budget."""
    code, _, _ = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--seeds", "2",
                         "--batch", "on", "--budget-seconds", "0.3", "--out", tmp_path)
    assert code == 0
    fits = [json.loads(line) for line in (tmp_path / "fitting" / "runs.jsonl").read_text().splitlines()
            if '"relu_mlp"' in line]
    assert len(fits) == 4 and all(f["batch"] == 1 and f["seconds"] >= 0.3 for f in fits)
    # without a time budget the same fits are batched (the batch's clock then divides among its members)
    code, _, _ = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--seeds", "2",
                         "--batch", "on", "--steps", "5", "--out", tmp_path / "steps")
    fits = [json.loads(line) for line in (tmp_path / "steps" / "fitting" / "runs.jsonl").read_text().splitlines()
            if '"relu_mlp"' in line]
    assert code == 0 and len(fits) == 4 and all(f["batch"] > 1 for f in fits)
