#!/usr/bin/env python
"""fitbench entry point: `python run_bench.py --suite fitting` (see --help)."""

import sys

try:
    from fitbench.cli import main
except ModuleNotFoundError as error:
    if error.name != "fitbench":
        raise
    sys.exit("error: fitbench is not installed; run `pip install -e .` in this folder first (see README.md)")

if __name__ == "__main__":
    sys.exit(main())
