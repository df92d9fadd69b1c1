"""Composition: the registries of tasks and rules meet the model file here.

``dendrisim.config`` knows the schema and the graph; ``dendrisim.tasks`` and
``dendrisim.plasticity`` know their own options. :func:`load_experiment` reads a model file,
applies overrides, parses the task's and every rule's options with the classes they name,
and runs every check that needs no tensor; :func:`build` turns an experiment into its task
(the data, on the device), network and rule (or the mix of rules the projections ask for).

What the network takes from the data is a :class:`DataSpec`: from a loaded task
(:meth:`DataSpec.of`) or from the model file alone (:meth:`DataSpec.declared`).
:func:`build_model` is the one place a network and its rule are built, with real tensors
(:func:`build`) or on the ``meta`` device, where nothing is allocated (the memory estimate,
``dendrisim check``).
"""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch

from .config.graph import is_circuit, model_of, validate
from .config.loader import Experiment, fill_neuron_options, imply_learnable, read_model, resolve_phases
from .config.parse import parse, yaml_key
from .config.schema import ModelConfig
from . import memory
from .errors import ConfigError, brief
from .network import Network
from .plasticity import RULES, PlasticityRule, build_rule
from .plugins import load_entry_points
from .projections import Projection
from .settling import SCHEMES, SettlingScheme, runs_under, schemes_of
from .shapes import population_shapes
from .tasks import TASKS
from .tasks.base import Task


def load_experiment(source: str | Path | dict, overrides: Iterable[str] = (), *, file: str | None = None) -> Experiment:
    """Read, override and check a model file (a path or an already-loaded mapping)."""
    load_entry_points()  # rules of installed packages, once per process
    overrides = list(overrides)
    data, file = read_model(source, overrides, file=file)
    config = imply_learnable(parse(ModelConfig, data, file=file))
    task = _task_options(config, file)
    rule, notes = rule_options(config.plasticity, file=file, path="plasticity")
    scheme = check_scheme(config, file=file)
    scheme_options(config, scheme, file=file)
    graph = validate(config, file=file)
    config = fill_neuron_options(config)
    scheme.check(config, graph, file=file)
    check_time_steps(config, task, file=file)
    check_regression_output(config, graph, file=file)
    config = resolve_phases(config, data, file=file, overridden=overrides)
    per_projection = {proj.name: projection_rule(proj.plasticity, file=file, path=f"projections[{i}].plasticity")
                      for i, proj in enumerate(config.projections) if proj.plasticity is not None}
    per_projection.update(default_rules(config, rule, per_projection, file=file))
    notes = [*notes, *unused_dynamics(config, scheme)]
    experiment = Experiment(config=config, task=task, rule=rule, file=file, notes=tuple(notes),
                            projection_rules=per_projection, simulated=scheme.simulates_compartments)
    check_mix(experiment)
    for options in {id(o): o for o in [rule, *per_projection.values()]}.values():
        check_rule(experiment, graph, options)
    return experiment


def unused_dynamics(config: ModelConfig, scheme_cls: type[SettlingScheme]) -> list[str]:
    """Notes for the simulated compartments' keys of the ``dynamics:`` block that a scheme which
    simulates none (steady) does not use, where they differ from their defaults: not refused
    (``--set dynamics.mode=steady`` on an euler model file is how one compares the two), not
    dropped without a word."""
    from .config.schema import DynamicsConfig

    if scheme_cls.simulates_compartments:
        return []
    default = DynamicsConfig()
    keys = [f.name for f in dataclasses.fields(DynamicsConfig)
            if f.name not in ("mode", "options") and getattr(config.dynamics, f.name) != getattr(default, f.name)]
    if not keys:
        return []
    return [f"dynamics.{', dynamics.'.join(keys)} {'are' if len(keys) > 1 else 'is'} not used: mode "
            f"{config.dynamics.mode} simulates no compartments (they apply under mode euler)"]


def scheme_options(config: ModelConfig, scheme_cls: type[SettlingScheme], *, file: str):
    """The settling scheme's own options, from the keys of the ``dynamics:`` block that are not
    the shared ones; a key the scheme does not declare either is refused by name."""
    from .config.schema import DynamicsConfig

    shared = [yaml_key(f) for f in dataclasses.fields(DynamicsConfig) if not f.metadata.get("rest")]
    own = [f.name for f in dataclasses.fields(scheme_cls.Options)]
    unknown = [k for k in config.dynamics.options if k not in own]
    if unknown:
        raise ConfigError(f"unknown key {brief(unknown[0])}; allowed keys are {', '.join(sorted(shared + own))}",
                          file=file, path="dynamics")
    return parse(scheme_cls.Options, dict(config.dynamics.options), file=file, path="dynamics")


def _kind_of(proj, populations) -> str:
    """``proj`` as a phrase: 'a basal projection into a pyramidal population'."""
    article = "an" if proj.compartment == "apical" else "a"
    end = populations[proj.source if proj.compartment == "apical" else proj.target].type
    ends = f"{'from' if proj.compartment == 'apical' else 'into'} {'an' if end[:1] in 'aeiou' else 'a'} {end} population"
    return f"{article} {proj.compartment} projection {ends}"


def _serving(proj, populations) -> list[str]:
    return [n for n in RULES.names() if RULES.get(n).serves(proj, populations) is None]


def served_or_error(rule_name: str, proj, populations, *, file: str, path: str) -> None:
    """A ConfigError when the rule ``rule_name`` cannot govern ``proj`` (its ``serves``)."""
    reason = RULES.get(rule_name).serves(proj, populations)
    if reason is None:
        return
    serving = _serving(proj, populations)
    raise ConfigError(
        f"{rule_name} cannot govern {proj.name}: {reason}; {proj.name} is {_kind_of(proj, populations)}, which "
        + (f"{', '.join(serving)} serve" if serving else "no registered rule serves"), file=file, path=path)


def default_rules(config: ModelConfig, rule, explicit: dict, *, file: str) -> dict:
    """Projection name -> the options of the rule that governs it by default: for every weighted
    projection without a plasticity block that the top-level rule does not serve, the registered
    rule whose ``default_for`` claims it (the microcircuit's synapse models: apical and
    interneuron projections), with its default options. A ConfigError where none does, and
    where an explicit projection rule does not serve its projection."""
    pops, chosen, options = config.populations, {}, {}
    for i, proj in enumerate(config.projections):
        if proj.compartment == "soma":
            continue  # weightless, like pools: no rule
        if proj.name in explicit:
            served_or_error(explicit[proj.name].rule, proj, pops, file=file, path=f"projections[{i}].plasticity.rule")
            continue
        if RULES.get(rule.rule).serves(proj, pops) is None:
            continue
        defaults = [n for n in RULES.names() if RULES.get(n).default_for(proj, pops)]
        if not defaults:
            served_or_error(rule.rule, proj, pops, file=file, path="plasticity.rule")
        name = defaults[0]
        if name not in options:
            options[name] = parse(RULES.get(name).Options, {"rule": name}, file=file, path=f"projections[{i}].plasticity")
        chosen[proj.name] = options[name]
    return chosen


def projection_rule(data, *, file: str, path: str):
    """A projection's own ``plasticity`` block: its rule's options, strictly (an option of
    another rule here is an error, not a note: nothing is swapped on a single projection)."""
    if not isinstance(data, dict) or "rule" not in data:
        raise ConfigError(f"{brief(data)} is not a plasticity block; write e.g. {{rule: bp}} (a rule name and its options)",
                          file=file, path=path)
    rule_cls = RULES.get(data["rule"], file=file, path=f"{path}.rule")
    own, owners = _option_keys(rule_cls), _option_owners()
    for key in data:
        if key not in own:
            others = owners.get(key, [])
            whose = f"an option of {', '.join(others)}, not of {data['rule']}" if others else "not an option of any rule"
            raise ConfigError(f"{brief(key)} is {whose}; {data['rule']} takes {', '.join(sorted(own))}",
                              file=file, path=f"{path}.{key}")
    return parse(rule_cls.Options, data, file=file, path=path)


def _option_keys(rule_cls) -> set[str]:
    return {yaml_key(f) for f in dataclasses.fields(rule_cls.Options)}


def _option_owners() -> dict[str, list[str]]:
    """Option key -> the registered rules that take it."""
    owners: dict[str, list[str]] = {}
    for name in RULES.names():
        for key in _option_keys(RULES.get(name)):
            owners.setdefault(key, []).append(name)
    return owners


def check_mix(experiment: Experiment) -> None:
    """Refuse mixes that a network-wide rule (dfa's direct pathway, pc's relaxation) cannot
    serve, naming the projections, before any tensor exists."""
    if not experiment.mixed:
        return
    file, cfg = experiment.file, experiment.config
    index = {p.name: i for i, p in enumerate(cfg.projections)}
    own = {name: o for name, o in experiment.projection_rules.items() if o != experiment.rule}
    for name, options in own.items():
        if not RULES.get(options.rule).per_projection:
            raise ConfigError(f"{options.rule} is a network-wide rule: it cannot govern {name} alone while other "
                              f"projections learn otherwise; set it as the top-level plasticity.rule, or give {name} "
                              "a per-projection rule (" + ", ".join(n for n in RULES.names() if RULES.get(n).per_projection)
                              + ")", file=file, path=f"projections[{index[name]}].plasticity.rule")
    for rule_name in dict.fromkeys([experiment.rule.rule, *(o.rule for o in own.values())]):
        cls = RULES.get(rule_name)
        # a mix carries each projection's feedback through its own rule's feedback_weight: a rule's own
        # apical_input (a target or a direct pathway instead of the errors above) would be skipped
        if cls.per_projection and getattr(cls.apical_input, "__wrapped__", cls.apical_input) is not \
                PlasticityRule.apical_input:
            where = next((f"projections[{index[n]}].plasticity.rule" for n, o in own.items() if o.rule == rule_name),
                         "plasticity.rule")
            raise ConfigError(f"rule {rule_name} defines its own apical_input, which a network whose projections learn "
                              "by different rules never calls (each projection's feedback goes through its own rule's "
                              f"feedback_weight), so it would be skipped here: use {rule_name} for the whole network, "
                              "or declare per_projection = False in its class", file=file, path=where)
    if not RULES.get(experiment.rule.rule).per_projection:
        asked = {n: o for n, o in own.items() if cfg.projections[index[n]].plasticity is not None}
        implied = {n: o for n, o in own.items() if n not in asked}  # rules the top-level one does not serve
        parts = []
        if asked:
            parts.append(", ".join(f"projections[{index[n]}] ({n}: {o.rule})" for n, o in asked.items())
                         + " ask for their own rules")
        if implied:
            parts.append(", ".join(f"projections[{index[n]}] ({n}: {o.rule})" for n, o in implied.items())
                         + f" learn by the synapse models made for them, which {experiment.rule.rule} does not serve")
        fix = ", or drop those projections' plasticity blocks" if asked else ""
        raise ConfigError(f"{experiment.rule.rule} is a network-wide rule and cannot share the network: "
                          + "; ".join(parts) + ". Make the top-level rule a per-projection one ("
                          + ", ".join(n for n in RULES.names() if RULES.get(n).per_projection) + ")" + fix,
                          file=file, path="plasticity.rule")


def _task_options(config: ModelConfig, file: str):
    task_data = config.task
    if not isinstance(task_data, dict) or "type" not in task_data:
        raise ConfigError("needs a 'type' key naming the task", file=file, path="task")
    task_cls = TASKS.get(task_data["type"], file=file, path="task.type")
    task = parse(task_cls.Options, task_data, file=file, path="task")
    task_cls.check_options(task, file=file)
    stop = config.training.early_stopping
    if stop is not None and stop.metric not in task_cls.metrics:
        raise ConfigError(f"{brief(stop.metric)} is not a metric of this task; choose one of {', '.join(task_cls.metrics)}",
                          file=file, path="training.early_stopping.metric")
    return task


def check_time_steps(config: ModelConfig, task, *, file: str) -> None:
    """A sequence task needs a network that steps through time (a recurrent projection): one
    without is refused here, before any tensor (it used to end in a matmul shape error once
    training began). Recurrent networks on static samples stay allowed: the Python API feeds
    them sequences of its own (``Trainer(experiment, data=...)``)."""
    task_type = config.task["type"]
    steps = TASKS.get(task_type).sequence_spec(task)
    recurrent = [i for i, p in enumerate(config.projections) if p.kind == "recurrent"]
    if steps is not None and not recurrent:
        hidden = next((n for n, p in config.populations.items() if model_of(p).offers_apical), "h")
        raise ConfigError(f"task {task_type} presents sequences of {steps} time steps, which a network steps "
                          "through only with a recurrent projection, and this network has none: its feedforward "
                          "projections cannot read a sequence. Add one, e.g. {from: " + hidden + ", to: " + hidden
                          + ", kind: recurrent} (as the shipped dll_rnn_* models do)", file=file, path="projections")


#: what an output activation's cross-entropy loss assumes of the targets
_CROSS_ENTROPY = {"cross_entropy": "its rates are a distribution (they sum to 1) taught by cross-entropy",
                  "binary_cross_entropy": "its rates lie in (0, 1), taught by binary cross-entropy"}


def check_regression_output(config: ModelConfig, graph, *, file: str) -> None:
    """A regression task (real targets of any sign, squared error) on an output whose loss is
    a cross-entropy is refused: softmax over the one unit of a sequence regression is always 1
    and learns nothing, sigmoid's binary cross-entropy takes z-scored targets as probabilities."""
    from .activations import ACTIVATIONS
    from .config.graph import feedforward_graph

    task_type = config.task["type"]
    if not TASKS.get(task_type).regression:
        return
    ff = feedforward_graph(graph)
    for name in ff:
        pop = config.populations[name]
        if ff.out_degree(name) or not model_of(pop).offers_output:
            continue
        why = _CROSS_ENTROPY.get(ACTIVATIONS.get(pop.activation).canonical_loss)
        if why is not None:
            raise ConfigError(f"{pop.activation} is a classifier's output: {why}, while task {task_type} teaches "
                              "real values of any sign by squared error; use activation: linear (or tanh for "
                              "targets within ±1)", file=file, path=f"populations.{name}.activation")


def check_static_task(experiment: Experiment) -> None:
    """A recurrent projection on a task of static samples (classification, sentences) is
    refused before a run or ``dendrisim check``: training it ended in a division by zero or
    an index error. Not in :func:`load_experiment`: tests and the Python API build recurrent
    networks from such files on shapes of their own (``build_model``) and step them by hand."""
    task_type = experiment.config.task["type"]
    recurrent = [i for i, p in enumerate(experiment.config.projections) if p.kind == "recurrent"]
    if recurrent and TASKS.get(task_type).sequence_spec(experiment.task) is None:
        sequences = [n for n in TASKS.names() if TASKS.get(n).sequence_spec.__func__ is not Task.sequence_spec.__func__]
        raise ConfigError(f"a recurrent projection steps a network through time, and task {task_type} presents "
                          "static samples, not sequences: nothing to step through. Drop the recurrent projection, "
                          f"or use a sequence task ({', '.join(sequences)})", file=experiment.file,
                          path=f"projections[{recurrent[0]}].kind")


def rule_options(data: dict, *, file: str, path: str):
    """The options of the rule a ``plasticity`` block names, and notes on the keys of other
    rules it ignores (so that swapping ``rule`` needs no other edit)."""
    if not isinstance(data, dict) or "rule" not in data:
        raise ConfigError("needs a 'rule' key naming the plasticity rule", file=file, path=path)
    rule_cls = RULES.get(data["rule"], file=file, path=f"{path}.rule")
    own, owners = _option_keys(rule_cls), _option_owners()
    kept, notes = {}, []
    for key, value in data.items():
        if key not in own and key in owners:
            notes.append(f"{path}.{key} is an option of {', '.join(owners[key])}, ignored by {data['rule']}")
        else:
            kept[key] = value
    return parse(rule_cls.Options, kept, file=file, path=path), notes


def check_scheme(config: ModelConfig, *, file: str) -> type[SettlingScheme]:
    """The registered settling scheme ``dynamics.mode`` names (an unknown name lists them)."""
    return SCHEMES.get(config.dynamics.mode, file=file, path="dynamics.mode")


def scheme_refusal(rule: str, mode: str) -> str | None:
    """Why rule ``rule`` cannot run under scheme ``mode`` (the rule's ``settling_note``), or None."""
    rule_cls = RULES.get(rule)
    if runs_under(rule_cls, SCHEMES.get(mode)):
        return None
    return (f"rule {rule} cannot run under mode {mode} (it runs under {', '.join(schemes_of(rule_cls))}): "
            f"{rule_cls.settling_note}")


def check_rule(experiment: Experiment, graph, options) -> None:
    """What a rule says about this network and settling scheme, before any tensor."""
    refusal = scheme_refusal(options.rule, experiment.config.dynamics.mode)
    if refusal is not None:
        raise ConfigError(refusal, file=experiment.file, path="dynamics.mode")
    RULES.get(options.rule).check(experiment, graph)


def build_scheme(experiment: Experiment) -> SettlingScheme:
    """The settling scheme that presents batches to the network (``dynamics.mode``)."""
    dynamics = experiment.config.dynamics
    cls = check_scheme(experiment.config, file=experiment.file)
    if not cls.__module__.startswith("dendrisim."):  # registered by the user's code: its errors in one paragraph
        from .plugins import SCHEME_HOOKS, SCHEME_ORIGIN, SCHEME_RETURN_CHECKS, guard_hooks

        origin = SCHEME_ORIGIN.get(dynamics.mode, cls.__module__)  # the plugin file, not its module's name
        guard_hooks(cls, SCHEME_HOOKS, f"settling scheme {dynamics.mode!r} (in {origin})", SCHEME_RETURN_CHECKS)
    options = scheme_options(experiment.config, cls, file=experiment.file)
    scheme = cls(dynamics)  # the constructor's signature of schemes written before they had options
    scheme.options = options
    return scheme


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What a network takes from its task's data."""

    #: shape of one sample, which the input population takes
    input_shape: tuple[int, ...]
    #: number of outputs the task needs (the output population's size)
    outputs: int
    #: ``(words, dim)`` of the task's word vectors, for embedding projections (None: no vocabulary)
    vocabulary: Optional[tuple[int, int]] = None
    #: length of the training sequences (sequence tasks), None for static samples
    time_steps: Optional[int] = None
    #: time steps whose output is taught and scored
    readout: slice = dataclasses.field(default_factory=lambda: slice(None))
    #: size of the training split (None where unknown)
    train_samples: Optional[int] = None

    @classmethod
    def of(cls, task) -> "DataSpec":
        """The spec of a loaded task."""
        return cls(tuple(task.input_shape), task.output_size, task.vocabulary, task.sequence_length, task.readout,
                   None if task.train is None else len(task.train))

    @classmethod
    def declared(cls, task_cls, options, data_root: Optional[str] = None) -> "DataSpec":
        """The spec a task's options declare, without loading the data (NotImplementedError
        for a task that cannot say its shapes without loading it)."""
        shape, outputs, n_train = task_cls.data_spec(options, data_root)
        return cls(tuple(shape), outputs, task_cls.vocabulary_spec(options, data_root), task_cls.sequence_spec(options),
                   task_cls.readout, n_train)


class _ShapesOnly(torch.overrides.TorchFunctionMode):
    """Skip in-place operations (initialisers: ``normal_``, ``uniform_``, ``copy_``, ...) on
    meta tensors: they change no shape, and their meta kernels would import torch._dynamo."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        target = args[0] if args else kwargs.get("tensor")  # torch.nn.init passes it by keyword
        if (name.endswith("_") and not name.startswith("_") and isinstance(target, torch.Tensor) and target.is_meta
                and name != "requires_grad_"):
            return target
        return func(*args, **kwargs)


def build_network(experiment: Experiment, spec: DataSpec) -> Network:
    """The network of an experiment for data of ``spec``: every population's shape inferred
    (ConfigErrors naming the file), then the populations and projections built from them."""
    check_token_inputs(experiment, spec)
    shapes = population_shapes(experiment, input_shape=spec.input_shape, output_size=spec.outputs,
                               vocabulary=spec.vocabulary)
    network = Network(experiment.config, shapes, vocabulary=spec.vocabulary, readout=spec.readout,
                      time_steps=spec.time_steps, simulated=experiment.simulated)
    check_loops(experiment, network)
    return network


def check_token_inputs(experiment: Experiment, spec: DataSpec) -> None:
    """A task with a vocabulary (sentences; charlm with ``input: ids``) feeds its input
    population integer token ids, which only an embedding projection reads (a dense product
    of ids ends in a dtype error at the first step): refuse any other projection from it,
    naming the projection and what works instead."""
    if spec.vocabulary is None:
        return
    cfg = experiment.config
    inputs = {n for n, p in cfg.populations.items() if model_of(p).clamped}
    ids = getattr(experiment.task, "input", None) == "ids"  # charlm's choice between ids and one-hot vectors
    for i, proj in enumerate(cfg.projections):
        if proj.source in inputs and proj.connectivity != "embedding":
            fed = "task.input: ids feeds it one character id per step" if ids else \
                f"task.type {experiment.task.type} feeds it token ids"
            instead = (" (a table of task.embedding_dim numbers per character, frozen unless learnable: true), "
                       "or set task.input: onehot for one-hot vectors, which a dense projection reads") if ids else ""
            raise ConfigError(f"{proj.name} is {proj.connectivity}, but {proj.source!r} holds integer ids "
                              f"({fed}) and only an embedding projection reads ids; write connectivity: "
                              f"embedding{instead}", file=experiment.file, path=f"projections[{i}].connectivity")


def check_loops(experiment: Experiment, network: Network) -> None:
    """A recurrent loop steps through time one dense product at a time: refuse other
    connectivities inside one, naming the projection."""
    cfg = experiment.config
    index = {proj.name: i for i, proj in enumerate(cfg.projections)}
    for members, looped in network.plan:
        for proj in (p for n in members for p in cfg.projections if p.target == n) if looped else ():
            if proj.source in members and proj.connectivity != "dense":
                raise ConfigError(f"{proj.connectivity} inside a recurrent loop ({', '.join(members)}) is not "
                                  "supported; projections within a loop are dense", file=experiment.file,
                                  path=f"projections[{index[proj.name]}].connectivity")


def build_model(experiment: Experiment, spec: DataSpec, *, device="cpu",
                embedding: Optional[Callable[[Projection], torch.Tensor]] = None) -> tuple[Network, PlasticityRule]:
    """The network (:func:`build_network`) and its rule, built on ``device``; ``embedding``
    gives an embedding projection's initial table (the task's word vectors), copied in before
    the rule is set up. On ``meta`` tensors have shapes but no storage and initialisers are
    skipped: nothing is allocated, whatever the model's size."""
    meta = torch.device(device).type == "meta"
    with torch.device(device), (_ShapesOnly() if meta else contextlib.nullcontext()):
        network = build_network(experiment, spec)
        if embedding is not None:
            with torch.no_grad():
                for proj in network.projections.values():
                    if proj.connectivity == "embedding":
                        proj.weight.copy_(embedding(proj))
        return network, build_rule(network, experiment)


def memory_estimate(experiment: Experiment, task_cls, *, data_root: Optional[str] = None) -> dict[str, int]:
    """Bytes each part of a run holds (:func:`dendrisim.memory.estimate`), from the model file
    and the task's declared spec, with the network and rule built on the ``meta`` device."""
    spec = DataSpec.declared(task_cls, experiment.task, data_root)
    try:
        model = assemble(experiment, spec, meta=True)
    except RuntimeError as err:  # a rule (a plugin's, say) that needs values, not shapes, to be built
        raise NotImplementedError(f"cannot be built on the meta device: {err}") from None
    return memory.estimate(experiment, model.network, model.rule, train_samples=spec.train_samples,
                           trace_steps=model.scheme.trace_steps)


def check_memory(experiment: Experiment, task_cls, *, device, data_root: Optional[str] = None) -> Optional[dict[str, int]]:
    """Refuse a run that cannot fit (:func:`dendrisim.memory.check`), before anything is
    allocated; return the estimate (None for a task that cannot say its data's shape without
    loading it: one without ``data_spec``)."""
    try:
        parts = memory_estimate(experiment, task_cls, data_root=data_root)
    except NotImplementedError:
        return None
    memory.check(experiment, parts, device=device)
    return parts


@dataclasses.dataclass
class Model:
    """Everything a run trains with, built from one experiment: the task (None where only the
    model is built: ``--check``, the memory estimate, ``bench``), the network, the rule, the
    settling scheme that presents batches, and the optimizer (None on the ``meta`` device)."""

    task: Optional[Task]
    network: Network
    rule: PlasticityRule
    scheme: SettlingScheme
    optimizer: Optional[torch.optim.Optimizer]


def assemble(experiment: Experiment, spec: DataSpec, *, device="cpu", meta: bool = False,
             embedding: Optional[Callable[[Projection], torch.Tensor]] = None) -> Model:
    """The model of an experiment for data of ``spec``, without a task: the network and rule
    (:func:`build_model`; the weights drawn on the CPU, the same numbers whatever the device,
    then moved to ``device``), the settling scheme and the optimizer over every learnable
    tensor (with the run's phases). ``meta``: shapes only, nothing allocated, no optimizer."""
    from .optim import build_optimizer

    network, rule = build_model(experiment, spec, device="meta" if meta else "cpu", embedding=embedding)
    optimizer = None
    if not meta:
        network.to(device)
        rule.to(device)
        cfg = experiment.config
        optimizer = build_optimizer(network, rule, cfg.optimizer, cfg.training.phases)
    return Model(None, network, rule, build_scheme(experiment), optimizer)


def build(experiment: Experiment, *, device, data_root: str | None = None) -> Model:
    """The whole model of an experiment (:class:`Model`): the task loads its data onto
    ``device``; the network takes its shapes (and word vectors) from the task, and it and the
    rule move to ``device``; the scheme and the optimizer are built for them. Before anything
    is allocated, :func:`check_memory` refuses a run that cannot fit."""
    task_cls = TASKS.get(experiment.task.type)
    check_static_task(experiment)
    check_memory(experiment, task_cls, device=device, data_root=data_root)
    task = task_cls(experiment.task, device=device, data_root=data_root)
    model = assemble(experiment, DataSpec.of(task), device=device, embedding=task.embedding_for)
    model.task = task
    return model
