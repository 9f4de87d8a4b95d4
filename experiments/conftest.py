"""Micro-benchmarks (pytest-benchmark), apart from the tests: `python -m pytest experiments --benchmark-only`.

One torch thread: numbers then compare across machines and commits instead of following how busy the
other cores are (shared CI machines).
"""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def image256() -> np.ndarray:
    from fitbench.datasets import load_images

    return load_images("builtin", 256, None, limit=1)[0].pixels  # camera: no download needed
