"""One registry for every kind of named thing: representations, suites and generative models.

A `Registry` is a dict of entries by name that refuses a name twice, answers an unknown name with one line that
lists the valid ones, lists names by pattern, and keeps an alias map: an old name given to `lookup` (a record or
stream written before a rename) finds the entry under its new name, with a deprecation note.
"""

from __future__ import annotations

import fnmatch
import warnings
from typing import Generic, TypeVar

Entry = TypeVar("Entry")


class Registry(dict, Generic[Entry]):
    def __init__(self, kind: str, error: type[Exception] = ValueError):
        super().__init__()
        self.kind = kind  # what the entries are, for messages: "representation", "suite", ...
        self.error = error  # raised for an unknown name
        self.aliases: dict[str, str] = {}  # old name -> current name

    def register(self, name: str, entry: Entry) -> Entry:
        if name in self or name in self.aliases:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self[name] = entry
        return entry

    def alias(self, old: str, new: str) -> None:
        """`old` (a name records or streams may still carry) now means `new`."""
        if old in self:
            raise ValueError(f"{self.kind} {old!r} is registered; it cannot also be an alias of {new!r}")
        self.aliases[old] = new

    def canonical(self, name: str) -> str:
        """The current name of `name` (itself unless it is an alias)."""
        return self.aliases.get(name, name)

    def lookup(self, name: str) -> Entry:
        if name not in self and name in self.aliases:
            warnings.warn(f"{self.kind} {name!r} was renamed {self.aliases[name]!r}; use the new name",
                          DeprecationWarning, stacklevel=2)
            name = self.aliases[name]
        try:
            return self[name]
        except KeyError:
            raise self.error(f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}") from None

    def copy(self) -> "Registry[Entry]":
        twin = Registry(self.kind, self.error)
        twin.update(self)
        twin.aliases = dict(self.aliases)
        return twin

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self if fnmatch.fnmatch(n, pattern))
