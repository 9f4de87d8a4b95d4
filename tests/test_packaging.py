"""Installing fitbench must not shadow well-known top-level packages such as HuggingFace `datasets`."""

import subprocess
import sys
from pathlib import Path


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
