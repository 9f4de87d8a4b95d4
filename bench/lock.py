"""One writer per suite folder: two runs on one `--out` would compute and append every record twice."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path

from .paths import inside_out


class FolderBusyError(RuntimeError):
    """Another process holds the folder; the message is one line naming it."""


class FolderLock:
    """An exclusive flock on FOLDER/.lock for the life of a suite run.

    The operating system drops the lock when its process ends however it ends (SIGKILL included), so a stale
    lock never blocks a rerun. The file holds who took it, for the message the second run prints.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> "FolderLock":
        inside_out(self.path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.read(fd, 4096))
            os.close(fd)
            raise FolderBusyError(f"{self.path.parent} is being written by another fitbench run ({holder}); wait "
                                  "for it to finish or give this run another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                                 "command": " ".join(sys.argv)}).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _describe(data: bytes) -> str:
    try:
        holder = json.loads(data)
        command = holder["command"] if len(holder["command"]) <= 120 else holder["command"][:117] + "..."
        return f"pid {holder['pid']}, since {holder['since']}: {command}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not said who it is"
