"""--precision auto: bf16 only where the device has it natively and its measured cost is small; the precision
suite measures that cost on tuning images and writes the file auto reads."""

import json

import pandas as pd

from fitbench import representations as R
from fitbench import precision as P
from fitbench.precision import choose_precision, cpu_bf16_unit, load_bf16_costs
from fitbench.suites.precision import write_costs


def test_a_named_precision_is_kept_as_is():
    assert choose_precision("fp32", "cpu", "siren") == P.PrecisionChoice("fp32", "")
    assert choose_precision("bf16", "cpu", "siren") == P.PrecisionChoice("bf16", "")


def test_cpu_flags_name_the_native_unit_or_none():
    assert cpu_bf16_unit({"avx512f", "amx_bf16", "amx_tile"}) == "AMX-BF16"
    assert cpu_bf16_unit({"avx512f", "avx512_bf16"}) == "AVX512-BF16"
    assert cpu_bf16_unit({"avx512f", "avx2"}) is None  # bf16 would be emulated: slower, never assumed


def test_auto_takes_bf16_only_with_a_native_unit_and_a_small_measured_cost(monkeypatch):
    costs = {"siren": 0.04, "gauss": 0.3}
    monkeypatch.setattr(P, "native_bf16", lambda device: None)
    assert choose_precision("auto", "cpu", "siren", costs).precision == "fp32"
    assert "no native bf16" in choose_precision("auto", "cpu", "siren", costs).reason
    monkeypatch.setattr(P, "native_bf16", lambda device: "AMX-BF16")
    siren = choose_precision("auto", "cpu", "siren", costs)
    assert siren.precision == "bf16" and "AMX-BF16" in siren.reason and "0.04 dB" in siren.reason
    assert choose_precision("auto", "cpu", "gauss", costs).precision == "fp32"  # 0.3 dB > 0.1
    assert "not measured" in choose_precision("auto", "cpu", "newcomer", costs).reason


def test_the_shipped_costs_cover_every_built_in_representation():
    costs = load_bf16_costs()
    built_in = [n for n in R.list_representations() if not R.get_entry(n).plugin]
    assert set(built_in) <= set(costs)
    measured = json.loads(P.BF16_COST_FILE.read_text())
    assert all(name.startswith("ffn-") for name, _ in measured["tuning_images"])  # never a reported set


def test_fitting_records_what_auto_chose_and_why(run_cli, tmp_path):
    code, _, _ = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "siren", "--max-images", "1",
                         "--steps", "5", "--precision", "auto", "--device", "cpu", "--out", tmp_path)
    assert code == 0
    row = [json.loads(line) for line in (tmp_path / "fitting" / "runs.jsonl").read_text().splitlines()
           if '"siren"' in line][0]
    expected = choose_precision("auto", "cpu", "siren")
    assert row["precision"] == expected.precision and row["precision_from"] == expected.reason
    assert row["precision_from"].startswith("auto: ")


def test_the_precision_suite_measures_on_tuning_images_and_writes_the_costs(run_cli, tmp_path):
    from test_verdicts import smooth_images

    tuning = smooth_images(tmp_path / "tuning")
    code, stdout, _ = run_cli("--suite", "precision", "--preset", "smoke", "--reps", "siren,grid", "--images", tuning,
                              "--steps", "10", "--out", tmp_path / "out")
    assert code == 0
    costs = pd.read_csv(tmp_path / "out" / "precision" / "cost.csv").set_index("representation")
    assert set(costs.index) == {"siren", "grid"}
    assert costs.loc["grid", "cost_db"] == 0  # no wide matmul: bf16 changes nothing
    assert costs.loc["siren", "fits"] == 2
    # A smoke budget says nothing about the end of a standard fit: the file auto reads is left alone.
    assert not (tmp_path / "out" / "reference" / "bf16_cost.json").exists()
    assert "native bf16 here" in stdout and "cost.csv only" in stdout


def test_the_cost_file_is_merged_so_a_partial_measurement_keeps_the_others(tmp_path):
    path = tmp_path / "bf16_cost.json"
    row = {"fp32": 20.0, "bf16": 19.95, "ci95": 0.01, "fits": 4, "within_tolerance": True}
    write_costs(pd.DataFrame([{"representation": "siren", "cost_db": 0.05, **row},
                              {"representation": "wire", "cost_db": 0.3, **row}]), path, "standard", [], "cpu")
    write_costs(pd.DataFrame([{"representation": "siren", "cost_db": 0.02, **row}]), path, "standard", [], "cpu")
    assert load_bf16_costs(path) == {"siren": 0.02, "wire": 0.3}
    assert not list(tmp_path.glob("*.tmp"))


def test_the_precision_suite_refuses_the_images_a_preset_reports(run_cli, tmp_path):
    code, _, err = run_cli("--suite", "precision", "--preset", "smoke", "--images", "builtin", "--out", tmp_path)
    assert code == 2 and "reports on that set" in err
