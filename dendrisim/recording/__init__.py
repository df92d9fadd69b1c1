"""HDF5 recordings: the streaming writer and a lazy reader.

The public names are imported when first used (PEP 562), not when the package is, so that
:mod:`dendrisim.recording.plan` (the recording's selection and size, for the memory estimate
and ``dendrisim check``) loads without the writer or h5py.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> (module, attribute in it)
_PUBLIC = {
    "FILENAME": ("dendrisim.recording.recorder", "FILENAME"),
    "SCHEMA_VERSION": ("dendrisim.recording.recorder", "SCHEMA_VERSION"),
    "Recorder": ("dendrisim.recording.recorder", "Recorder"),
    "Recording": ("dendrisim.recording.reader", "Recording"),
    "open_recording": ("dendrisim.recording.reader", "open_recording"),
}

__all__ = ["FILENAME", "SCHEMA_VERSION", "Recorder", "Recording", "open_recording"]


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it (later look-ups are plain attributes)."""
    try:
        module, attribute = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'dendrisim.recording' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


if TYPE_CHECKING:  # for type checkers and IDEs: the names as if imported eagerly
    from .reader import Recording, open_recording
    from .recorder import FILENAME, SCHEMA_VERSION, Recorder
