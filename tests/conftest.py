import os
from pathlib import Path

import pytest

from fitbench.cli import main

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
