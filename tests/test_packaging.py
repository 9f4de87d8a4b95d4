"""Installing fitbench must not shadow well-known top-level packages such as HuggingFace `datasets`, and must ship the
reference data its suites read."""

import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest


PROBE = """
import importlib.util, json, fitbench, fitbench.datasets, fitbench.representations
found = {name: getattr(importlib.util.find_spec(name), 'origin', None) for name in ('datasets', 'bench', 'representations')}
print(json.dumps({'found': found, 'datasets': fitbench.datasets.__file__, 'fitbench': fitbench.__file__}))
"""


def test_no_top_level_datasets_package(tmp_path):
    # Run from an unrelated folder, as a user's script would.
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, check=True)
    import json

    report = json.loads(result.stdout)
    # The checkout the installed fitbench comes from (this one, or another clone an editable install points at).
    tree = Path(report["fitbench"]).resolve().parents[1]
    for name, origin in report["found"].items():
        assert origin is None or not str(origin).startswith(str(tree)), f"fitbench installs a top-level {name!r}"
    assert report["datasets"].startswith(str(tree / "datasets"))


def test_the_reference_data_is_package_data():
    """The files the suites read (tuned settings, CI thresholds, bf16 costs) are found through importlib.resources
    and matched by pyproject.toml's package data, so a non-editable `pip install .` ships them (.ci/run installs one)."""
    tomllib = pytest.importorskip("tomllib")
    from fitbench import reference_data

    for path in (reference_data.TUNED_FOLDER / "quick.json", reference_data.CI_THRESHOLDS_FILE,
                 reference_data.BF16_COST_FILE):
        assert path.is_file(), f"{path} is not shipped"
    root = Path(__file__).resolve().parents[1]
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    package = root / setuptools["package-dir"]["fitbench"]
    patterns = [PurePosixPath(p) for p in setuptools["package-data"]["fitbench"]]
    shipped = [p.relative_to(package) for p in (package / reference_data.FOLDER).rglob("*") if p.is_file()]
    assert shipped
    for path in shipped:
        assert any(len(path.parts) == len(p.parts) and path.match(str(p)) for p in patterns), \
            f"{path} is not package data: add it to [tool.setuptools.package-data] in pyproject.toml"
