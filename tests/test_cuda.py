"""The CUDA paths (graph capture, fused Adam, device learning rate, batched fits, bf16), run where CUDA is.

Skipped on CPU-only machines (CI); run on a GPU machine with `pytest tests/test_cuda.py`. Each compares the
CUDA fast path with the plain eager loop on the same device, so a capture that replays the wrong step, a
schedule that never reaches the graph, or kept weights that are not restored show up as a PSNR difference.
"""

import numpy as np
import pytest
import torch

from fitbench import representations as R
from fitbench.batched import can_batch, fit_batch
from fitbench.engine import FitConfig, fit_image
from fitbench.protocol import make_split

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def image(seed: int = 0, size: int = 32, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = rng.random((size // 4, size // 4, channels)).repeat(4, 0).repeat(4, 1)
    return smooth.astype(np.float32)


def fit(name: str, config: FitConfig, seed: int = 0, target: np.ndarray | None = None):
    target = image() if target is None else target
    torch.manual_seed(seed)
    model = R.build(name, out_features=target.shape[2], **R.sized_overrides(name, "tiny"))
    split = make_split("alternate", *target.shape[:2])
    outcome = fit_image(model, target, split, config)
    return outcome, split, target


def held_out(outcome, split, target) -> float:
    error = (outcome.reconstruction[split.test] - target[split.test]) ** 2
    return float(10 * np.log10(1 / error.mean()))


@pytest.mark.parametrize("name", R.list_representations())
def test_graph_replay_fits_as_the_eager_loop(name):
    lr = R.make_config(name).lr
    settings = dict(steps=30, lr=lr, device="cuda", log_every=5, curve=False)
    graphed, split, target = fit(name, FitConfig(**settings, cuda_graphs=True))
    eager, _, _ = fit(name, FitConfig(**settings, cuda_graphs=False))
    assert graphed.status == eager.status == "ok" and graphed.steps_done == eager.steps_done == 30
    assert abs(held_out(graphed, split, target) - held_out(eager, split, target)) < 0.05


@pytest.mark.parametrize("schedule", ["cosine", "exponential"])
def test_a_schedule_reaches_the_captured_graph(schedule):
    settings = dict(steps=40, lr=1e-3, device="cuda", log_every=5, curve=False, schedule=schedule, lr_final=0.01)
    graphed, split, target = fit("siren", FitConfig(**settings, cuda_graphs=True))
    eager, _, _ = fit("siren", FitConfig(**settings, cuda_graphs=False))
    constant, _, _ = fit("siren", FitConfig(**{**settings, "schedule": "constant"}, cuda_graphs=True))
    assert abs(held_out(graphed, split, target) - held_out(eager, split, target)) < 0.05
    assert abs(held_out(graphed, split, target) - held_out(constant, split, target)) > 0.01


def test_kept_best_weights_are_restored_under_the_graph():
    settings = dict(steps=30, lr=0.5, device="cuda", log_every=1, curve=False, keep_best=True)  # lr: erratic
    graphed, split, target = fit("relu_mlp", FitConfig(**settings, cuda_graphs=True))
    eager, _, _ = fit("relu_mlp", FitConfig(**settings, cuda_graphs=False))
    assert abs(held_out(graphed, split, target) - held_out(eager, split, target)) < 0.05


def test_losses_stay_on_the_device_between_syncs_and_the_curve_is_complete():
    outcome, _, _ = fit("siren", FitConfig(steps=50, lr=1e-3, device="cuda", log_every=5, sync_every=25))
    assert outcome.curve["step"] == list(range(5, 51, 5))
    assert outcome.curve["eval"]["step"][-1] == 50


def test_cuda_matches_cpu_within_rounding():
    settings = dict(steps=20, lr=1e-3, log_every=5, curve=False)
    gpu, split, target = fit("siren", FitConfig(**settings, device="cuda"))
    cpu, _, _ = fit("siren", FitConfig(**settings, device="cpu"))
    assert abs(held_out(gpu, split, target) - held_out(cpu, split, target)) < 0.05


def test_bf16_and_compile_run_on_cuda():
    settings = dict(steps=20, lr=1e-3, device="cuda", log_every=5, curve=False)
    fp32, split, target = fit("siren", FitConfig(**settings))
    bf16, _, _ = fit("siren", FitConfig(**settings, precision="bf16"))
    compiled, _, _ = fit("siren", FitConfig(**settings, compile=True))
    assert bf16.status == compiled.status == "ok"
    assert abs(held_out(bf16, split, target) - held_out(fp32, split, target)) < 0.5
    assert abs(held_out(compiled, split, target) - held_out(fp32, split, target)) < 0.05


def test_a_seconds_budget_stops_on_cuda():
    outcome, _, _ = fit("siren", FitConfig(steps=10**6, lr=1e-3, device="cuda", seconds=1.0, curve=False))
    assert 1 < outcome.steps_done < 10**6 and outcome.seconds < 5


@pytest.mark.parametrize("name", [n for n in R.list_representations() if can_batch(n)])
def test_batched_fit_on_cuda_equals_one_by_one(name):
    lr = R.make_config(name).lr
    config = FitConfig(steps=20, lr=lr, device="cuda", log_every=5, curve=False)
    targets = [image(seed) for seed in range(3)]
    split = make_split("alternate", 32, 32)
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(R.build(name, out_features=3, **R.sized_overrides(name, "tiny")))
    batched = fit_batch([m for m in models], targets, split, config)
    for seed, outcome in enumerate(batched):
        single, _, _ = fit(name, config, seed=seed, target=targets[seed])
        assert abs(held_out(outcome, split, targets[seed]) - held_out(single, split, targets[seed])) < 0.05


def test_fitting_suite_runs_every_representation_on_cuda(run_cli, tmp_path):
    code, stdout, err = run_cli("--suite", "fitting", "--preset", "smoke", "--device", "cuda", "--out", tmp_path)
    assert code == 0, err
    import pandas as pd

    summary = pd.read_csv(tmp_path / "fitting" / "summary.csv")
    assert set(R.list_representations()) <= set(summary["representation"])


def test_speed_suite_smoke_on_cuda(run_cli, tmp_path):
    code, _, err = run_cli("--suite", "speed", "--preset", "smoke", "--reps", "siren", "--device", "cuda",
                           "--out", tmp_path)
    assert code == 0, err


def test_pixel_chunks_inside_the_captured_graph_give_the_full_batch_step():
    settings = dict(steps=30, lr=1e-3, device="cuda", log_every=5, curve=False)
    whole, split, target = fit("siren", FitConfig(**settings))
    chunked, _, _ = fit("siren", FitConfig(**settings, pixel_chunk=100))
    assert abs(held_out(whole, split, target) - held_out(chunked, split, target)) < 0.05
