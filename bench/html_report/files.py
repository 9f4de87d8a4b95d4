"""The files of a report folder: images copied from the results, figures and images drawn for the page.

Every path the page uses comes from here, relative to report/, so the folder works offline and when copied.
Images are copied rather than inlined: a paper-preset folder holds hundreds of them, megabytes each.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote

import matplotlib
from PIL import Image

from ..figures import plt  # the Agg backend: files only, no display needed
from ..paths import inside_out

# SVG text as paths (no font to fetch or lack), and the same bytes for the same figure.
SVG_STYLE = {"svg.fonttype": "path", "svg.hashsalt": "fitbench-report"}


class ReportFiles:
    """Writes into one report folder and hands back each file's relative URL."""

    def __init__(self, results: Path, root: Path):
        self.results = results.resolve()
        self.root = root

    def copy(self, source: Path) -> str | None:
        """Copy a file of the results folder to report/files/<its path under the results>; None if absent.

        A path that leads outside the results folder is not followed: the report shows only what a suite wrote.
        """
        source = source.resolve()
        if not source.is_file() or not source.is_relative_to(self.results):
            return None
        relative = Path("files") / source.relative_to(self.results)
        target = inside_out(self.root / relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return url(relative)

    def save_svg(self, figure: plt.Figure, name: str) -> str:
        relative = Path("plots") / f"{name}.svg"
        target = inside_out(self.root / relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        with matplotlib.rc_context(SVG_STYLE):
            figure.savefig(target, format="svg", metadata={"Date": None})
        plt.close(figure)
        return url(relative)

    def save_png(self, picture: Image.Image, relative: Path) -> str:
        """A picture drawn for the page (error maps)."""
        target = inside_out(self.root / relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        picture.save(target, optimize=True)
        return url(relative)


def url(relative: Path) -> str:
    return quote(relative.as_posix())


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, or None if it is not a readable image."""
    try:
        with Image.open(path) as opened:
            return opened.size
    except OSError:
        return None
