"""Paths a user gives (command-line arguments, data roots): checked when they are read, and an
``OSError`` met on one of them later said in one paragraph that names it.

:func:`path_arg` is the argparse ``type=`` of every path argument of every command. It refuses
an empty path (which would silently mean the working folder) and a path the operating system
cannot look up at all: a name longer than the file system allows, a loop of symbolic links, a
folder it may not search. A path that does not exist yet passes (``--out`` names a folder to
create), and so does one under a file (what uses it says that better). Each path it accepts is
remembered for the command.

:func:`user_error` is what each command prints: an ``OSError`` whose file is one of those
paths, or lies under one (a read-only folder, a full disk, ``/proc``), becomes a
:class:`PathError` naming the argument, the path and the operating system's reason. Any other
``OSError`` stays a traceback: it is dendrisim's bug to fix, not the user's path.
"""
from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path
from typing import Callable, Optional, Union

from .errors import PathError

PathLike = Union[str, "os.PathLike[str]"]

#: absolute path given by the user -> the argument that gave it ("--out", "MODEL", ...)
_GIVEN: dict[str, str] = {}


def shown(path: PathLike) -> str:
    """``path`` as an error message shows it: in full up to 120 characters, else its start and
    end around the number of characters left out."""
    text = os.fspath(path)
    if len(text) <= 120:
        return text
    return f"{text[:50]}...({len(text) - 100} more characters)...{text[-50:]}"


def reason(err: OSError) -> str:
    """The operating system's reason for ``err``: its text and the errno's name."""
    name = errno.errorcode.get(err.errno or 0)
    text = err.strerror or str(err) or type(err).__name__
    return f"{text} ({name})" if name else text


def problem(path: PathLike) -> Optional[str]:
    """Why the operating system cannot look ``path`` up (None when it can, or when nothing is
    there yet, a file used as a folder included: the command's own check says that better):
    an empty path, a name too long, a symlink loop, a folder that may not be searched."""
    text = os.fspath(path)
    if text == "":
        return "an empty path (it would silently mean the working folder); name a file or folder"
    if "\0" in text:
        return "a path holding a NUL character, which no file system allows"
    try:
        os.stat(text)
    except (FileNotFoundError, NotADirectoryError):  # nothing there (yet): what uses the path says what it needs
        return None
    except OSError as err:
        return reason(err)
    except ValueError as err:  # a path the os module refuses before asking the system
        return str(err)
    return None


def remember(path: PathLike, label: str) -> None:
    """Count ``path`` as given by the user as ``label`` until the next command starts (see
    :func:`user_error`)."""
    _GIVEN[os.path.abspath(os.fspath(path))] = label


def check_path(path: PathLike, *, label: str) -> Path:
    """``path`` as a :class:`~pathlib.Path`, remembered as given by ``label``; a
    :class:`PathError` naming both when the operating system cannot look it up."""
    why = problem(path)
    if why is not None:
        raise PathError(f"{label} {shown(path)!r}: {why}" if os.fspath(path) else f"{label}: {why}")
    remember(path, label)
    return Path(path)


def path_arg(label: str, *, text: bool = False) -> Callable[[str], Union[Path, str]]:
    """An argparse ``type=`` for the path argument ``label`` (its flag, or its name for a
    positional): :func:`check_path` whose refusal argparse reports as a usage error (exit 2).
    The value is a :class:`~pathlib.Path`, or the string itself with ``text``."""
    def convert(given: str) -> Union[Path, str]:
        why = problem(given)
        if why is not None:
            raise argparse.ArgumentTypeError(f"{shown(given)!r}: {why}" if given else why)
        remember(given, label)
        return given if text else Path(given)

    convert.__name__ = "path"  # argparse names the type in its own messages
    return convert


def _given(filename: object) -> Optional[tuple[str, str]]:
    """(label, given path) of the user's path that ``filename`` is or lies under, else None."""
    if not isinstance(filename, (str, bytes, os.PathLike)):
        return None
    try:
        full = os.path.abspath(os.fsdecode(filename))
    except (TypeError, ValueError):
        return None
    for given, label in sorted(_GIVEN.items(), key=lambda item: -len(item[0])):  # the closest first
        # under "/" lies every file: only the root itself counts as given then
        if full == given or (given != os.sep and full.startswith(given.rstrip(os.sep) + os.sep)):
            return label, given
    return None


def path_error(err: OSError) -> Optional[PathError]:
    """The :class:`PathError` that ``err`` becomes when its file is (under) a path the user
    gave, else None."""
    for filename in (err.filename, err.filename2):
        found = _given(filename)
        if found is not None:
            label, _ = found
            return PathError(f"{label}: {shown(os.fsdecode(filename))}: {reason(err)}; dendrisim could not use "
                             "this path as the command needs (read it, create it or write there)")
    return None


def forget() -> None:
    """Start a command: no path counts as given by the user until its arguments are parsed."""
    _GIVEN.clear()


def user_error(err: BaseException) -> BaseException:
    """What a command's ``except (DendrisimError, OSError)`` prints: a DendrisimError as it
    is, an OSError on a path the user gave as a :class:`PathError` (see :func:`path_error`);
    any other OSError is raised again, traceback and all (a bug, not the user's path)."""
    if isinstance(err, OSError):
        converted = path_error(err)
        if converted is None:
            raise err
        return converted
    return err


def make_dir(path: Path, *, what: str) -> None:
    """``mkdir -p path``, or a :class:`PathError` saying that ``what`` (``"the run directory"``)
    cannot be created there and why (a read-only or full file system, ``/proc``, no permission)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PathError(f"cannot create {what} {shown(path)}: {reason(err)}"
                        + (f" (at {shown(err.filename)})" if err.filename and os.fspath(err.filename) != os.fspath(path)
                           else "")) from None
