"""The step breakdown: each op's time lands in the right part, bytes are estimated from shapes, and a real step's
parts are all there (bench/step_breakdown.py); the memory-bandwidth ceiling is measured."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from fitbench import representations as R
from fitbench.engine import LOSS_RANGE, FitConfig
from fitbench.flops import training_step_flops
from fitbench.hardware import heap_in_use, keep_freed_memory, memory_bandwidth
from fitbench.step_breakdown import PARTS, breakdown, part_of, traffic_bytes


def event(name, shapes=()):
    return SimpleNamespace(name=name, input_shapes=list(shapes))


@pytest.mark.parametrize("name, parents, part", [
    ("aten::addmm", ["aten::linear"], "matmul"),
    ("aten::mm", ["MmBackward0", "autograd::engine::evaluate_function: MmBackward0"], "matmul"),
    ("aten::_fused_adam_", ["Optimizer.step#Adam.step"], "optimizer"),
    ("aten::mul", ["aten::mul", "Optimizer.step#Adam.step"], "optimizer"),  # Adam's own elementwise work
    ("aten::mse_loss", [LOSS_RANGE], "loss"),
    ("aten::mse_loss_backward", ["MseLossBackward0", "autograd::engine::evaluate_function: MseLossBackward0"], "loss"),
    ("aten::sin", [], "elementwise"),
    ("aten::cos", ["SinBackward0"], "elementwise"),
    ("## Call CompiledFxGraph abc ##", ["CompiledFunction"], "elementwise"),
    ("SinBackward0", ["autograd::engine::evaluate_function: SinBackward0"], "other"),  # autograd bookkeeping
    ("fitbench.loss", [], "loss"),
])
def test_each_op_lands_in_its_part(name, parents, part):
    assert part_of(event(name), [name, *parents]) == part


def test_traffic_is_the_inputs_and_one_output_at_four_bytes_an_element():
    assert traffic_bytes(event("aten::sin", [[1000, 64]])) == 4 * (64_000 + 64_000)
    assert traffic_bytes(event("aten::mul", [[1000, 64], [1000, 64]])) == 4 * 3 * 64_000
    assert traffic_bytes(event("aten::add", [[1000, 64], []])) == 4 * 2 * 64_000  # a scalar moves no array
    assert traffic_bytes(event("aten::view", [[1000, 64], [2]])) == 0  # views move nothing
    assert math.isnan(traffic_bytes(event("## Call CompiledFxGraph f ##")))  # fused: unknown, not guessed


def test_a_real_step_has_every_part_and_its_flops(one_thread):
    torch.manual_seed(0)
    model = R.build("siren", width=32, depth=2)
    coords, values = torch.rand(2048, 2), torch.rand(2048, 3)
    row = breakdown("siren", "eager", model, coords, values, FitConfig(steps=10, lr=1e-4), warmup=1, timed=2,
                    profiled=2)
    assert row.matmul_ms > 0 and row.elementwise_ms > 0 and row.loss_ms > 0 and row.optimizer_ms > 0
    assert all(getattr(row, f"{part}_ms") >= 0 for part in PARTS)
    assert row.matmul_gflop == pytest.approx(training_step_flops(model, 2048) / 1e9)
    assert row.step_peak_percent > 0 and row.matmul_peak_percent > row.step_peak_percent * 0.99
    assert row.elementwise_gb > 0 and row.bandwidth_percent > 0


def test_heap_in_use_rises_and_falls_with_a_tensor_even_when_freed_memory_is_kept():
    """The speed suite's CPU peak memory: the resident set stops falling once freed memory is kept, the heap
    count must not."""
    if heap_in_use() is None:
        pytest.skip("the C library does not report its heap (not glibc)")
    keep_freed_memory()
    before = heap_in_use()
    block = torch.ones(16 * 2**20)  # 64 MB
    during = heap_in_use()
    del block
    after = heap_in_use()
    assert during - before >= 64 * 2**20
    assert after - before < 8 * 2**20


def test_memory_bandwidth_is_measured_and_plausible():
    measured = memory_bandwidth("cpu", megabytes=64, repeats=2)
    assert 0.1 < measured.gbytes_per_second < 10_000


def test_the_speed_suite_explains_every_representations_step(run_cli, tmp_path, one_thread):
    code, stdout, _ = run_cli("--suite", "speed", "--preset", "smoke", "--speed-parts", "breakdown", "--reps",
                              "relu_mlp,grid", "--no-compile", "--out", tmp_path)
    assert code == 0
    table = pd.read_csv(tmp_path / "speed" / "breakdown.csv")
    assert list(zip(table["representation"], table["loop"])) == [
        ("relu_mlp", "eager"), ("relu_mlp", "fast"), ("grid", "eager"), ("grid", "fast")]
    assert (table["step_ms"] > 0).all() and (table[[f"{p}_ms" for p in PARTS]] >= 0).all().all()
    assert (tmp_path / "speed" / "breakdown.png").stat().st_size > 1000
    assert not (tmp_path / "speed" / "speed.csv").exists()  # only the part asked for
    assert "memory bandwidth" in stdout


def test_an_unknown_speed_part_is_one_clear_error(run_cli, tmp_path):
    code, _, err = run_cli("--suite", "speed", "--preset", "smoke", "--speed-parts", "breakdown,warp", "--out",
                           tmp_path)
    assert code == 2 and "--speed-parts" in err and "breakdown, loops, batching" in err
