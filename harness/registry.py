"""The one registry: model adapters, tasks and metrics, each under its own kind.

Built-ins register through the same path as plugins: third-party packages add entries through the
`harness.adapters`, `harness.tasks` and `harness.metrics` entry-point groups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from harness.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, entry_point_group: str) -> None:
        self.kind = kind
        self._entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._entry_points_loaded = False

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        if name in self._entries and not replace and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = entry
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        def wrap(entry: T) -> T:
            return self.register(name, entry)

        return wrap

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for entry_point in metadata.entry_points(group=self._entry_point_group):
            if entry_point.name not in self._entries:
                self._entries[entry_point.name] = entry_point.load()

    def get(self, name: str) -> T:
        if name not in self._entries:
            self._load_entry_points()
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self._entries)
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
