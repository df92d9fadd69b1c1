"""Read a model file and apply ``--set`` overrides; the checked result is an :class:`Experiment`.

This layer knows the schema only: which task and rule a file names, and their options,
are resolved by :mod:`dendrisim.builder`, which composes the registries."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..errors import ConfigError, brief
from . import limits
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
    #: whether the settling scheme (``dynamics.mode``) simulates the pyramidal neurons'
    #: compartments in time: they then take their constants from ``dynamics``
    simulated: bool = False

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
        for proj, checked in zip(data["projections"], self.config.projections):
            options = self.projection_rules.get(checked.name)  # SRC:READS->TGT for a projection with reads
            if options is None:
                proj.pop("plasticity", None)
            else:
                proj["plasticity"] = unparse(options)
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


class _LimitError(yaml.MarkedYAMLError):
    """A documented limit of :mod:`dendrisim.config.limits` was passed."""


class _BoundedLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (plain YAML keeps the last silently) and
    stops at the limits of :mod:`.limits`: nesting depth and alias uses while it composes,
    the size and depth of the document with its aliases expanded before anything is built,
    and the length of every number before it is converted."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def fetch_flow_collection_start(self, TokenClass):  # type: ignore[override]
        # the scanner reads ahead while a [ or { may start a key: stop it at the limit
        if self.flow_level >= limits.MAX_DEPTH:
            raise _LimitError(None, None, f"mappings and lists nested more than {limits.MAX_DEPTH} deep",
                              self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > limits.MAX_ALIASES:
                raise _LimitError(None, None, f"more than {limits.MAX_ALIASES} uses of *aliases",
                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > limits.MAX_DEPTH:
                raise _LimitError(None, None, f"mappings and lists nested more than {limits.MAX_DEPTH} deep",
                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):  # type: ignore[override]
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {brief(key)}", key_node.start_mark)
                seen.add(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a plain value, not {type(key).__name__}", key_node.start_mark) from None
        return super().construct_mapping(node, deep=deep)

    def construct_number(self, node):
        if len(node.value) > limits.MAX_NUMBER_CHARS:
            raise _LimitError(None, None, f"a number of {len(node.value):,} characters (at most "
                              f"{limits.MAX_NUMBER_CHARS} are allowed)", node.start_mark)
        tag = node.tag.rsplit(":", 1)[-1]
        return (yaml.SafeLoader.construct_yaml_int if tag == "int" else yaml.SafeLoader.construct_yaml_float)(self, node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_number)
_BoundedLoader.add_constructor("tag:yaml.org,2002:float", _BoundedLoader.construct_number)


def _children(node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root) -> None:
    """Refuse a document whose aliases expand past :data:`.limits.MAX_NODES` values or
    :data:`.limits.MAX_DEPTH` levels, or refer to a value that holds them (a cycle). Walks the
    composed nodes once, without recursion and without expanding anything."""
    if root is None:
        return
    done: dict[int, tuple[int, int]] = {}  # id -> (values when expanded, depth)
    entered: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            kids = [done[id(k)] for k in _children(node)]
            size, depth = 1 + sum(k[0] for k in kids), 1 + max((k[1] for k in kids), default=0)
            if size > limits.MAX_NODES:
                raise _LimitError(None, None, f"the aliases expand to more than {limits.MAX_NODES:,} values",
                                  node.start_mark)
            if depth > limits.MAX_DEPTH:
                raise _LimitError(None, None, f"the aliases nest mappings and lists more than {limits.MAX_DEPTH} "
                                  "deep", node.start_mark)
            done[key] = (size, depth)
            entered.discard(key)
            continue
        if key in done:
            continue
        if key in entered:
            raise _LimitError(None, None, "an *alias refers to the value that holds it (a cycle)", node.start_mark)
        entered.add(key)
        stack.append((node, True))
        for kid in _children(node):
            if id(kid) in entered:
                raise _LimitError(None, None, "an *alias refers to the value that holds it (a cycle)", kid.start_mark)
            if id(kid) not in done:
                stack.append((kid, False))


def load_yaml_text(text: str, *, file: str, path: str | None = None) -> Any:
    """Parse YAML ``text`` within the limits of :mod:`.limits`; errors name ``file``, the
    line and column, and the limit or the syntax problem."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)
    except _LimitError as err:
        mark = err.problem_mark
        raise ConfigError(f"line {mark.line + 1}, column {mark.column + 1}: {err.problem}; model files are limited "
                          "(see docs/reference/limits.md)", file=file, path=path) from None
    except yaml.reader.ReaderError as err:  # a control character, a NUL: no mark, a two-line message
        line = text.count("\n", 0, err.position) + 1 if isinstance(err.position, int) else "?"
        char = f"#x{err.character:04x}" if isinstance(err.character, int) else brief(err.character)
        raise ConfigError(f"line {line}: character {char} is not allowed in YAML (control characters and NUL are "
                          "refused; write it escaped inside double quotes)", file=file, path=path) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(getattr(err, "problem", None) or err).split())  # one paragraph
        raise ConfigError(f"{where}YAML syntax error: {problem[:200]}", file=file, path=path) from None
    except RecursionError:  # a structure the limits did not foresee; never a traceback
        raise ConfigError(f"nested too deeply (more than {limits.MAX_DEPTH} levels)", file=file, path=path) from None


def read_yaml(path: str | Path) -> dict:
    """Load a YAML mapping from ``path`` with errors that name the file and line; the file
    is read within :data:`.limits.MAX_FILE_BYTES`."""
    path = Path(path)
    try:
        if not path.is_file():
            raise ConfigError(f"model file not found (looked at {path.resolve()})", file=str(path))
        with open(path, "rb") as fh:
            raw = fh.read(limits.MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as err:  # unreadable, a NUL in the path, ...
        raise ConfigError(f"cannot read the model file ({getattr(err, 'strerror', None) or err})",
                          file=brief(str(path))) from None
    if len(raw) > limits.MAX_FILE_BYTES:
        raise ConfigError(f"larger than {limits.MAX_FILE_BYTES // 2**20} MiB, the limit of a model file "
                          "(see docs/reference/limits.md)", file=str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"not a UTF-8 text file ({err.reason} at byte {err.start})", file=str(path)) from None
    data = load_yaml_text(text, file=str(path))
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
            raise ConfigError(f"override {brief(item)} must look like key.path=value", file=file, path="--set")
        key, _, text = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {brief(item)} has an empty key", file=file, path="--set")
        value = load_yaml_text(text, file=file, path=f"--set {brief(key)}")
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, create=True, file=file, path=".".join(parts[: i + 1]))
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, file=file, path=key)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"cannot set a key inside {brief(node)}", file=file, path=key)
    return data


def _index(node: list, part: str, *, file: str, path: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise ConfigError(f"{brief(part)} is not an index of a list of {len(node)} items", file=file, path=path)
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
    raise ConfigError(f"cannot set a key inside {brief(node)}", file=file, path=path)


def imply_connectivity(data: Any) -> Any:
    """``connectivity: one_to_one`` on every projection with ``compartment: soma`` that names no
    connectivity (a soma projection has no other), so the resolved model file says what runs.
    ``data``: the model file as plain data, changed in place where it is well formed."""
    projections = data.get("projections") if isinstance(data, dict) else None
    for proj in projections if isinstance(projections, list) else ():
        if isinstance(proj, dict) and proj.get("compartment") == "soma" and "connectivity" not in proj:
            proj["connectivity"] = "one_to_one"
    return data


def fill_neuron_options(config: "ModelConfig") -> "ModelConfig":
    """Every population's neuron-model options written out, defaults included, once the
    checks have passed, so that the resolved model file (a run's ``model.yaml``) says how each
    population behaved even if a default changes later (as the rule's options are)."""
    import dataclasses

    from ..neurons import NEURONS
    from .parse import parse, unparse

    pops = {}
    for name, pop in config.populations.items():
        model = NEURONS.get(pop.type)
        if not dataclasses.fields(model.Options):
            pops[name] = pop
            continue
        full = unparse(parse(model.Options, dict(pop.options), file=None, path=f"populations.{name}"))
        pops[name] = dataclasses.replace(pop, options=full)
    return dataclasses.replace(config, populations=pops)


def imply_learnable(config: "ModelConfig") -> "ModelConfig":
    """``learnable`` written out on every apical projection that leaves it unset: false for a
    top-down projection (from a pyramidal population: fixed, as in the cortical microcircuit),
    true for a lateral one (from interneurons), so the resolved model file says what learns."""
    import dataclasses

    from ..neurons import NEURONS

    pops = config.populations
    projections = tuple(
        dataclasses.replace(p, learnable=NEURONS.get(pops[p.source].type).apical_learns)
        if p.compartment == "apical" and p.learnable is None and p.source in pops and pops[p.source].type in NEURONS
        else p
        for p in config.projections)
    return dataclasses.replace(config, projections=projections)


def resolve_phases(config: "ModelConfig", data: dict, *, file: str, overridden: Iterable[str] = ()) -> "ModelConfig":
    """``training.phases`` checked and written out: every phase named (``phase0``, ``phase1``, ...
    where unnamed; names checked like population names, unique), its ``learn`` and ``lr_scale``
    naming learnable projections, some phase with the teacher on; ``training.epochs`` their sum.
    A ``training.epochs`` among the overrides (``overridden``: ``--set``-style items; ``--epochs
    N``, a tuner's trial length) is the total: it lengthens or shortens the last phase, as long
    as that phase keeps an epoch. In the file (``data``, as read) a ``training.epochs`` that is
    not the phases' sum is an error, unless the phases themselves were overridden (then the
    file's total is stale and their sum replaces it)."""
    import dataclasses

    training = config.training
    if not training.phases:
        return config
    learnable = [p.name for p in config.projections if p.is_learnable]
    phases, seen = [], {}
    for i, phase in enumerate(training.phases):
        where = f"training.phases[{i}]"
        name = phase.name or f"phase{i}"
        limits.check_name(name, what="phase", file=file, path=f"{where}.name")
        if name in seen:
            raise ConfigError(f"{name!r} is also the name of training.phases[{seen[name]}]; phase names are unique",
                              file=file, path=f"{where}.name")
        seen[name] = i
        for name_, scale in phase.lr_scale.items():
            if not scale >= 0:  # NaN too
                raise ConfigError(f"{brief(scale)} must be >= 0 (a learning-rate multiplier; 0 freezes the projection, "
                                  "as leaving it out of learn does)", file=file, path=f"{where}.lr_scale.{name_}")
        for key, names in (("learn", phase.learn or ()), ("lr_scale", phase.lr_scale)):
            unknown = [n for n in names if n not in learnable]
            if unknown:
                raise ConfigError(
                    f"{brief(unknown[0])} is not a learnable projection of this model; {key} names learnable "
                    f"projections as 'source->target': {', '.join(learnable) or 'this model has none'}",
                    file=file, path=f"{where}.{key}")
        phases.append(dataclasses.replace(phase, name=name))
    if not any(phase.teacher for phase in phases):
        raise ConfigError(
            f"no phase has teacher: true ({', '.join(p.name for p in phases)} all run without it), so the output "
            "is never nudged toward the target and no update depends on the task; give the learning phase "
            "teacher: true", file=file, path="training.phases")
    total = sum(phase.epochs for phase in phases)
    given = data.get("training") if isinstance(data, dict) else None
    keys = {item.split("=", 1)[0].strip() for item in overridden}
    if (isinstance(given, dict) and "epochs" in given and training.epochs != total and "training.epochs" not in keys
            and not any(k == "training" or k.startswith("training.phases") for k in keys)):
        raise ConfigError(
            f"{training.epochs} is not the sum of the phases' epochs ({' + '.join(str(p.epochs) for p in phases)} = "
            f"{total}); with training.phases, training.epochs is their sum: write {total} or leave it out (--epochs N "
            "or --set training.epochs=N changes the last phase's epochs)", file=file, path="training.epochs")
    if "training.epochs" in keys and training.epochs != total:
        # a total given on the command line (--epochs N, a tuner's trial length) changes the last phase
        last, before = phases[-1], total - phases[-1].epochs
        if training.epochs <= before:
            raise ConfigError(
                f"{training.epochs} epochs would end before the last phase {last.name!r} starts (the phases take "
                f"{' + '.join(str(p.epochs) for p in phases)} = {total} epochs); with training.phases, "
                f"training.epochs is their sum, and a different value changes the last phase's epochs only: give at "
                f"least {before + 1}, or change the phases", file=file, path="training.epochs")
        phases[-1] = dataclasses.replace(last, epochs=training.epochs - before)
        total = training.epochs
    training = dataclasses.replace(training, phases=tuple(phases), epochs=total)
    return dataclasses.replace(config, training=training)


def read_model(source: str | Path | dict, overrides: Iterable[str] = (), *, file: str | None = None
               ) -> tuple[dict, str]:
    """The model file as plain data with ``--set``-style overrides applied, and its name for
    error messages (a path, or ``file`` / ``<model>`` for an already-loaded mapping)."""
    if isinstance(source, dict):
        data, file = source, file or "<model>"
    else:
        data, file = read_yaml(source), file or str(source)
    return imply_connectivity(apply_overrides(data, overrides, file=file)), file
