"""The FFN paper reproduction: its basic mapping, its per-set settings, the published table and the comparison."""

import json
import math
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from fitbench import representations as R
from fitbench.datasets import ImageSample
from fitbench.options import SuiteOptions
from fitbench.presets import FITTING_PRESETS, for_image_set, get_preset
from fitbench.repro import PAPER, PUBLISHED, Published, compare, comparison_markdown, project
from fitbench.planning import plan_fits

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "REFERENCE.md"


def test_basic_mapping_is_sin_and_cos_of_one_period_per_axis():
    model = R.build("basic", out_features=3)
    x, y = 0.1, 0.3
    expected = torch.tensor([math.sin(2 * math.pi * x), math.sin(2 * math.pi * y),
                             math.cos(2 * math.pi * x), math.cos(2 * math.pi * y)]) / math.sqrt(2)
    assert torch.allclose(model.encoding(torch.tensor([[x, y]])), expected, atol=1e-6)
    # the FFN network on 4 inputs instead of relu_mlp's 2: two more inputs into the first 256-wide layer
    assert R.count_parameters(model) == R.count_parameters(R.build("relu_mlp", out_features=3)) + 2 * 256
    assert "encoding.frequencies" not in dict(model.named_parameters())


def test_the_paper_preset_takes_each_image_kinds_ffn_settings():
    paper = get_preset("paper")
    text = for_image_set(paper, "ffn-text-test")
    natural = for_image_set(paper, "ffn-natural-test")
    assert text.overrides_for("fourier_features")["sigma"] == 14.0
    assert text.overrides_for("positional")["max_log2"] == 5.0
    assert text.overrides_for("relu_mlp")["lr"] == 1e-3
    assert natural.overrides_for("fourier_features")["sigma"] == 10.0
    assert natural.overrides_for("positional")["max_log2"] == 6.0
    assert natural.overrides_for("relu_mlp")["lr"] == 1e-2
    assert text.overrides_for("siren") == paper.overrides_for("siren") == {}  # not in the paper: its own defaults
    assert for_image_set(paper, "builtin") is paper
    assert for_image_set(FITTING_PRESETS["standard"], "ffn-text-test") is FITTING_PRESETS["standard"]
    assert (paper.size, paper.steps, paper.image_set) == (512, 2000, "ffn-natural-test")


def test_planned_fits_use_the_set_settings_and_set_still_wins():
    image = ImageSample("tiny", np.zeros((8, 8, 3), np.float32), "test")
    options = SuiteOptions(suite="fitting", preset="paper", representations=["fourier_features", "positional"],
                           device="cpu", settings={"positional": {"max_log2": 3.0}})
    runs = plan_fits(options, get_preset("paper"), "ffn-text-test", [image], with_references=False)
    config = {run.representation: run.config for run in runs}
    assert config["fourier_features"]["sigma"] == 14.0 and config["fourier_features"]["width"] == 256
    assert config["positional"]["max_log2"] == 3.0  # --set over the preset's per-set setting


@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"needs {REFERENCE}")
def test_published_figures_are_those_of_the_reference_table():
    names = {"none": "relu_mlp", "basic": "basic", "positional encoding": "positional", "Gaussian": "fourier_features"}
    figure = r"([\d.]+) ± ([\d.]+)"
    rows = re.findall(rf"^\| (none|basic|positional encoding|Gaussian) \| {figure} \| {figure} \|",
                      REFERENCE.read_text(), re.MULTILINE)
    assert len(rows) == 4
    for mapping, *values in rows:
        natural_mean, natural_std, text_mean, text_std = map(float, values)
        assert PUBLISHED[("natural", names[mapping])] == Published("natural", names[mapping], natural_mean,
                                                                     natural_std)
        assert PUBLISHED[("text", names[mapping])] == Published("text", names[mapping], text_mean, text_std)


def record(representation, image, psnr, image_set="ffn-natural-test", seed=0, **changes):
    row = {"representation": representation, "kind": "representation", "image": image, "image_set": image_set,
           "protocol": "alternate", "preset": "paper", "seed": seed, "steps": PAPER.steps,
           "max_steps": PAPER.steps, "size": PAPER.size, "precision": "fp32", "status": "ok", "psnr_test": psnr,
           "config": {"sigma": 10.0, "num_features": 256, "width": 256, "depth": 3, "lr": 1e-3}, "step_seconds": 0.05,
           "warmup_seconds": 1.0, "batch": 16, "key": f"{representation}-{image}-{seed}-{image_set}"}
    return {**row, **changes}


def paper_records(psnrs, representation="fourier_features", **changes):
    return [record(representation, f"natural-test-{i:02d}", p, **changes) for i, p in enumerate(psnrs)]


def test_comparison_in_the_paper_setting():
    psnrs = np.linspace(22.0, 29.0, 16)  # mean 25.5, population std 2.15
    rows = compare(paper_records(psnrs))
    assert len(rows) == 1
    row = rows[0]
    assert (row.kind, row.mapping, row.images) == ("natural", "Gaussian", 16)
    assert row.mean == pytest.approx(25.5) and row.std == pytest.approx(np.std(psnrs))
    assert row.difference == pytest.approx(25.5 - 25.57)
    assert row.within_std and row.within_tolerance and row.deviations == ()
    table = comparison_markdown(rows)
    assert "25.50 ± 2.15 | 25.57 ± 4.19 | -0.07 | yes | yes | the paper's" in table
    assert "NOT THE PAPER'S SETTING" not in table


def test_comparison_flags_misses_and_ignores_what_is_not_a_paper_test_fit():
    rows = compare([
        *paper_records([20.0] * 16),  # 5.57 dB short: outside 0.5 dB, outside the 4.19 std
        record("fourier_features", "other", 40.0, image_set="ffn-natural"),  # a tuning image
        record("fourier_features", "failed", 40.0, status="diverged"),
        record("fourier_features", "quick", 40.0, preset="standard"),
        record("bicubic", "natural-test-00", 40.0, kind="reference"),
    ])
    assert len(rows) == 1 and rows[0].images == 16
    assert rows[0].within_tolerance is False and rows[0].within_std is False
    assert "| -5.57 | NO | NO |" in comparison_markdown(rows)


def test_seeds_are_averaged_per_image_before_the_spread_over_images():
    rows = compare([record("relu_mlp", "a", 18.0, seed=0), record("relu_mlp", "a", 20.0, seed=1),
                    record("relu_mlp", "b", 21.0, seed=0)])
    assert rows[0].images == 2 and rows[0].mean == pytest.approx(20.0) and rows[0].std == pytest.approx(1.0)


def test_a_smaller_run_is_labelled_not_the_papers_setting():
    smoke = paper_records([12.0, 13.0], size=128, max_steps=200, steps=200,
                          config={"sigma": 3.0, "num_features": 256, "width": 256, "depth": 3, "lr": 1e-3})
    siren = [record("siren", f"natural-test-{i:02d}", 30.0, config={}) for i in range(16)]
    rows = compare(smoke + siren)
    gaussian = next(r for r in rows if r.representation == "fourier_features")
    assert gaussian.deviations == ("128² images (paper 512²)", "200 steps (paper 2000)", "2 of 16 images",
                                   "sigma 3 (paper 10)")
    table = comparison_markdown(rows)
    assert "Rows marked NOT THE PAPER'S SETTING are a smoke check" in table
    assert "NOT THE PAPER'S SETTING: 128² images (paper 512²); 200 steps" in table
    assert "| natural | not in the FFN paper | siren | 16 | 30.00 ± 0.00 | – | – | – | – | the paper's |" in (
        table)


def test_projection_scales_the_probe_step_to_both_sets_at_the_papers_steps():
    probe = paper_records([20.0] * 16, step_seconds=0.04, warmup_seconds=2.0, steps=50, max_steps=50)
    (projection,) = project(probe)
    assert projection.seconds == pytest.approx(2 * (2.0 + 1999 * 0.04))
    (unbatched,) = project(paper_records([20.0], step_seconds=0.01, warmup_seconds=0.0, batch=1))
    assert unbatched.seconds == pytest.approx(2 * 16 * 1999 * 0.01)  # 16 fits a set, one after another


def write_runs(out: Path, records: list[dict]) -> None:
    (out / "fitting").mkdir(parents=True)
    (out / "fitting" / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_the_repro_suite_writes_the_table_and_projects_within_a_limit(run_cli, tmp_path):
    no_mapping = {"width": 256, "depth": 3, "lr": 1e-2}
    write_runs(tmp_path, paper_records(np.linspace(22.0, 29.0, 16))
               + paper_records([19.0] * 16, "relu_mlp", config=no_mapping))
    code, out, _ = run_cli("--suite", "repro", "--out", tmp_path)
    assert code == 0
    row = "| natural | no mapping | relu_mlp | 16 | 19.00 ± 0.00 | 19.32 ± 2.48 | -0.32 | yes | yes | the paper's |"
    assert row in out
    assert (tmp_path / "repro" / "comparison.md").read_text() in out
    assert "within_tolerance" in (tmp_path / "repro" / "comparison.csv").read_text()
    # each of the two: 2 sets x (1 s + 1999 x 0.05 s) = 201.9 s
    assert run_cli("--suite", "repro", "--project-within", "404", "--out", tmp_path)[0] == 0
    code, out, err = run_cli("--suite", "repro", "--project-within", "403", "--out", tmp_path)
    assert code == 3 and "OVER the 403 s limit" in out and "not starting the full run" in err
    code, _, err = run_cli("--suite", "repro", "--reps", "relu_mlp,wire", "--project-within", "1e6",
                           "--out", tmp_path)
    assert code == 2 and "no finished probe fit of wire" in err  # a failed probe fit is never projected as free
    code, _, err = run_cli("--suite", "repro", "--out", tmp_path / "empty")
    assert code == 2 and "no finished paper-preset fits" in err and "python run_bench.py fitting --preset paper" in err


def test_the_script_stops_before_writing_anything_without_the_test_images(tmp_path):
    env = {**os.environ, "FITBENCH_DATA_ROOT": str(tmp_path / "nowhere")}
    command = ["bash", str(REPO / "scripts" / "gpu_repro.sh"), "--smoke", "--out", str(tmp_path / "out")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "ffn/natural_test is missing" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_paper_fit_of_the_text_test_set_is_compared_with_the_text_row(run_cli, shared_data, tmp_path, one_thread):
    code, _, _ = run_cli("--suite", "fitting", "--preset", "paper", "--images", "ffn-text-test", "--data-root",
                         shared_data, "--reps", "fourier_features", "--size", "32", "--steps", "3",
                         "--max-images", "1", "--device", "cpu", "--out", tmp_path)
    assert code == 0
    (fit,) = [json.loads(line) for line in (tmp_path / "fitting" / "runs.jsonl").read_text().splitlines()
              if '"fourier_features"' in line]
    assert fit["config"]["sigma"] == 14.0
    code, out, _ = run_cli("--suite", "repro", "--out", tmp_path)
    assert code == 0 and "| text | Gaussian | fourier_features | 1 |" in out and "30.47 ± 2.11" in out
    assert "NOT THE PAPER'S SETTING: 32² images (paper 512²); 3 steps (paper 2000); 1 of 16 images" in out
