"""Check a model file without data or training, and describe what it builds."""
from __future__ import annotations

from itertools import islice
from typing import Optional

import networkx as nx

from .builder import DataSpec, assemble, check_static_task
from .config.graph import INTERNEURON_CONSTANTS, build_graph, compartment_constants, model_of
from .config.loader import Experiment
from .settling.steady import swept
from .tasks import TASKS

#: the most loops ``--check`` lists
MAX_LOOPS = 10


def describe(experiment: Experiment, *, data_root: Optional[str] = None) -> str:
    """Populations, projections, the rule's feedback pathway, parameter counts and the
    recording's size estimate, from the file alone: built on the meta device, it allocates nothing."""
    check_static_task(experiment)
    spec = DataSpec.declared(TASKS.get(experiment.task.type), experiment.task, data_root)
    model = assemble(experiment, spec, meta=True)
    net, rule, scheme = model.network, model.rule, model.scheme
    shape, outputs, n_train = spec.input_shape, spec.outputs, spec.train_samples
    cfg = experiment.config
    lines = [f"{experiment.file}: valid", net.summary(), "plasticity of each projection:"]
    lines += [f"  {line}" for line in rule.governance(net)]
    lines.append(f"rule {experiment.rule.rule}{' (default; mixed)' if experiment.mixed else ''}; feedback pathway:")
    routes = rule.feedback_pathway(net) + [  # a circuit's explicit apical input: rates, not errors
        f"{pop.name}.apical <- {proj.source}.{proj.reads} through W[{proj.name}] (explicit apical projection)"
        for pop in swept(net) for proj in net.apical_in[pop.name]]
    lines += [f"  {line}" for line in routes] or [
        "  (none: no hidden population, or none that a rule or an apical projection reaches)"]
    lines += scheme.describe(net)
    lines += circuit_lines(experiment) + phase_lines(experiment)
    learnable = sum(p.numel() for proj in net.learnable_projections() for p in proj.parameters_to_learn())
    frozen = sum(p.numel() for p in net.parameters()) - learnable
    rule_learn = sum(p.numel() for p in rule.parameters() if p.requires_grad)
    rule_fixed = sum(p.numel() for p in rule.parameters() if not p.requires_grad)
    lines.append(f"parameters: {learnable:,} learnable forward, {frozen:,} frozen forward, "
                 f"{rule_learn:,} learnable feedback, {rule_fixed:,} fixed feedback")
    dtype_bytes = next(iter(net.parameters())).element_size() if learnable else 4
    synced = learnable + rule_learn + 2  # + the sample count and the stop flag
    lines.append(f"torchrun: each step all-reduces {synced:,} values ({synced * dtype_bytes / 2**20:,.1f} MiB) "
                 f"per process, in one collective")
    steps = -(-n_train // experiment.task.batch_size)
    if cfg.training.max_steps_per_epoch:
        steps = min(steps, cfg.training.max_steps_per_epoch)
    lines.append(f"data: samples {list(shape)}, {outputs} outputs, {n_train:,} training samples, "
                 f"{steps} steps/epoch x {cfg.training.epochs} epochs")
    if cfg.recording.enabled:
        from .observers.recording import check_recording

        notes: list[str] = []
        est = check_recording(experiment, net, rule, steps_per_epoch=steps, epochs=cfg.training.epochs,
                              trace_steps=scheme.trace_steps, notes=notes)
        lines += [f"note: {note}" for note in notes]
        lines.append(f"recording: about {est['bytes'] / 2**20:,.1f} MiB at most ({est['records']} records, "
                     f"{est['weight_records']} projection records), budget {cfg.recording.max_gib} GiB")
    return "\n".join(lines)


def circuit_lines(experiment: Experiment) -> list[str]:
    """The apical and somatic projections, one line each with their role and synapse model,
    and the loops they close in the full graph (at most :data:`MAX_LOOPS`); none without them."""
    cfg = experiment.config
    pops = cfg.populations
    explicit = [p for p in cfg.projections if p.compartment != "basal"]
    if not explicit:
        return []
    lines = ["apical and somatic projections (may close loops):"]
    for proj in explicit:
        if proj.compartment == "soma":
            g_som = compartment_constants(cfg.dynamics, proj.target, INTERNEURON_CONSTANTS)["g_som"]
            lines.append(f"  {proj.name} soma nudging one-to-one, g_som {g_som}")
            continue
        role = "lateral" if model_of(pops[proj.source]).takes_nudging else "top-down"
        learns = "" if role == "lateral" and proj.is_learnable else (", learnable" if proj.is_learnable else ", fixed")
        lines.append(f"  {proj.name} apical {role}{learns} ({experiment.rule_of(proj.name).rule})")
    order = {name: i for i, name in enumerate(pops)}
    loops, found = [], list(islice(nx.simple_cycles(build_graph(cfg)), MAX_LOOPS + 1))
    for cycle in found[:MAX_LOOPS]:
        start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
        cycle = cycle[start:] + cycle[:start]
        loops.append(" -> ".join(cycle + cycle[:1]))
    lines.append(f"  loops{f' (the first {MAX_LOOPS} found)' if len(found) > MAX_LOOPS else ''}: "
                 + ("; ".join(sorted(loops)) or "none"))
    return lines


def phase_lines(experiment: Experiment) -> list[str]:
    """``training.phases``, one line each: epochs, teacher, what learns and at which rates."""
    training = experiment.config.training
    if not training.phases:
        return []
    lines = [f"phases ({len(training.phases)}, {training.epochs} epochs in all):"]
    first = 1
    for phase in training.phases:
        last = first + phase.epochs - 1
        parts = [f"epochs {first}-{last}" if last > first else f"epoch {first}",
                 "teacher on" if phase.teacher else "teacher off" + (
                     "" if experiment.simulated else " (under mode steady every update is then zero)"),
                 "learn " + (", ".join(phase.learn) if phase.learn is not None else "every learnable projection")]
        if phase.lr is not None:
            parts.append(f"lr {phase.lr}")
        if phase.lr_scale:
            parts.append("lr_scale " + ", ".join(f"{k} x{v}" for k, v in phase.lr_scale.items()))
        lines.append(f"  {phase.name}: {'; '.join(parts)}")
        first = last + 1
    return lines
