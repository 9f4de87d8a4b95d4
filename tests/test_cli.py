"""What a user sees: --help, --list, and one clear line for each kind of bad input."""

import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def test_help_explains_the_options():
    result = subprocess.run([sys.executable, str(REPO / "run_bench.py"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for flag in ("--suite", "--preset", "--reps", "--images", "--steps", "--seeds", "--device", "--out",
                 "--data-root", "--fresh", "--list"):
        assert flag in result.stdout


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
    assert "choose from: finer, fnet, fourier_features" in error_line(run_cli, "--suite", "fitting", "--reps", "sirn",
                                                               "--preset", "smoke", "--out", tmp_path)
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
