"""The model as a networkx graph, and every check that can run before a tensor exists."""
from __future__ import annotations

import dataclasses
import math

import networkx as nx

from ..errors import ConfigError, brief
from .limits import check_name
from .parse import key_text
from .schema import MAX_NEURONS, CompartmentConfig, ModelConfig


def build_graph(config: ModelConfig) -> nx.MultiDiGraph:
    """Nodes are populations (with their config), edges are projections (a multigraph: two
    apical projections that read different variables of one source may join the same pair,
    BurstCCN's Y and Q)."""
    graph = nx.MultiDiGraph()
    for name, pop in config.populations.items():
        graph.add_node(name, config=pop)
    for proj in config.projections:
        graph.add_edge(proj.source, proj.target, config=proj)
    return graph


def feedforward_graph(graph: nx.DiGraph) -> nx.DiGraph:
    """The feedforward graph: the basal projections that are not recurrent (delayed); it must
    be acyclic. Apical and somatic projections (a microcircuit's top-down, lateral and
    nudging input) are not in it: they may close loops."""
    ff = nx.DiGraph()
    ff.add_nodes_from(graph.nodes(data=True))
    ff.add_edges_from((u, v, d) for u, v, d in graph.edges(data=True)
                      if d["config"].kind == "feedforward" and d["config"].compartment == "basal")
    return ff


def model_of(pop):
    """The neuron model (class) a population config names (``type``, checked by :func:`check_models`):
    what it offers is asked of it, never of its name."""
    from ..neurons import NEURONS

    return NEURONS.get(pop.type)


def _plural(model: str) -> str:
    return {"pyramidal": "pyramidal populations", "interneuron": "interneurons"}.get(model, f"{model} populations")


def _an(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def check_models(cfg: ModelConfig, *, file: str) -> None:
    """Every population's ``type`` names a registered neuron model, and the other keys of its
    block are that model's options (unknown keys refused by name, with the keys it takes)."""
    from ..neurons import NEURONS
    from .parse import parse, yaml_key

    generic = ("type", "size", "shape", "channels", "activation")
    for name, pop in cfg.populations.items():
        where = f"populations.{key_text(name)}"
        if isinstance(pop.type, str) and pop.type not in NEURONS:
            raise ConfigError(f"{brief(pop.type)} is not a known neuron model; choose one of "
                              f"{', '.join(NEURONS.names())}, or load the plugin file that registers it with "
                              "--plugin FILE.py", file=file, path=f"{where}.type")
        model = NEURONS.get(pop.type, file=file, path=f"{where}.type")
        own = [yaml_key(f) for f in dataclasses.fields(model.Options)]  # what a file writes (the parser's keys)
        unknown = [k for k in pop.options if k not in own]
        if unknown:
            raise ConfigError(
                f"unknown key {brief(unknown[0])}; allowed keys are {', '.join(generic)}"
                + (f" and the {pop.type} model's {', '.join(own)}" if own else f" (the {pop.type} model has no options "
                                                                                 "of its own)"),
                file=file, path=where)
        model.check(name, cfg, parse(model.Options, dict(pop.options), file=file, path=where), file=file)
    _check_loops(cfg, file=file)


def _check_loops(cfg: ModelConfig, *, file: str) -> None:
    """A recurrent network steps the populations of a loop through time itself, as pyramidal
    neurons at steady state (``rate = f(basal)``, errors through ``f'``), never calling their
    model's ``integrate`` or ``derivative``: a model with either of its own is refused there
    instead of being silently replaced."""
    from ..neurons import PyramidalPopulation

    if not any(p.kind == "recurrent" for p in cfg.projections):
        return
    basal = nx.DiGraph()
    basal.add_edges_from((p.source, p.target) for p in cfg.projections if p.compartment == "basal")
    for members in nx.strongly_connected_components(basal):
        if len(members) == 1 and not basal.has_edge(*(2 * tuple(members))):
            continue
        for name in sorted(members):
            model = model_of(cfg.populations[name])
            own = [hook for hook in ("integrate", "derivative")
                   if getattr(model, hook, None) is not getattr(PyramidalPopulation, hook)]
            if not model.clamped and own:
                raise ConfigError(
                    f"{cfg.populations[name].type!r} has {' and '.join(own)} of its own, and {name!r} is in the "
                    f"recurrent loop {', '.join(sorted(members))}, whose populations the network steps through time "
                    "as pyramidal neurons (rate = f(basal), errors through f') without calling them; use type "
                    "pyramidal in the loop, or a model that keeps the pyramidal integrate and derivative",
                    file=file, path=f"populations.{key_text(name)}.type")


def validate(cfg: ModelConfig, *, file: str) -> nx.DiGraph:
    """Check names, endpoints, acyclicity, sizes, activations and the dynamics block against
    the graph (everything that needs no registry but the model's own: neuron models,
    activations and initialisers); return the graph. What the settling scheme needs of the
    network is the scheme's own check (the builder asks it)."""
    from ..activations import ACTIVATIONS

    check_names(cfg, file=file)
    pops = cfg.populations
    if not pops:
        raise ConfigError("at least an input and an output population are needed", file=file, path="populations")
    check_models(cfg, file=file)
    inputs = [n for n, p in pops.items() if model_of(p).clamped]
    if len(inputs) != 1:
        raise ConfigError(
            f"exactly one population must have type input, found {len(inputs)} ({', '.join(inputs) or 'none'})",
            file=file, path="populations",
        )
    _check_populations(cfg, file=file)
    _check_projections(cfg, file=file)
    graph = build_graph(cfg)
    ff = feedforward_graph(graph)
    if not nx.is_directed_acyclic_graph(ff):
        edges = nx.find_cycle(ff)
        cycle = " -> ".join(u for u, _ in edges) + f" -> {edges[0][0]}"
        raise ConfigError(f"the feedforward projections form a cycle ({cycle}); a loop needs at least one "
                          "projection with kind: recurrent (a one-step delay)", file=file, path="projections")
    (source,) = inputs
    sinks = [n for n in graph if ff.out_degree(n) == 0 and model_of(pops[n]).offers_output]
    if len(sinks) != 1:
        raise ConfigError(
            f"exactly one pyramidal population must have no outgoing basal projection (the output), found "
            f"{len(sinks)} ({', '.join(sinks) or 'none'})", file=file, path="projections",
        )
    (output,) = sinks
    check_circuit(cfg, output, file=file)
    for name, pop in pops.items():
        if name != source and not nx.has_path(graph, source, name):
            raise ConfigError(f"{name!r} is not reached from the input {source!r}", file=file, path=f"populations.{name}")
        if name != output and not nx.has_path(graph, name, output):
            raise ConfigError(f"{name!r} does not lead to the output {output!r}", file=file, path=f"populations.{name}")
        if pop.activation != "auto" and not ACTIVATIONS.get(pop.activation).elementwise and name != output:
            raise ConfigError(
                f"{pop.activation!r} couples neurons and is only allowed on the output population {output!r}",
                file=file, path=f"populations.{name}.activation",
            )
        if pop.size == "auto" and name not in (source, output) and not model_of(pop).takes_nudging:
            raise ConfigError("size auto is only allowed on the input and output populations, and on interneurons",
                              file=file, path=f"populations.{name}.size")
    check_dynamics(cfg, file=file)
    return graph


def _check_populations(cfg: ModelConfig, *, file: str) -> None:
    """Each population on its own: its activation, its size, shape or channels against its model."""
    from ..activations import ACTIVATIONS

    pops = cfg.populations
    for name, pop in pops.items():
        where = f"populations.{name}"
        if pop.activation == "auto":
            if not model_of(pop).takes_nudging:
                raise ConfigError(
                    f"activation auto takes the activation of the population that nudges an interneuron; {name!r} is "
                    f"{_an(pop.type)} population: name its activation ("
                    f"{', '.join(ACTIVATIONS.names())})", file=file, path=f"{where}.activation")
        else:
            ACTIVATIONS.get(pop.activation, file=file, path=f"{where}.activation")
        if model_of(pop).takes_nudging and pop.size is None and pop.shape is None:
            raise ConfigError("an interneuron population needs size: auto (the size of the population that nudges it, "
                              "which it must equal) or that size as an integer", file=file, path=where)
        if pop.size is not None and pop.shape is not None:
            raise ConfigError("give either size or shape, not both", file=file, path=where)
        shaped_by_input = pop.channels is not None or any(
            p.target == name and (p.is_pool or p.connectivity == "embedding") for p in cfg.projections)
        model = model_of(pop)
        if (not model.clamped and not model.takes_nudging and pop.size is None and pop.shape is None
                and not shaped_by_input):
            raise ConfigError(f"{_an(pop.type)} population needs a size (an integer, or auto for the output), or "
                              "channels when conv2d projections feed it", file=file, path=where)
        if pop.channels is not None and (pop.size is not None or not model.spatial):
            spatial = " or ".join(n for n, cls in _models().items() if cls.spatial)
            raise ConfigError(f"channels is for {spatial} populations fed by conv2d projections, without size "
                              "(height and width follow from the input)", file=file, path=f"{where}.channels")
        if isinstance(pop.size, int) and pop.size <= 0:
            raise ConfigError(f"{pop.size} must be > 0", file=file, path=f"{where}.size")
        if pop.shape is not None and (not pop.shape or any(s <= 0 for s in pop.shape)):
            raise ConfigError(f"{brief(list(pop.shape))} must be a non-empty list of positive integers", file=file,
                              path=f"{where}.shape")
        if pop.shape is not None and math.prod(pop.shape) > MAX_NEURONS:
            raise ConfigError(f"{brief(list(pop.shape))} holds more than {MAX_NEURONS:,} neurons, the most a population "
                              "may have", file=file, path=f"{where}.shape")



def _check_projections(cfg: ModelConfig, *, file: str) -> None:
    """Each projection: its ends exist and can take it, no same-step self-loop, no duplicate, its init."""
    from ..init import resolve_init

    pops = cfg.populations
    seen = set()
    for i, proj in enumerate(cfg.projections):
        where = f"projections[{i}]"
        for key, end in (("from", proj.source), ("to", proj.target)):
            if end not in pops:
                raise ConfigError(
                    f"{end!r} is not a population; populations are {', '.join(pops)}", file=file, path=f"{where}.{key}"
                )
        if model_of(pops[proj.target]).clamped:
            takers = ("; apical projections end on hidden pyramidal populations: "
                      + (", ".join(apical_takers(cfg)) or "this model has none")) if proj.compartment == "apical" else ""
            raise ConfigError(f"{proj.target!r} is an input population and cannot receive projections{takers}",
                              file=file, path=f"{where}.to")
        if proj.source == proj.target and proj.kind != "recurrent":
            raise ConfigError(f"{proj.source!r} projects onto itself in the same time step; a self-projection needs "
                              "kind: recurrent (a one-step delay)", file=file, path=f"{where}.kind")
        if proj.kind == "recurrent" and model_of(pops[proj.source]).clamped:
            raise ConfigError("a recurrent projection joins pyramidal populations; the input is clamped at every "
                              "time step", file=file, path=f"{where}.kind")
        check_circuit_projection(cfg, i, file=file)
        _check_reads(cfg, i, file=file)
        if proj.name in seen:
            raise ConfigError(f"a second projection {proj.name}; merge them into one", file=file, path=where)
        seen.add(proj.name)
        resolve_init(proj.init, file=file, path=f"{where}.init")



def _check_reads(cfg: ModelConfig, i: int, *, file: str) -> None:
    """``reads`` of projection ``i`` names a variable its source's neuron model declares,
    and one that model settles before the target's apical input is summed (not ``apical``
    nor ``error``, which come after)."""
    proj = cfg.projections[i]
    if proj.reads is None:
        return
    model = model_of(cfg.populations[proj.source])
    offered = [v for v in model.variables if v not in ("apical", "error")]
    if proj.reads not in offered:
        raise ConfigError(
            f"{brief(proj.reads)} is not a variable that {proj.source!r} ({cfg.populations[proj.source].type}) "
            f"offers to an apical projection; it offers {', '.join(offered) or 'none'} (leave reads out for its rate)",
            file=file, path=f"projections[{i}].reads")


def _models() -> dict:
    from ..neurons import NEURONS

    return {n: NEURONS.get(n) for n in NEURONS.names()}


def is_circuit(cfg: ModelConfig) -> bool:
    """Whether the model has apical or somatic projections (a cortical microcircuit)."""
    return any(p.compartment != "basal" for p in cfg.projections)


def settled_in_sweep(cfg: ModelConfig) -> bool:
    """Whether every apical or somatic projection of the model ends on a population whose
    neuron model a top-down sweep settles (``settles_in_sweep``: burst neurons), so that the
    steady scheme can present it."""
    return all(model_of(cfg.populations[p.target]).settles_in_sweep for p in cfg.projections
               if p.compartment != "basal")


def apical_takers(cfg: ModelConfig) -> list[str]:
    """The populations apical projections may end on: the hidden pyramidal ones (pyramidal with
    an outgoing basal projection)."""
    return [n for n, p in cfg.populations.items() if model_of(p).offers_apical and any(
        q.source == n and q.compartment == "basal" and q.kind == "feedforward" for q in cfg.projections)]


def check_circuit_projection(cfg: ModelConfig, i: int, *, file: str) -> None:
    """Projection ``i``'s ends against its compartment (what needs no output yet): a soma
    projection joins a pyramidal source to an interneuron; interneurons send apical (lateral)
    projections only."""
    proj, pops = cfg.projections[i], cfg.populations
    where = f"projections[{i}]"
    source, target = pops[proj.source].type, pops[proj.target].type
    nudged = model_of(pops[proj.target]).takes_nudging
    if proj.compartment == "soma":
        if not nudged:
            interneurons = [n for n, p in pops.items() if model_of(p).takes_nudging]
            raise ConfigError(
                f"{proj.target!r} is {_an(target)} population; compartment: soma projections nudge interneurons (one to "
                f"one, toward the population they predict): {', '.join(interneurons) or 'this model has none'}",
                file=file, path=f"{where}.to")
        if not model_of(pops[proj.source]).offers_nudging:
            raise ConfigError(
                f"{proj.source!r} is {_an(source)} population; an interneuron is nudged by the pyramidal population it "
                "predicts (the layer above), so the source of a compartment: soma projection is a pyramidal "
                "population", file=file, path=f"{where}.from")
    elif nudged and proj.connectivity != "dense":
        raise ConfigError(
            f"an interneuron's dendrite takes dense projections (its shape is that of the population that nudges "
            f"it); {proj.connectivity} is not allowed into {proj.target!r}", file=file, path=f"{where}.connectivity")
    elif model_of(pops[proj.source]).takes_nudging and proj.compartment == "basal":
        raise ConfigError(
            f"{proj.source!r} is an interneuron population; interneurons project onto the apical compartment of "
            "pyramidal populations (lateral input: write compartment: apical), not onto basal ones",
            file=file, path=f"{where}.compartment")


def check_circuit(cfg: ModelConfig, output: str, *, file: str) -> None:
    """The microcircuit's rules once the output is known: apical projections end on hidden
    pyramidal populations; every interneuron is nudged by exactly one soma projection; no
    circuit in a recurrent network."""
    pops = cfg.populations
    for i, proj in enumerate(cfg.projections):
        if proj.compartment != "apical":
            continue
        kind = pops[proj.target].type
        model = model_of(pops[proj.target])
        if proj.target == output or not model.offers_apical:
            what = ("the output (its apical compartment holds the teacher)" if proj.target == output else
                    f"{_an(kind)} population" + (" (interneurons have a soma and a dendrite only)"
                                                 if model.takes_nudging else ""))
            raise ConfigError(
                f"{proj.target!r} has no apical compartment that takes projections: it is {what}; apical projections "
                f"end on hidden pyramidal populations: {', '.join(apical_takers(cfg)) or 'this model has none'}",
                file=file, path=f"projections[{i}].to")
    for name, pop in pops.items():
        if not model_of(pop).takes_nudging:
            continue
        nudging = [i for i, p in enumerate(cfg.projections) if p.target == name and p.compartment == "soma"]
        if not nudging:
            sources = {p.source for p in cfg.projections if p.target == name and p.compartment == "basal"}
            predicted = sorted({p.target for p in cfg.projections if p.source in sources and p.compartment == "basal"
                                and model_of(pops[p.target]).offers_apical})
            above = predicted[0] if len(predicted) == 1 else "<the population it predicts>"
            raise ConfigError(
                f"interneuron {name!r} has no nudging projection: an interneuron learns to predict the population "
                f"above it, which nudges its soma one to one; add {{from: {above}, to: {name}, compartment: soma}} "
                "to projections", file=file, path=f"populations.{key_text(name)}")
        if not any(p.target == name and p.compartment == "basal" for p in cfg.projections):
            above = cfg.projections[nudging[0]].source
            below = sorted({p.source for p in cfg.projections if p.target == above and p.compartment == "basal"})
            source = below[0] if len(below) == 1 else "<the population below " + above + ">"
            raise ConfigError(
                f"interneuron {name!r} has no dendrite: no basal projection ends on it, so it has nothing to predict "
                f"{above} from; add {{from: {source}, to: {name}}} to projections (the rates that drive {above} drive "
                "its interneurons' dendrites)", file=file, path=f"populations.{key_text(name)}")
        if len(nudging) > 1:
            listed = ", ".join(f"projections[{i}] ({cfg.projections[i].name})" for i in nudging)
            raise ConfigError(
                f"interneuron {name!r} is nudged by {len(nudging)} soma projections ({listed}); an interneuron "
                "predicts one population, which nudges it one to one: keep one of them",
                file=file, path=f"populations.{key_text(name)}")
    if is_circuit(cfg):
        recurrent = [i for i, p in enumerate(cfg.projections) if p.kind == "recurrent"]
        if recurrent:
            circuit = next(i for i, p in enumerate(cfg.projections) if p.compartment != "basal")
            raise ConfigError(
                f"{cfg.projections[circuit].name} makes this a microcircuit, which runs on a feedforward network "
                f"(mode: euler simulates one static input); {cfg.projections[recurrent[0]].name} "
                f"(projections[{recurrent[0]}]) is recurrent. Circuits in recurrent networks are not supported: "
                "drop the recurrent projections or the apical and soma ones",
                file=file, path=f"projections[{circuit}].compartment")


def check_names(cfg: ModelConfig, *, file: str) -> None:
    """The model's, every population's and every projection end's name against
    :data:`.limits.NAME_PATTERN`, before any of them becomes a folder or an HDF5 group."""
    check_name(cfg.name, what="model", file=file, path="name")
    for name in cfg.populations:
        check_name(name, what="population", file=file, path=f"populations.{key_text(name)}")
    for i, proj in enumerate(cfg.projections):
        for key, end in (("from", proj.source), ("to", proj.target)):
            check_name(end, what="population", file=file, path=f"projections[{i}].{key}")


PYRAMIDAL_CONSTANTS = ("tau", "g_leak", "g_basal", "g_apical")
INTERNEURON_CONSTANTS = ("tau", "g_leak", "g_dendrite", "g_som")


def compartment_constants(dynamics, name: str, keys: tuple[str, ...] = PYRAMIDAL_CONSTANTS) -> dict[str, float]:
    """The constants ``keys`` of population ``name`` (by default a pyramidal one's ``tau``,
    ``g_leak``, ``g_basal``, ``g_apical``; an interneuron's are :data:`INTERNEURON_CONSTANTS`):
    its own override where it has one, the ``dynamics`` block's otherwise."""
    own = dynamics.populations.get(name)
    return {key: getattr(own, key) if own is not None and getattr(own, key) is not None else getattr(dynamics, key)
            for key in keys}


def check_dynamics(cfg: ModelConfig, *, file: str) -> None:
    """The ``dynamics`` block's per-population constants against the network: the populations
    they name and the constants each one's neuron model has. (What a settling scheme needs of
    the network, euler's stability of ``dt`` say, is the scheme's own ``check``.)"""
    dyn = cfg.dynamics
    pops = cfg.populations
    every = [f.name for f in dataclasses.fields(CompartmentConfig)]
    for name, own in dyn.populations.items():
        if name not in pops or not model_of(pops[name]).constants:
            simulated_pops = [n for n, p in pops.items() if model_of(p).constants]
            kinds = " or ".join(sorted({pops[n].type for n in simulated_pops})) or "simulated"
            raise ConfigError(f"{name!r} is not a {kinds} population; they are {', '.join(simulated_pops)}",
                              file=file, path=f"dynamics.populations.{name}")
        kind = pops[name].type
        allowed = model_of(pops[name]).constants
        for key in every:
            if getattr(own, key) is not None and key not in allowed:
                others = sorted({m for m, cls in _models().items() if key in cls.constants})
                raise ConfigError(
                    f"{key} is a constant of {' and '.join(_plural(m) for m in others)}; {name!r} is {_an(kind)} "
                    f"population, whose constants are {', '.join(allowed)}", file=file,
                    path=f"dynamics.populations.{name}.{key}")
