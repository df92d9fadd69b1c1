"""How every options class declares its fields: a default (or none), a one-line doc and
bounds, read by the parser, the reference pages and the tuner. Kept apart from
``dendrisim.config`` so that neuron models, which the config checks import, can use it too."""
from __future__ import annotations

from dataclasses import field
from typing import Any


def req(doc: str = "", **meta: Any) -> Any:
    """A required config field."""
    return field(metadata={"doc": doc, **meta})


def opt(default: Any = None, doc: str = "", **meta: Any) -> Any:
    """A config field with a default, a one-line doc and optional bounds."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc, **meta})
    return field(default=default, metadata={"doc": doc, **meta})
