"""The documented limits of a model file (docs/reference/limits.md): the names it may give,
and how large, deep and aliased its YAML may be. Past a limit the loader stops with a
:class:`~dendrisim.errors.ConfigError` before the value is built, so a hostile file costs
neither time nor memory."""
from __future__ import annotations

import re
from typing import Any

from ..errors import ConfigError, brief

#: population, projection-end and model names: a letter or ``_``, then up to 63 letters,
#: digits, ``_`` or ``-``. They become folder names, HDF5 groups, torch module names and
#: ``--set`` key paths, so they hold no ``/``, no ``\``, no NUL, no dot (``..``, and
#: ``populations.a.b.size`` would be ambiguous) and are never empty.
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_-]{0,63}"
_NAME = re.compile(NAME_PATTERN)

#: bytes in a model file
MAX_FILE_BYTES = 1 << 20
#: mappings and lists inside each other
MAX_DEPTH = 64
#: uses of ``*alias`` in one file
MAX_ALIASES = 1000
#: values (mappings, lists and scalars) the file holds once every alias is expanded
MAX_NODES = 100_000
#: characters of a number (an integer or a float, sign and exponent included)
MAX_NUMBER_CHARS = 100


def check_name(name: Any, *, what: str, file: str | None, path: str) -> None:
    """A ConfigError naming the file, the field, the bad name and the pattern, unless
    ``name`` matches :data:`NAME_PATTERN`."""
    if isinstance(name, str) and _NAME.fullmatch(name):
        return
    why = ""
    if isinstance(name, str):
        if not name:
            why = " (it is empty)"
        elif "\0" in name:
            why = " (it holds a NUL character)"
        elif "/" in name or "\\" in name:
            why = " (a / or \\ would make it a path)"
        elif "." in name:
            why = " (a dot would make it a hidden or parent folder, and a --set key path splits at dots)"
        elif len(name) > 64:
            why = f" (it has {len(name)} characters, at most 64 are allowed)"
    raise ConfigError(f"{brief(name)} is not a valid {what} name{why}: names match {NAME_PATTERN} (a letter or _, "
                      "then up to 63 letters, digits, _ or -), since they become folder names and HDF5 groups",
                      file=file, path=path)
