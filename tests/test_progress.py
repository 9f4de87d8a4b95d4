"""What a suite shows while its fits run (time left, best so far, plain lines in logs), `--dry-run`'s plan, and the
refusal of a preset whose tuned settings do not exist yet."""

import dataclasses
import fcntl
import io
import os
import re
import struct
import termios
from dataclasses import dataclass

import pytest

from fitbench import presets, progress
from fitbench.progress import Best, Progress, TimeLeft, is_live


@dataclass(frozen=True)
class Fit:
    representation: str
    key: str
    steps: int = 100

    @property
    def label(self) -> str:
        return f"{self.representation} {self.key}"


def fits(**counts: int) -> list[Fit]:
    return [Fit(name, f"{name}{i}", 0 if name == "bicubic" else 100) for name, n in counts.items() for i in range(n)]


@pytest.fixture
def clock(monkeypatch):
    """A wall clock the test moves: elapsed time is exactly what it says."""
    now = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    return now


def test_time_left_is_each_representations_mean_times_its_fits_left(clock):
    runs = fits(slow=4, fast=2)
    left = TimeLeft(runs)
    assert left.seconds() is None  # nothing finished: no estimate
    clock[0] += 10.0
    left.finished(runs[0], {"status": "ok"}, 10.0)
    clock[0] += 1.0
    left.finished(runs[4], {"status": "ok"}, 1.0)
    assert left.seconds() == pytest.approx(3 * 10.0 + 1 * 1.0)  # a global rate would say 4 x 5.5 = 22


def test_start_up_before_the_first_fit_is_not_the_price_of_every_fit(clock):
    runs = fits(siren=4)
    left = TimeLeft(runs)
    clock[0] += 30.0  # starting Ray, loading images
    clock[0] += 10.0
    left.finished(runs[0], {"status": "ok"}, 10.0)
    assert left.seconds() == pytest.approx(30.0)  # three fits of 10 s, not 3 x 10 s x (40 s / 10 s)


def test_a_representation_not_seen_yet_costs_what_fits_like_it_cost(clock):
    runs = fits(bicubic=2, slow=1, unseen=1)
    left = TimeLeft(runs)
    clock[0] += 0.1
    left.finished(runs[0], {"status": "ok", "kind": "reference"}, 0.1)
    clock[0] += 8.0
    left.finished(runs[2], {"status": "ok"}, 8.0)
    assert left.seconds() == pytest.approx(0.1 + 8.0)  # the unseen fit takes steps: priced as `slow`, not bicubic


def test_fits_computed_with_the_first_of_their_batch_cost_nothing_more(clock):
    runs = fits(siren=3, rbf=2)
    left = TimeLeft(runs)
    batched = {"status": "ok", "batch": 3, "batch_seconds": 8.5}
    clock[0] += 9.0
    left.finished(runs[0], batched, 9.0)  # the batch's first: its time paid for all three
    clock[0] += 2.0
    left.finished(runs[3], {"status": "ok"}, 2.0)
    assert left.seconds() == pytest.approx(2.0)  # the other two siren fits are done already; one rbf fit left
    clock[0] += 0.2
    left.finished(runs[1], batched, 0.2)  # a member: no new cost, one fewer prepaid
    assert left.seconds() == pytest.approx(2.0)


def test_fits_that_run_in_parallel_shorten_the_wall_clock_time_left(clock):
    runs = fits(siren=4)
    left = TimeLeft(runs)
    clock[0] += 10.0  # two workers: 20 s of fits in 10 s
    left.finished(runs[0], {"status": "ok"}, 10.0)
    left.finished(runs[1], {"status": "ok"}, 10.0)
    assert left.seconds() == pytest.approx(10.0)


def test_best_is_the_headline_metric_of_contenders_only():
    best = Best()
    assert str(best) == ""
    best.offer({"representation": "bicubic", "kind": "reference", "status": "ok", "psnr_test": 30.0})
    best.offer({"representation": "wire", "kind": "representation", "status": "error", "psnr_test": None})
    best.offer({"representation": "siren", "kind": "representation", "status": "ok", "psnr_test": 25.123})
    best.offer({"representation": "rbf", "kind": "representation", "status": "ok", "psnr_test": 24.0})
    assert str(best) == "best: siren 25.12 dB"
    lower = Best()
    for model, fd in (("vae", 40.0), ("fokr", 12.5)):
        lower.offer({"model": model, "status": "ok", "fd": fd})
    assert str(lower) == "best: fokr 12.50 fd"  # a distance: lower is better
    none = Best()
    none.offer({"method": "siren", "status": "ok", "points": [{"psnr": 30.0}]})  # no headline field: no claim
    assert str(none) == ""


def test_plain_mode_writes_each_result_and_a_progress_line_at_most_every_ten_seconds(clock):
    runs = fits(siren=3)
    stream = io.StringIO()
    with Progress(runs, live=False, stream=stream) as shown:
        record = {"representation": "siren", "kind": "representation", "status": "ok", "psnr_test": 20.0}
        clock[0] += 2.0
        shown.finished(runs[0], record, 2.0)  # 2 s after the start: no progress line yet
        clock[0] += 12.0
        shown.finished(runs[1], {**record, "psnr_test": 22.5}, 12.0)
        assert shown.bar is None
    lines = stream.getvalue().splitlines()
    assert lines == ["[1/3] siren siren0: psnr test 20.00", "[2/3] siren siren1: psnr test 22.50",
                     "progress: 2/3 done, ~7 s left, best: siren 22.50 dB"]


def test_the_last_fit_always_closes_with_a_progress_line(clock):
    runs = fits(rbf=1)
    stream = io.StringIO()
    Progress(runs, done=4, total=5, live=False, stream=stream).finished(runs[0], {"status": "ok"}, 0.5)
    assert stream.getvalue().splitlines()[-1] == "progress: 5/5 done, in 0 s"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("ci, live", [(None, True), ("true", False), ("1", False), ("false", True)])
def test_a_live_bar_only_on_a_terminal_outside_ci(monkeypatch, ci, live):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(progress, "_columns", lambda stream: 80)
    assert is_live(Terminal()) is live
    assert is_live(io.StringIO()) is False


def test_what_runs_is_cut_short_so_the_bar_keeps_its_room(clock):
    runs = fits(siren=2)
    stream = Terminal()
    with Progress(runs, live=True, stream=stream) as shown:
        shown.running("2 running: wire on natural-test-15 (seed 0) @ vm pid 32299 step 100/150, finer on text-test-01")
        postfix = shown.bar.postfix
    assert postfix.endswith(", 2 running: wire on natural-test-15 (seed 0) @ v…")
    assert len(postfix.split(", ", 1)[1]) == 48


def test_a_terminal_that_reports_no_width_gets_plain_lines(monkeypatch):
    """A pseudo-terminal nobody sized (what `script` or a CI runner may hand over) has 0 columns, where tqdm draws
    a bar of nothing; once sized, it is a terminal like any other."""
    monkeypatch.delenv("CI", raising=False)
    leader, follower = os.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as stream:
            assert is_live(stream) is False
            fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
            assert is_live(stream) is True
    finally:
        os.close(leader)
        os.close(follower)


def test_the_live_bar_shows_the_time_left_the_best_and_what_runs(clock):
    runs = fits(siren=2)
    stream = Terminal()
    with Progress(runs, live=True, stream=stream) as shown:
        shown.running("siren on camera")
        clock[0] += 3.0
        shown.finished(runs[0], {"representation": "siren", "status": "ok", "psnr_test": 21.0}, 3.0)
        shown.running("siren on astronaut")
        assert str(shown.bar).endswith("1/2 [00:00, ~3 s left, best: siren 21.00 dB, siren on astronaut]")


# --- through the command line ------------------------------------------------------------------------------------

SMALL = ("--preset", "smoke", "--reps", "rbf", "--max-images", "1", "--steps", "20")


def test_dry_run_prints_the_plan_and_writes_nothing(run_cli, tmp_path):
    out = tmp_path / "out"
    code, stdout, _ = run_cli("--suite", "fitting", *SMALL, "--out", out, "--dry-run")
    assert code == 0 and not out.exists()
    assert "fits: 5 planned, 0 already done" in stdout and ", 5 to run" in stdout
    assert "images: 1 at 32x32: builtin/camera" in stdout and "steps per fit: 20; seeds: 0" in stdout
    assert re.search(r"\nrbf +1 +0 +\S+ s  source defaults\n", stdout)
    assert "estimated time: ~" in stdout and "an estimate" in stdout
    assert run_cli("--suite", "fitting", *SMALL, "--out", out)[0] == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    code, stdout, _ = run_cli("--suite", "fitting", *SMALL, "--out", out, "--dry-run")
    assert code == 0 and "fits: 5 planned, 5 already done" in stdout and ", 0 to run" in stdout
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # resume counted, nothing touched


def test_dry_run_of_the_compression_and_tune_suites(run_cli, tmp_path):
    from PIL import Image
    import numpy as np

    out = tmp_path / "out"
    code, stdout, _ = run_cli("--suite", "compression", "--preset", "smoke", "--reps", "rbf", "--out", out,
                              "--dry-run")
    assert code == 0 and not out.exists()
    assert "dry run of the compression suite" in stdout and "rbf" in stdout and "already done" in stdout
    tuning = tmp_path / "tuning"
    tuning.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
            tuning / f"tune{i}.png")
    code, stdout, _ = run_cli("--suite", "tune", "--preset", "smoke", "--reps", "rbf", "--images", tuning,
                              "--steps", "5", "--out", out, "--dry-run")
    assert code == 0 and not out.exists()
    assert "dry run of the tune suite" in stdout and re.search(r"fits: \d+ planned, 0 already done", stdout)


def test_dry_run_of_a_suite_without_a_plan_is_refused(run_cli, tmp_path):
    code, _, err = run_cli("--suite", "speed", "--preset", "smoke", "--out", tmp_path / "out", "--dry-run")
    assert code == 2 and err.strip().startswith("error: unrecognized arguments: --dry-run")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.fixture
def untuned_standard(monkeypatch, tmp_path):
    """The standard preset as it is until its tuned file ships: declared, but missing."""
    preset = dataclasses.replace(presets.FITTING_PRESETS["standard"], tuned=str(tmp_path / "standard.json"))
    monkeypatch.setitem(presets.FITTING_PRESETS, "standard", preset)
    return preset


STANDARD_SMALL = ("--preset", "standard", "--images", "builtin", "--reps", "rbf", "--max-images", "1", "--seeds", "1",
                  "--steps", "5", "--size", "32")


def test_a_preset_without_its_tuned_file_refuses_to_run_unless_told(run_cli, tmp_path, untuned_standard):
    out = tmp_path / "out"
    code, _, err = run_cli("--suite", "fitting", *STANDARD_SMALL, "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: preset standard has no tuned")
    assert re.search(r"`python run_bench.py tune --preset standard` \(\d+ fits at the preset's budget", err)
    assert "--tuned none" in err and not (out / "fitting" / "runs.jsonl").exists()
    code, stdout, err = run_cli("--suite", "fitting", *STANDARD_SMALL, "--out", out, "--dry-run")
    assert code == 0 and "note: preset standard has no tuned settings" in err and "fits: 5 planned" in stdout
    assert run_cli("--suite", "fitting", *STANDARD_SMALL, "--out", out, "--tuned", "none")[0] == 0


def test_presets_that_declare_no_tuned_file_run_as_before():
    assert presets.FITTING_PRESETS["smoke"].tuned is None  # what the tests and CI run
