"""The speed section: every table and plot the speed suite wrote, whatever they are.

Reads OUT/speed/*.csv and *.png / *.svg. The suite's tables and plots change as it learns to explain more of each
step (a breakdown per part, a roofline), so nothing here names a column or a file.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from .files import ReportFiles, image_size
from .markup import Section, csv_table, figure, image

PICTURES = (".png", ".svg")


def speed_section(out: Path, files: ReportFiles) -> Section | None:
    folder = out / "speed"
    tables = sorted(folder.glob("*.csv"))
    pictures = sorted(p for p in folder.glob("*") if p.suffix.lower() in PICTURES)
    if not tables and not pictures:
        return None
    parts = [csv_table(path, f"<code>{escape(path.name)}</code>") for path in tables]
    for path in pictures:
        width, height = image_size(path) or (None, None)
        parts.append(figure(image(files.copy(path), path.stem, width, height), f"<code>{escape(path.name)}</code>"))
    names = ", ".join(p.name for p in tables + pictures)
    return Section("speed", "Speed", "\n".join(parts), f"<b>Speed</b>: {escape(names)}")
