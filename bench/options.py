"""The typed options a suite receives: the common ones (`SuiteOptions`) and its own (a dataclass per suite).

A suite's own options are a dataclass whose fields are declared with `option(...)`; the command line is made
from those declarations (`add_options`), so each flag, its default and its help live in one place, and a flag
that a suite does not declare is an error on that suite's command line rather than silently ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .executor import ExecutorConfig


def option(default: Any = None, help: str = "", **argparse_kwargs: Any) -> Any:
    """A field of a suite's options dataclass that is also its flag `--field-name` (keyword arguments go to
    argparse: choices, metavar, type for values that are not the field's own type)."""
    return field(default=default, metadata={"help": help, "argparse": argparse_kwargs})


def _value_type(hint: Any) -> Any:
    """`int` for `int | None`, and so on: the type argparse converts a flag's text to."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return hint


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type) -> None:
    """One flag per field of `cls` declared with `option`."""
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        if "argparse" not in spec.metadata:
            continue
        kwargs = {"dest": spec.name, "default": spec.default, "help": spec.metadata["help"],
                  **spec.metadata["argparse"]}
        value_type = _value_type(hints[spec.name])
        if value_type is bool:
            kwargs["action"] = "store_true"
        elif "type" not in kwargs and value_type is not str:
            kwargs["type"] = value_type
        parser.add_argument("--" + spec.name.replace("_", "-"), **kwargs)


def options_from_namespace(cls: type, namespace: argparse.Namespace) -> Any:
    """An instance of `cls` from the parsed flags its fields declared (validated by its __post_init__)."""
    return cls(**{spec.name: getattr(namespace, spec.name) for spec in dataclasses.fields(cls)
                  if hasattr(namespace, spec.name)})


@dataclass
class SuiteOptions:
    """What every suite may receive; the flags a suite accepts are those of the common groups it declares
    (bench/suites/__init__.py COMMON_GROUPS), and fields it does not accept keep these defaults."""

    suite: str
    preset: str = "standard"
    representations: list[str] | None = None  # None: every registered representation
    images: str | None = None  # image set name or folder; None: the preset's
    steps: int | None = None  # None: the preset's
    seeds: int | None = None
    size: int | None = None
    max_images: int | None = None
    device: str = "auto"
    out: Path = Path("results")
    data_root: Path | None = None
    fresh: bool = False
    dry_run: bool = False  # --dry-run: print the plan and exit, fitting and writing nothing
    wandb: bool = False  # --wandb: report runs to Weights & Biases (see bench/tracking.py)
    wandb_project: str | None = None  # None: $WANDB_PROJECT or "fitbench"
    wandb_entity: str | None = None  # None: $WANDB_ENTITY or the account's default
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # --set rep.field=value
    plugins: list[str] = field(default_factory=list)  # --plugin: files or modules that register representations
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # --executor and its options: where runs execute
    own: Any = None  # the suite's own options (its dataclass, e.g. FittingOptions); None: their defaults

    def suite_dir(self, name: str | None = None) -> Path:
        return self.out / (name or self.suite)

    def own_or(self, default: Callable[[], Any]) -> Any:
        """The suite's own options, or `default()` (their defaults) for options built without them."""
        return self.own if self.own is not None else default()
