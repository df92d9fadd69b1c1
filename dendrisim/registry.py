"""Name -> class registries, filled by decorators (``@RULES.register("dll")``)."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import ConfigError, brief

T = TypeVar("T")

#: the entry-point group of installed packages' plasticity rules (read by plugins.load_entry_points)
ENTRY_POINT_GROUP = "dendrisim.rules"


class Registry(Generic[T]):
    """A named table of extension points; unknown names list the valid ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def unregister(self, name: str) -> T:
        """Remove ``name`` (one registered for a test or a session only) and return what it named."""
        if name not in self._entries:
            raise KeyError(f"{self.kind} {name!r} is not registered")
        return self._entries.pop(name)

    def get(self, name: str, *, file: str | None = None, path: str | None = None) -> T:
        if not isinstance(name, str) or name not in self._entries:
            raise ConfigError(
                f"{brief(name)} is not a known {self.kind}; choose one of {', '.join(self.names())}",
                file=file,
                path=path,
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
