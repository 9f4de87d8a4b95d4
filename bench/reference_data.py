"""The reference data fitbench ships as package data, under `fitbench/reference/` (bench/reference/ in a checkout).

- `tuned/<preset>.json` — the settings `--suite tune --preset NAME` chose, read by presets marked tuned
  (bench/tuned.py, bench/presets.py);
- `ci_thresholds.json` — the thresholds of `--suite ci` (bench/suites/ci.py);
- `bf16_cost.json` — what bf16 costs each representation, read by `--precision auto` (bench/precision.py).

They are found with importlib.resources, so an installed fitbench (`pip install .`, not only an editable install)
reads the same files as a checkout. The suites that make them write under their --out (OUT/reference/...) or
--thresholds; a new file ships once it is copied here and committed.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.resources
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

PACKAGE = "fitbench"
FOLDER = "reference"

_extracted = contextlib.ExitStack()  # files extracted from a zipped install, kept until the process exits
atexit.register(_extracted.close)


def shipped(*parts: str) -> Traversable:
    """The shipped resource `fitbench/reference/<parts...>` (it may not exist)."""
    resource = importlib.resources.files(PACKAGE) / FOLDER
    for part in parts:  # one name at a time: Python 3.10's Traversable.joinpath takes one
        resource = resource / part
    return resource


def shipped_path(*parts: str) -> Path:
    """A real file-system Path for `shipped(*parts)`: the file itself where fitbench is installed as files (always,
    with pip), else a copy made by importlib.resources.as_file that lasts as long as the process."""
    resource = shipped(*parts)
    if isinstance(resource, Path):
        return resource
    if resource.is_dir():  # as_file takes folders only from Python 3.12 on: copy the folder's files
        folder = Path(_extracted.enter_context(tempfile.TemporaryDirectory(prefix=f"{PACKAGE}-{FOLDER}-")))
        for child in resource.iterdir():
            if child.is_file():
                (folder / child.name).write_bytes(child.read_bytes())
        return folder
    return _extracted.enter_context(importlib.resources.as_file(resource))


def tuned_folder() -> Path:
    """The folder of the shipped tuned settings, one `<preset>.json` per tuned preset."""
    return shipped_path("tuned")


def ci_thresholds_file() -> Path:
    """The thresholds `--suite ci` checks against (its --thresholds default)."""
    return shipped_path("ci_thresholds.json")


def bf16_cost_file() -> Path:
    """The measured bf16 cost per representation that `--precision auto` reads."""
    return shipped_path("bf16_cost.json")


TUNED_FOLDER = tuned_folder()
CI_THRESHOLDS_FILE = ci_thresholds_file()
BF16_COST_FILE = bf16_cost_file()
