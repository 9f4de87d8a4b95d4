"""The compression section: rate–distortion curves of every method (and the published reference points, in a panel
of their own since they were measured on other images), the BD-rates, the per-rate summary and the matched-rate
table.

Reads OUT/compression/points.jsonl (the records: method kinds, failures), json/*.json (each method's averaged
Pareto front, in CompressAI's format), bd.csv, summary.csv, matched.csv, where the suite wrote it published.csv
(method, dataset, bpp, psnr, source), and any other table it writes there except the long points.csv.
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path

import matplotlib.ticker
import pandas as pd

from ..compression.codecs import ANCHOR  # the codec every BD-rate is measured against
from ..figures import plt
from ..records import RecordLog
from .files import ReportFiles
from .markup import Section, csv_table, details, figure, frame_table, image, note
from .plots import colours

TABLES = {  # the suite's tables, in the order a reader wants them
    "bd.csv": ("BD-rate (bits saved, negative is better) and BD-PSNR of each method against JPEG, per image on "
               "Pareto fronts, averaged over images; empty where the curves do not overlap."),
    "summary.csv": ("PSNR (dB) at fixed rates, interpolated on each Pareto front, beside JPEG's; empty outside a "
                    "curve's range."),
    "matched.csv": "Matched rates: for every representation point, the largest JPEG file not above its size.",
}


def compression_section(out: Path, files: ReportFiles) -> Section | None:
    folder = out / "compression"
    records = RecordLog(folder / "points.jsonl").read()
    fronts = read_fronts(folder / "json")
    if not records and not fronts:
        return None
    kinds = {r["method"]: r["kind"] for r in records}
    published = _read_csv(folder / "published.csv")
    parts = [rd_figure(fronts, kinds, published, files)]
    for name, caption in TABLES.items():
        if (folder / name).is_file():
            table = csv_table(folder / name, f"<code>{name}</code>: {caption}")
            parts.append(details(f"<code>{name}</code>", table, open_=name == "bd.csv"))
    if published is not None:
        table = frame_table(published, "Published reference points, <b>not measured here</b> (their images, sizes "
                                       "and budgets differ from this folder's), with their sources.")
        parts.append(details(f"<code>published.csv</code>: {len(published)} published points", table))
    # Tables the suite adds later, shown as they are; points.csv is every point of every sweep, too long to read.
    for path in sorted(set(folder.glob("*.csv")) - {folder / n for n in [*TABLES, "published.csv", "points.csv"]}):
        parts.append(details(f"<code>{escape(path.name)}</code>", csv_table(path)))
    failed = [r for r in records if r.get("status") == "error"]
    if failed:
        parts.append(note("Failed: " + "; ".join(f"{escape(r['method'])} on {escape(r['image'])}: "
                                                 f"{escape(str(r.get('error')))}" for r in failed)))
    return Section("compression", "Compression", "\n".join(parts), _glance(folder / "bd.csv"))


def read_fronts(folder: Path) -> dict[str, pd.DataFrame]:
    """Each CompressAI-format file's (bpp, psnr) curve, by method name; unreadable files are left out."""
    fronts = {}
    for path in sorted(folder.glob("*.json")):
        try:
            payload = json.loads(path.read_text())
            results = payload["results"]
            curve = pd.DataFrame({"bpp": results["bpp"], "psnr": results["psnr-rgb"]})
        except (OSError, ValueError, KeyError, TypeError):
            continue
        fronts[payload.get("name", path.stem)] = curve.sort_values("bpp")
    return fronts


def rd_figure(fronts: dict[str, pd.DataFrame], kinds: dict[str, str], published: pd.DataFrame | None,
              files: ReportFiles) -> str:
    panels = 2 if published is not None and not published.empty else 1
    figure_, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.6), layout="constrained", squeeze=False)
    colour = colours(fronts)
    ax = axes[0, 0]
    for method, curve in sorted(fronts.items(), key=lambda item: kinds.get(item[0]) != "codec"):
        codec = kinds.get(method) == "codec"
        ax.plot(curve["bpp"], curve["psnr"], "--" if codec else "-o", markersize=3, label=method,
                color="k" if method == ANCHOR else colour[method])
    _rate_axes(ax, "measured here: each method's best settings, averaged over images")
    if panels == 2:
        ax = axes[0, 1]
        for (method, dataset), points in published.groupby(["method", "dataset"], sort=True):
            points = points.sort_values("bpp")
            ax.plot(points["bpp"], points["psnr"], "--s", markersize=4, label=f"{method} ({dataset})")
        _rate_axes(ax, "published, not measured here")
    caption = ("Rate–distortion: PSNR against bits per pixel from the bytes written; solid lines are "
               "representations, dashed lines codecs" + (", and on the right the published reference points "
                                                        "(other images: compare shapes, not positions)" if panels == 2
                                                        else "") + ".")
    return figure(image(files.save_svg(figure_, "compression-rd"), "rate–distortion curves"), caption)


def _rate_axes(ax, title: str) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncols=2)


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError):
        return None


def _glance(bd_path: Path) -> str:
    bd = _read_csv(bd_path)
    if bd is None or "bd_rate_percent" not in bd:
        return "<b>Compression</b>: rate–distortion curves"
    rows = bd[(bd.get("kind", "representation") == "representation") & bd["bd_rate_percent"].notna()]
    if rows.empty:
        return "<b>Compression</b>: no representation's curve overlaps JPEG's rates (no BD-rate)"
    best = rows.loc[rows["bd_rate_percent"].idxmin()]
    rate = float(best["bd_rate_percent"])
    return (f"<b>Compression</b>: best BD-rate against JPEG <b>{escape(str(best['method']))}</b> "
            f"{rate:+.1f} % ({'fewer' if rate < 0 else 'more'} bits for the same PSNR)"
            if math.isfinite(rate) else "")
