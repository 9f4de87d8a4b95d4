"""The representation registry. Every module in this package registers itself on import.

    from fitbench import representations
    representations.list_representations()            # ['fnet', 'fourier_features', ...]
    model = representations.build("siren", out_features=3, width=128)

Adding a representation is one new file here with a `@register(name, Config)` builder.
"""

import importlib
import pkgutil

from .registry import (
    RepresentationConfig,
    UnknownRepresentationError,
    build,
    count_parameters,
    get_entry,
    list_representations,
    make_config,
    register,
)

_INFRASTRUCTURE = {"registry", "mlp", "encodings"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "RepresentationConfig",
    "UnknownRepresentationError",
    "build",
    "count_parameters",
    "get_entry",
    "list_representations",
    "make_config",
    "register",
]
