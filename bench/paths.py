"""Names of what suites write, made safe: everything lands under the output folder, whatever the input is called."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(text: str) -> str:
    """A single file-name component standing for `text`.

    Image-set names may be paths (`--images /data/photos`); joined onto an output folder as they are, an absolute
    path replaces the folder and `..` climbs out of it. A plain name ("builtin", "camera") passes unchanged; any
    other becomes its readable last part plus a short hash of the whole, so two folders of one name stay apart.
    """
    if text and not _UNSAFE.search(text) and text not in (".", ".."):
        return text
    last = _UNSAFE.sub("_", Path(text).name or "root").strip("._") or "set"
    return f"{last[:40]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def inside(folder: Path, relative: Path) -> Path:
    """`folder / relative`, refusing anything that would land outside `folder`."""
    target = (folder / relative).resolve()
    if not target.is_relative_to(Path(folder).resolve()):
        raise ValueError(f"refusing to write {target}: it is outside the output folder {folder}")
    return folder / relative
