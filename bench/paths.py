"""Where suites write, made safe: everything lands under the output folder, whatever the input is called and
whatever links the folder holds.

`writing_under(out)` names the output folder of an invocation (resolved once: a symlinked `--out` is the user's
choice); `inside_out(path)` is the one gate every write goes through: it resolves the path, symlinks included,
and refuses it unless it lands inside that folder. `check_output_folder` runs the gate over what is already in
the folders an invocation writes, so a link that leads out is refused before any fit runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")

_output_root: Path | None = None  # the resolved folder of the running invocation; None: a library caller's paths


class OutsideOutputError(ValueError):
    """A write would land outside the output folder; the message is one line naming the path."""


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


@contextlib.contextmanager
def writing_under(out: Path) -> Iterator[Path]:
    """Make `out` (resolved now, once) the folder `inside_out` admits writes to, for the life of the block."""
    global _output_root
    previous, _output_root = _output_root, Path(out).resolve()
    try:
        yield _output_root
    finally:
        _output_root = previous


def inside_out(path: Path) -> Path:
    """`path`, once it is known to land inside the output folder after every symlink is followed.

    Every write of an invocation passes here. Outside `writing_under` (a library caller's own paths) it
    admits everything.
    """
    if _output_root is None:
        return path
    target = Path(path).resolve()
    if not target.is_relative_to(_output_root):
        raise OutsideOutputError(f"refusing to write {path}: it leads to {target}, outside the output folder "
                                 f"{_output_root}; remove the symlink that points out of it, or give another --out")
    return path


def inside(folder: Path, relative: Path) -> Path:
    """`folder / relative`, refusing anything that would land outside `folder` or the output folder."""
    target = (folder / relative).resolve()
    if not target.is_relative_to(Path(folder).resolve()):
        raise OutsideOutputError(f"refusing to write {target}: it is outside the output folder {folder}")
    return inside_out(folder / relative)


def check_output_folder(out: Path, filled: Iterable[Path]) -> None:
    """Before any work: `out` is (or can become) a folder, and no symlink that writes would follow leads out of it.

    The links checked: the entries of `out` itself (the report, tracking and reference folders are made there)
    and everything in the folders `filled`, the ones this invocation writes into (its suite folder). Raises a
    one-line ValueError naming the path.
    """
    existing = next((p for p in (out, *out.parents) if p.exists() or p.is_symlink()), None)
    if existing is not None and not existing.is_dir():
        where = "" if existing == out else f" ({existing} is a file)"
        raise ValueError(f"--out {out}: not a folder{where}; give a folder (it is created if missing)")
    for folder in filled:
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder} is a file where fitbench writes a folder; move it away or give another --out")
    links = [entry for entry in out.iterdir() if entry.is_symlink()] if out.is_dir() else []
    for folder in filled:
        inside_out(folder)  # before walking it: the folder itself may be the link
        for parent, folders, files in os.walk(folder):  # links are listed, not followed
            links += [Path(parent, name) for name in (*folders, *files) if os.path.islink(os.path.join(parent, name))]
    for link in links:
        inside_out(link)
