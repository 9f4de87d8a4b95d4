"""Writing a file so that a reader, or the next run after a kill, sees the old file or the new one, never half of one.

`write_atomic(path, data)` writes bytes or text; `atomic_path(path)` hands out a temporary path for a writer that
wants a path of its own (an image encoder, a download that is checked before it is kept). Either way the data go
to a fresh temporary file in the folder of `path`, are flushed and fsynced, the temporary is renamed over `path`
(`os.replace`, atomic within one file system) and the folder is fsynced so that the rename survives a power cut.

These functions do not apply the output-folder gate (`paths.inside_out`): callers that write inside an invocation's
output folder pass the gated path (`write_atomic(inside_out(path), ...)`); the temporary lies in the same folder,
so it lands inside whenever `path` does.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A fresh, empty temporary file beside `path` for the block to fill; kept as `path` only if the block succeeds.

    The folder of `path` is created if missing. On a normal exit the temporary is fsynced and renamed over `path`;
    if the block raises, it is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _fresh_temporary(path)
    try:
        yield temporary
        with temporary.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Replace `path` with `data` (text is written as UTF-8) in one step: a reader sees the old file or the new one."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as temporary, temporary.open("wb") as f:
        f.write(payload)


def _fresh_temporary(path: Path) -> Path:
    """An empty file `.NAME.<pid>.<random>.tmp` beside `path`, created here (never an existing file or link).

    Made with the ordinary permissions (the umask applies, as for any file the caller would write); unique per
    process and call, so two writers of one file never share a temporary.
    """
    while True:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            temporary.open("xb").close()
        except FileExistsError:
            continue
        return temporary


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable; skipped where folders cannot be opened or synced (Windows, some mounts)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
