"""Where a suite's results came from: one JSON line per invocation in OUT/<suite>/provenance.jsonl.

The command line, the fitbench version and commit, torch, the device and its measured matmul peak, the preset
and the dates; reports show it beside the results. A line is written when the invocation starts and again,
complete, when it ends (readers keep the last line per `invocation`), so a run that is killed still says what
it was.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import secrets
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from .engine import resolve_device
from .hardware import matmul_peak
from .paths import inside_out

REPOSITORY = Path(__file__).resolve().parents[1]


def fitbench_version() -> str:
    try:
        return importlib.metadata.version("fitbench")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@functools.cache  # once per process: the code it imported
def source_fingerprint() -> str:
    """A hash of fitbench's Python sources (each file's place and bytes in the fitbench, representations and
    datasets packages): two processes with equal fingerprints run the same code."""
    from fitbench import datasets, representations

    digest = hashlib.sha1()
    for package in (sys.modules["fitbench"], representations, datasets):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{package.__name__}/{path.relative_to(root)}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def commit() -> str | None:
    """The checkout's commit, with "+dirty" when files differ from it; None outside a git checkout."""
    try:
        head = subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPOSITORY), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


class Provenance:
    """Opened when a suite starts, closed with its exit code."""

    def __init__(self, folder: Path, suite: str, preset: str, device: str, argv: list[str] | None = None):
        argv = list(sys.argv if argv is None else argv)
        resolved = str(resolve_device(device)) if device else "cpu"
        self.path = Path(folder) / "provenance.jsonl"
        self.entry = {
            "invocation": secrets.token_hex(6), "suite": suite, "preset": preset,
            "command": shlex.join(argv), "argv": argv, "cwd": os.getcwd(),
            "fitbench_version": fitbench_version(), "commit": commit(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "device": resolved,
            "device_name": device_name(resolved), "cpu_threads": torch.get_num_threads(),
            "matmul_peak_gflops": None, "started": _now(), "finished": None, "exit_code": None,
        }
        self._write()

    def close(self, exit_code: int) -> None:
        # Measured at the end, when fitting suites have measured it already (it is cached per process).
        self.entry["matmul_peak_gflops"] = {"fp32": round(matmul_peak(self.entry["device"], "fp32").gflops, 1)}
        self.entry.update(finished=_now(), exit_code=exit_code)
        self._write()

    def _write(self) -> None:
        inside_out(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(self.entry) + "\n")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
