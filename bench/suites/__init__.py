"""Suite registry: each module in this package registers one suite with `@register_suite`.

A suite is a function `run(options: SuiteOptions) -> int` (the exit code) plus, optionally, a function that
adds its own command-line flags. `python run_bench.py --suite NAME` finds it here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

from ..options import SuiteOptions


@dataclass(frozen=True)
class Suite:
    name: str
    help: str
    run: Callable[[SuiteOptions], int]
    add_arguments: Callable[[argparse._ArgumentGroup], None] | None = None


SUITES: dict[str, Suite] = {}


def register_suite(name: str, help: str, add_arguments: Callable | None = None):
    def decorator(run: Callable[[SuiteOptions], int]):
        SUITES[name] = Suite(name, help, run, add_arguments)
        return run

    return decorator


def load_suites() -> dict[str, Suite]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return dict(sorted(SUITES.items()))
