"""Suite registry: each module in this package registers one suite with `@register_suite`.

A suite is a function `run(options: SuiteOptions) -> int` (the exit code) that declares which common flags it
accepts (`common`, groups named in COMMON_GROUPS), its own options (a dataclass of `bench.options.option`
fields, handed to it as `options.own`), and its presets. `python run_bench.py NAME` (or `--suite NAME`) finds
it here; a flag the suite does not declare is an error on its command line.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..options import SuiteOptions
from ..registry import Registry

# The common flags, in groups a suite accepts whole (their definitions: bench/cli.py).
COMMON_GROUPS = {
    "preset": "--preset",
    "representations": "--reps",
    "settings": "--set",
    "images": "--images, --max-images, --size",
    "data": "--data-root",
    "steps": "--steps",
    "seeds": "--seeds",
    "device": "--device",
    "executor": "--executor, --ray-address, --cpus-per-fit, --gpus-per-fit, --threads-per-fit",
    "records": "--fresh",
    "tracking": "--wandb, --wandb-project, --wandb-entity",
    "dry_run": "--dry-run",
}


@dataclass(frozen=True)
class Suite:
    name: str
    help: str
    run: Callable[[SuiteOptions], int]
    common: tuple[str, ...]  # the COMMON_GROUPS it accepts (--out and --plugin: every suite)
    options: type | None = None  # its own options dataclass, or None: it has none
    presets: Mapping[str, Any] | None = None  # its presets by name (each has .name and .description)
    default_preset: str | None = None


SUITES: Registry[Suite] = Registry("suite")


def register_suite(name: str, help: str, *, common: tuple[str, ...], options: type | None = None,
                   presets: Mapping[str, Any] | None = None, default_preset: str | None = None):
    unknown = set(common) - set(COMMON_GROUPS)
    if unknown:
        raise ValueError(f"suite {name}: unknown common groups {sorted(unknown)}; choose from {list(COMMON_GROUPS)}")
    if ("preset" in common) != (presets is not None and default_preset in presets):
        raise ValueError(f"suite {name}: a suite that takes --preset names its presets and a default among them")

    def decorator(run: Callable[[SuiteOptions], int]):
        SUITES.register(name, Suite(name, help, run, tuple(common), options, presets, default_preset))
        return run

    return decorator


def load_suites() -> dict[str, Suite]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return dict(sorted(SUITES.items()))
