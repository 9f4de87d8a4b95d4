"""Name -> representation, in the style of timm's model registry.

A representation is a `torch.nn.Module` mapping coordinates (N, 2) in [0, 1)^2 (x = column / W, y = row / H,
the FFN convention) to values (N, C) nominally in [0, 1]. Each one is registered with a typed config whose
defaults come from its source; `build(name, out_features=C, **overrides)` makes one.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn


@dataclass
class RepresentationConfig:
    """Fields every representation has."""

    lr: float = 1e-3  # Adam learning rate the fitting engine uses unless told otherwise
    seed: int = 0  # seeds fixed random parts (Fourier features' B), so a bitstream can rebuild them from the config


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    config_cls: type[RepresentationConfig]
    builder: Callable[[Any, int], nn.Module]
    summary: str


_REGISTRY: dict[str, RegistryEntry] = {}


class UnknownRepresentationError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def register(name: str, config: type[RepresentationConfig]):
    """Decorator: `@register("siren", SirenConfig)` over `builder(config, out_features) -> nn.Module`."""

    def decorator(builder):
        if name in _REGISTRY:
            raise ValueError(f"representation {name!r} is registered twice")
        summary = (builder.__doc__ or "").strip().splitlines()[0] if builder.__doc__ else ""
        _REGISTRY[name] = RegistryEntry(name, config, builder, summary)
        return builder

    return decorator


def list_representations(pattern: str = "*") -> list[str]:
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_entry(name: str) -> RegistryEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownRepresentationError(
            f"unknown representation {name!r}; choose from: {', '.join(list_representations())}"
        ) from None


def make_config(name: str, **overrides: Any) -> RepresentationConfig:
    """The default config of `name` with `overrides` applied; unknown fields are an error naming the valid ones."""
    config_cls = get_entry(name).config_cls
    valid = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"{name} has no setting {', '.join(unknown)}; its settings are: {', '.join(sorted(valid))}")
    return config_cls(**overrides)


def build(name: str, out_features: int = 3, **overrides: Any) -> nn.Module:
    """Build representation `name` producing `out_features` channels; `overrides` replace config defaults."""
    config = make_config(name, **overrides)
    module = get_entry(name).builder(config, out_features)
    module.representation = name
    module.config = config
    return module


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters: what a compressed model must store (fixed buffers such as B are regenerated)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
