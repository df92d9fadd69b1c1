"""Composition: the registries of tasks and rules meet the model file here.

``dendrisim.config`` knows the schema and the graph; ``dendrisim.tasks`` and
``dendrisim.plasticity`` know their own options. :func:`load_experiment` reads a model file,
applies overrides, parses the task's and every rule's options with the classes they name,
and runs every check that needs no tensor; :func:`build_rule` sets the rule (or the mix of
rules the projections ask for) up for a network.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable

from .config.graph import validate
from .config.loader import Experiment, read_model
from .config.parse import parse, yaml_key
from .config.schema import ModelConfig
from .errors import ConfigError
from .plasticity import RULES
from .tasks import TASKS


def load_experiment(source: str | Path | dict, overrides: Iterable[str] = (), *, file: str | None = None) -> Experiment:
    """Read, override and check a model file (a path or an already-loaded mapping)."""
    data, file = read_model(source, overrides, file=file)
    config = parse(ModelConfig, data, file=file)
    task = _task_options(config, file)
    rule, notes = rule_options(config.plasticity, file=file, path="plasticity")
    experiment = Experiment(config=config, task=task, rule=rule, file=file, notes=tuple(notes))
    graph = validate(config, file=file)
    check_rule(experiment, graph)
    return experiment


def _task_options(config: ModelConfig, file: str):
    task_data = config.task
    if not isinstance(task_data, dict) or "type" not in task_data:
        raise ConfigError("needs a 'type' key naming the task", file=file, path="task")
    task_cls = TASKS.get(task_data["type"], file=file, path="task.type")
    task = parse(task_cls.Options, task_data, file=file, path="task")
    task_cls.check_options(task, file=file)
    stop = config.training.early_stopping
    if stop is not None and stop.metric not in task_cls.metrics:
        raise ConfigError(f"{stop.metric!r} is not a metric of this task; choose one of {', '.join(task_cls.metrics)}",
                          file=file, path="training.early_stopping.metric")
    return task


def rule_options(data: dict, *, file: str, path: str):
    """The options of the rule a ``plasticity`` block names, and notes on the keys of other
    rules it ignores (so that swapping ``rule`` needs no other edit)."""
    if not isinstance(data, dict) or "rule" not in data:
        raise ConfigError("needs a 'rule' key naming the plasticity rule", file=file, path=path)
    rule_cls = RULES.get(data["rule"], file=file, path=f"{path}.rule")
    own = {yaml_key(f) for f in dataclasses.fields(rule_cls.Options)}
    owners: dict[str, list[str]] = {}
    for name in RULES.names():
        for f in dataclasses.fields(RULES.get(name).Options):
            owners.setdefault(yaml_key(f), []).append(name)
    kept, notes = {}, []
    for key, value in data.items():
        if key not in own and key in owners:
            notes.append(f"{path}.{key} is an option of {', '.join(owners[key])}, ignored by {data['rule']}")
        else:
            kept[key] = value
    return parse(rule_cls.Options, kept, file=file, path=path), notes


def check_rule(experiment: Experiment, graph) -> None:
    """What the rule says about this network and settling scheme, before any tensor."""
    cfg, file = experiment.config, experiment.file
    rule_cls = RULES.get(experiment.rule.rule)
    if cfg.dynamics.mode not in rule_cls.settling_modes:
        raise ConfigError(f"rule {experiment.rule.rule} cannot run under mode {cfg.dynamics.mode} (it runs under "
                          f"{', '.join(rule_cls.settling_modes)}): {rule_cls.settling_note}", file=file,
                          path="dynamics.mode")
    rule_cls.check(experiment, graph)
