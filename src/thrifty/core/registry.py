"""A small named registry of plain callables/classes, with lazy "module:attr" entries for heavy imports."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from thrifty.core.errors import ConfigError, check_choice

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects. ``add(name, "pkg.mod:attr")`` defers the import until ``get`` is called."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T | str] = {}

    def add(self, name: str, obj: T | str) -> None:
        """Register ``obj`` (or a lazy "module:attr" path) under ``name``; names are unique."""
        if name in self._items:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def get(self, name: str) -> T:
        """The object named ``name``; unknown names raise a one-line error listing the choices."""
        check_choice(self.kind, name, self.names())
        obj = self._items[name]
        if isinstance(obj, str) and ":" in obj:
            module, _, attr = obj.partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._items[name] = obj
        return obj  # type: ignore[return-value]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
