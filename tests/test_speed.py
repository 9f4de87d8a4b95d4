"""The speed suite in smoke form: every loop measured, the CSV and the chart written."""

import pandas as pd


def test_speed_smoke_writes_table_and_chart(run_cli, tmp_path):
    code, stdout, _ = run_cli("--suite", "speed", "--preset", "smoke", "--reps", "relu_mlp", "--no-compile",
                              "--out", tmp_path)
    assert code == 0
    table = pd.read_csv(tmp_path / "speed" / "speed.csv")
    assert list(table["loop"]) == ["reference", "eager", "fast", "sequential x3", "batched x3"]
    assert (table["steps"] > 0).all() and (table.loc[1:, "gflops"] > 0).all()
    from fitbench.precision import choose_precision

    expected = choose_precision("auto", "cpu", "relu_mlp").precision  # the default --speed-precision auto
    assert table.loc[table["loop"] == "fast", "precision"].item() == expected
    sequential, batched = table["final_psnr"].iloc[3:]
    assert abs(sequential - batched) < 0.01  # batching changes speed, not results
    assert (tmp_path / "speed" / "speed.png").stat().st_size > 1000
    assert "matmul peak" in stdout


def test_unknown_representation_is_one_clear_error(run_cli, tmp_path):
    code, _, err = run_cli("--suite", "speed", "--preset", "smoke", "--reps", "nope", "--out", tmp_path)
    assert code == 2 and "unknown representation 'nope'" in err



def test_both_loops_check_the_target_at_every_eval_on_any_device():
    from fitbench.suites.speed import SPEED_PRESETS, loop_configs

    preset = SPEED_PRESETS["standard"]
    for config in loop_configs("siren", preset, 1e-3, "cuda", "bf16", True):
        assert config.sync_every == config.log_every == preset.eval_every < preset.steps
