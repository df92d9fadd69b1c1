"""Read a model file and apply ``--set`` overrides; the checked result is an :class:`Experiment`.

This layer knows the schema only: which task and rule a file names, and their options,
are resolved by :mod:`dendrisim.builder`, which composes the registries."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..errors import ConfigError
from .parse import unparse


@dataclass(frozen=True)
class Experiment:
    """A checked model file: the config plus the options of its task and rule."""

    config: ModelConfig
    task: Any  # the task's options dataclass
    rule: Any  # the rule's options dataclass
    file: str
    #: notes about keys that were accepted but not used (options of another rule)
    notes: tuple[str, ...] = ()
    #: projection name -> the options of its own rule (projections with a plasticity block)
    projection_rules: dict[str, Any] = field(default_factory=dict)

    def rule_of(self, projection: str) -> Any:
        """The options of the rule that governs ``projection``."""
        return self.projection_rules.get(projection, self.rule)

    def rule_blocks(self) -> list[tuple[str, Any]]:
        """``(path, options)`` of every plasticity block: the top level, then the projections'."""
        index = {p.name: i for i, p in enumerate(self.config.projections)}
        return [("plasticity", self.rule)] + [(f"projections[{index[n]}].plasticity", o)
                                              for n, o in self.projection_rules.items()]

    @property
    def mixed(self) -> bool:
        """Whether some projection learns by other options than the network's default."""
        return any(options != self.rule for options in self.projection_rules.values())

    def to_dict(self) -> dict:
        """The resolved model file (defaults filled in), as plain data."""
        data = unparse(self.config)
        data["task"] = unparse(self.task)
        data["plasticity"] = unparse(self.rule)
        for proj in data["projections"]:
            options = self.projection_rules.get(f"{proj['from']}->{proj['to']}")
            if options is None:
                proj.pop("plasticity", None)
            else:
                proj["plasticity"] = unparse(options)
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (plain YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict:
    """Load a YAML mapping from ``path`` with errors that name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model file not found (looked at {path.resolve()})", file=str(path))
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{where}YAML syntax error: {problem}", file=str(path)) from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"not a UTF-8 text file ({err.reason})", file=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"the file must hold a mapping of keys, not {type(data).__name__}", file=str(path))
    return data


def apply_overrides(data: dict, overrides: Iterable[str], *, file: str) -> dict:
    """Apply ``key.path=value`` strings (value parsed as YAML) to a copy of ``data``.

    Path parts that are integers index lists: ``projections.0.lr_scale=0.5``.
    """
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value", file=file, path="--set")
        key, _, text = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r} has an empty key", file=file, path="--set")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"override value {text!r} is not valid YAML", file=file, path=key) from None
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, create=True, file=file, path=".".join(parts[: i + 1]))
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, file=file, path=key)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"cannot set a key inside {node!r}", file=file, path=key)
    return data


def _index(node: list, part: str, *, file: str, path: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise ConfigError(f"{part!r} is not an index of a list of {len(node)} items", file=file, path=path)
    return int(part)


def _child(node: Any, part: str, *, create: bool, file: str, path: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, file=file, path=path)]
    if isinstance(node, dict):
        if part not in node or node[part] is None:
            if not create:
                raise ConfigError("no such key", file=file, path=path)
            node[part] = {}
        return node[part]
    raise ConfigError(f"cannot set a key inside {node!r}", file=file, path=path)


def read_model(source: str | Path | dict, overrides: Iterable[str] = (), *, file: str | None = None
               ) -> tuple[dict, str]:
    """The model file as plain data with ``--set``-style overrides applied, and its name for
    error messages (a path, or ``file`` / ``<model>`` for an already-loaded mapping)."""
    if isinstance(source, dict):
        data, file = source, file or "<model>"
    else:
        data, file = read_yaml(source), file or str(source)
    return apply_overrides(data, overrides, file=file), file
