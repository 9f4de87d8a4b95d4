"""The generative section: the metrics table (reference rows first, in italics) and each model's sample grid and
latent interpolation.

Reads OUT/generative/runs.jsonl and the PNGs its records name. Columns are taken from the records as they come,
so a column a later suite adds (a budget, a `form`) shows up with no change here; nested values (configs, logs,
per-class lists) and bookkeeping fields are left out.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import pandas as pd

from ..records import RecordLog
from .files import ReportFiles, image_size
from .markup import Cell, Section, figure, image, note, table

FIRST = ["model", "form", "kind"]  # then every other scalar column in record order
HIDDEN = {"status", "error", "key", "created", "samples", "interpolation", "checkpoint", "extractor"}


def generative_section(out: Path, files: ReportFiles) -> Section | None:
    folder = out / "generative"
    records = RecordLog(folder / "runs.jsonl").read()
    if not records:
        return None
    ok = [r for r in records if r.get("status") == "ok"]
    ok.sort(key=lambda r: (r.get("kind") != "reference", str(r.get("model"))))
    columns = metric_columns(ok)
    body = [[Cell(f"<i>{escape(str(r.get(c)))}</i>", r.get(c)) if c == "model" and r.get("kind") == "reference"
             else r.get(c) for c in columns] for r in ok]
    extractors = sorted({str(r["extractor"]) for r in ok if r.get("extractor")})
    caption = ("Reference rows (italics) bound what a score can mean: <i>real</i> is real-vs-real, the floor. "
               "Lower is better for Fréchet distance and KID; higher for precision, recall and class accuracy."
               + (f" Features: {escape('; '.join(extractors))}." if extractors else ""))
    parts = [table(columns, body, caption, ["reference" if r.get("kind") == "reference" else "" for r in ok])]
    failed = [r for r in records if r.get("status") != "ok"]
    if failed:
        parts.append(note("Not finished: " + "; ".join(f"{escape(str(r.get('model')))}: {escape(str(r.get('error')))}"
                                                      for r in failed)))
    parts.append(sample_gallery(ok, folder, files))
    return Section("generative", "Generative", "\n".join(parts), _glance(ok))


def metric_columns(records: list[dict]) -> list[str]:
    """Every column holding a plain value in some record, the identifying ones first."""
    seen: dict[str, None] = {}
    for record in records:
        for name, value in record.items():
            if name not in HIDDEN and (value is None or isinstance(value, (str, int, float, bool))):
                seen.setdefault(name)
    present = [c for c in FIRST if c in seen]
    return present + [c for c in seen if c not in present and any(r.get(c) is not None for r in records)]


def sample_gallery(records: list[dict], folder: Path, files: ReportFiles) -> str:
    tiles = []
    for record in records:
        name = escape(str(record.get("model")))
        for field, what in (("samples", "samples"), ("interpolation", "latent interpolation")):
            path = folder / record[field] if record.get(field) else None
            src = files.copy(path) if path else None
            if src:
                width, height = image_size(path) or (None, None)
                tiles.append(figure(image(src, f"{name} {what}", width, height, "samples"), f"{name}: {what}"))
    if not tiles:
        return note("These records name no sample grids.")
    return "<h4>Samples</h4><div class=\"gallery\">" + "".join(tiles) + "</div>"


def _glance(records: list[dict]) -> str:
    frame = pd.DataFrame(records)
    if frame.empty or "fd" not in frame:
        return ""
    models = frame[(frame["kind"] == "model") & frame["fd"].notna()]
    real = frame[frame["model"] == "real"]["fd"]
    if models.empty:
        return ""
    best = models.loc[models["fd"].idxmin()]
    floor = f" (real-vs-real {real.iloc[0]:.3g})" if len(real) else ""
    return f"<b>Generative</b>: lowest Fréchet distance <b>{escape(str(best['model']))}</b> {best['fd']:.3g}{floor}"
