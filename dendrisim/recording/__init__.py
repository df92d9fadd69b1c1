"""HDF5 recordings: the streaming writer and a lazy reader.

The public names are imported when first used (PEP 562), not when the package is, so that
:mod:`dendrisim.recording.plan` (the recording's selection and size, for the memory estimate
and ``dendrisim check``) loads without the writer or h5py.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

#: public name -> (module, attribute in it)
_PUBLIC = {
    "FILENAME": ("dendrisim.recording.recorder", "FILENAME"),
    "SCHEMA_VERSION": ("dendrisim.recording.recorder", "SCHEMA_VERSION"),
    "Recorder": ("dendrisim.recording.recorder", "Recorder"),
    "Recording": ("dendrisim.recording.reader", "Recording"),
    "open_recording": ("dendrisim.recording.reader", "open_recording"),
}

__all__ = ["FILENAME", "SCHEMA_VERSION", "Recorder", "Recording", "open_recording"]


__getattr__, __dir__ = lazy_names('dendrisim.recording', _PUBLIC, globals())


if TYPE_CHECKING:  # for type checkers and IDEs: the names as if imported eagerly
    from .reader import Recording, open_recording
    from .recorder import FILENAME, SCHEMA_VERSION, Recorder
