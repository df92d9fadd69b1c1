"""Check a model file without data or training, and describe what it builds."""
from __future__ import annotations

from typing import Optional

from .builder import DataSpec, build_model, build_scheme
from .config.loader import Experiment
from .tasks import TASKS


def describe(experiment: Experiment, *, data_root: Optional[str] = None) -> str:
    """Populations, projections, the rule's feedback pathway, parameter counts and the
    recording's size estimate, from the file alone: built on the meta device, it allocates nothing."""
    spec = DataSpec.declared(TASKS.get(experiment.task.type), experiment.task, data_root)
    net, rule = build_model(experiment, spec, device="meta")
    shape, outputs, n_train = spec.input_shape, spec.outputs, spec.train_samples
    cfg = experiment.config
    lines = [f"{experiment.file}: valid", net.summary(), "plasticity of each projection:"]
    lines += [f"  {line}" for line in rule.governance(net)]
    lines.append(f"rule {experiment.rule.rule}{' (default; mixed)' if experiment.mixed else ''}; feedback pathway:")
    lines += [f"  {line}" for line in rule.feedback_pathway(net)] or ["  (no hidden populations)"]
    scheme = build_scheme(experiment)
    lines += scheme.describe(net)
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

        est = check_recording(experiment, net, rule, steps_per_epoch=steps, epochs=cfg.training.epochs,
                              trace_steps=scheme.trace_steps)
        lines.append(f"recording: about {est['bytes'] / 2**20:,.1f} MiB at most ({est['records']} records, "
                     f"{est['weight_records']} projection records), budget {cfg.recording.max_gib} GiB")
    return "\n".join(lines)
