"""The project's own error types.

Everything a user can get wrong (a model file, a dataset path, an option) raises a
subclass of :class:`DendrisimError` with a one-paragraph message that names the file,
the field path, the bad value and what is allowed. ``scripts/simulate.py`` prints the
message without a traceback.
"""
from __future__ import annotations


class DendrisimError(Exception):
    """Base class of every error dendrisim raises on purpose."""


class ConfigError(DendrisimError):
    """A model file or an override is invalid."""

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None):
        self.file = file
        self.path = path
        where = ": ".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {message}" if where else message)


class DataError(DendrisimError):
    """A dataset is missing, malformed or does not fit the model."""


class NumericalError(DendrisimError):
    """NaN or Inf appeared in a compartment, an update or a weight."""


class RunDirError(DendrisimError):
    """A run directory is in use by another process, or would be overwritten."""


class FileFormatError(DendrisimError):
    """A file dendrisim reads back (checkpoint, weights, recording) is damaged or holds
    something it never writes (pickled code, say)."""


class WriteError(DendrisimError):
    """Writing a run's file failed (a full disk, an I/O error); what was written before is kept."""
