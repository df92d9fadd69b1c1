"""Learning attached to each projection: a network whose projections follow different rules.

A projection's ``plasticity`` block (``{from: h2, to: out, plasticity: {rule: bp}}``) says how
it learns and what it carries back to its source's apical dendrite; the top-level block is
the default of the others. :class:`MixedPlasticity` gives each distinct block one rule
instance that governs just its projections and presents them to the settling schemes,
the trainer and the recorder as one rule:

.. math:: a_l = \\sum_{p: l → m} g_{r(p)} \\, δ_m B_{r(p)}[p]^T

every projection ``p`` carrying its target's error back through the feedback of its own
rule ``r(p)`` (θ, Wᵀ, B) with that rule's apical gain ``g`` (``1/σ²`` for dll), and each rule
updating only its own projections, with its own update gain. A projection whose rule
carries no feedback (``carries_feedback`` false: the microcircuit's synapse models, whose
apical input comes through explicit apical projections) adds nothing to the sum
(:meth:`MixedPlasticity.feeds_back` asks its rule). Network-wide rules (dfa, pc) cannot be
mixed; the builder refuses such files before any tensor exists.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from .base import RULES, PlasticityRule


class MixedPlasticity(PlasticityRule):
    """Several rules, each over its own projections, seen as one."""

    def __init__(self, network, experiment):
        super().__init__(network, experiment.rule)
        groups: dict[str, tuple[Any, list[str]]] = {}  # member key -> (options, projection names)
        index = {p.name: i for i, p in enumerate(experiment.config.projections)}
        for name in network.projections:
            options = experiment.rule_of(name)
            key = "default" if options == experiment.rule else next(
                (k for k, (o, _) in groups.items() if o == options), f"projection{index[name]}")
            groups.setdefault(key, (options, []))[1].append(name)
        self.members = nn.ModuleDict({key: RULES.get(options.rule)(network, options, projections=names)
                                      for key, (options, names) in groups.items()})
        self.owner = {name: rule for rule in self.members.values() for name in rule.projections}
        asked = {p.name for p in experiment.config.projections if p.plasticity is not None}
        #: how each projection came by its rule, for ``--check``
        self.origin = {name: "its own plasticity block" if name in asked else
                       "the top-level rule" if experiment.rule_of(name) == experiment.rule else
                       "the synapse model made for it: the top-level rule does not serve it"
                       for name in network.projections}
        for rule in self.members.values():
            rule.clip_counts = self.clip_counts  # one table: names are per population and projection
        self.projection_recordables = tuple(dict.fromkeys(v for r in self.members.values()
                                                          for v in r.projection_recordables))

    def rule_of(self, proj) -> PlasticityRule:
        return self.owner[proj.name]

    # ----- the feedback pathway: each projection through its own rule --------------------
    def feedback_weight(self, network, proj) -> Optional[torch.Tensor]:
        return self.owner[proj.name].feedback_weight(network, proj)

    def feeds_back(self, proj) -> bool:
        return self.owner[proj.name].feeds_back(proj)

    def feedback_gain(self, proj) -> float:
        return self.owner[proj.name].apical_gain

    def feedback_label(self, network, proj) -> str:
        rule = self.owner[proj.name]
        return f"{rule.feedback_label(network, proj)} [{rule.options.rule}]"

    # ----- updates, optimizer groups, recording --------------------------------------------
    def compute_updates(self, network, state=None) -> None:
        for rule in self.members.values():
            rule.compute_updates(network, state)

    def start_epoch(self, epoch: int) -> None:
        for rule in self.members.values():
            rule.start_epoch(epoch)

    def after_update(self, network) -> None:
        for rule in self.members.values():
            rule.after_update(network)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        groups = []
        for key, rule in self.members.items():
            for group in rule.param_groups(lr):
                groups.append(dict(group, name=f"{group.get('name', rule.options.rule)} ({key})"))
        return groups

    def recordables_for(self, network, proj) -> tuple[str, ...]:
        return self.owner[proj.name].recordables_for(network, proj)

    def projection_state(self, network, proj, variable: str) -> Optional[torch.Tensor]:
        return self.owner[proj.name].projection_state(network, proj, variable)

    def clip_names(self, network) -> list[str]:
        names = [f"apical:{pop.name}" for pop in network.hidden()] if self.options.clip_apical is not None else []
        return names + [n for rule in self.members.values() for n in rule.clip_names(network)
                        if n.startswith("update:")]

    def epoch_summary(self) -> dict[str, float]:
        out = {}
        for rule in self.members.values():
            out.update(rule.epoch_summary())
        return out

    def governance(self, network) -> list[str]:
        return [f"{name}: {self.owner[name].options.rule} ({self.origin[name]})" if proj.has_weight else
                f"{name}: no weights (fixed)" for name, proj in network.projections.items()]
