"""The model files that ship with dendrisim, found by name.

The repository's ``models/`` folder is the one source: the wheel carries it as the data
package ``dendrisim/models/`` (``[tool.setuptools] package-dir`` in ``pyproject.toml``), and
a checkout or an editable install reads it where it lies. ``dendrisim run dll_mlp_fmnist``
names a bundled model; a path that exists is used as it is.
"""
from __future__ import annotations

import difflib
import importlib.resources
from pathlib import Path
from typing import Union

from .errors import ConfigError

#: the default model of ``dendrisim run`` (and ``scripts/simulate.py``) with no argument
DEFAULT = "dll_mlp_digits"


def models_dir() -> Path:
    """The folder of the bundled model files: inside the installed package, or the
    checkout's ``models/`` beside the package."""
    inside = importlib.resources.files("dendrisim") / "models"
    if inside.is_dir():
        return Path(str(inside))
    return Path(__file__).resolve().parent.parent / "models"


def bundled() -> dict[str, Path]:
    """Every bundled model file by name (the file name without ``.yaml``), sorted."""
    folder = models_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_model(spec: Union[str, Path, None]) -> Path:
    """The model file ``spec`` names: an existing path as it is; otherwise a bundled model's
    name (``dll_mlp_fmnist`` or ``dll_mlp_fmnist.yaml``); None: the default. A bare name that
    is neither raises a ConfigError listing the bundled names. A missing path whose file name
    is (or is close to) a bundled model's, ``models/dll_mlp_digits.yaml`` outside a checkout
    say, raises a ConfigError that names the bundled model to use instead; any other path is
    returned unchanged, so that loading it reports the missing file as before."""
    if spec is None:
        spec = DEFAULT
    path = Path(spec)
    if path.is_file():
        return path
    models = bundled()
    name = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    if len(path.parts) == 1 and name in models:
        return models[name]
    close = similar_names(name, models)
    if len(path.parts) == 1 and path.suffix == "":
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(f"{spec!r} is neither a model file nor a bundled model; bundled models: "
                          f"{', '.join(models) or '(none found)'} (list them with: dendrisim models){hint}",
                          path="model")
    if close:
        raise ConfigError(f"model file not found (looked at {_absolute(path)}); {_bundled_hint(name, close)}",
                          file=str(spec))
    return path


def similar_names(name: str, models: dict[str, Path]) -> list[str]:
    """The bundled names that ``name`` (a file name without ``.yaml``) means: itself when it
    is one, else difflib's close matches, best first (at most three)."""
    if name in models:
        return [name]
    return difflib.get_close_matches(name, list(models), n=3, cutoff=0.8)


def _bundled_hint(name: str, close: list[str]) -> str:
    first = close[0]
    usage = f"load it by name: dendrisim.load({first!r}) in Python, 'dendrisim run {first}' on the command line"
    if close == [name]:
        return f"dendrisim ships a model of that name, {first!r}; {usage}"
    return f"did you mean the bundled model {' or '.join(map(repr, close))}? {usage[0].upper()}{usage[1:]}"


def _absolute(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, ValueError):  # a NUL in the path, say: show it as given
        return str(path)
