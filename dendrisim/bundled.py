"""The model files that ship with dendrisim, found by name.

The repository's ``models/`` folder is the one source: the wheel carries it as the data
package ``dendrisim/models/`` (``[tool.setuptools] package-dir`` in ``pyproject.toml``), and
a checkout or an editable install reads it where it lies. ``dendrisim run dll_mlp_fmnist``
names a bundled model; a path that exists is used as it is.
"""
from __future__ import annotations

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
    is neither raises a ConfigError listing the bundled names; any other path is returned
    unchanged, so that loading it reports the missing file as before."""
    if spec is None:
        spec = DEFAULT
    path = Path(spec)
    if path.is_file():
        return path
    models = bundled()
    name = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    if len(path.parts) == 1 and name in models:
        return models[name]
    if len(path.parts) == 1 and path.suffix == "":
        raise ConfigError(f"{spec!r} is neither a model file nor a bundled model; bundled models: "
                          f"{', '.join(models) or '(none found)'} (list them with: dendrisim models)", path="model")
    return path
