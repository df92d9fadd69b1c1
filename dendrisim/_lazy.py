"""Public names imported on first use (PEP 562): how the package root and ``dendrisim.recording``
stay light to import (``import dendrisim`` costs no PyTorch)."""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_names(package: str, public: dict[str, tuple[str, str]], namespace: dict[str, Any]
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``, whose public names
    (``name -> (module, attribute)``) are imported on first use and then kept in its
    ``namespace`` (later look-ups are plain attributes)."""

    def __getattr__(name: str) -> Any:
        try:
            module, attribute = public[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), attribute)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *public})

    return __getattr__, __dir__
