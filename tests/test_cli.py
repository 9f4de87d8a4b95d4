"""What a user sees: --help, --list, and one clear line for each kind of bad input."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def test_help_explains_the_options():
    result = subprocess.run([sys.executable, str(REPO / "run_bench.py"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for word in ("fitting", "compression", "generative", "tune", "ci", "--list", "--report", "--suite NAME"):
        assert word in result.stdout
    result = subprocess.run([sys.executable, str(REPO / "run_bench.py"), "fitting", "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0
    for flag in ("--preset", "--reps", "--images", "--steps", "--seeds", "--device", "--out", "--data-root",
                 "--fresh", "--params", "--budget-seconds", "--dry-run", "default: quick"):
        assert flag in result.stdout


def test_a_flag_of_another_suite_is_an_error_on_this_one(run_cli, tmp_path):
    """Each suite takes its own flags: one that does not apply is refused before anything runs, in one line."""
    for args in (("--suite", "fitting", "--quantizers", "q8"), ("generative", "--reps", "siren"),
                 ("ci", "--steps", "3"), ("ci", "--precision", "bf16"), ("speed", "--executor", "ray")):
        line = error_line(run_cli, *args, "--out", tmp_path)
        assert "unrecognized arguments" in line and args[-2] in line and "--help" in line
    assert not any(tmp_path.iterdir())


def test_list_shows_representations_and_sets(run_cli):
    code, out, _ = run_cli("--list")
    assert code == 0
    for name in ("relu_mlp", "positional", "fourier_features", "siren", "fnet", "rbf", "builtin", "ffn-natural",
                 "smoke", "standard", "paper", "fitting"):
        assert name in out


def error_line(run_cli, *args) -> str:
    code, out, err = run_cli(*args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_unknown_names_list_the_valid_ones(run_cli, tmp_path):
    assert "choose from: basic, finer, fnet, fourier_features" in error_line(
        run_cli, "--suite", "fitting", "--reps", "sirn", "--preset", "smoke", "--out", tmp_path)
    assert "choose from: smoke, standard, quick, paper" in error_line(run_cli, "--suite", "fitting", "--preset", "huge")
    assert "its settings are" in error_line(run_cli, "--suite", "fitting", "--preset", "smoke", "--out", tmp_path,
                                            "--set", "siren.omega=3")
    assert "--steps must be at least 1" in error_line(run_cli, "--suite", "fitting", "--steps", "0")


def test_bad_images_name_the_file_and_keep_existing_results(run_cli, tmp_path):
    out = tmp_path / "out"
    assert run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--max-images", "1",
                   "--out", out)[0] == 0
    before = (out / "fitting" / "runs.jsonl").read_text()

    empty = tmp_path / "empty"
    empty.mkdir()
    assert str(empty) in error_line(run_cli, "--suite", "fitting", "--preset", "smoke", "--images", empty, "--out", out)

    broken = tmp_path / "broken"
    broken.mkdir()
    Image.new("RGB", (64, 64), "red").save(broken / "a.png")
    (broken / "b.png").write_bytes((broken / "a.png").read_bytes()[:40])
    line = error_line(run_cli, "--suite", "fitting", "--preset", "smoke", "--images", broken, "--out", out)
    assert "b.png" in line

    small = tmp_path / "small"
    small.mkdir()
    Image.new("RGB", (16, 16), "red").save(small / "tiny.png")
    assert "tiny.png" in error_line(run_cli, "--suite", "fitting", "--preset", "smoke", "--images", small, "--out", out)
    assert (out / "fitting" / "runs.jsonl").read_text() == before


def test_convertible_modes_are_fitted_and_reported(run_cli, tmp_path):
    folder = tmp_path / "modes"
    folder.mkdir()
    Image.new("RGBA", (40, 40), (10, 200, 30, 128)).save(folder / "rgba.png")
    Image.new("P", (40, 40)).save(folder / "palette.png")
    code, _, err = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--images", folder,
                           "--out", tmp_path / "out")
    assert code == 0
    assert "rgba.png: RGBA -> RGB" in err


def test_a_size_the_metrics_cannot_score_is_refused_before_any_work(run_cli, tmp_path):
    from fitbench.metrics import SSIM_MIN_SIDE, ssim

    line = error_line(run_cli, "--suite", "fitting", "--preset", "smoke", "--size", str(SSIM_MIN_SIDE - 1),
                      "--out", tmp_path)
    assert f"--size must be at least {SSIM_MIN_SIDE}" in line and f"got {SSIM_MIN_SIDE - 1}" in line
    assert not any(tmp_path.iterdir())
    flat = np.full((SSIM_MIN_SIDE, SSIM_MIN_SIDE), 0.5)
    assert ssim(flat, flat) == 1.0  # the smallest size accepted is one SSIM can score
    with pytest.raises(ValueError):
        ssim(flat[1:, 1:], flat[1:, 1:])


def test_params_out_of_a_representations_range_is_said_with_the_real_count(capsys):
    from fitbench import representations
    from fitbench.datasets import load_images
    from fitbench.options import SuiteOptions
    from fitbench.presets import get_preset
    from fitbench.planning import FitOptions, plan_fits

    options = SuiteOptions("fitting", "smoke", representations=["relu_mlp", "siren"], device="cpu")
    images = load_images("builtin", 32, limit=1)
    runs = plan_fits(options, get_preset("smoke"), "builtin", images, FitOptions(params=10**8))
    fitted = next(run for run in runs if run.representation == "relu_mlp")
    real = representations.parameter_count("relu_mlp", images[0].pixels.shape[2], **dict(fitted.overrides))
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: --params")]
    assert len(warnings) == 2  # one per representation, not one per image or seed
    assert f"relu_mlp has {real:,} parameters, not about 100,000,000" in warnings[0]
    assert "width goes 2..512 and is at 512" in warnings[0]
    plan_fits(options, get_preset("smoke"), "builtin", images, FitOptions(params=real))
    assert "warning" not in capsys.readouterr().err  # a reachable count is not warned about


def test_hidden_images_and_a_limit_are_said_not_applied_silently(tmp_path):
    from fitbench.datasets import load_images

    for name in ("a.png", "b.png", "c.png", ".hidden.png", "._a.png"):
        Image.new("RGB", (16, 16), "red").save(tmp_path / name)
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    notes = load_images(str(tmp_path), 16, limit=2)[0].notes
    assert any("skipped 2 hidden file(s)" in note and "._a.png, .hidden.png" in note for note in notes)
    assert any("using the first 2 of the 3 images" in note and "--max-images" in note for note in notes)
    assert not any(".DS_Store" in note for note in notes)
    assert not any("first" in note for note in load_images(str(tmp_path), 16)[0].notes)


def test_a_preset_image_cap_is_printed(run_cli, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        Image.new("RGB", (40, 40), (index * 80, 0, 0)).save(folder / f"{index}.png")
    code, _, err = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--steps", "1",
                           "--images", folder, "--out", tmp_path / "out")  # smoke: max_images=2
    assert code == 0 and f"using the first 2 of the 3 images of {folder}" in err
