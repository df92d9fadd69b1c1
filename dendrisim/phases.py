"""Training phases (``training.phases``): which phase an epoch belongs to, and what each says.

A phase is a run of epochs with the teacher on or off, its own set of learning projections
and its own learning rates (:class:`~dendrisim.config.schema.PhaseConfig`). Everything here
is a pure function of the model file's phases and an epoch number, so the phase of a run is
known from its checkpointed epoch alone: phases survive stop and resume with nothing new in
the checkpoint. Without phases every function answers as for one phase that never ends
(index 0, no name). :class:`Phases` applies them to a trainer's optimizer: each phase's learning
rates, and the tensors whose updates it drops.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import torch

from .config.schema import PhaseConfig, TrainingConfig
from .errors import ConfigError
from .optim import phase_rates


def phase_name(phase: PhaseConfig, index: int) -> str:
    """The phase's name in logs, metrics and recordings: its own, or ``phase{index}``."""
    return phase.name or f"phase{index}"


def first_epochs(phases: Sequence[PhaseConfig]) -> list[int]:
    """The first epoch (1-based) of each phase."""
    firsts, start = [], 1
    for phase in phases:
        firsts.append(start)
        start += phase.epochs
    return firsts


def phase_index(phases: Sequence[PhaseConfig], epoch: int) -> int:
    """The 0-based index of the phase that ``epoch`` (1-based) belongs to; 0 without phases.
    Epochs past the end (a finished run's next epoch) belong to the last phase."""
    index, end = 0, 0
    for index, phase in enumerate(phases):
        end += phase.epochs
        if epoch <= end:
            return index
    return index


def total_epochs(training: TrainingConfig) -> int:
    """The run's epochs: the sum of its phases', or ``training.epochs`` without phases."""
    return sum(p.epochs for p in training.phases) if training.phases else training.epochs


def with_total_epochs(training: TrainingConfig, epochs: int) -> TrainingConfig:
    """``training`` set to ``epochs`` in all. With phases, the last phase takes the change (it is
    extended, or shortened); the earlier ones keep theirs. A ValueError when the total would
    end before the last phase begins."""
    if not training.phases:
        return dataclasses.replace(training, epochs=epochs)
    *earlier, last = training.phases
    before = sum(p.epochs for p in earlier)
    if epochs <= before:
        name = phase_name(last, len(earlier))
        raise ValueError(f"{epochs} epochs in all would end before the last phase ({name}) starts at epoch "
                         f"{before + 1}: with training.phases, the epochs of a run extend or shorten its last phase "
                         f"only; give more than {before}, or change training.phases")
    phases = (*earlier, dataclasses.replace(last, epochs=epochs - before))
    return dataclasses.replace(training, epochs=epochs, phases=phases)


def extended(training: TrainingConfig, epochs: int, *, log: Callable[[str], None]) -> TrainingConfig:
    """:func:`with_total_epochs`, and a line to ``log`` when the last phase's epochs change."""
    changed = with_total_epochs(training, epochs)
    if changed.phases and changed.phases[-1].epochs != training.phases[-1].epochs:
        last = len(changed.phases) - 1
        log(f"training.phases: the last phase ({phase_name(changed.phases[-1], last)}) now runs "
            f"{changed.phases[-1].epochs} epochs, to epoch {epochs} (more epochs extend the last phase)")
    return changed


def resumable_phase_keys(training: TrainingConfig) -> tuple[str, ...]:
    """The keys of ``training.phases`` that a resumed run may change: the last phase's epochs
    (``training.phases.<last>.epochs``, as :func:`~dendrisim.observers.checkpoints.config_diff`
    names it)."""
    return (f"training.phases.{len(training.phases) - 1}.epochs",) if training.phases else ()


def phase_table(phases: Sequence[PhaseConfig]) -> list[dict]:
    """``[{name, epochs, teacher, first_epoch}, ...]``: what a recording's ``phases`` attribute holds."""
    return [{"name": phase_name(p, i), "epochs": p.epochs, "teacher": p.teacher, "first_epoch": first}
            for i, (p, first) in enumerate(zip(phases, first_epochs(phases)))]


def learns(phase: Optional[PhaseConfig], projection: str) -> bool:
    """Whether ``projection`` (a learnable one, by name) learns in ``phase`` (None: no phases)."""
    return phase is None or phase.learn is None or projection in phase.learn


def describe(phases: Sequence[PhaseConfig], index: int, learnable: Sequence[str]) -> str:
    """The log's line when a phase starts, e.g. ``phase 1/2 self_predicting: epochs 1-20,
    teacher off, learning h1->i1, i1->h1`` (``learnable``: the learnable projections' names)."""
    phase = phases[index]
    first = first_epochs(phases)[index]
    last = first + phase.epochs - 1
    learning = [name for name in learnable if learns(phase, name)]
    parts = [f"phase {index + 1}/{len(phases)} {phase_name(phase, index)}: epochs {first}-{last}",
             f"teacher {'on' if phase.teacher else 'off'}",
             f"learning {', '.join(learning)}" if learning else "learning nothing"]
    if phase.lr is not None:
        parts.append(f"lr {phase.lr:g}")
    if phase.lr_scale:
        parts.append("lr_scale " + ", ".join(f"{k} {v:g}" for k, v in phase.lr_scale.items()))
    return ", ".join(parts)


def check_learnable(phases: Sequence[PhaseConfig], network, *, file) -> None:
    """Every projection a phase names is a learnable one of ``network`` (the loader says so
    first, with the file; this guards experiments built another way)."""
    learnable = [p.name for p in network.learnable_projections()]
    for i, phase in enumerate(phases):
        for key, names in (("learn", phase.learn or ()), ("lr_scale", phase.lr_scale)):
            for name in names:
                if name not in learnable:
                    raise ConfigError(f"{name!r} is not a learnable projection; the learnable projections are "
                                      f"{', '.join(learnable) or 'none'}", file=file,
                                      path=f"training.phases[{i}].{key}")


class Phases:
    """A trainer's phases applied to its optimizer: the phase it last entered (:attr:`entered`)
    and the tensors whose updates that phase drops (:attr:`frozen`). ``network``, ``rule``,
    ``optimizer`` and ``scheduler`` are the trainer's own."""

    def __init__(self, network, rule, optimizer: torch.optim.Optimizer, scheduler):
        self.network, self.rule, self.optimizer, self.scheduler = network, rule, optimizer, scheduler
        #: the phase whose learning rates and frozen projections the optimizer holds (None: none yet)
        self.entered: Optional[int] = None
        self.frozen: list[torch.Tensor] = []  # tensors whose update is dropped in this phase

    def enter(self, phases: Sequence[PhaseConfig], index: int, *, lr: float, log: Callable[[str], None]) -> None:
        """Set the optimizer for phase ``index``: each group's base learning rate ((phase.lr or
        optimizer.lr) x the group's multiplier in this phase), under the schedule where it stands,
        and the tensors whose updates this phase drops. Recomputed from the phase alone, so a
        resumed run gets the same values; logs the phase's line."""
        optimizer, scheduler = self.optimizer, self.scheduler
        rates = phase_rates(self.network, self.rule, lr, phases, index)
        if len(rates) != len(optimizer.param_groups):
            raise RuntimeError(f"phase {index}: {len(rates)} learning rates for {len(optimizer.param_groups)} "
                               "param groups (the optimizer was not built with the run's phases)")
        for i, (group, rate) in enumerate(zip(optimizer.param_groups, rates)):
            # what LambdaLR computes at its step: base_lr x factor(step)
            scheduler.base_lrs[i] = group["initial_lr"] = rate
            group["lr"] = rate * scheduler.lr_lambdas[i](scheduler.last_epoch)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
        self.frozen = self.frozen_tensors(phases[index])
        self.entered = index
        log(describe(phases, index, [p.name for p in self.network.learnable_projections()]))

    def frozen_tensors(self, phase: PhaseConfig) -> list[torch.Tensor]:
        """What does not learn in ``phase``: the parameters of every projection outside its
        ``learn`` list and the rule's feedback weights of those projections (fa/kp's B, dll's θ)
        when the optimizer updates them."""
        if phase.learn is None:
            return []
        learned = {id(p) for group in self.optimizer.param_groups for p in group["params"]}
        frozen = []
        for proj in self.network.learnable_projections():
            if learns(phase, proj.name):
                continue
            frozen += proj.parameters_to_learn()
            try:
                feedback = self.rule.feedback_weight(self.network, proj)
            except NotImplementedError:
                feedback = None
            if feedback is not None and id(feedback) in learned:
                frozen.append(feedback)
        return frozen
