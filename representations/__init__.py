"""The representation registry. Every module in this package registers itself on import.

    from fitbench import representations
    representations.list_representations()            # ['fnet', 'fourier_features', ...]
    model = representations.build("siren", out_features=3, width=128)

Adding a representation is one new file here with a `@register(name, Config, ...)` builder; one from outside
the repository is a module of an installed package's `fitbench.representations` entry point, or a file or
module named with `--plugin` (`load_plugin`).
"""

import importlib
import pkgutil

from .plugins import PluginError, load_entry_points, load_plugin
from .registry import (
    REFERENCE_GRID,
    SCHEDULES,
    ConfigError,
    RepresentationConfig,
    SizeKnob,
    TrainingGrid,
    UnknownRepresentationError,
    build,
    count_parameters,
    get_entry,
    knob_for_parameters,
    list_representations,
    register_alias,
    make_config,
    merge_overrides,
    model_settings,
    parameter_count,
    register,
    require,
    sized_overrides,
)

_INFRASTRUCTURE = {"registry", "mlp", "encodings", "plugins", "kept"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
load_entry_points()

__all__ = [
    "REFERENCE_GRID",
    "SCHEDULES",
    "ConfigError",
    "PluginError",
    "RepresentationConfig",
    "SizeKnob",
    "TrainingGrid",
    "UnknownRepresentationError",
    "build",
    "count_parameters",
    "get_entry",
    "knob_for_parameters",
    "list_representations",
    "register_alias",
    "load_entry_points",
    "load_plugin",
    "make_config",
    "merge_overrides",
    "model_settings",
    "parameter_count",
    "register",
    "require",
    "sized_overrides",
]
