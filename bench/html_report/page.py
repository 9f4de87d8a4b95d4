"""`write_report(out)`: OUT/report/index.html from the files the suites wrote under OUT, nothing else.

The page is built in a hidden folder beside it and swapped in whole, so an interrupted build leaves the previous
report as it was. Everything it uses lies inside report/ and is linked relatively: it works offline, opened from
disk, and after the folder is copied elsewhere.
"""

from __future__ import annotations

import shutil
import time
from html import escape
from importlib import resources
from pathlib import Path

from .. import __version__
from ..lock import FolderBusyError, FolderLock
from .compression import compression_section
from .files import ReportFiles
from .fitting import ci_section, fitting_section
from .generative import generative_section
from .markup import Section
from .provenance import provenance_section
from .speed import speed_section

SECTIONS = [fitting_section, compression_section, generative_section, speed_section, ci_section]
STATIC = ("report.css", "report.js")
# No request can leave the folder: scripts, styles and images from files only (and inline styles, for colour bars).
POLICY = ("default-src 'none'; img-src 'self' file:; style-src 'self' file: 'unsafe-inline'; "
          "script-src 'self' file:")


class ReportError(ValueError):
    """A results folder with nothing to report; the message says what to run."""


def write_report(out: Path) -> Path:
    """Write OUT/report/index.html (and the files it shows) and return its path."""
    out = Path(out)
    if not out.is_dir():
        raise ReportError(f"{out}: no such results folder; run a suite into it first, "
                          f"e.g. python run_bench.py --suite fitting --out {out}")
    try:
        with FolderLock(out / ".lock-report"):  # two suites finishing at once on one --out take turns
            return _write(out)
    except FolderBusyError:
        raise ReportError(f"another run is writing the report of {out}; rerun `python run_bench.py --report "
                          f"--out {out}` when it is done") from None


def _write(out: Path) -> Path:
    staging, previous, final = out / ".report-new", out / ".report-old", out / "report"
    for leftover in (staging, previous):
        shutil.rmtree(leftover, ignore_errors=True)
    files = ReportFiles(out, staging)
    sections = [section for build in SECTIONS if (section := build(out, files))]
    if not sections:
        shutil.rmtree(staging, ignore_errors=True)
        raise ReportError(f"{out}: no suite results to report (none of fitting/, compression/, generative/, speed/, "
                          f"ci/ holds records); run a suite with --out {out} first")
    sections.append(provenance_section(out, [s.id for s in sections]))
    staging.mkdir(parents=True, exist_ok=True)
    for name in STATIC:
        (staging / name).write_bytes(resources.files(__package__).joinpath("static", name).read_bytes())
    (staging / "index.html").write_text(page(out.resolve().name, sections), encoding="utf-8")
    if final.exists():
        final.rename(previous)
    staging.rename(final)
    shutil.rmtree(previous, ignore_errors=True)
    return final / "index.html"


def page(folder_name: str, sections: list[Section]) -> str:
    glance = "".join(f"<li>{s.glance}</li>" for s in sections if s.glance)
    nav = "".join(f"<a href=\"#{s.id}\">{escape(s.title)}</a>" for s in sections)
    body = "\n".join(f"<section id=\"{s.id}\"><h2>{escape(s.title)}</h2>\n{s.body}\n</section>" for s in sections)
    written = time.strftime("%Y-%m-%d %H:%M %Z")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{POLICY}">
<title>fitbench report: {escape(folder_name)}</title>
<link rel="stylesheet" href="report.css">
</head>
<body>
<header>
<h1>fitbench report <span class="folder">{escape(folder_name)}</span></h1>
<ul class="glance">{glance}</ul>
<nav>{nav}</nav>
</header>
<main>
{body}
</main>
<footer>Written {escape(written)} by fitbench {escape(__version__)} from the records in this results folder
(<code>python run_bench.py --report --out DIR</code> rewrites it). Everything this page shows lies in its own
folder: it needs no network and still works when the folder is copied.</footer>
<script src="report.js"></script>
</body>
</html>
"""
