"""Typed model configs: the fields every generative model has, and checking values against the types and ranges.

A config field may declare its valid range with `bounded(default, low=..., high=...)`; `check_config` checks every
field's type (from the dataclass annotations) and range, so a bad `--set MODEL.FIELD=VALUE` is one line before
anything trains instead of a traceback (or a silent nonsense run) later.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any


def bounded(default: Any, low: float | None = None, high: float | None = None, *, above: float | None = None):
    """A dataclass field with a valid range: low <= value <= high, or value > above (for tuples: every item)."""
    return dataclasses.field(default=default, metadata={"low": low, "high": high, "above": above})


@dataclass
class ModelConfig:
    """Fields every generative model has: its optimiser and batch size, from the model's source."""

    lr: float = bounded(1e-3, above=0)
    weight_decay: float = bounded(0.0, low=0)
    batch_size: int = bounded(128, low=1)
    seed: int = 0

    def check(self, name: str) -> None:
        """Rules across fields or beyond a range (a ValueError naming `name.field`); none by default."""


def _describe(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """`value` as the annotated type `kind` (int -> float and list -> tuple are accepted), or a ValueError."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kind = next(a for a in args if a is not type(None))
        return _coerce(value, kind, where)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise ValueError(f"{where} must be a tuple such as (64, 128), got {value!r}")
        items = args if len(args) != 2 or args[1] is not Ellipsis else (args[0],) * len(value)
        if len(items) != len(value):
            raise ValueError(f"{where} must have {len(items)} items, got {value!r}")
        return tuple(_coerce(v, k, where) for v, k in zip(value, items))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (int, float) and isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{where} must be {_describe(kind)}, got {value!r}")
    return value


def _check_range(value: Any, field: dataclasses.Field, where: str) -> None:
    low, high, above = (field.metadata.get(k) for k in ("low", "high", "above"))
    for item in value if isinstance(value, tuple) else (value,):
        if item is None:
            continue
        if (low is not None and item < low) or (high is not None and item > high) or (above is not None and item <= above):
            bounds = [f">= {low}" if low is not None else "", f"> {above}" if above is not None else "",
                      f"<= {high}" if high is not None else ""]
            raise ValueError(f"{where} must be {' and '.join(b for b in bounds if b)}, got {value!r}")


def check_config(name: str, config: Any) -> Any:
    """Every field of the dataclass `config` coerced to its annotated type and checked against its range."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        where = f"{name}.{field.name}"
        value = _coerce(getattr(config, field.name), hints[field.name], where)
        _check_range(value, field, where)
        setattr(config, field.name, value)
    config.check(name)
    return config
