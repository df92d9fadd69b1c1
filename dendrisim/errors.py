"""The project's own error types.

Everything a user can get wrong (a model file, a dataset path, an option) raises a
subclass of :class:`DendrisimError` with a one-paragraph message that names the file,
the field path, the bad value and what is allowed. ``scripts/simulate.py`` prints the
message without a traceback.
"""
from __future__ import annotations

import reprlib
import sys

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 2, 4, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 80, 80, 40


def brief(value: object) -> str:
    """``repr(value)`` cut to about 80 characters, in time bounded whatever ``value`` is (a
    structure of shared aliases, a long string, a huge integer): error messages show the bad
    value through it, never in full."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<an integer of {len(str(abs(value))) if value.bit_length() < 10_000 else 'thousands of'} digits>"
    try:
        text = _REPR.repr(value)
        return text if len(text) <= 120 else text[:117] + "..."
    except Exception:  # noqa: BLE001 - a value whose repr fails still gets a message
        return f"<a {type(value).__name__}>"


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


class PathError(DendrisimError):
    """A path the user gave cannot be used: empty, too long, a loop of symbolic links, in a
    read-only or full file system, or refused by the operating system for another reason."""


class MemoryLimitError(DendrisimError):
    """The run could not allocate memory (an address-space limit, a full machine or GPU): it
    stopped cleanly, its last checkpoint kept."""


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocation failure: Python's MemoryError, torch's out-of-memory
    error, or the RuntimeError torch's CPU allocator raises ("can't allocate memory")."""
    if isinstance(err, MemoryError):
        return True
    oom = getattr(sys.modules.get("torch"), "OutOfMemoryError", None)  # torch only if already imported
    if oom is not None and isinstance(err, oom):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


class DendrisimDeprecationWarning(DeprecationWarning):
    """dendrisim's own deprecations (a hook or attribute before a presentation's state became a
    value): shown by default wherever they come from, with the change to make in one line
    (Python hides a plain DeprecationWarning that is not raised from ``__main__``)."""
