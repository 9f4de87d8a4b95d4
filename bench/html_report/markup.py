"""Small HTML builders shared by the sections: escaped text, sortable tables, figures and notes.

Plain functions returning strings: each section composes them; no template engine, nothing fetched at view time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Section:
    """One part of the page: its anchor, heading, body, and the line it adds to the summary at the top."""

    id: str
    title: str
    body: str
    glance: str = ""


@dataclass(frozen=True)
class Cell:
    """A table cell: what it shows (HTML), the value it sorts by, and an optional CSS class."""

    html: str
    sort: Any = None
    css: str = ""


def number(value: Any, digits: int = 4) -> str:
    """A number shown to `digits` significant figures (integers whole, with thousands separators)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return escape(str(value))


def plus_minus(mean: float, half_width: float, digits: int = 2) -> str:
    """`mean ± half-width` (the half-width left out when there is none, e.g. one run)."""
    if mean is None or not math.isfinite(mean):
        return "–"
    if half_width is None or not math.isfinite(half_width):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} <span class=\"ci\">± {half_width:.{digits}f}</span>"


def cell_of(value: Any) -> Cell:
    if isinstance(value, Cell):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        finite = math.isfinite(value)
        return Cell(number(value), value if finite else None, "num")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Cell("–")
    return Cell(escape(str(value)), str(value))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "", row_classes: Sequence[str] = (),
          css: str = "sortable") -> str:
    """A table, by default one whose headers sort it on a click (report.js); cells are values or `Cell`s."""
    head = "".join(f"<th scope=\"col\">{escape(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cells = [cell_of(v) for v in row]
        row_class = row_classes[i] if i < len(row_classes) and row_classes[i] else ""
        # data-sort always present: an empty one (a missing value) sorts last instead of as text
        tds = "".join(f"<td{_attr('class', c.css)} data-sort=\"{escape('' if c.sort is None else str(c.sort))}\">"
                      f"{c.html}</td>" for c in cells)
        body.append(f"<tr{_attr('class', row_class)}>{tds}</tr>")
    caption_html = f"<caption>{caption}</caption>" if caption else ""
    return (f"<div class=\"table-wrap\"><table class=\"{css}\">{caption_html}<thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def frame_table(frame: pd.DataFrame, caption: str = "", row_classes: Sequence[str] = ()) -> str:
    """Any DataFrame as a sortable table, every column as it is (CSV files whose columns other suites add)."""
    rows = [[_plain(v) for v in record] for record in frame.itertuples(index=False)]
    return table([str(c) for c in frame.columns], rows, caption, row_classes)


def csv_table(path: Path, caption: str = "") -> str:
    """A CSV file as a table, or one line saying why it cannot be shown (a file cut short, say)."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:  # EmptyDataError is a ValueError
        return note(f"{path.name} could not be read ({error}); run the suite again to rewrite it.")
    return frame_table(frame, caption or f"<code>{escape(path.name)}</code>")


def image(src: str, alt: str, width: int | None = None, height: int | None = None, css: str = "",
          attributes: dict[str, Any] | None = None) -> str:
    """A picture loaded when scrolled near (a paper-preset page has hundreds); its size known before it loads."""
    size = (_attr("width", width) + _attr("height", height)) if width and height else ""
    extra = "".join(_attr(name, value) for name, value in (attributes or {}).items())
    return f"<img src=\"{escape(src)}\" alt=\"{escape(alt)}\"{size}{_attr('class', css)}{extra} loading=\"lazy\">"


def figure(content: str, caption: str = "", css: str = "") -> str:
    caption_html = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure{_attr('class', css)}>{content}{caption_html}</figure>"


def note(text: str) -> str:
    return f"<p class=\"note\">{text}</p>"


def details(summary: str, content: str, open_: bool = False) -> str:
    return f"<details{' open' if open_ else ''}><summary>{summary}</summary>{content}</details>"


def _plain(value: Any) -> Any:
    """numpy scalars from pandas as Python values, so `cell_of` formats them."""
    return value.item() if hasattr(value, "item") else value


def _attr(name: str, value: Any) -> str:
    return "" if value is None or value == "" else f" {name}=\"{escape(str(value))}\""
