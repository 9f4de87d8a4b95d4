import os
import sys
from pathlib import Path

import pytest
import torch

from fitbench.cli import main

# tests/support (code the tests share, not part of fitbench) imports as `support`, whatever pytest's import mode.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

SHARED_DATA = Path(os.environ.get("FITBENCH_DATA_ROOT", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def run_cli(capsys):
    """Run `run_bench.py ARGS` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "ffn").is_dir():
        pytest.skip(f"needs the FFN/MNIST data files in {SHARED_DATA} (set FITBENCH_DATA_ROOT)")
    return SHARED_DATA


def pytest_collection_modifyitems(items):
    """Tests that read the FFN/MNIST files carry the `data` marker: CI runs them again with the data present."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.data)


@pytest.fixture(autouse=True)
def _registry_unchanged_by_the_test():
    """Representations a test registers (plugins, toys) are removed after it, so no other test sees them."""
    from fitbench.representations import plugins, registry

    before = set(registry._REGISTRY)
    yield
    for name in set(registry._REGISTRY) - before:
        del registry._REGISTRY[name]
    for key, names in list(plugins._LOADED.items()):
        if set(names) - before:
            del plugins._LOADED[key]


@pytest.fixture
def one_thread():
    """Tiny fits gain nothing from threads, and on a busy machine spinning OpenMP workers make them ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
