"""Tuned settings: what `--suite tune` chose for a preset, on tuning images only, and where presets read it.

`OUT/reference/tuned/<preset>.json` holds, per representation, the chosen values and every trial behind them,
with the tuning images, the budget and the fitbench version and commit. fitbench ships, as package data in
`fitbench/reference/tuned/` (bench/reference/tuned/ here; bench/reference_data.py), the files that `python run_bench.py
--suite tune --preset NAME` wrote into OUT/reference/tuned/ and that were copied there, and a preset marked `tuned`
reads its file from there; every record and leaderboard names the file and its digest.

A file records the tuner that wrote it (`"tuner": TUNER`; none: the tuner before full grids, grids that grow past
their edges, second-seed finals and settings relative to the training grid) and whether it was made from committed
code (`clean_commit`). Files of either tuner are read; their labels say which made them and flag uncommitted code,
and only files of this tuner made from a clean commit may ship (tests/test_verdicts.py checks the shipped ones).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import write_atomic
from .reference_data import TUNED_FOLDER

REPOSITORY = Path(__file__).resolve().parents[1]  # the checkout (or site-packages), for short labels
SHIPPED = TUNED_FOLDER  # the shipped tuned settings: package data (bench/reference_data.py)
TUNER = 2  # the tuner of bench/suites/tune.py; files without a "tuner" are the first one's


def is_clean_commit(commit: str | None) -> bool:
    """A commit id with nothing uncommitted beside it (provenance.commit marks a dirty tree "+dirty")."""
    return bool(commit) and "+" not in commit and len(commit) == 40


def tuned_path(folder: Path, preset: str) -> Path:
    return Path(folder) / f"{preset}.json"


@dataclass(frozen=True)
class TunedSettings:
    path: Path
    digest: str  # sha256 of the file, so a record names exactly which tuning it used
    data: dict

    @property
    def label(self) -> str:
        path = self.path.resolve()
        if path.parent == SHIPPED.resolve():  # the same name for a checkout and an installed fitbench
            shown = f"fitbench/reference/tuned/{path.name}"
        else:
            try:
                shown = path.relative_to(REPOSITORY)
            except ValueError:
                shown = self.path
        notes = [note for note, applies in (("made by the old tuner", self.tuner != TUNER),
                                            ("from uncommitted code", not is_clean_commit(self.data.get("commit"))))
                 if applies]
        return f"tuned: {shown} ({self.digest[:8]}{''.join(f'; {note}' for note in notes)})"

    @property
    def tuner(self) -> int | None:
        return self.data.get("tuner")

    def chosen(self, representation: str) -> dict[str, Any]:
        """The chosen values; an absolute value (an old file's omega_0) switches off the relative setting a size
        class may set for it (omega_0_nyquist), so the value chosen is the value fitted."""
        from fitbench import representations

        chosen = dict(self.data.get("representations", {}).get(representation, {}).get("chosen", {}))
        try:
            return representations.merge_overrides(representation, chosen)
        except representations.UnknownRepresentationError:
            return chosen

    @property
    def tuning_images(self) -> dict[str, list[str]]:
        return self.data.get("tuning_images", {})


@functools.cache
def load_tuned(path: Path) -> TunedSettings | None:
    """The tuned settings in `path`, or None when there is no such file; a broken file is one clear error."""
    path = Path(path)
    if not path.is_file():
        return None
    text = path.read_bytes()
    try:
        data = json.loads(text)
        if not isinstance(data.get("representations"), dict):
            raise ValueError("no 'representations' object")
    except ValueError as error:
        raise ValueError(f"tuned settings {path} are not valid ({error}); rerun `python run_bench.py --suite tune "
                         f"--preset {path.stem}` or remove the file") from None
    return TunedSettings(path, hashlib.sha256(text).hexdigest(), data)


def save_tuned(path: Path, data: dict) -> None:
    """Write atomically: a reader never sees half a file."""
    write_atomic(path, json.dumps(data, indent=1, sort_keys=False) + "\n")
    load_tuned.cache_clear()
