"""What the audit found (issue 15): writes outside --out, torn records, two writers, bad settings, bad paths."""

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fitbench.lock import FolderBusyError, FolderLock
from fitbench.paths import inside, safe_name
from fitbench.records import RecordLog

REPO = Path(__file__).resolve().parents[1]


def snapshot(root: Path) -> dict[str, tuple[int, float]]:
    """Every file under `root`: size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*") if p.is_file()}


def test_an_image_folder_given_by_absolute_path_is_never_written_to(run_cli, tmp_path):
    user = tmp_path / "user" / "photos"  # the user's folder and its parent
    user.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(user / "holiday.png")
    out = tmp_path / "out"
    before = snapshot(tmp_path / "user")
    code, _, _ = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--steps", "5",
                         "--images", str(user.resolve()), "--out", out)
    assert code == 0
    assert snapshot(tmp_path / "user") == before  # nothing beside or inside the user's images
    written = [p for p in out.rglob("*.png")]
    assert any("reconstructions" in p.parts for p in written) and any("grids" in p.parts for p in written)
    assert all(p.resolve().is_relative_to(out.resolve()) for p in written)


@pytest.mark.parametrize("name", ["/abs/path/photos", "../../escape", "..", "a/b", "C:\\photos"])
def test_unsafe_names_become_one_component_inside_the_folder(tmp_path, name):
    component = safe_name(name)
    assert "/" not in component and "\\" not in component and component not in (".", "..")
    assert inside(tmp_path, Path("grids") / component).resolve().is_relative_to(tmp_path.resolve())
    assert safe_name("builtin") == "builtin" and safe_name(name) != safe_name(name + "x")


def test_inside_refuses_a_path_outside_the_folder(tmp_path):
    with pytest.raises(ValueError, match="outside the output folder"):
        inside(tmp_path, Path("..") / "elsewhere.png")


def test_a_torn_last_line_is_moved_aside_and_the_log_is_valid_jsonl_again(tmp_path, capsys):
    log = RecordLog(tmp_path / "runs.jsonl")
    log.append({"key": "a", "status": "ok"})
    log.append({"key": "b", "status": "ok"})
    with log.path.open("a") as f:
        f.write('{"key": "c", "stat')  # a kill in the middle of an append
    assert [r["key"] for r in log.read()] == ["a", "b"]
    assert "line 3 is not a JSON record" in capsys.readouterr().err
    note = log.repair()
    assert "moved 1 malformed line(s), the last one torn by an interrupted write" in note
    assert pd.read_json(log.path, lines=True)["key"].tolist() == ["a", "b"]  # valid JSON lines again
    side = next(tmp_path.glob("runs.jsonl.malformed-*"))
    assert '{"key": "c", "stat' in side.read_text()  # nothing is thrown away
    log.append({"key": "c", "status": "ok"})
    assert [r["key"] for r in log.read()] == ["a", "b", "c"] and log.repair() is None


def test_a_non_object_line_is_reported_with_its_number_not_a_traceback(tmp_path, capsys):
    log = RecordLog(tmp_path / "runs.jsonl")
    log.path.write_text('{"key": "a", "status": "ok"}\n[1, 2]\n"text"\n{"key": "b", "status": "ok"}\n')
    assert [r["key"] for r in log.read()] == ["a", "b"]
    err = capsys.readouterr().err
    assert "line 2 is not a JSON record" in err and "line 3 is not a JSON record" in err


HOLD_LOCK = """
import sys, time
from fitbench.lock import FolderLock
with FolderLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_run_on_the_same_folder_stops_at_once_naming_the_first(run_cli, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path / "fitting")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        code, _, err = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--out", tmp_path)
        assert code == 2 and time.monotonic() - start < 30
        assert f"is being written by another fitbench run (pid {holder.pid}" in err
        assert not (tmp_path / "fitting" / "runs.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    with FolderLock(tmp_path / "fitting"):  # the holder died: the operating system released its lock
        with pytest.raises(FolderBusyError):
            with FolderLock(tmp_path / "fitting"):
                pass


@pytest.mark.parametrize("setting, message", [
    ("siren.width=abc", "siren.width = 'abc' is not valid: must be an integer"),
    ("siren.width=-5", "siren.width = -5 is not valid: must be at least 1"),
    ("siren.depth=0", "siren.depth = 0 is not valid: must be at least 1"),
    ("siren.seed=3", "--set siren.seed: a fit's seed comes from --seeds"),
    ("rbf.amplitude=-1", "rbf.amplitude = -1 is not valid"),
    ("positional.max_log2=1000", "positional.max_log2 = 1000 is not valid"),
    ("nosuchrep.width=3", "unknown representation 'nosuchrep'"),
])
def test_bad_settings_stop_before_any_fit(run_cli, tmp_path, setting, message):
    code, _, err = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "siren", "--set", setting,
                           "--out", tmp_path)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "fitting" / "runs.jsonl").exists()


def test_provenance_says_what_ran(run_cli, tmp_path):
    code, _, _ = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--max-images", "1",
                         "--steps", "5", "--out", tmp_path)
    assert code == 0
    lines = [json.loads(line) for line in (tmp_path / "fitting" / "provenance.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and lines[0]["invocation"] == lines[1]["invocation"]
    started, finished = lines
    assert started["finished"] is None and finished["exit_code"] == 0
    assert "--reps relu_mlp" in finished["command"] and finished["matmul_peak_gflops"]["fp32"] > 0
    assert finished["torch"] and finished["fitbench_version"] and finished["device"] == "cpu"


@pytest.mark.parametrize("spec, message", [
    ("/nonexistent/photos", "no such folder or file"),
    ("nonexistent", "unknown image set 'nonexistent'"),
])
def test_a_missing_path_is_not_called_an_unknown_set(run_cli, tmp_path, spec, message):
    code, _, err = run_cli("--suite", "fitting", "--preset", "smoke", "--images", spec, "--out", tmp_path)
    assert code == 2 and message in err


def test_a_symlink_loop_is_one_line(run_cli, tmp_path):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    code, _, err = run_cli("--suite", "fitting", "--preset", "smoke", "--images", tmp_path / "a", "--out",
                           tmp_path / "out")
    assert code == 2 and "cannot be read (Too many levels of symbolic links)" in err


def test_a_gif_beside_pngs_is_read_and_other_files_are_named(tmp_path):
    from fitbench.datasets import load_images

    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "b.gif")
    (tmp_path / "readme.txt").write_text("not an image")
    samples = load_images(str(tmp_path), 32)
    assert [s.name for s in samples] == ["a", "b"]
    assert any("skipped 1 file(s)" in note and "readme.txt" in note for note in samples[0].notes)


def test_a_huge_png_gives_one_note_instead_of_a_raw_warning(tmp_path, recwarn):
    from fitbench.datasets import load_images

    Image.new("L", (9500, 9500)).save(tmp_path / "huge.png")  # over Pillow's 89-Mpixel warning limit
    sample = load_images(str(tmp_path / "huge.png"), 16)[0]
    assert any("large image (9500x9500" in note for note in sample.notes)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("link", ["fitting/runs.jsonl", "fitting", "fitting/reconstructions", "report", "wandb"])
def test_a_symlink_inside_out_that_leads_out_is_refused_before_any_fit(run_cli, tmp_path, link):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(elsewhere / ("runs.jsonl" if link.endswith(".jsonl") else ""), out / link)
    code, _, err = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--steps", "5",
                           "--max-images", "1", "--out", out)
    assert code == 2 and f"refusing to write {out / link}: it leads to {elsewhere}" in one_error_line(err)
    assert not any(elsewhere.iterdir())  # no record, lock, provenance, table, image or report outside --out
    assert not (out / "fitting" / "provenance.jsonl").exists()  # refused before the suite started


def test_every_writer_refuses_a_link_that_appears_during_a_run(tmp_path):
    from fitbench.html_report.files import ReportFiles
    from fitbench.paths import OutsideOutputError, writing_under
    from fitbench.provenance import Provenance
    from fitbench.report import write_tables

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "fitting")
    with writing_under(out):
        writes = [lambda: RecordLog(out / "fitting" / "runs.jsonl").append({"key": "a", "status": "ok"}),
                  lambda: FolderLock(out / "fitting").__enter__(),
                  lambda: Provenance(out / "fitting", "fitting", "smoke", "cpu"),
                  lambda: write_tables([], out / "fitting"),
                  lambda: ReportFiles(out, out / "fitting").save_png(Image.new("L", (4, 4)), Path("e.png"))]
        for write in writes:
            with pytest.raises(OutsideOutputError, match="outside the output folder"):
                write()
    assert not any(elsewhere.iterdir())


def test_a_symlinked_out_and_links_that_stay_inside_it_are_fine(run_cli, tmp_path):
    real = tmp_path / "real"
    (real / "store" / "fitting").mkdir(parents=True)
    os.symlink(real, tmp_path / "out")  # the user chose this link: it is resolved once
    os.symlink(real / "store" / "fitting", real / "fitting")  # inside --out: writes stay inside
    code, _, _ = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--steps", "5",
                         "--max-images", "1", "--out", tmp_path / "out")
    assert code == 0 and (real / "store" / "fitting" / "runs.jsonl").is_file()


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_out_pointing_at_a_file_is_one_error_line(run_cli, tmp_path, where):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    out = file if where == "file" else file / "sub"
    code, _, err = run_cli("--suite", "fitting", "--preset", "smoke", "--reps", "relu_mlp", "--out", out)
    assert code == 2 and f"--out {out}: not a folder" in one_error_line(err)
    assert file.read_text() == "mine"


def test_the_summary_survives_a_folder_where_every_run_failed(tmp_path):
    from fitbench.records import FitRecord
    from fitbench.report import write_tables

    records = [dataclasses.asdict(FitRecord(
        representation=name, kind="reference" if name == "bicubic" else "representation", image=image,
        image_set="builtin", protocol="alternate", preset="smoke", seed=seed, steps=0, size=8, params=0, lr=None,
        config={}, status="error", error="ValueError: ssim needs images of at least 11 pixels a side", max_steps=5,
        key=f"{name}-{image}-{seed}"))
        for name in ("bicubic", "relu_mlp", "siren") for image in ("camera", "astronaut") for seed in (0, 1)]
    summary = write_tables(records, tmp_path)
    assert set(summary["representation"]) == {"bicubic", "relu_mlp", "siren"}
    assert (summary["errors"] == 4).all()
    board = (tmp_path / "leaderboard.md").read_text()
    assert all(name in board for name in ("bicubic", "relu_mlp", "siren"))
