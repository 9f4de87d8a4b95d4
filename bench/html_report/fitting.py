"""The fitting section (and the CI run's, the same records): per image set and preset, the leaderboard with
confidence intervals over images, the gap to the strongest interpolation reference with its Holm-adjusted verdict,
the Friedman ranks and their critical-difference diagram, Δ reference per image, test PSNR against training time,
and per image
the ground truth beside each reconstruction and its error map, with a side-by-side slider at full resolution.

Reads OUT/<suite>/runs.jsonl, the reconstructions it names, and OUT/fitting/images/<set>/<image>.png (the ground
truth) where the suite saved it.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

import matplotlib.ticker
import numpy as np
import pandas as pd
from PIL import Image

from ..figures import ERROR_RANGE, critical_difference_figure, plt
from ..paths import safe_name
from ..records import RecordLog
from ..report import TOGETHER, budget_label
from . import stats
from .files import ReportFiles, image_size
from .markup import Cell, Section, details, figure, image, note, plus_minus, table
from .plots import REFERENCE_STYLE, colours, error_legend_gradient, error_map

THUMBNAIL = 128  # px; smaller images are scaled up with visible pixels


def fitting_section(out: Path, files: ReportFiles) -> Section | None:
    return _section(out / "fitting", files, "fitting", "Fitting", with_images=True)


def ci_section(out: Path, files: ReportFiles) -> Section | None:
    return _section(out / "ci", files, "ci", "CI regression fit", with_images=False)


def _section(folder: Path, files: ReportFiles, anchor: str, title: str, with_images: bool) -> Section | None:
    records = RecordLog(folder / "runs.jsonl").read()
    if not records:
        return None
    board = stats.leaderboard(records)
    deltas, tests = stats.per_image_delta(records), stats.rank_tests(records)
    colour = colours(board.loc[board["kind"] != "reference", "representation"])  # references: a dashed line
    parts, glances = [], []
    for key, rows in board.groupby(stats.GROUP, sort=True):
        preset, protocol, image_set, budget = key
        name = safe_name(f"{anchor}-{image_set}-{preset}-{protocol}-{budget}")
        sets = image_set.split(TOGETHER)
        group_records = [r for r in records if (r["preset"], r["protocol"]) == key[:2] and r["image_set"] in sets
                         and budget_label(r) in ("", budget)]
        parts.append(f"<h3 id=\"{escape(name)}\">{escape(image_set)} · preset <code>{escape(preset)}</code> · "
                     f"protocol <code>{escape(protocol)}</code> · budget {escape(budget or '–')}</h3>")
        settings = "; ".join(sorted({s for s in rows["settings_from"] if isinstance(s, str) and s}))
        parts.append(note(f"Settings: {escape(settings or 'each representation’s source defaults and the preset’s size class')}."))
        parts.append(leaderboard_table(rows))
        parts.append(rank_diagram(tests.get(key), f"{image_set} · {preset} · {budget}", files, name))
        parts.append(failures(group_records))
        parts.append(delta_table(deltas.get(key), list(rows["representation"])))
        if with_images and len(sets) == 1:  # a table over several sets repeats their images
            references = sorted({r for r in rows["reference"] if isinstance(r, str)})
            parts.append(time_plot(group_records, colour, files, name, references))
            parts.append(image_gallery(group_records, list(rows["representation"]), folder, files))
        glances.append(_glance(rows, image_set, f"{preset}, {budget}" if budget else preset))
    return Section(anchor, title, "\n".join(parts), f"<b>{title}</b>: " + "; ".join(g for g in glances if g))


def leaderboard_table(rows: pd.DataFrame) -> str:
    """Best test PSNR first; reference rows in italics; the gap to the reference with its interval and verdict."""
    body, classes = [], []
    for rank, row in enumerate(rows.itertuples(), 1):
        reference = row.kind == "reference"
        name = f"<i>{escape(row.representation)}</i> (reference)" if reference else escape(row.representation)
        failed = row.runs - row.ok
        body.append([
            rank, Cell(name, row.representation), row.params,
            Cell(f"{row.ok}/{row.runs}" + (f" <span class=\"bad\">({failed} not ok)</span>" if failed else ""), row.ok),
            _interval(row.psnr_test_mean, row.psnr_test_ci95),
            _interval(row.psnr_full_mean, row.psnr_full_ci95),
            _interval(row.ssim_full_mean, row.ssim_full_ci95, 3),
            Cell(f"{row.seconds_mean:.1f}" if math.isfinite(row.seconds_mean) else "–", row.seconds_mean, "num"),
            Cell(f"{row.mean_rank:.2f}" if math.isfinite(row.mean_rank) else "–", row.mean_rank, "num"),
            Cell("" if reference else _signed(row.delta_ref_mean, row.delta_ref_ci95),
                 None if reference else row.delta_ref_mean, "num"),
            Cell("" if reference or not math.isfinite(row.delta_ref_p_holm) else f"{row.delta_ref_p_holm:.3g}",
                 None if reference else row.delta_ref_p_holm, "num"),
            row.verdict,
        ])
        classes.append("reference" if reference else "below" if str(row.verdict).startswith("below") else
                       "above" if str(row.verdict).startswith("above") else "")
    images = int(rows["images"].max()) if len(rows) else 0
    references = sorted({r for r in rows["reference"] if isinstance(r, str)})
    caption = (f"Mean <span class=\"ci\">± half-width of the 95 % t-interval</span> over images, each image's "
               f"seeds averaged first ({images} image{'s' if images != 1 else ''}); click a header to sort. "
               f"Δ ref: each representation's test PSNR minus {', '.join(references) or 'the reference'}'s on the same "
               "image (the strongest interpolation of the training pixels here). The verdict is the Wilcoxon "
               "signed-rank test's at 5 % after Holm's correction across the table (p Holm); mean rank: 1 = best.")
    return table(["#", "representation", "params", "fits ok", "test PSNR (dB)", "full PSNR (dB)", "SSIM", "s / fit",
                  "mean rank", "Δ ref (dB)", "p Holm", "verdict"], body, caption, classes,
                 css="sortable leaderboard")


def rank_diagram(test, title: str, files: ReportFiles, name: str) -> str:
    """The Friedman test and its critical-difference diagram (Demšar 2006)."""
    if test is None:
        return note("Ranks: fewer than two images or methods, no rank test.")
    caption = (f"Friedman test over {len(test.mean_ranks)} methods × {test.images} images: χ² = {test.statistic:.1f}, "
               f"p = {test.p:.2g}. Each method at its mean rank (1 = best); a bar joins methods whose mean ranks "
               f"differ by less than the Nemenyi critical difference CD = {test.critical_difference:.2f}.")
    return ("<h4>Ranks</h4>" + figure(image(files.save_svg(critical_difference_figure(test, title), f"{name}-cd"),
                                              "critical-difference diagram"), caption))


def failures(records: list[dict]) -> str:
    failed = [r for r in records if r.get("status") != "ok"]
    if not failed:
        return ""
    items = "".join(f"<li><b>{escape(r['representation'])}</b> on {escape(r['image'])} (seed {r['seed']}): "
                    f"{escape(r['status'])}{': ' + escape(str(r['error'])) if r.get('error') else ''}</li>"
                    for r in failed)
    return details(f"{len(failed)} fit{'s' if len(failed) != 1 else ''} not ok (left out of the means)",
                   f"<ul>{items}</ul>")


def delta_table(deltas: pd.DataFrame | None, order: list[str]) -> str:
    if deltas is None or deltas.empty:
        return note("Δ per image: no interpolation reference rows in these records.")
    reference = escape(deltas.attrs["reference"])
    names = [n for n in order if n in deltas.columns]
    body = [[row["image"], Cell(f"{row['reference_psnr_test']:.2f}", row["reference_psnr_test"], "num")]
            + [Cell(_signed(row[n], math.nan), row[n], "num " + _sign_class(row[n])) for n in names]
            for _, row in deltas.iterrows()]
    return (f"<h4>Δ to {reference} per image</h4>" +
            table(["image", f"{reference} test PSNR (dB)"] + names, body,
                  f"Test PSNR minus {reference}'s on the same image, mean over seeds (dB); green above, red below; "
                  "– : no score (a failed fit)."))


def time_plot(records: list[dict], colour: dict, files: ReportFiles, name: str, reference_names: list[str]) -> str:
    """Test PSNR against training time: each fit's evaluation curve, or its final point where it has none."""
    fits = [r for r in records if r.get("status") == "ok" and r["kind"] != "reference"]
    if not fits:
        return ""
    figure_, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
    labelled, curves = set(), 0
    for record in fits:
        evaluation = (record.get("curve") or {}).get("eval") or {}
        label = None if record["representation"] in labelled else record["representation"]
        labelled.add(record["representation"])
        style = {"color": colour[record["representation"]], "label": label}
        if evaluation.get("seconds") and evaluation.get("psnr_test"):
            ax.plot(evaluation["seconds"], evaluation["psnr_test"], "-", marker=".", alpha=0.7, **style)
            curves += 1
        else:
            ax.plot([record["seconds"]], [record["psnr_test"]], "o", **style)
    for name in reference_names:
        scores = [r["psnr_test"] for r in records if r["representation"] == name and r.get("status") == "ok"]
        if scores:
            ax.axhline(float(np.mean(scores)), label=f"{name} (mean over images)", **REFERENCE_STYLE)
    if all(r["seconds"] > 0 for r in fits):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("test PSNR (dB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    how = ("each line is one fit, evaluated during training" if curves == len(fits) else
           "each point is one fit's final test PSNR and its training time (these records hold no evaluation "
           "curve)" if curves == 0 else "lines: fits evaluated during training; points: final values only")
    return ("<h4>Test PSNR against training time</h4>" +
            figure(image(files.save_svg(figure_, f"{name}-time"), "test PSNR against training time"), how + "."))


def image_gallery(records: list[dict], order: list[str], folder: Path, files: ReportFiles) -> str:
    """Per image: ground truth, each method's first-seed reconstruction over its error map, and a comparison."""
    parts = ["<h4>Images</h4>"]
    by_image: dict[str, list[dict]] = {}
    for record in records:
        if record.get("status") == "ok" and record.get("reconstruction"):
            by_image.setdefault(record["image"], []).append(record)
    if not by_image:
        return note("No reconstructions were saved with these records.")
    legend = (f"<p class=\"legend\">Error maps: mean |error| over channels, <span class=\"colourbar\" style=\""
              f"background: {error_legend_gradient()}\"></span> 0 to {ERROR_RANGE:g} (of the 0–1 range), "
              "the scale of the suite's grids. Click a picture to put it on the right of the comparison.</p>")
    parts.append(legend)
    for image_name, rows in by_image.items():
        first = {}
        for record in sorted(rows, key=lambda r: r["seed"]):
            first.setdefault(record["representation"], record)
        shown = [first[n] for n in order if n in first]
        parts.append(_one_image(image_name, rows[0]["image_set"], shown, folder, files))
    return "\n".join(parts)


def _one_image(image_name: str, image_set: str, shown: list[dict], folder: Path, files: ReportFiles) -> str:
    truth_path = ground_truth_path(folder, image_set, image_name)
    truth = _pixels(truth_path) if truth_path else None
    truth_url = files.copy(truth_path) if truth_path else None
    tiles, choices, best = [], [], None
    if truth_url:
        tiles.append(figure(_thumbnail(truth_url, "ground truth", 0, image_size(truth_path)), "ground truth",
                            css="tile"))
        choices.append(("ground truth", truth_url))
    for record in shown:
        path = folder / record["reconstruction"]
        recon_url = files.copy(path)
        if not recon_url:
            continue
        if best is None and record["kind"] != "reference":
            best = len(choices)
        name = record["representation"]
        pictures = [_thumbnail(recon_url, name, len(choices), image_size(path))]
        choices.append((name, recon_url))
        reconstruction = _pixels(path)
        if truth is not None and reconstruction is not None and reconstruction.shape == truth.shape:
            error_url = files.save_png(error_map(reconstruction, truth), Path("errors") / f"{record['key']}.png")
            pictures.append(_thumbnail(error_url, f"{name} error map", len(choices), truth.shape[1::-1]))
            choices.append((f"{name} |error|", error_url))
        tiles.append(figure("".join(pictures), f"{escape(name)} · {record['psnr_test']:.2f} dB", css="tile"))
    header = f"<h5>{escape(image_name)}</h5>"
    if truth_url is None:
        grid = files.copy(folder / "grids" / f"{safe_name(image_set)}-{safe_name(image_name)}.png")
        header += note("The ground truth of this image is not in the results folder (older runs did not save it), "
                       "so there are no error maps here" + (": the suite's grid below has them." if grid else "."))
        if grid:
            header += figure(image(grid, f"{image_name}: the suite's reconstruction grid"), css="grid")
    tiles_html = f"<div class=\"tiles\">{''.join(tiles)}</div>"
    return f"<div class=\"image-block\">{header}{tiles_html}{_compare(choices, best)}</div>"


def ground_truth_path(folder: Path, image_set: str, image_name: str) -> Path | None:
    """OUT/fitting/images/<set>/<image>.png, named as the suite names it, if it is there."""
    path = folder / "images" / safe_name(image_set) / f"{safe_name(image_name)}.png"
    return path if path.is_file() else None


def _thumbnail(src: str, alt: str, choice: int, size: tuple[int, int] | None) -> str:
    """A small picture; `choice` is its place in the comparison's menus, so a click can select it there."""
    width, height = size or (THUMBNAIL, THUMBNAIL)
    return image(src, alt, width, height, "thumb pixelated" if width < THUMBNAIL else "thumb",
                 attributes={"data-choice": choice})


def _compare(choices: list[tuple[str, str]], right: int | None) -> str:
    """Two pictures over each other at full resolution, a slider wiping between them, and a zoom (report.js).

    Left starts on the first choice (the ground truth where there is one), right on `right` (the best fit).
    """
    if len(choices) < 2:
        return ""
    options = "".join(f"<option value=\"{escape(src)}\">{escape(label)}</option>" for label, src in choices)
    right = right if right else 1
    return (
        "<div class=\"compare\" data-right=\"" + str(right) + "\">"
        "<div class=\"compare-controls\">"
        f"<label>left <select class=\"compare-left\">{options}</select></label>"
        f"<label>right <select class=\"compare-right\">{options}</select></label>"
        "<label>zoom <select class=\"compare-zoom\">"
        + "".join(f"<option value=\"{z}\">{z}×</option>" for z in (1, 2, 4, 8, 16)) +
        "</select></label></div>"
        f"<div class=\"compare-view\"><img class=\"compare-under\" src=\"{escape(choices[right][1])}\" alt=\"right\">"
        f"<img class=\"compare-over\" src=\"{escape(choices[0][1])}\" alt=\"left\"></div>"
        "<input class=\"compare-split\" type=\"range\" min=\"0\" max=\"100\" value=\"50\" "
        "aria-label=\"where the left picture ends\"></div>"
    )


def _pixels(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as opened:
            array = np.asarray(opened.convert("L" if opened.mode in ("L", "I;16", "I") else "RGB"))
    except OSError:
        return None
    return array[..., None] if array.ndim == 2 else array


def _glance(rows: pd.DataFrame, image_set: str, preset: str) -> str:
    fitted = rows[rows["kind"] != "reference"].dropna(subset=["psnr_test_mean"])
    if fitted.empty:
        return ""
    best = fitted.iloc[0]
    delta = "" if not math.isfinite(best.delta_ref_mean) else \
        f", Δ {escape(best.reference)} {_signed(best.delta_ref_mean, best.delta_ref_ci95)} dB ({escape(best.verdict)})"
    return (f"best on {escape(image_set)} (preset {escape(preset)}): <b>{escape(best.representation)}</b> "
            f"{plus_minus(best.psnr_test_mean, best.psnr_test_ci95)} dB test PSNR{delta}")


def _interval(mean: float, half_width: float, digits: int = 2) -> Cell:
    return Cell(plus_minus(mean, half_width, digits), mean if math.isfinite(mean) else None, "num")


def _signed(mean: float, half_width: float) -> str:
    if mean is None or not math.isfinite(mean):
        return "–"
    text = f"{mean:+.2f}".replace("-", "−")
    return text + (f" <span class=\"ci\">± {half_width:.2f}</span>" if math.isfinite(half_width) else "")


def _sign_class(value: float) -> str:
    return "" if not math.isfinite(value) else "above" if value > 0 else "below"
