"""The HTML report: built from a folder of real suite results, then opened in real headless Chromium.

The fitting and compression folders come from the suites themselves (smoke preset, cut down to stay fast). The
generative, speed and provenance inputs are written here from small synthetic records in the suites' formats:
the generative smoke needs MNIST, which a new user lacks, and the speed smoke spends most of a minute compiling.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fitbench.cli import main
from fitbench.html_report import ReportError, write_report
from fitbench.html_report.stats import leaderboard, per_image_delta
from fitbench.stats import ci_half_width

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("results")
    assert main(["--suite", "fitting", "--preset", "smoke", "--reps", "rbf,relu_mlp", "--steps", "20", "--seeds", "2",
                 "--out", str(out)]) == 0
    assert main(["--suite", "compression", "--preset", "smoke", "--reps", "rbf", "--out", str(out)]) == 0
    shutil.copytree(out / "fitting", out / "ci", ignore=shutil.ignore_patterns("grids", "images"))  # same records
    write_published_points(out / "compression")
    write_generative(out / "generative")
    write_speed(out / "speed")
    write_provenance(out / "fitting")
    return out


def write_published_points(folder: Path) -> None:
    """Kodak figures quoted in issue 11, in the suite's columns, where the suite did not write its own."""
    if (folder / "published.csv").exists():
        return
    pd.DataFrame([
        {"method": "COIN", "dataset": "Kodak", "bpp": 0.307, "psnr": 26.41, "source": "Dupont et al. 2021"},
        {"method": "JPEG", "dataset": "Kodak", "bpp": 0.327, "psnr": 26.58, "source": "Dupont et al. 2021"},
    ]).to_csv(folder / "published.csv", index=False)


def write_generative(folder: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for model, kind, fd in [("real", "reference", 2.5), ("noise", "reference", 1250.0), ("vae", "model", 128.0)]:
        samples = Path("samples") / f"{model}.png"
        (folder / samples).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (56, 56), dtype=np.uint8)).save(folder / samples)
        rows.append({"model": model, "kind": kind, "form": "as written", "status": "ok", "fd": fd, "kid": fd / 10,
                     "precision": 0.5, "recall": 0.4, "class_acc": None, "per_class_acc": [0.1] * 10,
                     "config": {"lr": 1e-3}, "samples": str(samples), "interpolation": None, "key": model})
    rows.append({"model": "fokr", "kind": "model", "status": "error", "error": "ran out of time", "key": "fokr"})
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_speed(folder: Path) -> None:
    folder.mkdir(parents=True)
    pd.DataFrame({"representation": ["siren", "siren"], "loop": ["eager", "fast"], "steps_per_second": [30.5, 87.6],
                  "peak_percent": [0.014, 0.085]}).to_csv(folder / "speed.csv", index=False)
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(folder / "speed.png")


def write_provenance(folder: Path) -> None:
    entry = {"suite": "fitting", "command": "run_bench.py --suite fitting --preset smoke", "argv": [],
             "fitbench_version": "0.1.0", "commit": "0123456789abcdef0123", "torch": "2.13.0+cpu",
             "python": "3.11.7", "platform": "Linux", "device": "cpu", "device_name": "test CPU",
             "matmul_peak_gflops": {"fp32": 321.5}, "preset": "smoke", "started": "2026-01-01T00:00:00",
             "finished": "2026-01-01T00:01:00", "exit_code": 0}
    with (folder / "provenance.jsonl").open("a") as log:  # beside the suite's own line, where it writes one
        log.write(json.dumps(entry) + "\n")


@pytest.fixture(scope="module")
def report(results) -> Path:
    return write_report(results)


class Links(HTMLParser):
    """Every src and href of a page, the pictures its comparison menus offer, and every id."""

    def __init__(self):
        super().__init__()
        self.targets, self.ids, self.picture_menu = [], set(), False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.targets += [attrs[a] for a in ("src", "href") if attrs.get(a)]
        if tag == "select":
            self.picture_menu = attrs.get("class") in ("compare-left", "compare-right")
        if tag == "option" and self.picture_menu:
            self.targets.append(attrs["value"])
        if attrs.get("id"):
            self.ids.add(attrs["id"])


def test_page_shows_every_suite_and_links_only_files_inside_report(report, results):
    assert report == results / "report" / "index.html"
    html = report.read_text()
    links = Links()
    links.feed(html)
    assert {"fitting", "compression", "generative", "speed", "ci", "provenance"} <= links.ids
    for target in links.targets:
        if target.startswith("#"):
            assert target[1:] in links.ids
            continue
        assert not re.match(r"^[a-z]+:|^/|\.\.", target), f"not a relative link inside report/: {target}"
        assert (report.parent / unquote(target)).is_file(), target
    assert "not measured here" in html and "COIN" in html and "Dupont et al. 2021" in html
    assert "not recorded" in html and "test CPU" in html  # provenance: generative has none, fitting has one
    assert "ran out of time" in html  # the failed generative run is named, not dropped
    assert not list(results.glob(".report-*")), "the staging folder is swapped in, not left behind"


def test_leaderboard_figures_come_from_the_records(report, results):
    records = [json.loads(line) for line in (results / "fitting" / "runs.jsonl").read_text().splitlines()]
    by_image = {}
    for r in records:
        if r["representation"] == "rbf":
            by_image.setdefault(r["image"], []).append(r["psnr_test"])
    rbf = [sum(v) / len(v) for v in by_image.values()]  # the image is the unit: seeds averaged first
    mean, half = sum(rbf) / len(rbf), ci_half_width(rbf)
    html = report.read_text()
    assert f"{mean:.2f} <span class=\"ci\">± {half:.2f}</span>" in html
    errors = list((report.parent / "errors").glob("*.png"))
    assert len(errors) == 2 * 6  # 2 images x (4 interpolations, rbf, relu_mlp): each method's first seed


def test_the_interval_is_the_student_t_interval():
    # t(0.975, 3) = 3.182 from a printed t-table; sample std of 1..4 = sqrt(5/3)
    assert ci_half_width([1.0, 2.0, 3.0, 4.0]) == pytest.approx(3.182 * math.sqrt(5 / 3) / 2, rel=1e-3)
    assert math.isnan(ci_half_width([7.0])) and math.isnan(ci_half_width([]))


def fit(representation, image, psnr, seed=0, kind="representation", status="ok"):
    return {"representation": representation, "kind": kind, "image": image, "image_set": "s", "protocol": "alternate",
            "preset": "p", "seed": seed, "params": 1, "status": status, "psnr_test": psnr, "psnr_train": psnr,
            "psnr_full": psnr, "ssim_full": 0.5, "seconds": 1.0}


def test_delta_pairs_each_fit_with_the_reference_on_its_own_image():
    records = [fit("bicubic", "a", 20.0, kind="reference"), fit("bicubic", "b", 30.0, kind="reference"),
               fit("bilinear", "a", 19.0, kind="reference"), fit("bilinear", "b", 29.5, kind="reference"),
               fit("siren", "a", 21.0), fit("siren", "a", 21.5, seed=1), fit("siren", "b", 31.0),
               fit("siren", "b", None, seed=1, status="diverged")]
    [(table, deltas)] = per_image_delta(records).items()
    assert deltas.attrs["reference"] == "bicubic"  # the stronger of the two references
    assert deltas.set_index("image")["siren"].to_dict() == {"a": 1.25, "b": 1.0}  # seeds averaged per image
    row = leaderboard(records).set_index("representation").loc["siren"]
    assert (row["runs"], row["ok"], row["diverged"]) == (4, 3, 1)
    assert row["delta_ref_mean"] == pytest.approx(1.125) and row["reference"] == "bicubic"
    assert row["verdict"] == "too few images"  # two images cannot support a verdict at 5 %


def test_without_ground_truth_the_suite_grid_is_shown(results, tmp_path):
    shutil.copytree(results / "fitting", tmp_path / "fitting", ignore=shutil.ignore_patterns("images"))
    html = write_report(tmp_path).read_text()
    assert "ground truth of this image is not in the results folder" in html
    assert "files/fitting/grids/builtin-camera.png" in html


def test_a_folder_without_results_is_one_clear_error(tmp_path):
    with pytest.raises(ReportError, match="run a suite"):
        write_report(tmp_path)
    with pytest.raises(ReportError, match="no such results folder"):
        write_report(tmp_path / "missing")


@pytest.fixture(scope="module")
def chromium() -> str:
    """The system Chromium; skipped where it is absent, but a failure under CI, which must run this test.

    Module-scoped and asked for before `report`, so a skip comes before the results are built.
    """
    path = os.environ.get("FITBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "the playwright package is missing (pip install -e '.[test]')"
    if reason is None and not (path and Path(path).is_file()):
        where = f" at {path}" if path else ""
        reason = f"no Chromium found{where} (apt-get install chromium, or set FITBENCH_CHROMIUM)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    return path


def test_page_in_headless_chromium(chromium, report, tmp_path):
    from playwright.sync_api import sync_playwright

    copied = tmp_path / "copied" / "report"  # opened from a copy: it must need nothing outside its folder
    shutil.copytree(report.parent, copied)
    requests, problems = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route(re.compile(r"^(?!file:).*"), lambda route: route.abort())  # nothing may leave the machine
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(copied.joinpath("index.html").as_uri(), wait_until="load")

            # every picture loads (the page loads them lazily: ask for all of them now)
            page.evaluate("() => document.querySelectorAll('img').forEach(img => { img.loading = 'eager'; })")
            page.wait_for_function("() => Array.from(document.images).every(img => img.complete)")
            broken = page.evaluate("() => Array.from(document.images).filter(i => !i.naturalWidth).map(i => i.src)")
            assert page.evaluate("() => document.images.length") > 20 and broken == []

            # the leaderboard sorts on a click, one way then the other
            board = page.locator("table.leaderboard").first
            header = board.locator("th", has_text="test PSNR")
            column = board.locator("thead th").all_inner_texts().index(header.inner_text())

            def psnr_column():
                return [float(v) for v in board.locator(f"tbody td:nth-child({column + 1})").evaluate_all(
                    "cells => cells.map(c => c.dataset.sort)")]
            header.click()
            assert psnr_column() == sorted(psnr_column())
            header.click()
            assert psnr_column() == sorted(psnr_column(), reverse=True)

            # the comparison's slider moves the edge between the two pictures
            comparison = page.locator(".compare").first
            comparison.locator(".compare-split").fill("20")
            assert "80%" in comparison.locator(".compare-over").evaluate("img => img.style.clipPath")

            screenshots = Path(os.environ.get("FITBENCH_SCREENSHOT_DIR") or tmp_path)
            screenshots.mkdir(parents=True, exist_ok=True)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=str(screenshots / "report.png"))
        finally:
            browser.close()
    assert problems == []
    outside = [url for url in requests if not url.startswith(copied.as_uri() + "/")]
    assert outside == [], f"requests outside report/: {outside}"
    assert (screenshots / "report.png").stat().st_size > 10_000
