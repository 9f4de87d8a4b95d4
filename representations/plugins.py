"""Representations from outside the repository: an installed package's entry point, or a file or module.

    [project.entry-points."fitbench.representations"]      # in the plugin package's pyproject.toml
    my_rep = "my_package.my_rep"                           # a module whose import registers representations

    python run_bench.py --plugin path/to/my_rep.py ...     # or --plugin my_package.my_rep

Each representation registered while a plugin loads remembers the plugin (`RegistryEntry.plugin`), so a stream
or a worker process can say which plugin it needs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

from . import registry

ENTRY_POINT_GROUP = "fitbench.representations"
_LOADED: dict[str, list[str]] = {}  # plugin spec -> the representations it registered


class PluginError(ValueError):
    """A plugin that cannot be found or imported; the message is one line."""


def load_plugin(spec: str) -> list[str]:
    """Import a plugin (a .py file or a module name) once; returns the names of the representations it registered."""
    path = Path(spec).expanduser()
    is_file = spec.endswith(".py") or path.is_file()
    key = str(path.resolve()) if is_file else spec
    if key in _LOADED:
        return _LOADED[key]
    if is_file and not path.is_file():
        raise PluginError(f"--plugin {spec}: no such file; give a .py file or an importable module name")
    before = set(registry._REGISTRY)
    registry._PLUGIN_SOURCES.append(key)
    try:
        if is_file:
            name = f"fitbench_plugin_{path.stem}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module  # dataclasses and pickling look their module up by name
            module_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except ModuleNotFoundError as error:
        if is_file or error.name != spec.split(".")[0]:
            raise PluginError(f"--plugin {spec}: it imports {error.name!r}, which is not installed") from None
        raise PluginError(f"--plugin {spec}: no such module or .py file") from None
    except PluginError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the plugin raises, say which plugin in one line
        raise PluginError(f"--plugin {spec}: importing it failed ({type(error).__name__}: {error})") from None
    finally:
        registry._PLUGIN_SOURCES.pop()
    _LOADED[key] = sorted(set(registry._REGISTRY) - before)
    return _LOADED[key]


def load_entry_points() -> list[str]:
    """Load every installed `fitbench.representations` entry point; one that fails is reported, not fatal."""
    names: list[str] = []
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            names += load_plugin(entry_point.value.split(":")[0])
        except PluginError as error:
            print(f"warning: entry point {entry_point.name!r} of group {ENTRY_POINT_GROUP}: {error}", file=sys.stderr)
    return names
