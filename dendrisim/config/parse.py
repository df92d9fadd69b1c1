"""Turn plain YAML data into frozen dataclasses, with errors that name the field.

Each config dataclass declares its fields with type hints; :func:`parse` checks every
value against the hint, rejects unknown keys, fills defaults and applies the range
checks stored in ``field(metadata=...)``:

- ``key``: the YAML spelling when it differs from the attribute (``from`` -> ``source``)
- ``gt`` / ``ge`` / ``le``: numeric bounds
- ``doc``: one line shown in error messages and the README table

A dataclass may define ``problem(self) -> str | None`` for checks across its fields.

The error for ``populations.h1.size: -3`` reads
``models/x.yaml: populations.h1.size: -3 must be > 0``.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Literal, Union

from ..errors import ConfigError, brief

_MISSING = dataclasses.MISSING
FLOAT32_MAX = 3.4028234663852886e38
INT64_MAX = 2**63 - 1
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if hint is type(None):
        return "null"
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if origin is dict:
        return f"a mapping of {_type_name(typing.get_args(hint)[1])}"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def _join(path: str, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    key = key_text(key)
    return f"{path}.{key}" if path else key


def key_text(key: Any) -> str:
    """A key as it appears in a field path: as written when it is short and printable, else
    its shortened repr (so that a newline or a NUL never breaks the one-line message)."""
    return key if isinstance(key, str) and len(key) <= 80 and key.isprintable() else brief(key)


def _same_shape(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the container shape of ``hint`` (a mapping for a dataclass or a
    dict, a list for a list or tuple): then a union's error should be that option's own,
    which names the field inside and its problem, not "is not a mapping or null"."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) or origin is dict:
        return isinstance(value, dict)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if hint is int:  # an int beyond int64 for an 'int or str' key: its own error says so, not "is not int or str"
        return isinstance(value, int) and not isinstance(value, bool)
    return False


def convert(value: Any, hint: Any, *, file: str | None, path: str) -> Any:
    """Check ``value`` against the type ``hint`` and return it converted."""
    origin = typing.get_origin(hint)
    def fail() -> ConfigError:  # built only when raised: a large value is never formatted for nothing
        return ConfigError(f"{brief(value)} is not {_type_name(hint)}", file=file, path=path)

    if hint is Any:
        return value
    if hint is type(None):
        if value is None:
            return None
        raise fail()
    if origin is Literal:
        if value in typing.get_args(hint) and type(value) in {type(a) for a in typing.get_args(hint)}:
            return value
        raise ConfigError(
            f"{brief(value)} is not one of {', '.join(str(a) for a in typing.get_args(hint))}",
            file=file, path=path,
        )
    if origin in (Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        errors = []
        for option in typing.get_args(hint):
            try:
                return convert(value, option, file=file, path=path)
            except ConfigError as err:
                errors.append((option, err))
        shaped = [err for option, err in errors if _same_shape(value, option)]
        if len(shaped) == 1:  # a mapping for the one mapping option (say): its own error names what is wrong
            raise shaped[0]
        raise fail()
    if dataclasses.is_dataclass(hint):
        return parse(hint, value, file=file, path=path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail()
        (item,) = [a for a in typing.get_args(hint) if a is not Ellipsis] or [Any]
        items = [convert(v, item, file=file, path=_join(path, i)) for i, v in enumerate(value)]
        return tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise fail()
        _, item = typing.get_args(hint)
        return {str(k): convert(v, item, file=file, path=_join(path, k)) for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise fail()
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > INT64_MAX:
                raise ConfigError(f"{brief(value)} is larger than the tensors' integers allow (2^63 - 1)",
                                  file=file, path=path)
            return value
        raise fail()
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        raise fail()
    if hint is str:
        if isinstance(value, str):
            return value
        raise fail()
    raise TypeError(f"unsupported config type {hint!r} at {path}")


def _check_bounds(value: Any, meta: typing.Mapping, *, file: str | None, path: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if "gt" in meta and not value > meta["gt"]:
        raise ConfigError(f"{brief(value)} must be > {meta['gt']}", file=file, path=path)
    if "ge" in meta and not value >= meta["ge"]:
        raise ConfigError(f"{brief(value)} must be >= {meta['ge']}", file=file, path=path)
    if "le" in meta and not value <= meta["le"]:
        raise ConfigError(f"{brief(value)} must be <= {meta['le']}", file=file, path=path)
    if "lt" in meta and not value < meta["lt"]:
        raise ConfigError(f"{brief(value)} must be < {meta['lt']}", file=file, path=path)
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{brief(value)} must be a finite number", file=file, path=path)
    if isinstance(value, float) and abs(value) > FLOAT32_MAX:
        raise ConfigError(f"{brief(value)} is outside the float32 range of the tensors (±3.4e38)", file=file, path=path)


def yaml_key(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def parse(cls: type, data: Any, *, file: str | None = None, path: str = "") -> Any:
    """Build dataclass ``cls`` from the mapping ``data``; every error names its field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{brief(data)} is not a mapping", file=file, path=path or "<top level>")
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")]
    rest = next((f for f in fields if f.metadata.get("rest")), None)
    known = {yaml_key(f): f for f in fields if f is not rest}
    unknown = [k for k in data if k not in known]
    if rest is not None:  # the keys of the block that belong to someone else (a neuron model's), checked by it
        data = {**{k: v for k, v in data.items() if k in known}, yaml_key(rest): {k: data[k] for k in unknown}}
        known[yaml_key(rest)], unknown = rest, []
    if unknown:
        raise ConfigError(
            f"unknown key {brief(unknown[0])}; allowed keys are {', '.join(sorted(known))}",
            file=file, path=path or "<top level>",
        )
    values = {}
    for key, f in known.items():
        sub = _join(path, key)
        if key in data:
            value = convert(data[key], hints[f.name], file=file, path=sub)
            _check_bounds(value, f.metadata, file=file, path=sub)
            values[f.name] = value
        elif f.default is _MISSING and f.default_factory is _MISSING:
            raise ConfigError(f"missing required key {key!r}", file=file, path=path or "<top level>")
    obj = cls(**values)
    problem = getattr(obj, "problem", None)  # cross-field checks of the dataclass, if any
    if problem is not None and (message := problem()):
        raise ConfigError(message, file=file, path=path or "<top level>")
    return obj


def unparse(obj: Any) -> Any:
    """The inverse of :func:`parse`: plain data that parses back to ``obj``."""
    if dataclasses.is_dataclass(obj):
        fields = [f for f in dataclasses.fields(obj) if f.init and not f.metadata.get("internal")]
        data = {yaml_key(f): unparse(getattr(obj, f.name)) for f in fields if not f.metadata.get("rest")}
        for f in fields:  # the other keys of the block, back beside the known ones
            if f.metadata.get("rest"):
                data.update(unparse(getattr(obj, f.name)))
        return data
    if isinstance(obj, (list, tuple)):
        return [unparse(v) for v in obj]
    if isinstance(obj, dict):
        return {k: unparse(v) for k, v in obj.items()}
    return obj
