"""What a recording block asks for, checked against the network and rule, and how large its
file will be: no HDF5 here, so the memory estimate and ``dendrisim check`` size a recording
without importing the writer (:mod:`dendrisim.recording.recorder`) or h5py.
"""
from __future__ import annotations

from typing import Optional

from ..config.schema import RecordingConfig
from ..errors import ConfigError

MEANING = {
    "soma": "somatic potential (soma = basal at steady state; simulated under dynamics.mode euler)",
    "basal": "summed basal input, sum of W * rate_pre + b",
    "apical": "apical input: the rule's feedback pathway plus explicit apical projections (top-down rates, "
              "interneurons); the teacher signal t - rate at the output",
    "dendrite": "an interneuron's dendritic input, sum of W * rate_pre + b (its basal-like input)",
    "nudging": "an interneuron's somatic nudging: the soma of the population it predicts, one to one",
    "rate": "output rate, f(soma)",
    "error": "somatic error, f'(soma) * apical (t - rate at a canonical output); under euler the soma-dendrite "
             "mismatch (f(soma) - f(g_B/g * basal)) / λ",
    "weight": "forward weights W: [n_post, n_pre] (dense), [c_post, c_pre, kh, kw] (conv2d)",
    "update": "descent direction written to W.grad by the rule",
    "feedback": "feedback weights carrying the target's error to the source: [n_pre, n_post] (dense), the kernel's shape (conv2d)",
    "feedback_update": "descent direction written to the feedback weights' .grad",
}


def time_points(network, trace_steps: Optional[list[int]] = None) -> Optional[int]:
    """Length of a record's time axis: a recurrent network's sequence, or the states of a
    presentation that the settling scheme keeps (``trace_steps``); None for one state per record."""
    return network.time_steps or (len(trace_steps) if trace_steps else None)


def selection(config: RecordingConfig, network, rule, *, file: Optional[str],
              notes: Optional[list[str]] = None) -> tuple[dict, dict]:
    """Check the recording block against the network and rule; return (populations, projections).

    A name that is wrong whatever the rule (an unknown population, projection or variable, an
    update of a frozen projection) is a ConfigError. What this run's rule cannot provide but
    another rule can (the feedback weights of a rule that carries none, a rule's own counters)
    is left out, with one line appended to ``notes`` saying what and why: a shipped model's
    recording block runs under every rule unedited."""
    notes = [] if notes is None else notes
    pops = config.populations
    if pops == "hidden":  # hidden pyramidal populations and interneurons, each with what it records
        interneurons = network.interneurons()
        pops = {p.name: p.recordable for p in network.hidden()}
        pops.update({p.name: tuple(v for v in p.recordable if v not in ("apical", "error") or p.name in network.needs_error)
                     for p in interneurons})
    for name, variables in pops.items():
        where = f"recording.populations.{name}"
        if name not in network.populations:
            raise ConfigError(f"{name!r} is not a population; populations are {', '.join(network.populations)}",
                              file=file, path=where)
        allowed = network.populations[name].recordable
        for var in variables:
            if var not in allowed:
                raise ConfigError(f"{var!r} is not recordable; {name} records {', '.join(allowed)}", file=file, path=where)
            if var in ("apical", "error") and name not in network.needs_error:
                raise ConfigError(f"{name} gets no {var}: nothing uses its error (no learnable projection ends there "
                                  "and no error is carried through it), so it would record nothing; record "
                                  f"{', '.join(v for v in allowed if v not in ('apical', 'error'))}", file=file, path=where)
    projs: dict[str, tuple[str, ...]] = {}
    for name, variables in config.projections.items():
        where = f"recording.projections.{name}"
        if name not in network.projections:
            raise ConfigError(f"{name!r} is not a projection; projections are {', '.join(network.projections)}",
                              file=file, path=where)
        if not network.projections[name].has_weight:
            raise ConfigError(f"{name!r} is a {network.projections[name].connectivity} projection and has no weights "
                              "to record", file=file, path=where)
        kept = []
        for var in variables:
            problem = _projection_variable_problem(network, rule, network.projections[name], var)
            if problem is None:
                kept.append(var)
            elif problem[1]:  # the rule's doing: left out, and said
                notes.append(f"{where}: {var!r} is left out: {problem[0]}")
            else:
                raise ConfigError(problem[0], file=file, path=where)
        if kept:
            projs[name] = tuple(kept)
    for var in config.rule:
        if var not in rule.recordables:
            message = (f"{var!r} is not recordable; rule {rule.options.rule} records "
                       f"{', '.join(rule.recordables) or 'nothing'}")
            if var not in _known_rule_variables():
                raise ConfigError(message, file=file, path="recording.rule")
            notes.append(f"recording.rule: {message}, so it is left out")
    return {k: tuple(v) for k, v in pops.items()}, projs


def _projection_variable_problem(network, rule, proj, var: str) -> Optional[tuple[str, bool]]:
    """Why ``var`` of ``proj`` cannot be recorded under ``rule``, and whether that is the
    rule's doing (another rule could provide it) rather than the network's; None: it can."""
    allowed = rule.recordables_for(network, proj)
    if var not in allowed:
        return (f"{var!r} is not recordable of {proj.name} under its rule {rule.options.rule}; choose from "
                f"{', '.join(allowed)}"), var in _known_projection_variables()
    if var == "update" and not proj.learnable:
        return f"{proj.name} is frozen (learnable: false): it has no update, so 'update' would record nothing", False
    feedback = rule.feedback_weight(network, proj) if var in ("feedback", "feedback_update") else None
    if var in ("feedback", "feedback_update") and feedback is None:
        from_input = proj.source == network.input_name
        return (f"{proj.name} carries no error back under rule {rule.options.rule} (its source "
                f"{'is the input' if from_input else 'gets its error another way'}), so {var!r} would record "
                "nothing"), not from_input
    if var == "feedback_update" and not feedback.requires_grad:
        return (f"{proj.name} has fixed feedback weights under these options: they get no update, so "
                "'feedback_update' would record nothing"), True
    return None


def _known_projection_variables() -> set[str]:
    """What some registered rule can record of a projection: a name outside it is a typo (an
    error), one inside it that this run's rule cannot provide is the rule's doing (left out)."""
    from ..plasticity import RULES

    return {v for name in RULES.names() for v in (*RULES.get(name).projection_recordables, "feedback_update")}


def _known_rule_variables() -> set[str]:
    from ..plasticity import RULES

    return {v for name in RULES.names() for v in RULES.get(name).recordables}


def estimate_bytes(config: RecordingConfig, network, rule, *, batch_size: int, steps: int, epochs: int,
                   trace_steps: Optional[list[int]] = None) -> dict:
    """Upper bound (uncompressed) of the file a run of ``steps`` steps over ``epochs`` epochs writes
    (``trace_steps``: the states of a presentation the settling scheme keeps, if any)."""
    pops, projs = selection(config, network, rule, file=None)
    item = 2 if config.dtype == "float16" else 4
    k = min(config.samples, batch_size)
    per_record = 24 + 8 * k + 8 * (len(rule.clip_names(network)) if "clip_counts" in config.rule else 0)
    for name, variables in pops.items():
        n = network.populations[name].size
        per_record += (len(variables) * k * (min(n, config.neurons) if config.neurons else n) * item
                       * (time_points(network, trace_steps) or 1))
    per_weight = 24 + sum(network.projections[n].weight.numel() * item * len(v) for n, v in projs.items())
    extra = epochs if config.at_epoch_end else 0
    records = (steps // config.every if config.every else 0) + extra
    weights_every = config.projections_every or config.every
    weight_records = ((steps // weights_every if weights_every else 0) + extra) if projs else 0
    total = per_record * records + per_weight * weight_records
    return {"bytes": total, "records": records, "weight_records": weight_records,
            "bytes_per_record": per_record, "bytes_per_weight_record": per_weight}
